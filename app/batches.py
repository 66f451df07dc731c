"""Group commit for a stream of work: each batch is what arrived while the previous one was
being applied. Nothing waits for a window to fill: a lone item goes at once, and under load
the batches grow by themselves to what the work keeps up with. And a batch's commands are
packed into transactions of a few partitions each.

(Faust's `take` waits out its `within` window for every batch and stops reading while a
batch is applied, so its batches hold only what arrives within the window.)"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

from app.topics import Message, Send

T = TypeVar("T")


async def as_they_come(source: AsyncIterator[T], max_size: int) -> AsyncIterator[list[T]]:
    """Batches of up to `max_size` of the source's items, in order, each as soon as the
    caller asks for it and something has arrived. The source is read ahead while the
    caller works, by at most `max_size` items; its error is raised after the items it gave
    before it."""
    pending: collections.deque[T] = collections.deque()
    arrived = asyncio.Event()  # something arrived, or the source ended
    room = asyncio.Event()  # the read-ahead may go on
    room.set()

    async def read() -> None:
        try:
            async for item in source:
                pending.append(item)
                arrived.set()
                if len(pending) >= max_size:
                    room.clear()
                    await room.wait()
        finally:
            arrived.set()

    reader = asyncio.ensure_future(read())
    try:
        while True:
            while not pending:
                if reader.done():
                    reader.result()  # the source's error, if it failed
                    return
                arrived.clear()
                await arrived.wait()
            batch = [pending.popleft() for _ in range(min(len(pending), max_size))]
            room.set()
            yield batch
    finally:
        reader.cancel()


#: Partitions' commands share a transaction until it holds this many: a transaction costs
#: the same few round trips whatever it holds, and a small batch spread over eight
#: partitions would otherwise pay them eight times.
SHARED_TRANSACTION_SIZE = 50


def transactions(partitions: list[list[T]], size: int) -> list[list[T]]:
    """Each partition's commands, in their order, packed whole into transactions applied
    side by side, a transaction closed once it holds `size` commands."""
    packed: list[list[T]] = []
    for commands in partitions:
        if not packed or len(packed[-1]) >= size:
            packed.append([])
        packed[-1].extend(commands)
    return packed


class GatheredSend:
    """One `Send` shared by many tasks: what they send while a send is under way goes out
    together in the next one (group commit), so that the publisher's answers, each sent by
    its own call's task, make a few records (bundled: app/wire.py) instead of one each.
    Each caller returns once the broker has its messages, or gets the send's exception."""

    def __init__(self, send: Send, max_messages: int = 1000) -> None:
        self._send = send
        self._max = max_messages
        self._pending: collections.deque[tuple[Sequence[Message], asyncio.Future]] = (
            collections.deque())
        self._sender: asyncio.Task | None = None

    async def __call__(self, messages: Sequence[Message]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._pending.append((messages, done))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_pending())
        await done

    async def _send_pending(self) -> None:
        while self._pending:
            batch = [self._pending.popleft()]
            size = len(batch[0][0])
            while self._pending and size + len(self._pending[0][0]) <= self._max:
                size += len(self._pending[0][0])
                batch.append(self._pending.popleft())
            try:
                await self._send([m for messages, _ in batch for m in messages])
            except asyncio.CancelledError:
                for _, done in batch:
                    done.cancel()
                raise
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def close(self) -> None:
        """Stops sending; callers still waiting are cancelled (their answers were not sent)."""
        if self._sender is not None:
            self._sender.cancel()
        while self._pending:
            self._pending.popleft()[1].cancel()
