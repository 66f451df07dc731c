"""The contract files (DESIGN §3) are valid, self-consistent and cover every route and event.

No service runs here: these tests read `contracts/` only, and validate them with
`openapi-spec-validator` and `jsonschema`. (The end-to-end tests check the service's own
answers and events against the same files.)
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urldefrag, urljoin

import pytest
from jsonschema import Draft202012Validator

from tests.support import event_schema_errors, openapi_schema_errors

ROOT = Path(__file__).resolve().parents[2]
OPENAPI_PATH = ROOT / "contracts" / "api" / "v1" / "distribution-service.openapi.json"
EVENTS_DIR = ROOT / "contracts" / "events" / "v1"
EVENT_SCHEMA_FILES = (
    "envelope.schema.json",
    "distribution.claimed.schema.json",
    "distribution.published.schema.json",
    "distribution.failed.schema.json",
    "distribution.claimed.dlq.schema.json",
    "distribution.unknown.schema.json",
    "distribution.accounts.schema.json",
)
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

ITEM = "/api/v1/distribution/items/{id}"
#: (path, method, success status, needs the bearer token, has a request body)
ROUTES = [
    (f"{ITEM}/overlays", "post", "200", True, True),
    (f"{ITEM}/preview", "get", "200", True, False),
    (f"{ITEM}/schedule", "post", "200", True, True),
    (f"{ITEM}/reschedule", "post", "200", True, True),
    (f"{ITEM}/publish", "post", "202", True, True),
    (f"{ITEM}/publish-multi", "post", "202", True, True),
    (f"{ITEM}/retry", "post", "202", True, True),
    (f"{ITEM}/download", "post", "200", True, True),
    (ITEM, "get", "200", True, False),
    ("/api/v1/distribution/downloads/{id}", "get", "302", False, False),
    ("/api/v1/distribution/stats", "get", "200", True, False),
    ("/healthz", "get", "200", False, False),
    ("/readyz", "get", "200", False, False),
    ("/metrics", "get", "200", True, False),
    ("/openapi.json", "get", "200", False, False),
    (f"{ITEM}/platforms/{{platform}}/resolve", "post", "200", True, True),
    ("/api/v1/distribution/accounts/{influencer_id}/{platform}/reconnected", "post", "200",
     True, False),
]
#: Operator routes: any item's owner is not enough, the token needs the operator scope.
OPERATOR = {"/api/v1/distribution/stats", "/metrics",
            "/api/v1/distribution/accounts/{influencer_id}/{platform}/reconnected",
            f"{ITEM}/platforms/{{platform}}/resolve"}


# ---------------------------------------------------------------------------------------------
# Helpers: JSON pointers and $ref walking.


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def resolve_pointer(document: Any, pointer: str) -> Any:
    """Follow a JSON pointer (`/components/schemas/Item`); KeyError/IndexError if it leads nowhere."""
    node = document
    if not pointer:
        return node
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def refs_in(node: Any, base: str) -> list[tuple[str, str]]:
    """Every `$ref` below node as (absolute target, where it was found), `$id` scopes honoured."""
    found: list[tuple[str, str]] = []

    def walk(value: Any, scope: str, where: str) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("$id"), str):
                scope = urljoin(scope, value["$id"])
            if isinstance(value.get("$ref"), str):
                found.append((urljoin(scope, value["$ref"]), where))
            for key, child in value.items():
                walk(child, scope, f"{where}/{key}")
        elif isinstance(value, list):
            for index, child in enumerate(value):
                walk(child, scope, f"{where}/{index}")

    walk(node, base, "#")
    return found


def make_resolver(documents: dict[str, Any]) -> Callable[[str], Any]:
    """uri#pointer -> the schema it names, looked up among documents keyed by base URI."""

    def resolve(uri: str) -> Any:
        document_uri, fragment = urldefrag(uri)
        return resolve_pointer(documents[document_uri], fragment)

    return resolve


# ---------------------------------------------------------------------------------------------
# The OpenAPI document.

OPENAPI_URI = OPENAPI_PATH.as_uri()


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return load(OPENAPI_PATH)


