"""distribution.commands (key = item id) -> app.handlers; the reply goes back to the asker."""

from __future__ import annotations

import logging

from app import handlers
from app.channels import commands_topic, send
from app.dead_letters import dead_letter
from app.domain.errors import InvalidRequest, Unavailable
from app.faust_app import app
from app.topics import COMMANDS_DLQ
from app.waiting import until_available
from app.wire import Command, PingCommand, parse_command

log = logging.getLogger("distribution.commands")


async def apply(command: Command) -> handlers.Applied:
    def attempt():
        return handlers.handle(app.pool, command, app.now(), app.policy)

    if command.actor is not None:
        # Someone is waiting: tell them now rather than hold the partition for them.
        return await attempt()
    return await until_available(attempt, f"apply {command.kind}")


@app.agent(commands_topic, use_reply_headers=True)
async def apply_commands(stream):
    async for value in stream:
        event = stream.current_event
        try:
            command = parse_command(value)
        except ValueError as exc:
            await dead_letter(send, COMMANDS_DLQ, event.message, "invalid_command", str(exc))
            yield handlers.error_reply(InvalidRequest(str(exc)))
            continue
        if isinstance(command, PingCommand):
            yield handlers.PONG
            continue
        try:
            applied = await apply(command)
        except Unavailable as exc:
            yield handlers.error_reply(exc)
            continue
        except Exception as exc:  # a bug must not stop the partition, nor lose the command
            log.exception("command failed", extra={"item_id": command.item_id,
                                                    "command": command.kind})
            await dead_letter(send, COMMANDS_DLQ, event.message, "command_failed", repr(exc))
            yield handlers.error_reply(Unavailable("the command could not be applied"))
            continue
        if applied.publishing_started:
            app.publisher_wakeup.set()
        if applied.outbox_written:
            app.relay_wakeup.set()
        yield applied.reply
