"""Wire records: the claimed event we consume, and the commands and replies between workers."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.domain.model import ITEM_ID_PATTERN, Actor
from app.envelope import Envelope

Id = Field(min_length=1, max_length=200)
ItemId = Field(pattern=ITEM_ID_PATTERN)  # an item id must be addressable over HTTP

CommandKind = Literal["add-overlay", "schedule", "reschedule", "publish", "publish-multi",
                      "retry", "download", "publish-due", "platform-result", "ping"]
#: A readiness probe's round trip through the command agent; it changes nothing.
PING = "ping"

CLAIMED_EVENT_TYPES = {"distribution.claimed"}


class ClaimData(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    claim_id: str = ItemId
    clip_id: str = Id
    influencer_id: str = Id
    campaign_id: str | None = Field(None, min_length=1, max_length=200)
    claimed_at: datetime

    @field_validator("claimed_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("claimed_at needs an offset")
        return value.astimezone(timezone.utc)


class ClaimedEvent(Envelope):
    data: ClaimData  # type: ignore[assignment]

    @field_validator("event_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in CLAIMED_EVENT_TYPES:
            raise ValueError(f"unknown event_type {value!r}")
        return value


class Command(BaseModel):
    """An order for one item, keyed by the item id on distribution.commands."""

    model_config = ConfigDict(extra="forbid")

    command_id: str = Id
    kind: CommandKind
    item_id: str = Id
    actor: str | None = None  # who asks (token subject); None for the service's own commands
    operator: bool = False  # the actor holds the operator scope: any item, any action
    trace_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    issued_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    payload: dict[str, Any] = Field(default_factory=dict)


def actor_of(command: Command) -> Actor | None:
    return Actor(command.actor, command.operator) if command.actor is not None else None


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                     for e in exc.errors()[:10])


def _load(value: bytes) -> Any:
    """JSON off a topic; ValueError for anything that cannot be read, however malformed (a
    nesting too deep for the parser must not crash the agent)."""
    try:
        return json.loads(value)
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except (TypeError, ValueError) as exc:  # no value, not UTF-8/16/32, a number too long
        raise ValueError(f"unreadable value: {exc}") from None


def parse_claim(value: bytes) -> ClaimData:
    """The claim in a claimed event; ValueError says why it can never be processed."""
    data = _load(value)
    try:
        return ClaimedEvent.model_validate(data).data
    except ValidationError as exc:
        raise ValueError(f"invalid claimed event: {_problems(exc)}") from None


def parse_command(value: bytes) -> Command:
    """A command off the topic; ValueError says why it can never be processed."""
    data = _load(value)
    try:
        return Command.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"invalid command: {_problems(exc)}") from None
