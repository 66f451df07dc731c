"""Adaptations of Faust: the consumer's fetch wait as a setting of ours, and a reply
consumer that survives late and repeated replies.

Faust hard-codes `fetch_max_wait_ms=1500`; on a broker that does not answer a pending fetch
early when data arrives (Tansu), every hop then costs up to 1.5 s (DESIGN §5).
"""

from __future__ import annotations

import asyncio

from faust.agents import replies
from faust.models import maybe_model
from faust.transport.drivers import aiokafka as driver


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when the consumer starts and builds its fetcher
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = Consumer


class ReplyConsumer(replies.ReplyConsumer):
    """Faust's reply consumer, hardened: it crashes the worker (InvalidStateError) when a
    reply arrives for an ask that timed out, or twice for one ask, which a command
    redelivered after a rebalance causes. Here each correlation id is answered once and
    replies nobody waits for any more are dropped.

    And Faust marks a reply topic as handled before it starts reading it (3 s later): an
    ask that arrives before the consumer started, and is cancelled meanwhile (a timed-out
    readiness check), left the topic marked and never read, so every later reply was lost.
    Here the start runs to its end whoever waits for it."""

    async def _start_fetcher(self, topic_name: str) -> None:
        starting = self.__dict__.setdefault("_starting", {})
        if topic_name not in starting:
            starting[topic_name] = asyncio.ensure_future(super()._start_fetcher(topic_name))
        await asyncio.shield(starting[topic_name])

    async def _drain_replies(self, channel) -> None:
        async for reply in channel.stream():
            for promise in list(self._waiting.pop(reply.correlation_id, ())):
                if not promise.done():
                    promise.fulfill(reply.correlation_id, maybe_model(reply.value))
