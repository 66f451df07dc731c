"""Group commit: a batch is what arrived while the previous one was applied."""

from __future__ import annotations

import asyncio

import pytest

from app.batches import GatheredSend, as_they_come, transactions
from app.topics import Message


async def test_a_lone_item_comes_at_once_and_what_arrives_meanwhile_comes_next_together():
    source: asyncio.Queue = asyncio.Queue()

    async def items():
        while (item := await source.get()) is not None:
            yield item

    batches = as_they_come(items(), max_size=100)
    source.put_nowait(1)
    assert await asyncio.wait_for(anext(batches), 1) == [1]  # no window waited out
    for n in range(2, 8):  # arrive while batch [1] is being applied
        source.put_nowait(n)

    async def read_ahead():  # the reader runs while the caller awaits anything
        while source.qsize():
            await asyncio.sleep(0)
    await asyncio.wait_for(read_ahead(), 1)
    assert await asyncio.wait_for(anext(batches), 1) == [2, 3, 4, 5, 6, 7]
    source.put_nowait(None)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(batches), 1)


async def test_batches_keep_the_order_and_the_size_limit_and_read_ahead_is_bounded():
    read = []

    async def items():
        for n in range(25):
            read.append(n)
            yield n

    batches = as_they_come(items(), max_size=10)
    first = await anext(batches)
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(read) - len(first) <= 10  # read ahead by at most one batch
    rest = [item async for batch in batches for item in batch]
    assert first + rest == list(range(25))
    assert len(first) <= 10


async def test_the_sources_error_comes_after_the_items_it_gave():
    async def items():
        yield 1
        yield 2
        raise RuntimeError("broker gone")

    batches = as_they_come(items(), max_size=10)
    got = []
    with pytest.raises(RuntimeError, match="broker gone"):
        async for batch in batches:
            got.extend(batch)
    assert got == [1, 2]


async def test_closing_the_batches_stops_reading_the_source():
    stopped = asyncio.Event()

    async def items():
        try:
            n = 0
            while True:
                n += 1
                yield n
                await asyncio.sleep(0)
        finally:
            stopped.set()

    batches = as_they_come(items(), max_size=5)
    assert await anext(batches)
    await batches.aclose()
    await asyncio.wait_for(stopped.wait(), 1)


def test_partitions_share_a_transaction_until_it_holds_enough_and_none_is_split():
    sizes = [3, 1, 60, 2, 30, 25]
    partitions = [[f"p{p}-{n}" for n in range(size)] for p, size in enumerate(sizes)]
    packed = transactions(partitions, size=50)
    assert packed == [partitions[0] + partitions[1] + partitions[2],
                      partitions[3] + partitions[4] + partitions[5]]
    assert transactions([["a"], ["b"]], size=50) == [["a", "b"]]  # a small batch: one
    assert transactions([], size=50) == []


# --- the publisher's answers: what many tasks send while a send is under way goes together


class SlowSend:
    """Records each call; a call waits until the test lets it finish (or fail)."""

    def __init__(self) -> None:
        self.calls: list[list[Message]] = []
        self.release: asyncio.Queue = asyncio.Queue()

    async def __call__(self, messages):
        self.calls.append(list(messages))
        error = await self.release.get()
        if error is not None:
            raise error


def message(n: int) -> Message:
    return Message("t", str(n).encode(), b"v")


async def until(condition) -> None:
    async def poll():
        while not condition():
            await asyncio.sleep(0)
    await asyncio.wait_for(poll(), 1)


async def test_messages_sent_while_a_send_is_under_way_go_out_together_in_the_next():
    inner = SlowSend()
    gathered = GatheredSend(inner)
    first = asyncio.ensure_future(gathered([message(1)]))
    await until(lambda: len(inner.calls) == 1)
    later = [asyncio.ensure_future(gathered([message(n)])) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in [first, *later])  # nobody returns before the ack
    inner.release.put_nowait(None)
    await asyncio.wait_for(first, 1)
    await until(lambda: len(inner.calls) == 2)
    assert [m.key for m in inner.calls[1]] == [b"2", b"3", b"4"]  # one send for all three
    assert not any(task.done() for task in later)
    inner.release.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*later), 1)


async def test_a_failed_send_fails_every_caller_in_it_and_the_next_callers_are_sent_again():
    inner = SlowSend()
    gathered = GatheredSend(inner, max_messages=2)
    tasks = [asyncio.ensure_future(gathered([message(n)])) for n in (1, 2, 3)]
    await until(lambda: len(inner.calls) == 1)
    assert len(inner.calls[0]) == 2  # the size limit: the third waits for the next send
    inner.release.put_nowait(ConnectionError("broker gone"))
    await until(lambda: len(inner.calls) == 2)
    inner.release.put_nowait(None)
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1)
    assert [type(r).__name__ for r in results] == ["ConnectionError", "ConnectionError",
                                                    "NoneType"]


async def test_closing_cancels_the_callers_whose_messages_were_not_acknowledged():
    inner = SlowSend()
    gathered = GatheredSend(inner, max_messages=1)
    tasks = [asyncio.ensure_future(gathered([message(n)])) for n in (1, 2)]
    await until(lambda: len(inner.calls) == 1)
    gathered.close()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    third = asyncio.ensure_future(gathered([message(3)]))  # usable again after a restart
    await until(lambda: len(inner.calls) == 2)
    inner.release.put_nowait(None)
    await asyncio.wait_for(third, 1)
