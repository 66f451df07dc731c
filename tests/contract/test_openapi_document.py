"""The OpenAPI document is generated from the code (web/openapi.py), the contract file is that
document, and it states every answer each operation can give."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest
from openapi_spec_validator import validate

from app import cli
from web import openapi, schemas
from web.errors import STATUS_BY_CODE
from web.openapi import build_document, render

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "contracts" / "api" / "v1" / "distribution-service.openapi.json"
ITEM = "/api/v1/distribution/items/{id}"
RECONNECTED = "/api/v1/distribution/accounts/{influencer_id}/{platform}/reconnected"
REDRIVE = "/api/v1/distribution/dead-letters/{topic}/{partition}/{offset}/redrive"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

POST_ERRORS = {"400", "401", "404", "405", "409", "413", "422", "429", "503", "504"}
GET_ERRORS = {"400", "401", "404", "405", "429", "503", "504"}
OPERATOR_ERRORS = {"401", "403", "405", "429", "503", "504"}
#: (path, method): every status the operation can answer.
STATUSES = {
    (ITEM, "get"): {"200"} | GET_ERRORS,
    (f"{ITEM}/preview", "get"): {"200"} | GET_ERRORS,
    (f"{ITEM}/overlays", "post"): {"200"} | POST_ERRORS,
    (f"{ITEM}/schedule", "post"): {"200"} | POST_ERRORS,
    (f"{ITEM}/reschedule", "post"): {"200"} | POST_ERRORS,
    (f"{ITEM}/publish", "post"): {"202"} | POST_ERRORS,
    (f"{ITEM}/publish-multi", "post"): {"202"} | POST_ERRORS,
    (f"{ITEM}/retry", "post"): {"202"} | POST_ERRORS,
    (f"{ITEM}/download", "post"): {"200"} | POST_ERRORS,
    ("/api/v1/distribution/downloads/{id}", "get"): {"302", "403", "404", "405", "429", "503",
                                                     "504"},
    ("/api/v1/distribution/stats", "get"): {"200"} | OPERATOR_ERRORS,
    ("/metrics", "get"): {"200"} | OPERATOR_ERRORS,
    ("/healthz", "get"): {"200", "503", "405"},
    ("/readyz", "get"): {"200", "503", "405"},
    ("/openapi.json", "get"): {"200", "405"},
    (f"{ITEM}/platforms/{{platform}}/resolve", "post"): {"200", "403"} | POST_ERRORS,
    (RECONNECTED, "post"): {"200", "400"} | OPERATOR_ERRORS,
    ("/api/v1/distribution/items", "get"): {"200", "400", "422"} | OPERATOR_ERRORS,
    ("/api/v1/distribution/overview", "get"): {"200"} | OPERATOR_ERRORS,
    (f"{ITEM}/timeline", "get"): {"200", "400", "404"} | OPERATOR_ERRORS,
    ("/api/v1/distribution/dead-letters", "get"): {"200", "400"} | OPERATOR_ERRORS,
    (REDRIVE, "post"): {"200", "400", "404", "409", "422"} | OPERATOR_ERRORS,
}
BEARER = {(p, m) for p, m in STATUSES if p.startswith(ITEM)} | {
    ("/api/v1/distribution/stats", "get"), ("/metrics", "get"), (RECONNECTED, "post"),
    ("/api/v1/distribution/items", "get"), ("/api/v1/distribution/dead-letters", "get"),
    ("/api/v1/distribution/overview", "get"),
    (REDRIVE, "post")}


@pytest.fixture(scope="module")
def document():
    return build_document()


def operations(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def deref(doc, node):
    """The node a `$ref` of the document points at (or the node itself)."""
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_contract_file_is_the_document_the_code_generates(document):
    assert CONTRACT.read_text(encoding="utf-8") == render(document), (
        "contracts/api/v1/distribution-service.openapi.json is out of date: run "
        "`distribution openapi`")


def test_the_document_is_valid_openapi_3_1_and_stable(document):
    assert document["openapi"] == "3.1.0"
    validate(document)
    assert render(build_document()) == render(document)
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))


def test_each_operation_lists_every_status_it_can_answer_and_no_other(document):
    found = {(path, method): set(op["responses"]) for path, method, op in operations(document)}
    assert found == STATUSES


#: The probes answer 503 with their own bodies, which say what failed.
PROBES = ("/healthz", "/readyz")


def test_every_error_answer_has_the_error_body_narrowed_to_the_codes_of_its_status(document):
    for path, method, operation in operations(document):
        for status, answer in operation["responses"].items():
            if status.startswith(("2", "3")) or (path in PROBES and status == "503"):
                continue
            answer = deref(document, answer)
            schema = answer["content"]["application/json"]["schema"]
            assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}
            code = schema["allOf"][1]["properties"]["error"]["properties"]["code"]
            codes = code.get("enum") or [code["const"]]
            assert {STATUS_BY_CODE[c] for c in codes} == {int(status)}, (path, status)
            example = answer["content"]["application/json"]["example"]
            assert example["error"]["code"] in codes


def test_the_error_code_enum_is_every_code_of_web_errors(document):
    schemas_ = document["components"]["schemas"]
    assert schemas_["ErrorCode"]["enum"] == list(STATUS_BY_CODE)
    body = deref(document, schemas_["Error"]["properties"]["error"])
    assert body["required"] == ["code", "message", "details"]
    assert body["additionalProperties"] is False


def test_the_headers_each_answer_carries_are_documented(document):
    def headers(operation, status):
        answer = deref(document, operation["responses"][status])
        return {name: deref(document, h) for name, h in answer.get("headers", {}).items()}

    for path, method, operation in operations(document):
        statuses = operation["responses"]
        if "401" in statuses:
            assert headers(operation, "401")["WWW-Authenticate"]["required"] is True
        if "405" in statuses:
            assert headers(operation, "405")["Allow"]["required"] is True
        for status in {"429", "503", "504"} & statuses.keys():
            if not (path in PROBES and status == "503"):
                assert headers(operation, status)["Retry-After"]["required"] is True
        if method == "post" and path.startswith(ITEM):
            success = next(s for s in statuses if s.startswith("2"))
            assert "Retry-After" in headers(operation, "409")
            for status in (success, "409", "422"):
                replayed = headers(operation, status)["Idempotent-Replayed"]
                assert replayed["schema"] == {"type": "string", "enum": ["true"]}
            assert "Idempotent-Replayed" not in headers(operation, "400")
    follow = document["paths"]["/api/v1/distribution/downloads/{id}"]["get"]
    assert follow["responses"]["302"]["headers"]["Location"]


def test_the_bearer_token_is_required_exactly_where_the_service_asks_for_it(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert "distribution:operate" in scheme["description"]
    for path, method, operation in operations(document):
        expected = [{"bearerAuth": []}] if (path, method) in BEARER else []
        assert operation["security"] == expected, (path, method)


def test_parameters_carry_the_patterns_the_views_check(document):
    parameters = document["components"]["parameters"]
    item_id = parameters["ItemId"]["schema"]
    assert item_id == {"type": "string", "pattern": schemas.ITEM_ID_PATTERN, "maxLength": 200}
    key = parameters["IdempotencyKey"]
    assert (key["in"], key["required"]) == ("header", False)
    assert key["schema"]["pattern"] == r"^[\x20-\x7E]{1,255}$"
    assert parameters["DownloadExpires"]["schema"]["pattern"] == schemas.EXPIRES_PATTERN
    assert parameters["DownloadSignature"]["schema"]["pattern"] == schemas.SIGNATURE_PATTERN
    for path, method, operation in operations(document):
        names = {deref(document, p)["name"] for p in operation.get("parameters", [])}
        assert ("id" in names) == ("{id}" in path)
        assert ("Idempotency-Key" in names) == (method == "post" and path.startswith(ITEM))


def test_every_post_has_runnable_request_examples_and_every_success_an_example(document):
    for path, method, operation in operations(document):
        if method == "post" and path.startswith(ITEM):
            content = operation["requestBody"]["content"]["application/json"]
            assert content["examples"], path
        for status, answer in operation["responses"].items():
            if status.startswith("2"):
                content = next(iter(answer["content"].values()))
                assert "example" in content or path == "/openapi.json", (path, status)


def test_the_examples_match_the_document_schemas(document):
    def validator(schema):
        return jsonschema_rs.Draft202012Validator(
            {**schema, "components": document["components"]})

    checked = 0
    for path, method, operation in operations(document):
        bodies = [operation.get("requestBody", {}).get("content", {}).get("application/json")]
        bodies += [a.get("content", {}).get("application/json")
                   for a in map(lambda a: deref(document, a), operation["responses"].values())]
        for content in filter(None, bodies):
            values = [e["value"] for e in content.get("examples", {}).values()]
            values += [content["example"]] if "example" in content else []
            for value in values:
                assert validator(content["schema"]).is_valid(value), (path, method, value)
                checked += 1
    assert checked >= 30
    broken = {**schemas.ITEM_EXAMPLE, "status": "lost"}
    assert not validator({"$ref": "#/components/schemas/Item"}).is_valid(broken)


def test_links_chain_the_item_operations_by_the_answers_id(document):
    links = document["components"]["links"]
    operation_ids = {op["operationId"] for _, _, op in operations(document)}
    # (settling a platform takes the platform too: it is not one of the item's links)
    item_operations = {op["operationId"] for path, _, op in operations(document)
                       if path.startswith(ITEM) and "{platform}" not in path}
    assert {link["operationId"] for link in links.values()} == item_operations
    for link in links.values():
        assert link["operationId"] in operation_ids
        assert link["parameters"] == {"path.id": "$response.body#/id"}
    for path, method, operation in operations(document):
        if not path.startswith(ITEM):
            continue
        success = next(a for s, a in operation["responses"].items() if s.startswith("2"))
        answers_item = success["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Item"}
        if answers_item and path != f"{ITEM}/preview":
            assert set(success["links"]) == set(links), path
        else:
            assert "links" not in success, path


def test_the_description_states_the_error_shape_and_the_idempotency_rules(document):
    text = document["info"]["description"]
    for phrase in ('{"error": {"code", "message", "details"}}', "idempotency_key_mismatch",
                   "idempotency_key_in_use", "24 hours", "(400, 401, 404)", "Retry-After"):
        assert phrase in text, phrase


def test_the_command_checks_and_writes_the_contract_file(tmp_path, monkeypatch):
    for name in ("DISTRIBUTION_JWT_SECRET", "DISTRIBUTION_DOWNLOAD_SECRET"):
        monkeypatch.delenv(name, raising=False)  # the command needs no secrets
    target = tmp_path / "contracts" / "openapi.json"
    monkeypatch.setattr(openapi, "DOCUMENT_PATH", target)
    assert cli.main(["openapi", "--check"]) == 1  # missing
    assert cli.main(["openapi"]) == 0
    text = target.read_text(encoding="utf-8")
    assert text.endswith("}\n") and json.loads(text) == build_document()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert cli.main(["openapi", "--check"]) == 0
    target.write_text(text.replace('"3.1.0"', '"3.1.1"'), encoding="utf-8")
    assert cli.main(["openapi", "--check"]) == 1
    assert '"3.1.1"' in target.read_text(encoding="utf-8")  # --check writes nothing
