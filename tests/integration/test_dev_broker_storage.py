"""The development broker keeps its topics in PostgreSQL (app/broker_storage.py): a record
and a committed offset are still there after the broker and its store restart; without the
database it stores in memory, after a one-line warning."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.broker_storage import broker_database_url, start_dev_broker
from app.embedded import free_port
from app.replay import read_topics
from tests.factories import unique

TOPIC = "dev.kept"


async def produce_and_commit(bootstrap: str, key: bytes, group: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(TOPIC, b"kept", key=key, partition=1)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(TOPIC, 1)])
        await consumer.commit({TopicPartition(TOPIC, 1): sent.offset + 1})
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(TOPIC, 1))
    finally:
        await consumer.stop()


async def test_the_dev_broker_keeps_records_and_offsets_across_a_restart(
        empty_database, database_server, tmp_path):
    service_database = await empty_database("dev_service")
    key, group = unique("record").encode(), unique("group")
    try:
        for run in ("first", "after the restart"):
            # as `distribution dev` starts it, the second time on the database the first made
            broker, storage = await asyncio.to_thread(start_dev_broker, service_database,
                                                      tmp_path / "broker.log")
            try:
                assert storage is not None, run
                assert storage.database_url == broker_database_url(service_database)
                if run == "first":
                    await produce_and_commit(broker.bootstrap, key, group)
                else:
                    records = [r async for r in read_topics(broker.bootstrap, [TOPIC], 0, None)]
                    assert [(r.partition, r.key, r.value) for r in records] == [
                        (1, key, b"kept")]
                    assert await committed(broker.bootstrap, group) == 1
            finally:
                broker.stop()
                storage.stop_thread()
    finally:
        await database_server.drop(broker_database_url(service_database))


async def test_without_its_database_the_dev_broker_stores_in_memory_and_says_so(
        tmp_path, capfd):
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/distribution"

    broker, storage = await asyncio.to_thread(start_dev_broker, nowhere,
                                              tmp_path / "broker.log")
    try:
        assert storage is None
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()  # a broker all the same
        await producer.stop()
    finally:
        broker.stop()
    warning = capfd.readouterr().err
    assert warning.count("\n") == 1, warning
    assert warning.startswith("warning: the broker keeps its topics in memory this time "
                              "(database distribution_broker: ")