def operations(doc: dict[str, Any]):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_the_openapi_document_is_a_valid_openapi_3_1_document(openapi):
    assert openapi["openapi"].startswith("3.1.")
    assert openapi["info"]["title"] and openapi["info"]["version"]
    from openapi_spec_validator import validate
    validate(openapi)  # raises on any violation of the OpenAPI 3.1 schema
    ids = [op["operationId"] for _, _, op in operations(openapi)]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_every_ref_in_the_openapi_document_resolves(openapi):
    resolve = make_resolver({OPENAPI_URI: openapi})
    refs = refs_in(openapi, OPENAPI_URI)
    assert refs, "the document uses components, so it has $refs"
    for target, where in refs:
        try:
            resolve(target)
        except (KeyError, IndexError, ValueError):
            pytest.fail(f"$ref at {where} does not resolve: {target}")


@pytest.mark.parametrize("path, method, success, authed, has_body", ROUTES,
                         ids=[f"{m.upper()} {p}" for p, m, *_ in ROUTES])
def test_every_route_of_the_contract_is_documented_with_its_answers(
        openapi, path, method, success, authed, has_body):
    operation = openapi["paths"].get(path, {}).get(method)
    assert operation is not None, f"{method.upper()} {path} is missing"
    responses = operation["responses"]
    assert success in responses
    declared = {p["name"] for p in _parameters(openapi, operation) if p["in"] == "path"}
    assert declared == set(_template_names(path))

    if authed:
        assert {"bearerAuth": []} in operation.get("security", openapi.get("security", []))
        assert {"401", "503"} <= responses.keys()
        # Someone else's item is a 404 like a missing one; only operator routes answer 403.
        on_item = path.startswith(ITEM)
        assert ("403" in responses) == (path in OPERATOR)
        assert ("404" in responses) == (path not in OPERATOR or on_item)
        # Any POST on an item may meet a state it cannot change or an Idempotency-Key
        # still in flight.
        assert ("409" in responses) == (method == "post" and on_item)
    else:
        assert operation.get("security", []) == []
    if has_body:
        assert "requestBody" in operation and "400" in responses
        headers = {p["name"] for p in _parameters(openapi, operation) if p["in"] == "header"}
        assert "Idempotency-Key" in headers


def test_error_answers_share_one_body_and_unavailable_says_when_to_retry(openapi):
    resolve = make_resolver({OPENAPI_URI: openapi})
    components = openapi["components"]["responses"]
    for name, response in components.items():
        schema = response["content"]["application/json"]["schema"]
        assert {"$ref": "#/components/schemas/Error"} in schema["allOf"], name
    retry_after = components["Unavailable"]["headers"]["Retry-After"]
    assert resolve(urljoin(OPENAPI_URI, retry_after["$ref"]))["required"] is True
    error = resolve(f"{OPENAPI_URI}#/components/schemas/Error")
    body = resolve(urljoin(OPENAPI_URI, error["properties"]["error"]["$ref"]))
    assert body["required"] == ["code", "message", "details"]


def test_the_documented_examples_match_their_schemas(openapi):
    schemas = openapi["components"]["schemas"]
    examples = [(name, example) for name, schema in schemas.items()
                for example in schema.get("examples", []) if isinstance(example, dict)]
    assert len(examples) >= 3
    for name, example in examples:
        assert openapi_schema_errors(name, example) == [], name
    bare_item = copy.deepcopy(schemas["Item"]["examples"][0])
    del bare_item["platform_status"][0]["attempts"]
    assert openapi_schema_errors("Item", bare_item) != []


def _parameters(doc: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, Any]]:
    resolve = make_resolver({OPENAPI_URI: doc})
    return [resolve(urljoin(OPENAPI_URI, p["$ref"])) if "$ref" in p else p
            for p in operation.get("parameters", [])]


def _template_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


# ---------------------------------------------------------------------------------------------
# The event schemas.


@pytest.fixture(scope="module")
def event_schemas() -> dict[str, dict[str, Any]]:
    return {name: load(EVENTS_DIR / name) for name in EVENT_SCHEMA_FILES}


