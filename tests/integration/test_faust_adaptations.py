"""What app/kafka.py and app/faust_app.py change in Faust, and the private hooks they rely on.

faust-streaming is pinned to 0.15.x for these hooks. Should a release rename or reshape
one, our override would silently stop being called; these tests fail instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import MutableMapping
from pathlib import Path

import faust
import pytest
from aiokafka.errors import KafkaConnectionError
from faust.agents import replies
from faust.agents.models import ReqRepResponse
from faust.topics import Topic
from faust.events import Event
from faust.types import Message
from faust.transport import consumer as transport_consumer
from faust.transport.drivers import aiokafka as driver

from app import kafka
from app.cli import make_worker
from app.faust_app import DistributionApp, create_app
from app.settings import Settings
from tests.support import eventually

#: (Faust's class, ours, the method we override, its parameters)
OVERRIDDEN = [
    (driver.AIOKafkaConsumerThread, kafka.ConsumerThread, "_create_worker_consumer",
     ["self", "transport"]),
    (driver.Consumer, kafka.Consumer, "_new_consumer_thread", ["self"]),
    (transport_consumer.Consumer, kafka.Consumer, "_drain_messages", ["self", "fetcher"]),
    (replies.ReplyConsumer, kafka.ReplyConsumer, "_start_fetcher", ["self", "topic_name"]),
    (replies.ReplyConsumer, kafka.ReplyConsumer, "_drain_replies", ["self", "channel"]),
    (faust.App, DistributionApp, "_new_transport", ["self"]),
    (faust.App, DistributionApp, "maybe_start_producer", ["self"]),
]

#: (Faust's method, the call in it that reaches a hook: what keeps the hook in use)
CALLERS = [
    (driver.AIOKafkaConsumerThread._create_consumer, "self._create_worker_consumer(transport)"),
    (transport_consumer.Fetcher._fetcher.fun, "await consumer._drain_messages(self)"),
    # what our Consumer._drain_messages repeats of it, and the line it changes
    *((transport_consumer.Consumer._drain_messages, line) for line in (
        "ait = cast(AsyncIterator, getmany(timeout=1.0))",
        "callback(message), self.suspend_flow.wait()",
        "await self._add_gap(tp, r_offset + 1, offset)",
        "if self._n_acked >= commit_every:",
        "set_read_offset(tp, offset)")),
    (replies.ReplyConsumer.on_start, "self._start_fetcher("),
    (replies.ReplyConsumer.add, "self._start_fetcher("),
    (replies.ReplyConsumer.add, "self._waiting[correlation_id].add(promise)"),
    (replies.ReplyConsumer._start_fetcher, "self._drain_replies(topic)"),
    # what our ReplyConsumer._fetch repeats of it, less the registration it leaves out
    (replies.ReplyConsumer._start_fetcher, "topic = self._reply_topic(topic_name)"),
    (replies.ReplyConsumer._start_fetcher, "await topic.maybe_declare()"),
    (replies.ReplyConsumer._start_fetcher, "self.app.topics.add(topic)"),
    # every send asks for the producer through our override
    (Topic._get_producer, "return await self.app.maybe_start_producer()"),
]


@pytest.mark.parametrize("faust_class, our_class, name, parameters", OVERRIDDEN,
                         ids=[f"{c.__name__}.{n}" for c, _, n, _ in OVERRIDDEN])
def test_each_faust_method_we_override_still_exists_with_the_same_parameters(
        faust_class, our_class, name, parameters):
    theirs = vars(faust_class)[name]  # defined by that class itself, not inherited
    theirs = inspect.unwrap(theirs)  # under a decorator (mode's `stampede`)
    ours = vars(our_class)[name]
    assert list(inspect.signature(theirs).parameters) == parameters
    assert list(inspect.signature(ours).parameters) == parameters
    assert inspect.iscoroutinefunction(theirs) == inspect.iscoroutinefunction(ours)


@pytest.mark.parametrize("method, call", CALLERS,
                         ids=[f"{m.__qualname__} calls {c}" for m, c in CALLERS])
def test_faust_still_calls_the_hooks_where_we_expect(method, call):
    assert call in inspect.getsource(method)


def test_the_reply_consumer_still_keeps_waiting_asks_by_correlation_id():
    assert "_waiting" in replies.ReplyConsumer.__annotations__
    app = faust.App(f"test-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9")
    assert isinstance(kafka.ReplyConsumer(app)._waiting, MutableMapping)


async def test_our_transport_gives_the_aiokafka_fetcher_our_fetch_wait(broker):
    """App._new_transport -> Consumer._new_consumer_thread -> _create_worker_consumer ->
    aiokafka's `_fetch_max_wait_ms`, read when the consumer starts and builds its fetcher."""
    app = create_app(Settings(app_id=f"test-{uuid.uuid4().hex[:8]}",
                              kafka_bootstrap_servers=broker.bootstrap,
                              consumer_fetch_max_wait_ms=37))
    assert type(app.transport) is kafka.Transport
    assert type(app.consumer) is kafka.Consumer
    thread = app.consumer._thread
    assert type(thread) is kafka.ConsumerThread
    consumer = thread._create_consumer(asyncio.get_running_loop())  # Faust's own path
    assert consumer._fetch_max_wait_ms == 37
    await consumer.start()
    try:
        assert consumer._fetcher._fetch_max_wait_ms == 37
    finally:
        await consumer.stop()


