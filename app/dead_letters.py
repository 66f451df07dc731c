"""Records that can never be processed go to a dead-letter topic with the reason."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from app.envelope import rfc3339
from app.topics import Message, Send, encode

log = logging.getLogger("distribution.dlq")

MAX_VALUE_CHARS = 64 * 1024


def dead_letter_message(dlq: str, record: Any, reason: str, error: str) -> Message:
    """The DLQ record for a consumed record (Faust's or aiokafka's: topic, partition,
    offset, key, value), under the same key."""
    value = record.value if isinstance(record.value, bytes) else b""
    body = {
        "reason": reason,
        "error": error[:2000],
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if isinstance(record.key, bytes) else None,
        "value": value[:MAX_VALUE_CHARS].decode(errors="replace"),
        "value_bytes": len(value),
        "received_at": rfc3339(datetime.now(timezone.utc)),
    }
    return Message(dlq, record.key if isinstance(record.key, bytes) else None, encode(body))


async def dead_letter(send: Send, dlq: str, record: Any, reason: str, error: str) -> None:
    await send([dead_letter_message(dlq, record, reason, error)])
    log.warning("dead-lettered", extra={"topic": record.topic, "partition": record.partition,
                                         "offset": record.offset, "reason": reason,
                                         "error": error[:300]})
