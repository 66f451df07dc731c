"""Records that can never be processed go to a dead-letter topic with the reason; an
operator may send one back to its topic once (the re-drive, recorded in PostgreSQL)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from app import metrics
from app.domain.errors import RuleViolation
from app.envelope import rfc3339
from app.topics import CLAIMED, CLAIMED_DLQ, COMMANDS, COMMANDS_DLQ, Message, Send, encode

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
    metrics.DEAD_LETTERS.labels(record.topic, reason).inc()
    log.warning("dead-lettered", extra={"topic": record.topic, "partition": record.partition,
                                         "offset": record.offset, "reason": reason,
                                         "error": error[:300]})


# --- what operators see of the dead letters, and the re-drive ------------------------------

#: The topics a dead-lettered record may be sent back to, by the DLQ that holds it.
REDRIVABLE = {CLAIMED_DLQ: CLAIMED, COMMANDS_DLQ: COMMANDS}


@dataclass(frozen=True)
class DeadLetter:
    """One record of a DLQ topic: where it is, and its body (`dead_letter_message`)."""

    dlq_topic: str
    partition: int
    offset: int
    body: dict[str, Any]


def dead_letter_from(record: Any) -> DeadLetter:
    """A consumed DLQ record; a body that is not ours reads as an unknown reason."""
    try:
        body = json.loads(record.value)
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError:
        body = {"reason": "unreadable", "error": "the DLQ record is not a JSON object"}
    return DeadLetter(record.topic, record.partition, record.offset, body)


def redrive_message(letter: DeadLetter) -> Message:
    """The original record, to its topic under its key, exactly as it was consumed;
    RuleViolation when the DLQ body cannot give it back (cut at MAX_VALUE_CHARS, not
    UTF-8), or it came from a topic not to be re-driven."""
    body = letter.body
    source = REDRIVABLE.get(letter.dlq_topic)
    if source is None or body.get("topic") != source:
        raise RuleViolation(f"records of {letter.dlq_topic} from {body.get('topic')!r} are not "
                            "sent back", topic=letter.dlq_topic)
    value = body.get("value")
    if not isinstance(value, str) or len(value.encode()) != body.get("value_bytes"):
        raise RuleViolation("the record was cut or was not UTF-8 when it was dead-lettered: "
                            "it cannot be sent back as it was", offset=letter.offset)
    key = body.get("key")
    return Message(source, key.encode() if isinstance(key, str) else None, value.encode())
