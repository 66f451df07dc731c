"""Wire records: the claimed event we consume, and the commands between workers (one typed
payload per kind, turned into the domain command at this edge)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError,
                      field_validator)

from app.domain import commands as c
from app.domain.model import (ITEM_ID_PATTERN, Actor, Caption, CaptionText, ErrorClass, Outcome,
                              Platform)
from app.envelope import Envelope
from app.topics import COMMANDS, Message, Send

Id = Field(min_length=1, max_length=200)
ItemId = Field(pattern=ITEM_ID_PATTERN)  # an item id must be addressable over HTTP

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


# ---------------------------------------------------------------------------------------------
# Command payloads: one model per kind. They check shape and types only; what the rules
# judge (windows, limits, known platforms) is the domain's, so that a replayed command is
# refused by the same rule, with the same error, as the first time.


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaptionTextPayload(Payload):
    text: str = ""
    hashtags: list[str] = Field(default_factory=list)
    title: str | None = None

    def to_domain(self) -> CaptionText:
        return CaptionText(self.text, tuple(self.hashtags), self.title)


class CaptionPayload(CaptionTextPayload):
    variants: dict[Platform, CaptionTextPayload] = Field(default_factory=dict)

    def to_caption(self) -> Caption:
        return Caption(self.to_domain(), {p: v.to_domain() for p, v in self.variants.items()})


def _caption(payload: CaptionPayload | None) -> Caption | None:
    return payload.to_caption() if payload is not None else None


class AddOverlayPayload(Payload):
    type: str
    duration_seconds: float

    def to_domain(self) -> c.AddOverlay:
        return c.AddOverlay(self.type, self.duration_seconds)


class SchedulePayload(Payload):
    platforms: list[str]
    scheduled_at: str
    timezone: str | None = None
    caption: CaptionPayload | None = None

    def to_domain(self) -> c.Schedule:
        return c.Schedule(self.platforms, self.scheduled_at, self.timezone,
                          _caption(self.caption))


class ReschedulePayload(Payload):
    scheduled_at: str
    timezone: str | None = None

    def to_domain(self) -> c.Reschedule:
        return c.Reschedule(self.scheduled_at, self.timezone)


class PublishPayload(Payload):
    platforms: list[str]
    caption: CaptionPayload | None = None

    def to_domain(self) -> c.Publish:
        return c.Publish(self.platforms, _caption(self.caption))


class RetryPayload(Payload):
    def to_domain(self) -> c.Retry:
        return c.Retry()


class DownloadPayload(Payload):
    def to_domain(self) -> c.RequestDownload:
        return c.RequestDownload()


class PublishDuePayload(Payload):
    scheduled_at: AwareDatetime

    def to_domain(self) -> c.PublishDue:
        return c.PublishDue(self.scheduled_at)


class PlatformResultPayload(Payload):
    """What a platform answered to one attempt, as the publisher sends it back."""

    platform: str
    key_attempt: int = Field(ge=1)
    outcome: Outcome
    error_class: ErrorClass | None = None  # of a failure (domain: RecordPlatformResult)
    reason_code: str | None = None
    post_id: str | None = None
    post_url: str | None = None
    error: str | None = None
    retry_after: float | None = None
    jitter: float = Field(0.5, ge=0, lt=1)
    attempt: int = Field(0, ge=0)  # which attempt this answers (counted before the call)

    def to_domain(self) -> c.RecordPlatformResult:
        return c.RecordPlatformResult(**self.model_dump())


class ResolvePlatformPayload(Payload):
    """An operator's settlement of a platform whose outcome is unknown."""

    platform: str
    outcome: Literal["published", "not_published"]
    post_id: str | None = Field(None, min_length=1, max_length=200)
    post_url: str | None = Field(None, max_length=2000)

    def to_domain(self) -> c.ResolvePlatform:
        return c.ResolvePlatform(self.platform, self.outcome, self.post_id, self.post_url)


class PingPayload(Payload):
    """A readiness probe's round trip through the command agent; it changes nothing."""

    def to_domain(self) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# Commands: an order for one item, keyed by the item id on distribution.commands. The kind
# says which payload it carries (a union discriminated on `kind`).


class CommandBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_id: str = Id
    item_id: str = Id
    actor: str | None = None  # who asks (token subject); None for the service's own commands
    operator: bool = False  # the actor holds the operator scope: any item, any action
    trace_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    issued_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    def to_domain(self) -> object:
        """The domain command this wire command carries."""
        return self.payload.to_domain()  # type: ignore[attr-defined]

    def actor_of(self) -> Actor | None:
        return Actor(self.actor, self.operator) if self.actor is not None else None


class AddOverlayCommand(CommandBase):
    kind: Literal["add-overlay"] = "add-overlay"
    payload: AddOverlayPayload


class ScheduleCommand(CommandBase):
    kind: Literal["schedule"] = "schedule"
    payload: SchedulePayload


class RescheduleCommand(CommandBase):
    kind: Literal["reschedule"] = "reschedule"
    payload: ReschedulePayload


