"""Bundles: the service's own commands for items of one partition travel as one record, and
each is read back as if it had been sent alone."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.topics import COMMANDS, Message
from app.wire import (BUNDLE_SIZE, PublishDueCommand, PublishDuePayload, bundled,
                      command_message, parse_commands)

DUE = datetime(2026, 11, 30, 9, tzinfo=timezone.utc)


def due(item_id: str) -> PublishDueCommand:
    return PublishDueCommand(command_id=f"due:{item_id}", item_id=item_id,
                             payload=PublishDuePayload(scheduled_at=DUE))


def partition_of(key: bytes) -> int:  # a stand-in partitioner: the id's last digit
    return int(key.decode()[-1]) % 3


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=60))
def test_every_command_comes_back_once_in_its_items_partition_and_order(numbers):
    commands = [due(f"item-{n}") for n in numbers]
    records = bundled([command_message(c) for c in commands], partition_of)
    by_partition: dict[int, list[str]] = {}
    for record in records:
        parsed = parse_commands(record.value)
        assert {partition_of(c.item_id.encode()) for c in parsed} == {partition_of(record.key)}
        assert record.key == parsed[0].item_id.encode()  # lands where its first item would
        by_partition.setdefault(partition_of(record.key), []).extend(c.command_id
                                                                     for c in parsed)
    for partition, ids in by_partition.items():
        assert ids == [c.command_id for c in commands
                       if partition_of(c.item_id.encode()) == partition]
    assert len(records) <= len({partition_of(c.item_id.encode()) for c in commands})


def test_a_lone_command_other_topics_and_unknown_partitions_go_as_they_are():
    lone = command_message(due("item-1"))
    other = Message("distribution.published", b"item-2", b"{}")
    unknown = [command_message(due("item-4")), command_message(due("item-7"))]
    assert set(bundled([lone, other], partition_of)) == {lone, other}
    assert bundled(unknown, lambda key: None) == unknown
    assert [c.command_id for c in parse_commands(lone.value)] == ["due:item-1"]


def test_a_bundle_holds_at_most_its_size():
    commands = [command_message(due(f"item-{n}0")) for n in range(BUNDLE_SIZE + 1)]
    records = bundled(commands, partition_of)
    assert [len(parse_commands(r.value)) for r in records] == [BUNDLE_SIZE, 1]
    assert all(r.topic == COMMANDS for r in records)


@pytest.mark.parametrize("value, error", [
    (b'{"kind":"bundle","commands":[]}', "commands"),
    (b'{"kind":"bundle","commands":[{"kind":"publish-due"}]}', "item_id"),
    (b'{"kind":"bundle","commands":[],"extra":1}', "extra"),
])
def test_a_bundle_that_cannot_be_read_is_refused_whole(value, error):
    with pytest.raises(ValueError, match=error):
        parse_commands(value)


def test_a_bundle_inside_a_bundle_is_refused():
    [inner] = bundled([command_message(due("item-1")), command_message(due("item-4"))],
                      partition_of)
    with pytest.raises(ValueError, match="invalid command"):
        parse_commands(b'{"kind":"bundle","commands":[' + inner.value + b"]}")
