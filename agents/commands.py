"""distribution.commands (key = item id) -> app.handlers, in batches: the commands that
arrived while the previous batch was applied (app/batches.py) are applied in transactions
of a few partitions each (side by side once there are many), each partition's commands in
their order; then each asker gets its reply. One item's commands share its partition:
their order holds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import EventT

from app import handlers, metrics
from app.batches import SHARED_TRANSACTION_SIZE, as_they_come, transactions
from app.channels import commands_topic, send
from app.dead_letters import dead_letter
from app.domain.errors import InvalidRequest, Unavailable
from app.faust_app import app
from app.kafka import reply
from app.topics import COMMANDS_DLQ
from app.waiting import until_available
from app.publishing import unrecorded_answer
from app.wire import (Command, PingCommand, PlatformResultCommand, command_message,
                      parse_commands)

log = logging.getLogger("distribution.commands")

Result = handlers.Applied | Exception


async def apply(commands: Sequence[Command]) -> list[Result]:
    """The batch's results, in order. With the database away, whoever waits for a reply
    hears so now rather than hold the partition; the service's own commands are applied
    once it is back."""
    def attempt(batch: Sequence[Command]):
        return lambda: handlers.handle_batch(app.pool, batch, app.now(), app.policy)

    try:
        return await attempt(commands)()
    except Unavailable as exc:
        own = [c for c in commands if c.actor is None]
        applied = iter(await until_available(attempt(own), "apply commands") if own else [])
        return [next(applied) if c.actor is None else exc for c in commands]


async def apply_events(events: Sequence[EventT]) -> None:
    replies: dict[int, dict] = {}
    commands: list[tuple[int, Command]] = []  # (its event, the command)
    bundles: set[int] = set()  # the events that hold more than one command
    unrecorded: list[PlatformResultCommand] = []  # for platform answers that failed
    for n, event in enumerate(events):
        try:
            parsed = parse_commands(event.value)
        except ValueError as exc:
            metrics.observe_command("unknown", "invalid")
            await dead_letter(send, COMMANDS_DLQ, event.message, "invalid_command", str(exc))
            replies[n] = handlers.error_reply(InvalidRequest(str(exc)))
            continue
        if len(parsed) > 1:
            bundles.add(n)
        for command in parsed:
            if isinstance(command, PingCommand):
                replies[n] = handlers.PONG
            else:
                commands.append((n, command))
    by_partition: dict[int, list[tuple[int, Command]]] = {}
    for n, command in commands:
        by_partition.setdefault(events[n].message.partition, []).append((n, command))
    groups = transactions(list(by_partition.values()), SHARED_TRANSACTION_SIZE)
    results = await asyncio.gather(*(apply([c for _, c in group]) for group in groups))
    now = app.now()
    for (n, command), result in zip([nc for group in groups for nc in group],
                                    [r for rs in results for r in rs]):
        # a bundle's asker (there is none: the service sends them) hears its last command
        record(command, result, now)
        if isinstance(result, Unavailable):
            replies[n] = handlers.error_reply(result)
        elif isinstance(result, Exception):  # a bug must not stop the partition, nor lose it
            failed = (CommandRecord.alone(events[n].message, command) if n in bundles
                      else events[n].message)
            await dead_letter(send, COMMANDS_DLQ, failed, "command_failed", repr(result))
            replies[n] = handlers.error_reply(Unavailable("the command could not be applied"))
            if isinstance(command, PlatformResultCommand):
                unrecorded.append(unrecorded_answer(command, result))
        else:
            replies[n] = result.reply
            wake_up(result)
    if unrecorded:
        await apply_unrecorded(unrecorded)
    for n, event in enumerate(events):
        await reply(app, event, replies[n])


def wake_up(result: handlers.Applied) -> None:
    if result.publishing_started:
        app.publisher_wakeup.set()
    if result.outbox_written:
        app.relay_wakeup.set()


async def apply_unrecorded(answers: list[PlatformResultCommand]) -> None:
    """Platforms whose answers could not be recorded, left `unknown` for an operator
    (app/publishing.py); if even that fails, the lease runs out and they are tried again."""
    now = app.now()
    for answer, result in zip(answers, await apply(answers)):
        record(answer, result, now)
        if isinstance(result, Exception):
            log.error("a platform's answer could not be recorded, nor its platform left "
                      "unknown: tried again when its lease runs out", extra={
                          "item_id": answer.item_id, "platform": answer.payload.platform,
                          "error": repr(result)})
        else:
            log.warning("a platform's answer could not be recorded: the platform is left "
                        "unknown for an operator", extra={
                            "item_id": answer.item_id, "platform": answer.payload.platform,
                            "command_id": answer.command_id})
            wake_up(result)


@dataclass(frozen=True)
class CommandRecord:
    """One command of a bundle, as the dead-letter topic keeps it: where the bundle was,
    and the command alone keyed by its item (re-driven, it goes alone)."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes

    @classmethod
    def alone(cls, bundle: Any, command: Command) -> CommandRecord:
        message = command_message(command)
        return cls(bundle.topic, bundle.partition, bundle.offset, message.key, message.value)


def record(command: Command, result: Result, now) -> None:
    if isinstance(result, Exception):
        outcome = "unavailable" if isinstance(result, Unavailable) else "failed"
        metrics.observe_command(command.kind, outcome)
        return
    outcome, error = result.outcome
    metrics.observe_command(command.kind, outcome, error, command.issued_at, now)
    metrics.observe_decision(result.events, result.scheduled_at, now)


@app.agent(commands_topic, use_reply_headers=True)
@app.vitals.watch("commands agent")
async def apply_commands(stream):
    # Acked once applied, as Faust's take_events acks its batches: the offset committed
    # never passes a command not yet applied.
    stream.enable_acks = False
    async for events in as_they_come(stream.events(), app.settings.command_batch_size):
        await apply_events(events)
        for event in events:
            await stream.ack(event)
