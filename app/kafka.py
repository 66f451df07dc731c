"""Adaptations of Faust: the consumer's fetch wait as a setting of ours, records handed to
the streams without a pair of tasks each, and a reply consumer that survives late and
repeated replies.

Faust hard-codes `fetch_max_wait_ms=1500`; on a broker that does not answer a pending fetch
early when data arrives (Tansu), every hop then costs up to 1.5 s (DESIGN §5).
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, cast

from faust.agents import replies
from faust.agents.replies import ReqRepResponse
from faust.models import maybe_model
from faust.types import AppT, EventT
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from mode import ServiceT


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when the consumer starts and builds its fetcher
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        """Faust's loop that hands fetched records to the streams, with one change. Faust
        hands each record over in a task of its own, raced with the flow's suspension (a
        rebalance) by `wait_first`: four tasks and turns of the event loop per record (45
        µs on an idle loop, far more on a busy one), which held what the command agent
        received to about 1,000 records/s whatever the backlog. Here a hand-over runs at
        once in this loop and, when it completes without waiting (nearly always), costs
        nothing more; only one that has to wait (a full buffer, a suspended flow) goes on
        in a task raced with the suspension, as in Faust."""
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        yield_every = 100

        try:
            num_since_yield = 0
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                ait = cast(AsyncIterator, self.getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            waiting = start(callback(message))
                            if waiting is not None:
                                await self.wait_first(waiting, self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class Transport(driver.Transport):
    Consumer = Consumer


def start(coroutine: Coroutine[Any, Any, Any]) -> Awaitable[Any] | None:
    """Runs a coroutine in the caller's task until it first has to wait: None when it
    completed without waiting, else what finishes it (to await, in a task of its own or
    not). Its result is dropped; its error is raised, now or by what finishes it."""
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_go_on(coroutine, waiting_on))


@types.coroutine
def _go_on(coroutine: Coroutine[Any, Any, Any], waiting_on: Any):
    """The rest of a started coroutine: what it waits on is passed up to the task that
    drives this one, and what that sends or throws is passed down (as `yield from`)."""
    while True:
        try:
            received = yield waiting_on
        except BaseException as exc:  # noqa: B036 - passed down, as `yield from` does
            try:
                waiting_on = coroutine.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coroutine.send(received)
            except StopIteration as stop:
                return stop.value


class ReplyConsumer(replies.ReplyConsumer):
    """Faust's reply consumer, hardened: it crashes the worker (InvalidStateError) when a
    reply arrives for an ask that timed out, or twice for one ask, which a command
    redelivered after a rebalance causes. Here each correlation id is answered once and
    replies nobody waits for any more are dropped.

    And Faust marks a reply topic as handled before it starts reading it (3 s later): an
    ask that arrives before the consumer started, and is cancelled meanwhile (a timed-out
    readiness check), left the topic marked and never read, so every later reply was lost.
    Here the start runs to its end whoever waits for it. And the topic is drained through
    one channel only (`_fetch` says why)."""

    async def _start_fetcher(self, topic_name: str) -> None:
        starting = self.__dict__.setdefault("_starting", {})
        if topic_name not in starting:
            starting[topic_name] = asyncio.ensure_future(self._fetch(topic_name))
        await asyncio.shield(starting[topic_name])

    async def _fetch(self, topic_name: str) -> None:
        """Faust's `_start_fetcher`, less one line. Faust registers the reply topic with the
        conductor, then drains it by iterating it, which registers an iterator copy: every
        reply is then handed to both, and the first is never read. Its queue fills, and at
        80 % of `stream_buffer_maxsize` (about 3,300 replies) the conductor stops fetching
        the reply topic for good: every ask after that times out (504s under load)."""
        self._fetchers[topic_name] = None  # Faust's marker: an ask does not start another
        topic = self._reply_topic(topic_name)
        await topic.maybe_declare()
        # subscribed now, where Faust subscribes: at start-up, before the consumer starts,
        # so that no later change of subscription costs a rebalance
        channel = aiter(topic)
        await self.sleep(3.0)
        self._fetchers[topic_name] = self.add_future(self._drain_replies(channel))

    async def _drain_replies(self, channel) -> None:
        async for reply in channel.stream():
            self.answer(reply.correlation_id, maybe_model(reply.value))

    def answer(self, correlation_id: str, value: object) -> None:
        """Fulfil the asks waiting for this correlation id; a later copy finds none."""
        for promise in list(self._waiting.pop(correlation_id, ())):
            if not promise.done():
                promise.fulfill(correlation_id, value)


def reply_address(event: EventT) -> tuple[str, str] | None:
    """Where the asker of an event waits for its reply (Faust's reply headers), if anyone."""
    headers = event.headers or {}
    reply_to, correlation_id = headers.get("Faust-Ag-ReplyTo"), headers.get(
        "Faust-Ag-CorrelationId")
    if not reply_to or not correlation_id:
        return None
    return _text(reply_to), _text(correlation_id)


async def reply(app: AppT, event: EventT, value: object) -> None:
    """Answer the asker of one event of a batch (Faust answers only what an agent yields,
    one value per event: a batch is answered here, event by event). An asker in this
    process (a view of this worker, whose item's partition it owns) is answered at once,
    not through the broker and back: half the round trip of a command."""
    address = reply_address(event)
    if address is None:
        return
    reply_to, correlation_id = address
    if reply_to == app.conf.reply_to:
        app._reply_consumer.answer(correlation_id, value)  # type: ignore[attr-defined]
    else:
        await app.send(reply_to, key=None, value=ReqRepResponse(
            key=event.key, value=value, correlation_id=correlation_id))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