def _by_id(event_schemas: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {schema["$id"]: schema for schema in event_schemas.values()}


def envelope(event_type: str, data: dict[str, Any], source: str = "M31",
             key: str | None = None) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_version": 1,
        "occurred_at": "2026-03-01T17:30:02.125Z",
        "source": source,
        "partition_key": key or data.get("item_id") or data.get("claim_id"),
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "data": data,
    }


OUTCOMES = [
    {"platform": "tiktok", "status": "published", "post_id": "7301", "post_url":
     "https://www.tiktok.com/@inf_42/video/7301", "attempts": 1, "error": None,
     "error_class": None, "reason_code": None},
    {"platform": "instagram", "status": "failed", "post_id": None, "post_url": None,
     "attempts": 1, "error": "The caption is too long", "error_class": "permanent",
     "reason_code": "2207010"},
]
ITEM_FACTS = {"item_id": "clm_1", "influencer_id": "inf_42", "clip_id": "clip_7",
              "campaign_id": "cmp_3"}
SAMPLES = {
    "envelope.schema.json": envelope("inventory.adjusted", {"sku": "A-1"}, source="M99",
                                     key="A-1"),
    "distribution.claimed.schema.json": envelope("distribution.claimed", {
        "claim_id": "clm_1", "clip_id": "clip_7", "influencer_id": "inf_42",
        "claimed_at": "2026-03-01T09:00:00Z"}, source="M09"),
    "distribution.published.schema.json": envelope("distribution.published", {
        **ITEM_FACTS, "status": "published", "publication": "published",
        "platforms": OUTCOMES[:1], "results": OUTCOMES[:1], "retry_count": 0}),
    "distribution.failed.schema.json": envelope("distribution.failed", {
        **ITEM_FACTS, "status": "failed", "publication": "partially_published",
        "platforms": OUTCOMES, "results": OUTCOMES[1:], "retry_count": 4,
        "reason": "failed on instagram"}),
    "distribution.claimed.dlq.schema.json": {
        "reason": "invalid_json", "error": "Expecting value: line 1 column 1 (char 0)",
        "topic": "distribution.claimed", "partition": 3, "offset": 1207, "key": "clm_9",
        "value": "not json", "received_at": "2026-03-01T09:00:05Z"},
}


def test_every_event_schema_is_2020_12_and_every_ref_resolves(event_schemas):
    by_id = _by_id(event_schemas)
    assert len(by_id) == len(EVENT_SCHEMA_FILES), "each schema has its own $id"
    resolve = make_resolver(by_id)
    for name, schema in event_schemas.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert schema["$id"].endswith("/" + name), name
        for target, where in refs_in(schema, schema["$id"]):
            try:
                resolve(target)
            except (KeyError, IndexError, ValueError):
                pytest.fail(f"{name}: $ref at {where} does not resolve: {target}")
        Draft202012Validator.check_schema(schema)


def test_the_envelope_requires_every_field(event_schemas):
    assert set(event_schemas["envelope.schema.json"]["required"]) == {
        "event_id", "event_type", "event_version", "occurred_at", "source", "partition_key",
        "trace_id", "data"}


#: Schemas whose sample is broken by dropping a top-level key rather than one in `data`.
ENVELOPE_ONLY = {"envelope.schema.json", "distribution.claimed.dlq.schema.json"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_sample_of_each_event_matches_its_schema_and_a_broken_one_does_not(name):
    good = SAMPLES[name]
    broken = copy.deepcopy(good)
    if name in ENVELOPE_ONLY:
        del broken[next(iter(broken))]  # event_id, reason: required at the top
    else:
        del broken["data"][next(iter(broken["data"]))]  # claim_id, item_id: required in data
    assert event_schema_errors(good, name) == []
    assert event_schema_errors(broken, name) != []


def test_an_event_of_the_wrong_type_does_not_match(event_schemas):
    wrong = copy.deepcopy(SAMPLES["distribution.failed.schema.json"])
    errors = event_schema_errors(wrong, "distribution.published.schema.json")
    assert any("distribution.published" in e for e in errors), errors
