"""Every topic the service reads or writes, by name, and a message to one of them.

The names live here alone; Faust's handles on them are declared in `app/channels.py`. Values
are raw bytes: we parse them ourselves, so that what cannot be parsed goes to a dead-letter
topic with its reason instead of vanishing in a decoder.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: M09's claims. Consumed by agents/claims.py with a consumer group of its own.
CLAIMED = "distribution.claimed"
CLAIMED_DLQ = "distribution.claimed.dlq"
#: Orders for one item, keyed by the item id (DESIGN §3).
COMMANDS = "distribution.commands"
COMMANDS_DLQ = "distribution.commands.dlq"
#: Records no agent could process, kept `DISTRIBUTION_DLQ_RETENTION_HOURS` for a re-drive.
DLQ_TOPICS = (CLAIMED_DLQ, COMMANDS_DLQ)
#: Outcome events, written through the outbox.
PUBLISHED = "distribution.published"
FAILED = "distribution.failed"
OUTCOMES = (PUBLISHED, FAILED)
#: A platform whose outcome cannot be established (an operator settles it), keyed by item.
UNKNOWN = "distribution.unknown"
#: Accounts that need reconnecting, and reconnected again; keyed by influencer:platform.
ACCOUNTS = "distribution.accounts"
NEEDS_RECONNECT, RECONNECTED = "account.needs_reconnect", "account.reconnected"
#: Internal: platform outcomes re-keyed by platform for the statistics table.
STATS_PLATFORM_OUTCOMES = "distribution-stats-platform-outcomes"

#: Created at start with the configured partitions, replication and retention.
SERVICE_TOPICS = (CLAIMED, CLAIMED_DLQ, COMMANDS, COMMANDS_DLQ, PUBLISHED, FAILED, UNKNOWN,
                  ACCOUNTS)


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes | None  # the item id for everything about an item
    value: bytes


#: Sends messages and returns once the broker acknowledged every one (raises otherwise).
#: The worker's is Faust's producer (`app/channels.py`); tests pass their own.
Send = Callable[[Sequence[Message]], Awaitable[None]]


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()
