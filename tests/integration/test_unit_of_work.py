"""The unit of work keeps nothing unless committed (cosmicpython's rule), on the real
database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.db.items import NewItem
from app.db.unit_of_work import unit_of_work
from tests.factories import unique


def new_item() -> NewItem:
    now = datetime.now(timezone.utc)
    return NewItem(unique("claim"), unique("inf"), unique("clip"), unique("camp"), now,
                   now + timedelta(days=1))


async def stored(pool, item: NewItem) -> bool:
    async with unit_of_work(pool) as uow:
        return await uow.items.get(item.id) is not None


async def test_a_unit_of_work_left_without_commit_keeps_nothing(pool):
    item = new_item()
    async with unit_of_work(pool) as uow:
        assert await uow.items.add_claimed([item]) == {item.id}
    assert not await stored(pool, item)


async def test_a_unit_of_work_left_by_an_error_keeps_nothing_and_the_error_goes_on(pool):
    item = new_item()
    with pytest.raises(KeyError):
        async with unit_of_work(pool) as uow:
            await uow.items.add_claimed([item])
            raise KeyError("a bug in the handler")
    assert not await stored(pool, item)


async def test_a_committed_unit_of_work_keeps_its_writes_and_returns_the_stored_times(pool):
    item = new_item()
    async with unit_of_work(pool) as uow:
        assert await uow.items.add_claimed([item, item]) == {item.id}  # a repeat is one item
        await uow.commit()
    async with unit_of_work(pool) as uow:
        [loaded] = (await uow.items.lock_many([item.id])).values()
        assert loaded.item.clip_id == item.clip_id
        assert loaded.created_at == loaded.updated_at
    assert await stored(pool, item)
