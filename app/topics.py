"""Topic declarations. Values are raw bytes: we parse them ourselves, so that what cannot be
parsed goes to a dead-letter topic with its reason instead of vanishing in a decoder."""

from __future__ import annotations

import json
from typing import Any

from app.faust_app import app

#: Consumed by agents/claims.py with a consumer group of its own, not by a Faust agent.
CLAIMED = "distribution.claimed"
claimed_dlq_topic = app.topic("distribution.claimed.dlq", key_serializer="raw",
                              value_serializer="raw")
commands_topic = app.topic("distribution.commands", key_serializer="raw", value_serializer="raw")
commands_dlq_topic = app.topic("distribution.commands.dlq", key_serializer="raw",
                               value_serializer="raw")
published_topic = app.topic("distribution.published", key_serializer="raw",
                            value_serializer="raw")
failed_topic = app.topic("distribution.failed", key_serializer="raw", value_serializer="raw")

OUTCOME_TOPICS = {published_topic.get_topic_name(): published_topic,
                  failed_topic.get_topic_name(): failed_topic}


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()

#: Both outcome topics as one source, for the statistics agent.
outcome_topics = app.topic("distribution.published", "distribution.failed",
                           key_serializer="raw", value_serializer="raw")
