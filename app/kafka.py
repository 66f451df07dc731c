"""Faust's Kafka transport with the consumer's fetch wait as a setting of ours.

Faust hard-codes `fetch_max_wait_ms=1500`; on a broker that does not answer a pending fetch
early when data arrives (Tansu), every hop then costs up to 1.5 s (DESIGN §5).
"""

from __future__ import annotations

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