async def test_the_reply_topic_is_handed_to_one_channel_only(broker, monkeypatch):
    """Faust's own start registers the reply topic twice (itself, then the copy its drain
    iterates): the copy nobody reads fills up and stops the reply topic for good."""
    app = create_app(Settings(app_id=f"test-{uuid.uuid4().hex[:8]}",
                              kafka_bootstrap_servers=broker.bootstrap))
    consumer = kafka.ReplyConsumer(app)
    monkeypatch.setattr(consumer, "sleep", lambda seconds: asyncio.sleep(0))
    monkeypatch.setattr(faust.Topic, "maybe_declare", lambda self: asyncio.sleep(0))
    name = f"test-replies-{uuid.uuid4().hex[:8]}"
    await consumer._start_fetcher(name)

    async def subscribed():
        return [c for c in app.topics if name in c.topics]

    channels = await eventually(subscribed, timeout=5, what="the reply topic subscribed")
    assert len(channels) == 1 and channels[0].is_iterator
    consumer._fetchers[name].cancel()


async def test_messages_sent_through_a_running_producer_take_no_turn_of_the_event_loop(broker):
    """Faust asks for the producer with every send; its own guard yielded three times a
    call, so a batch of sends waited out everything else the worker had to run."""
    app = create_app(Settings(app_id=f"test-{uuid.uuid4().hex[:8]}",
                              kafka_bootstrap_servers=broker.bootstrap))
    topic = app.topic(f"test-sends-{uuid.uuid4().hex[:8]}", key_serializer="raw",
                      value_serializer="raw")
    await app.producer.start()
    turns = 0

    async def count_turns():
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1
    counter = asyncio.ensure_future(count_turns())
    try:
        await (await topic.send(key=b"first", value=b"x"))  # learns the topic's partitions
        before = turns
        sent = [await topic.send(key=b"%d" % n, value=b"x") for n in range(100)]
        assert turns == before
        assert len({(m.topic, m.partition, m.offset) for m in await asyncio.gather(*sent)}) == 100
    finally:
        counter.cancel()
        await app.producer.stop()


async def test_faust_starts_our_reply_consumer_and_the_resources_before_everything_else():
    app = create_app(Settings(app_id=f"test-{uuid.uuid4().hex[:8]}"))
    assert type(app._reply_consumer) is kafka.ReplyConsumer
    assert app._reply_consumer in list(app.boot_strategy.kafka_consumer())
    assert app._reply_consumer in list(app.boot_strategy.client_only())
    # mode starts an app's dependencies in this order and stops them in reverse
    dependencies = list(app.on_init_dependencies())
    assert dependencies[0] is app.resources
    for later in (app.producer, app.web, app.consumer, app.agents, app.tables):
        assert later in dependencies[1:]


