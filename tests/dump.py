"""A comparable dump of the M31 tables, without the timestamps of processing."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

#: Columns and JSON keys that say when something was processed, not what it is.
PROCESSING_TIMES = {"created_at", "updated_at", "due_enqueued_at", "processed_at",
                    "occurred_at", "published_at", "next_attempt_at"}
#: How many leases the publisher took of a platform: what it did, not what the item is (a
#: replay of the topics applies the same commands without leasing anything).
IGNORED = PROCESSING_TIMES | {"lease"}

TABLES = {
    "distribution_items": "id",
    "distribution_captions": "item_id",
    "distribution_overlays": "item_id, type",
    "distribution_platform_status": "item_id, platform",
    "publishing_analytics": "item_id, platform, event_type, attempt, post_id, error",
    "distribution_outbox": "event_id",
    "distribution_processed_commands": "command_id",
}
#: Delivery bookkeeping of the outbox: where a row stands in being sent, not what it says.
DELIVERY = {"id", "status", "attempts", "last_error"}
#: A command's reply keeps a snapshot of the item as it was answered, which includes what
#: the publisher was doing at that moment; the outcome (ok, error) is what is compared.


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in IGNORED}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


async def dump(dsn: str, item_prefix: str = "") -> dict[str, list[dict]]:
    conn = await asyncpg.connect(dsn)
    try:
        out = {}
        for table, order in TABLES.items():
            key = "id" if table == "distribution_items" else "item_id"
            if table == "distribution_outbox":
                key = "partition_key"
            rows = await conn.fetch(
                f"SELECT * FROM {table} WHERE {key} LIKE $1 ORDER BY {order}", item_prefix + "%")
            cleaned = []
            for row in rows:
                data = {k: v for k, v in dict(row).items()
                        if k not in IGNORED
                        and not (table == "distribution_outbox" and k in DELIVERY)
                        and not (table == "publishing_analytics" and k == "id")}
                for k, v in data.items():
                    if isinstance(v, str) and v[:1] in "{[":
                        try:
                            data[k] = _strip(json.loads(v))
                        except ValueError:
                            pass
                    elif isinstance(v, (dict, list)):
                        data[k] = _strip(v)
                    elif not isinstance(v, (int, float, bool, type(None), list)):
                        data[k] = str(v)
                if table == "distribution_processed_commands":
                    data["reply"] = {k: v for k, v in data["reply"].items() if k != "item"}
                cleaned.append(data)
            out[table] = cleaned
        return out
    finally:
        await conn.close()
