"""Group commit for a stream of work: each batch is what arrived while the previous one was
being applied. Nothing waits for a window to fill: a lone item goes at once, and under load
the batches grow by themselves to what the work keeps up with. And a batch's commands are
packed into transactions of a few partitions each.

(Faust's `take` waits out its `within` window for every batch and stops reading while a
batch is applied, so its batches hold only what arrives within the window.)"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import TypeVar

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