async def test_an_app_that_only_asks_opens_no_resources():
    app = create_app(Settings(app_id=f"test-{uuid.uuid4().hex[:8]}"))
    app.client_only = True
    assert app.resources not in list(app.on_init_dependencies())


async def test_faust_keeps_its_data_in_the_data_dir_not_the_working_directory(
        tmp_path, monkeypatch):
    app_id = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    by_default = create_app(Settings(app_id=app_id))
    assert by_default.conf.datadir == tmp_path / "state" / "distribution-service" / "faust" / app_id

    app = create_app(Settings(app_id=app_id, data_dir=str(tmp_path / "data")))
    await app.on_first_start()  # where Faust creates its directories
    assert (tmp_path / "data" / "faust" / app_id / "v1" / "tables").is_dir()
    assert not list(Path.cwd().glob(f"{app_id}*"))


# --- what the reply consumer's override is for ---------------------------------------------

REPLY_TO = "test-replies"


class Replies:
    """Our ReplyConsumer draining an in-memory channel of a throwaway app, as it drains the
    worker's reply topic; asks register through Faust's own `add`."""

    def __init__(self) -> None:
        self.app = faust.App(f"test-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9")
        self.app.flow_control.resume()  # a stream skips everything while it is suspended
        self.channel = self.app.channel()
        self.consumer = kafka.ReplyConsumer(self.app)
        # subscribed here, so no reply sent before the drain's first step is lost
        self.drain = asyncio.ensure_future(self.consumer._drain_replies(aiter(self.channel)))
        self.consumer._fetchers[REPLY_TO] = self.drain  # as _start_fetcher leaves it

    async def ask(self, correlation_id: str,
                  promise: replies.ReplyPromise | None = None) -> replies.ReplyPromise:
        promise = promise or replies.ReplyPromise(REPLY_TO, correlation_id)
        await self.consumer.add(correlation_id, promise)
        return promise

    async def reply(self, correlation_id: str, value) -> None:
        await self.channel.send(value=ReqRepResponse(key=None, value=value,
                                                     correlation_id=correlation_id))

    async def handled(self) -> None:
        """Returns once every reply sent so far was handled (they are handled in order)."""
        witness = await self.ask(f"witness-{uuid.uuid4().hex}")
        await self.reply(witness.correlation_id, "witness")
        done, _ = await asyncio.wait({witness, self.drain}, timeout=10,
                                     return_when=asyncio.FIRST_COMPLETED)
        assert not self.drain.done(), f"the reply consumer crashed: {self.drain.exception()!r}"
        assert witness in done, "the reply consumer stopped answering"

    def close(self) -> None:
        self.drain.cancel()


@pytest.fixture
async def reply_consumer():
    r = Replies()
    yield r
    r.close()


async def test_a_reply_whose_ask_timed_out_is_dropped_and_later_asks_get_theirs(
        reply_consumer):
    timed_out = await reply_consumer.ask("ask-timed-out")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(timed_out, timeout=0.01)  # what a view's request timeout does
    await reply_consumer.reply("ask-timed-out", {"ok": True})
    await reply_consumer.reply("never-asked-here", {"ok": True})  # nobody waits at all
    await reply_consumer.handled()

    later = await reply_consumer.ask("ask-later")
    await reply_consumer.reply("ask-later", {"n": 1})
    assert await asyncio.wait_for(later, timeout=10) == {"n": 1}
    assert not reply_consumer.consumer._waiting  # nothing is kept for replies that came


