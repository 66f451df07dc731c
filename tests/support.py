"""Helpers the tests share: polling with a deadline, tokens, contract schemas. (Test data,
unique ids included, is in tests/factories.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class SentMessages:
    """A `Send` (app/topics.py) for in-process tests: keeps what it is handed, or refuses it
    while `away`, as a broker that cannot be reached would."""

    def __init__(self) -> None:
        self.messages: list = []
        self.away = False

    async def __call__(self, messages) -> None:
        if self.away:
            raise ConnectionError("the broker is away")
        self.messages.extend(messages)

JWT_SECRET = "test-secret-of-the-distribution-service-suite"
DOWNLOAD_SECRET = "test-download-secret-of-the-distribution-suite"
OPERATOR_SCOPE = "distribution:operate"


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = 30.0,
                     interval: float = 0.05, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail with its last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")
        await asyncio.sleep(interval)


def operator_token(sub: str = "operator-1") -> str:
    return token(sub, scope=OPERATOR_SCOPE)


def token(sub: str, secret: str = JWT_SECRET, **claims) -> str:
    from datetime import timedelta

    from web.auth import issue_token
    if claims:
        import time

        import jwt
        return jwt.encode({"sub": sub, "exp": int(time.time()) + 3600, **claims}, secret,
                          algorithm="HS256")
    return issue_token(sub, secret, timedelta(hours=1))


def event_schema_errors(instance: dict, schema_file: str) -> list[str]:
    """What is wrong with an event by its JSON Schema in contracts/events/v1 (nothing: [])."""
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    folder = Path(__file__).resolve().parents[1] / "contracts" / "events" / "v1"
    schemas = [json.loads(p.read_text()) for p in folder.glob("*.schema.json")]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
    schema = json.loads((folder / schema_file).read_text())
    validator = Draft202012Validator(schema, registry=registry,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def openapi_schema_errors(name: str, instance) -> list[str]:
    """What is wrong with an instance by a component schema of the OpenAPI document."""
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    path = Path(__file__).resolve().parents[1] / "contracts/api/v1/distribution-service.openapi.json"
    uri = path.as_uri()
    registry = Registry().with_resource(
        uri, Resource.from_contents(json.loads(path.read_text()),
                                    default_specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": f"{uri}#/components/schemas/{name}"},
                                     registry=registry,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


async def apply_in_process(pool, command, now, policy) -> dict:
    """A command applied as the command agent applies it; its reply, with the item as it
    then stands. The reply to one of the service's own commands (no actor: due items,
    platform answers) carries no item, as nobody waits for it: the item is read instead."""
    from app import handlers
    from app.db.read_model import item_json, read_item

    reply = (await handlers.handle(pool, command, now, policy)).reply
    if command.actor is None:
        assert reply["item"] is None, reply
        stored = await read_item(pool, command.item_id)
        reply = {**reply, "item": item_json(stored) if reply["ok"] and stored else None}
    return reply
