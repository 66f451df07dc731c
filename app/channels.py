"""Faust's handles on our topics (names from app/topics.py), and the `send` the worker's
loops are given."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faust.exceptions import NotReady
from faust.types import TopicT

from app import topics as t
from app.faust_app import app
from app.wire import bundling

#: Sent messages not acknowledged within this many seconds count as not sent.
ACK_TIMEOUT_SECONDS = 15.0


def _raw(*names: str) -> TopicT:
    """Values and keys as bytes: we parse them ourselves (see app/topics.py)."""
    return app.topic(*names, key_serializer="raw", value_serializer="raw")


#: What the command agent consumes.
commands_topic = _raw(t.COMMANDS)
#: Both outcome topics as one source, for the statistics agent.
outcome_topics = _raw(*t.OUTCOMES)
platform_outcomes_topic = app.topic(t.STATS_PLATFORM_OUTCOMES, partitions=1, internal=True,
                                    key_serializer="raw", value_serializer="raw")

_BY_NAME = {name: (commands_topic if name == t.COMMANDS else _raw(name))
            for name in t.SERVICE_TOPICS}


async def send(messages: Sequence[t.Message]) -> None:
    """Through Faust's producer, every message acknowledged (or an exception)."""
    futures = [await _BY_NAME[m.topic].send(key=m.key, value=m.value) for m in messages]
    if futures:
        await asyncio.wait_for(asyncio.gather(*futures), ACK_TIMEOUT_SECONDS)


def command_partition(key: bytes) -> int | None:
    """The partition of the commands topic the producer sends `key` to; None until the
    producer knows the topic's partitions (it learns them with its first send there)."""
    try:
        return app.producer.key_partition(t.COMMANDS, key).partition
    except (TypeError, NotReady):  # no metadata for the topic yet; no producer yet
        return None


#: For the service's own commands (due items, platform answers): bundled by partition.
send_bundled = bundling(send, command_partition)