async def test_a_repeated_reply_is_dropped_and_the_waiting_ask_gets_its_reply_once(
        reply_consumer):
    waiting = await reply_consumer.ask("ask-once")
    await reply_consumer.reply("ask-once", {"n": 1})
    await reply_consumer.reply("ask-once", {"n": 2})  # the command redelivered and applied again
    await reply_consumer.handled()
    assert waiting.result() == {"n": 1}

    # A barrier (Agent.join/map) counts every reply it is given: two parts, one repeated.
    barrier = replies.BarrierState(REPLY_TO)
    for part in ("part-a", "part-b"):
        barrier.add(replies.ReplyPromise(REPLY_TO, part))
        await reply_consumer.ask(part, barrier)
    barrier.finalize()
    for part, n in (("part-a", 1), ("part-a", 2), ("part-b", 3)):
        await reply_consumer.reply(part, {"n": n})
    await reply_consumer.handled()
    assert barrier.done()
    assert [tuple(r) async for r in barrier.iterate()] == [("part-a", {"n": 1}),
                                                           ("part-b", {"n": 3})]


async def test_an_asker_in_this_process_is_answered_at_once_and_another_through_its_topic(
        reply_consumer):
    """The command agent answers a view of its own worker in place: the ask is fulfilled
    before `reply` returns, without the broker (this app's points nowhere). An asker of
    another worker is answered through its reply topic (end to end:
    tests/e2e/test_two_workers.py sends commands to both workers' partitions)."""
    app = reply_consumer.app
    app.conf.reply_to = REPLY_TO  # this process's reply topic
    app.__dict__["_reply_consumer"] = reply_consumer.consumer

    def asked(reply_to: str, correlation_id: str) -> faust.types.EventT:
        message = Message("distribution.commands", 0, 7, 0.0, 0, None, b"item-1", b"{}", None)
        headers = {"Faust-Ag-ReplyTo": reply_to.encode(),
                   "Faust-Ag-CorrelationId": correlation_id.encode()}
        return Event(app, b"item-1", b"{}", headers, message)

    here = await reply_consumer.ask("ask-here")
    await kafka.reply(app, asked(REPLY_TO, "ask-here"), {"ok": True, "n": 1})
    assert here.done() and here.result() == {"ok": True, "n": 1}
    assert not reply_consumer.consumer._waiting

    with pytest.raises(KafkaConnectionError):  # sent to the broker, which is not there
        await kafka.reply(app, asked("another-workers-replies", "ask-there"), {"ok": True})


async def test_a_hand_over_that_needs_no_wait_completes_in_the_callers_task():
    ran = []

    async def hand_over():
        ran.append(asyncio.current_task())

    assert kafka.start(hand_over()) is None
    assert ran == [asyncio.current_task()]  # no task of its own


async def test_a_hand_over_that_waits_goes_on_in_a_task_and_can_be_cancelled():
    room, steps = asyncio.Event(), []

    async def hand_over():
        steps.append("started")
        await room.wait()
        steps.append("handed over")
        return "done"

    rest = kafka.start(hand_over())
    assert steps == ["started"] and rest is not None
    room.set()
    assert await asyncio.wait_for(rest, 1) == "done"
    assert steps == ["started", "handed over"]

    room.clear()
    blocked = kafka.start(hand_over())
    blocked.cancel()  # a suspended flow wins the race: the hand-over is dropped
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert steps.count("handed over") == 1


async def test_a_hand_over_that_fails_raises_now_or_when_awaited():
    async def at_once():
        raise ValueError("undecodable")

    with pytest.raises(ValueError):
        kafka.start(at_once())

    async def later():
        await asyncio.sleep(0)
        raise KeyError("no callback for the partition")

    with pytest.raises(KeyError):
        await kafka.start(later())


@pytest.mark.parametrize("level", ["WARNING", "INFO"])
def test_the_worker_logs_at_the_level_the_settings_say(level):
    """Faust's terminal spinner set the root logger to DEBUG at WARNING and above: every
    record of every library was made, then dropped by the handler."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    settings = Settings(app_id=f"test-{uuid.uuid4().hex[:8]}", log_level=level,
                        kafka_bootstrap_servers="127.0.0.1:9")
    try:
        make_worker(create_app(settings), settings)._setup_logging()
        assert root.level == getattr(logging, level)
        assert logging.getLogger("distribution.claims").isEnabledFor(logging.INFO) == (
            level == "INFO")
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