class PublishCommand(CommandBase):
    kind: Literal["publish", "publish-multi"] = "publish"
    payload: PublishPayload


class RetryCommand(CommandBase):
    kind: Literal["retry"] = "retry"
    payload: RetryPayload = Field(default_factory=RetryPayload)


class DownloadCommand(CommandBase):
    kind: Literal["download"] = "download"
    payload: DownloadPayload = Field(default_factory=DownloadPayload)


class PublishDueCommand(CommandBase):
    """Sent by the scheduler; its id derives from the schedule, so a repeat applies once."""

    kind: Literal["publish-due"] = "publish-due"
    payload: PublishDuePayload


class PlatformResultCommand(CommandBase):
    kind: Literal["platform-result"] = "platform-result"
    payload: PlatformResultPayload


class ResolvePlatformCommand(CommandBase):
    kind: Literal["resolve-platform"] = "resolve-platform"
    payload: ResolvePlatformPayload


class PingCommand(CommandBase):
    kind: Literal["ping"] = "ping"
    payload: PingPayload = Field(default_factory=PingPayload)


Command = Annotated[
    AddOverlayCommand | ScheduleCommand | RescheduleCommand | PublishCommand | RetryCommand
    | DownloadCommand | PublishDueCommand | PlatformResultCommand | ResolvePlatformCommand
    | PingCommand,
    Field(discriminator="kind")]
_COMMAND: TypeAdapter[Command] = TypeAdapter(Command)
#: Every kind a command may have.
COMMAND_KINDS = frozenset(
    kind for model in get_args(get_args(Command)[0])
    for kind in get_args(model.model_fields["kind"].annotation))


def make_command(kind: str, item_id: str, command_id: str, payload: Any = None,
                 **fields: Any) -> Command:
    """A command of `kind` from its parts; ValidationError when the payload does not fit."""
    return _COMMAND.validate_python({"kind": kind, "item_id": item_id,
                                     "command_id": command_id, "payload": payload or {},
                                     **fields})


def command_message(command: CommandBase) -> Message:
    """A command as it travels: keyed by its item id, so one partition orders an item's."""
    return Message(COMMANDS, command.item_id.encode(), command.model_dump_json().encode())


async def send_commands(send: Send, commands: Sequence[CommandBase]) -> None:
    """Send commands to the command agent; returns once the broker has every one."""
    await send([command_message(command) for command in commands])


# A bundle: the service's own commands for items of one partition (the scheduler's due
# items, the publisher's answers) as one record, keyed by its first item's id so that it
# lands where each of its commands would have. One produce and one record to consume instead
# of one per command; each is still applied as if sent alone (its own id, its item's order).


class CommandBundle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["bundle"]
    commands: list[Command] = Field(min_length=1)


_BUNDLE_HEAD, _BUNDLE_TAIL = b'{"kind":"bundle","commands":[', b"]}"
#: Commands a bundle holds at most (a record of ~100 KB, well under the broker's limit).
BUNDLE_SIZE = 200

#: The partition of the commands topic a key goes to; None when not known (yet).
PartitionOf = Callable[[bytes], int | None]


def bundled(messages: Sequence[Message], partition_of: PartitionOf) -> list[Message]:
    """The commands among `messages` bundled by partition, each bundle's in their order;
    the other messages, and commands whose partition is not known, as they are."""
    out: list[Message] = []
    by_partition: dict[int, list[Message]] = {}
    for message in messages:
        partition = (partition_of(message.key)
                     if message.topic == COMMANDS and message.key is not None else None)
        if partition is None:
            out.append(message)
        else:
            by_partition.setdefault(partition, []).append(message)
    for group in by_partition.values():
        for start in range(0, len(group), BUNDLE_SIZE):
            part = group[start:start + BUNDLE_SIZE]
            out.append(part[0] if len(part) == 1 else Message(
                COMMANDS, part[0].key,
                _BUNDLE_HEAD + b",".join(m.value for m in part) + _BUNDLE_TAIL))
    return out


def bundling(send: Send, partition_of: PartitionOf) -> Send:
    """`send`, with the commands of each call bundled by partition."""
    async def send_bundled(messages: Sequence[Message]) -> None:
        await send(bundled(messages, partition_of))
    return send_bundled


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                     for e in exc.errors()[:10])


def _load(value: bytes) -> Any:
    """JSON off a topic; ValueError for anything that cannot be read, however malformed (a
    nesting too deep for the parser must not crash the agent)."""
    try:
        return orjson.loads(value)  # several times faster than json
    except orjson.JSONDecodeError:
        pass  # json reads what it always read (integers past 64 bits, UTF-16) or says why not
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


def parse_commands(value: bytes) -> list[Command]:
    """The commands of a record off the topic (one, or a bundle's); ValueError says why it
    can never be processed."""
    data = _load(value)
    try:
        if isinstance(data, dict) and data.get("kind") == "bundle":
            return CommandBundle.model_validate(data).commands
        return [_COMMAND.validate_python(data)]
    except ValidationError as exc:
        raise ValueError(f"invalid command: {_problems(exc)}") from None
