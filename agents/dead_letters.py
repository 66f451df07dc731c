"""Records that can never be processed go to a dead-letter topic with the reason."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from faust.types import TopicT

from app.envelope import rfc3339
from app.topics import encode

log = logging.getLogger("distribution.dlq")

MAX_VALUE_CHARS = 64 * 1024


async def dead_letter(dlq: TopicT, message: Any, reason: str, error: str) -> None:
    """`message` is a consumed record (Faust's or aiokafka's: topic, partition, offset,
    key, value)."""
    value = message.value if isinstance(message.value, bytes) else b""
    record = {
        "reason": reason,
        "error": error[:2000],
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": message.key.decode(errors="replace") if isinstance(message.key, bytes) else None,
        "value": value[:MAX_VALUE_CHARS].decode(errors="replace"),
        "value_bytes": len(value),
        "received_at": rfc3339(datetime.now(timezone.utc)),
    }
    fut = await dlq.send(key=message.key, value=encode(record))
    await fut
    log.warning("dead-lettered", extra={"topic": message.topic, "partition": message.partition,
                                         "offset": message.offset, "reason": reason,
                                         "error": error[:300]})
