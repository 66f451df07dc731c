"""The OpenAPI 3.1 document of the HTTP API, generated from the models of web/schemas.py.

`build_document()` is what `GET /openapi.json` serves and what
`contracts/api/v1/distribution-service.openapi.json` holds (`distribution openapi` writes
it, `distribution openapi --check` compares). Schemas are never written here by hand: the
request bodies the document describes are the models that validate them, so the document
and the service refuse exactly the same bodies.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from app.domain.model import Platform
from app.settings import Settings
from app.topics import DLQ_TOPICS

from . import schemas as s
from .errors import STATUS_BY_CODE

DOCUMENT_PATH = (Path(__file__).resolve().parents[1]
                 / "contracts/api/v1/distribution-service.openapi.json")
API = "/api/v1/distribution"
ITEM = f"{API}/items/{{id}}"
OPERATOR_SCOPE = Settings.model_fields["operator_scope"].default
KEY_TTL_HOURS = Settings.model_fields["idempotency_key_ttl_hours"].default

#: Component names of the models (the names the contract tests and clients use).
COMPONENT_NAMES = {
    "OverlayBody": "OverlayRequest", "ScheduleBody": "ScheduleRequest",
    "RescheduleBody": "RescheduleRequest", "PublishBody": "PublishRequest",
    "PublishMultiBody": "PublishMultiRequest", "EmptyBody": "EmptyRequest",
    "ResolveBody": "ResolveRequest", "AccountReconnectedOut": "AccountReconnected",
    "CaptionBody": "CaptionRequest", "CaptionTextBody": "CaptionTextRequest",
    "ItemOut": "Item", "Status": "ItemStatus", "OverlayOut": "Overlay", "CaptionOut": "Caption",
    "CaptionTextOut": "CaptionText", "PlatformStatusOut": "PlatformStatus",
    "PreviewOut": "Preview", "ClipOut": "PreviewClip", "PlatformCaptionOut": "PlatformCaption",
    "ScheduleOut": "PreviewSchedule", "DownloadLinkOut": "DownloadLink", "StatsOut": "Stats",
    "PlatformCountsOut": "PlatformCounts", "OutcomeCountsOut": "OutcomeCounts",
    "ErrorOut": "Error", "ErrorBodyOut": "ErrorBody", "ErrorDetailsOut": "ErrorDetails",
    "FieldErrorOut": "FieldError", "HealthOut": "Health", "ReadinessOut": "Readiness",
    "ChecksOut": "ReadinessChecks", "ItemPageOut": "ItemPage", "TimelineOut": "Timeline",
    "TimelineEntryOut": "TimelineEntry", "DeadLettersOut": "DeadLetters",
    "DeadLetterOut": "DeadLetter", "OverviewOut": "Overview", "LatenessOut": "Lateness",
}
REQUESTS: list[type[BaseModel]] = [s.OverlayBody, s.ScheduleBody, s.RescheduleBody,
                                   s.PublishBody, s.PublishMultiBody, s.EmptyBody,
                                   s.ResolveBody]
ANSWERS: list[type[BaseModel]] = [s.ItemOut, s.PreviewOut, s.DownloadLinkOut, s.StatsOut,
                                  s.ErrorOut, s.HealthOut, s.ReadinessOut,
                                  s.AccountReconnectedOut, s.ItemPageOut, s.TimelineOut,
                                  s.DeadLettersOut, s.OverviewOut]


class _ComponentSchemas(GenerateJsonSchema):
    """Component names from COMPONENT_NAMES; no titles on fields (the names say it)."""

    def normalize_name(self, name: str) -> str:
        name = super().normalize_name(name)
        return COMPONENT_NAMES.get(name, name)

    def field_title_should_be_set(self, schema) -> bool:
        return False


def component_name(model: type) -> str:
    return COMPONENT_NAMES.get(model.__name__, model.__name__)


def ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _one_line(node: Any) -> Any:
    """Docstrings read as one paragraph; and component schemas carry no titles."""
    if isinstance(node, dict):
        return {k: (" ".join(v.split()) if k == "description" and isinstance(v, str)
                    else _one_line(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_one_line(v) for v in node]
    return node


def component_schemas() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = (
        [(m, "validation") for m in REQUESTS] + [(m, "serialization") for m in ANSWERS])
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}",
                                schema_generator=_ComponentSchemas)
    components = {}
    for name, schema in sorted(top["$defs"].items()):
        schema.pop("title", None)
        components[name] = _one_line(schema)
    missing = {component_name(m) for m, _ in models} - components.keys()
    if missing:  # a name in COMPONENT_NAMES that pydantic did not use
        raise RuntimeError(f"components not generated under their names: {sorted(missing)}")
    return components


def examples_of(model: type[BaseModel]) -> list[Any]:
    extra = model.model_config.get("json_schema_extra")
    return list(extra.get("examples", [])) if isinstance(extra, dict) else []


# ---------------------------------------------------------------------------------------------
# Headers, parameters, error answers.

HEADERS = {
    "RetryAfter": {"description": "Seconds to wait before trying again.", "required": True,
                   "schema": {"type": "integer", "minimum": 1}},
    "WWWAuthenticate": {"description": "The bearer challenge.", "required": True,
                        "schema": {"type": "string"},
                        "example": 'Bearer realm="distribution"'},
    "Allow": {"description": "The methods the route answers.", "required": True,
              "schema": {"type": "string"}, "example": "POST"},
    "IdempotentReplayed": {
        "description": "`true` when this is the stored answer to an earlier request with the "
                       "same Idempotency-Key and the same body; absent otherwise.",
        "required": False, "schema": {"type": "string", "enum": ["true"]}},
    "Location": {"description": "Where the clip can be fetched (the media service).",
                 "required": True, "schema": {"type": "string", "format": "uri-reference"}},
}
REPLAYED = {"Idempotent-Replayed": ref("IdempotentReplayed", "headers")}

PARAMETERS = {
    "ItemId": {
        "name": "id", "in": "path", "required": True,
        "description": "The item id (M09's claim_id): 1 to 200 letters, digits or `. _ : -`, "
                       "starting with a letter or digit.",
        "schema": {"type": "string", "pattern": s.ITEM_ID_PATTERN,
                   "maxLength": s.ITEM_ID_MAX_LENGTH},
        "example": "clm_01HZX3J8Q9W6N4T2"},
    "IdempotencyKey": {
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": "A key of the client's choosing (1 to 255 printable ASCII characters) "
                       "that makes a repeated request take effect once: see the idempotency "
                       "rules in the document's description.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                   "pattern": s.IDEMPOTENCY_KEY_PATTERN},
        "example": "0b6c9f6e-6a4e-4d8e-9a57-1f2b8e1c2d3f"},
    "Platform": {
        "name": "platform", "in": "path", "required": True, "description": "The platform.",
        "schema": {"type": "string", "enum": [p.value for p in Platform]}, "example": "tiktok"},
    "InfluencerId": {
        "name": "influencer_id", "in": "path", "required": True,
        "description": "The influencer whose connected account it is.",
        "schema": {"type": "string", "minLength": 1, "maxLength": s.INFLUENCER_ID_MAX_LENGTH},
        "example": "inf_42"},
    "DownloadExpires": {
        "name": "expires", "in": "query", "required": True,
        "description": "Expiry of the link, in seconds since the epoch (part of the link).",
        "schema": {"type": "string", "pattern": s.EXPIRES_PATTERN}, "example": "1772385300"},
    "DownloadSignature": {
        "name": "signature", "in": "query", "required": True,
        "description": "HMAC-SHA256 of the item id and the expiry, hex (part of the link).",
        "schema": {"type": "string", "pattern": s.SIGNATURE_PATTERN}, "example": "3f" * 32},
}

#: name: (status, codes, description, headers, example message)
ERROR_RESPONSES: dict[str, tuple[int, list[str], str, dict[str, Any], str]] = {
    "BadRequest": (
        400, ["invalid_request", "unsupported_platform"],
        "The request is not valid: a malformed item id or Idempotency-Key, a body that is not "
        "a JSON object, an unknown field, a value of the wrong type or outside its enum, "
        "range, pattern or size (`invalid_request`), or a platform that is not supported "
        "(`unsupported_platform`). `details.field` names the first bad field; "
        "`details.errors` lists each problem. Never stored under an Idempotency-Key.",
        {}, "duration_seconds: Input should be less than or equal to 3"),
    "Unauthorized": (
        401, ["unauthorized"],
        "No bearer token, or one that is malformed, badly signed, expired, or of an "
        "algorithm, issuer or audience the service does not accept.",
        {"WWW-Authenticate": ref("WWWAuthenticate", "headers")}, "a bearer token is required"),
    "Forbidden": (
        403, ["forbidden"], f"The token does not hold the operator scope `{OPERATOR_SCOPE}`.",
        {}, "this needs the operator scope"),
    "DownloadForbidden": (
        403, ["forbidden"], "The link is malformed, tampered with or expired.",
        {}, "the download link is not valid"),
    "NotFound": (
        404, ["not_found"],
        "No such item, or an item of someone else: the same answer either way, so that item "
        "ids do not leak. Never stored under an Idempotency-Key.", {}, "No such item."),
    "MethodNotAllowed": (
        405, ["method_not_allowed"], "The route does not answer this method; `Allow` names "
        "those it does.", {"Allow": ref("Allow", "headers")}, "Method Not Allowed"),
    "Conflict": (
        409, ["invalid_state_transition", "quota_exceeded", "idempotency_key_in_use"],
        "The item's status does not allow this (`invalid_state_transition`, with "
        "`details.status` and `details.allowed_from`); a post the request plans does not "
        "fit the account's posting limit on a platform, scheduled posts included "
        "(`quota_exceeded`, with `details.platform`, `details.cap`, `details.window` and "
        "`details.earliest`, the first time a post there fits); or a request with this "
        "Idempotency-Key is still being processed (`idempotency_key_in_use`, with "
        "`Retry-After`).",
        {"Retry-After": {**HEADERS["RetryAfter"], "required": False,
                         "description": "With `idempotency_key_in_use`: seconds to wait "
                                        "before repeating the request."},
         **REPLAYED}, "Retry is not allowed when the item is scheduled"),
    "AlreadyRedriven": (
        409, ["already_redriven"],
        "The dead-lettered record was sent back to its topic before (`details.partition`, "
        "`details.offset`): a record is re-driven once.",
        {}, "The dead-lettered record was sent back to its topic before."),
    "PayloadTooLarge": (
        413, ["payload_too_large"], "The body is larger than 1 MiB.", {},
        "Request Entity Too Large"),
    "UnprocessableContent": (
        422, ["rule_violation", "idempotency_key_mismatch"],
        "Well formed, but refused by a rule (`rule_violation`: the schedule window, a local "
        "time in a DST gap or fold, a local time without `timezone`, a caption over a "
        "platform's limits, the claim window), or this Idempotency-Key was used before with "
        "another body (`idempotency_key_mismatch`).",
        REPLAYED, "caption for snapchat is longer than 160 characters with hashtags"),
    "RateLimited": (
        429, ["rate_limited"], "Too many requests from this caller; try again after "
        "`Retry-After` seconds.", {"Retry-After": ref("RetryAfter", "headers")},
        "Too many requests from this caller; try again after Retry-After seconds."),
    "Unavailable": (
        503, ["unavailable"], "The database, the broker or the identity provider cannot be "
        "reached; try again after `Retry-After` seconds.",
        {"Retry-After": ref("RetryAfter", "headers")},
        "A backing service (database or broker) cannot be reached; try again shortly."),
    "Timeout": (
        504, ["timeout"], "No answer came in time; the command may still take effect (repeat "
        "it with the same Idempotency-Key to learn its outcome).",
        {"Retry-After": ref("RetryAfter", "headers")},
        "The command was sent but no answer came in time; it may still be applied."),
}


def error_responses() -> dict[str, Any]:
    answers = {}
    for name, (status, codes, description, headers, message) in ERROR_RESPONSES.items():
        wrong = [c for c in codes if STATUS_BY_CODE.get(c) != status]
        if wrong:
            raise RuntimeError(f"{name}: web/errors.py answers {wrong} with another status")
        narrowed = {"const": codes[0]} if len(codes) == 1 else {"enum": codes}
        details = ({"field": "duration_seconds", "errors": [
            {"field": "duration_seconds", "message": "Input should be less than or equal to 3"}]}
            if status == 400 else {})
        answers[name] = {
            "description": description,
            "content": {"application/json": {
                "schema": {"allOf": [ref("Error"), {"properties": {"error": {
                    "properties": {"code": narrowed}}}}]},
                "example": {"error": {"code": codes[0], "message": message,
                                      "details": details}}}},
            **({"headers": headers} if headers else {}),
        }
    return answers


def errors(*statuses: str, download: bool = False, conflict: str = "Conflict"
           ) -> dict[str, Any]:
    by_status = {"400": "BadRequest", "401": "Unauthorized",
                 "403": "DownloadForbidden" if download else "Forbidden", "404": "NotFound",
                 "405": "MethodNotAllowed", "409": conflict, "413": "PayloadTooLarge",
                 "422": "UnprocessableContent", "429": "RateLimited", "503": "Unavailable",
                 "504": "Timeout"}
    return {status: ref(by_status[status], "responses") for status in statuses}


# ---------------------------------------------------------------------------------------------
# Operations.

#: The item operations a response carrying an item can be followed by (OpenAPI links).
ITEM_LINKS = {
    "GetItem": ("getItem", "Read the item again."),
    "GetPreview": ("getPreview", "Preview the item."),
    "AddOverlay": ("addOverlay", "Add an overlay to the item."),
    "ScheduleItem": ("scheduleItem", "Schedule the item."),
    "RescheduleItem": ("rescheduleItem", "Move the item's schedule."),
    "PublishItem": ("publishItem", "Publish the item to one platform."),
    "PublishItemMulti": ("publishItemMulti", "Publish the item to several platforms."),
    "RetryItem": ("retryItem", "Retry the item's failed platforms."),
    "RequestDownload": ("requestDownload", "Get a download link for the item."),
    "GetTimeline": ("getItemTimeline", "Read what happened to the item (operators)."),
}
ITEM_POST_ERRORS = ("400", "401", "404", "405", "409", "413", "422", "429", "503", "504")
ITEM_GET_ERRORS = ("400", "401", "404", "405", "429", "503", "504")
OPERATOR_ERRORS = ("401", "403", "405", "429", "503", "504")
BEARER = [{"bearerAuth": []}]

POSTS = [
    # route, operationId, summary, description, body, status, answer, answer description
    ("overlays", "addOverlay", "Add an intro or outro overlay",
     "At most one of each type; a second one replaces the first. Only while the item is "
     "claimed or scheduled.", s.OverlayBody, 200, s.ItemOut, "The item after the change."),
    ("schedule", "scheduleItem", "Schedule publishing",
     "Only from `claimed`, inside the claim window. The time must fall in the schedule window "
     "and each platform's caption within its limits (else 422).",
     s.ScheduleBody, 200, s.ItemOut, "The item after the change."),
    ("reschedule", "rescheduleItem", "Move the scheduled time",
     "Only from `scheduled`; the same rules as scheduling. Without `timezone`, a local time "
     "is read in the item's zone.", s.RescheduleBody, 200, s.ItemOut,
     "The item after the change."),
    ("publish", "publishItem", "Publish now to one platform",
     "From `claimed` or `scheduled`; the item moves to `publishing`, then to `published` or "
     "`failed`.", s.PublishBody, 202, s.ItemOut,
     "Accepted: the item as it stands; each platform's outcome follows (read the item or "
     "the preview, or consume distribution.published / distribution.failed)."),
    ("publish-multi", "publishItemMulti", "Publish now to several platforms",
     "From `claimed` or `scheduled`; one platform failing never hides the others' success.",
     s.PublishMultiBody, 202, s.ItemOut,
     "Accepted: the item as it stands; each platform's outcome follows."),
    ("retry", "retryItem", "Retry the failed platforms",
     "Only from `failed`; publishes again only the platforms that failed.",
     s.EmptyBody, 202, s.ItemOut, "Accepted: the item, publishing again."),
    ("download", "requestDownload", "Get a signed, expiring download link",
     "In any status; the request is recorded in analytics. The link needs no token.",
     s.EmptyBody, 200, s.DownloadLinkOut, "The link and when it expires."),
]


def json_content(model: type[BaseModel], example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": ref(component_name(model))}
    examples = examples_of(model)
    if example is not None or examples:
        content["example"] = example if example is not None else examples[0]
    return {"application/json": content}


def item_links() -> dict[str, Any]:
    return {name: ref(name, "links") for name in ITEM_LINKS}


def post_operation(route: str, operation_id: str, summary: str, description: str,
                   body: type[s.Body], status: int, answer: type[BaseModel],
                   answer_description: str) -> dict[str, Any]:
    examples = examples_of(body)
    request = {"schema": ref(component_name(body)),
               "examples": {f"example{i + 1}" if len(examples) > 1 else "example":
                            {"value": value} for i, value in enumerate(examples)}}
    example = None
    if answer is s.ItemOut and status == 202:
        example = {**s.ITEM_EXAMPLE, "status": "publishing", "version": 4,
                   "platform_status": [{**p, "status": "publishing", "attempts": 1}
                                       for p in s.ITEM_EXAMPLE["platform_status"]]}
    success = {"description": answer_description, "headers": dict(REPLAYED),
               "content": json_content(answer, example)}
    if answer is s.ItemOut:
        success["links"] = item_links()
    return {
        "tags": ["items"], "operationId": operation_id, "summary": summary,
        "description": description, "security": BEARER,
        "parameters": [ref("ItemId", "parameters"), ref("IdempotencyKey", "parameters")],
        "requestBody": {"required": bool(body.model_fields), "content": {
            "application/json": request}},
        "responses": {str(status): success, **errors(*ITEM_POST_ERRORS)},
    }


def get_operation(operation_id: str, summary: str, description: str, answer: type[BaseModel],
                  answer_description: str, links: bool = False) -> dict[str, Any]:
    success: dict[str, Any] = {"description": answer_description,
                               "content": json_content(answer)}
    if links:
        success["links"] = item_links()
    return {"tags": ["items"], "operationId": operation_id, "summary": summary,
            "description": description, "security": BEARER,
            "parameters": [ref("ItemId", "parameters")],
            "responses": {"200": success, **errors(*ITEM_GET_ERRORS)}}


def query_parameters(model: type[s.Query]) -> list[dict[str, Any]]:
    """The query model's fields as optional query parameters."""
    schema = model.model_json_schema(schema_generator=_ComponentSchemas)
    params = []
    for name, prop in schema["properties"].items():
        description = prop.pop("description", None)
        if "anyOf" in prop:  # `X | None`: absent means any
            prop = next(p for p in prop["anyOf"] if p.get("type") != "null")
        if "$ref" in prop:  # an enum of the document's (ItemStatus, Platform, ...)
            prop = schema["$defs"][prop["$ref"].rsplit("/", 1)[1]]
            prop.pop("title", None)
        param = {"name": name, "in": "query", "required": False, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


def operator_operations() -> dict[str, Any]:
    """The operators' routes (web/operator.py)."""
    def get(operation_id: str, summary: str, description: str, answer: type[BaseModel],
            parameters: list[dict[str, Any]], extra_errors: tuple[str, ...] = ("400",)):
        return {"get": {
            "tags": ["operations"], "operationId": operation_id, "summary": summary,
            "description": f"{description} Needs the `{OPERATOR_SCOPE}` scope.",
            "security": BEARER, "parameters": parameters,
            "responses": {"200": {"description": "The answer.", "content": json_content(answer)},
                          **errors(*extra_errors, *OPERATOR_ERRORS)}}}
    dlq_place = [
        {"name": "topic", "in": "path", "required": True, "description": "The DLQ topic.",
         "schema": {"type": "string", "enum": list(DLQ_TOPICS)}},
        *({"name": name, "in": "path", "required": True, "description": description,
           "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}
          for name, description in (("partition", "The record's partition."),
                                    ("offset", "The record's offset.")))]
    return {
        f"{API}/overview": get(
            "getOverview", "The cluster at a glance (operators)",
            "Items by status, item platforms by state, the last hour's outcomes and lateness, "
            "the outbox backlog and the most overdue scheduled item, read from the database.",
            s.OverviewOut, [], extra_errors=()),
        f"{API}/items": get(
            "searchItems", "Search items (operators)",
            "Items newest first, a page at a time (`next_cursor`); every filter is optional.",
            s.ItemPageOut, query_parameters(s.ItemSearchQuery), ("400", "422")),
        f"{ITEM}/timeline": get(
            "getItemTimeline", "An item's timeline (operators)",
            "The commands applied to the item, each platform answer, and the events it sent, "
            "oldest first.", s.TimelineOut, [ref("ItemId", "parameters")], ("400", "404")),
        f"{API}/dead-letters": get(
            "listDeadLetters", "Dead-lettered records (operators)",
            "The latest records of the dead-letter topics with the reason each was set "
            "aside, newest first, and whether it was re-driven.", s.DeadLettersOut,
            query_parameters(s.DeadLettersQuery)),
        f"{API}/dead-letters/{{topic}}/{{partition}}/{{offset}}/redrive": {"post": {
            "tags": ["operations"], "operationId": "redriveDeadLetter",
            "summary": "Send a dead-lettered record back to its topic, once (operators)",
            "description": "The record goes back to the topic it came from, under its key, "
                           "exactly as it was consumed, and the re-drive is recorded; a second "
                           "re-drive of the same record is refused (409 `already_redriven`). "
                           "A record cut or not UTF-8 when it was dead-lettered cannot be sent "
                           f"back (422). Needs the `{OPERATOR_SCOPE}` scope.",
            "security": BEARER, "parameters": dlq_place,
            "responses": {"200": {"description": "The record, re-driven.",
                                  "content": json_content(s.DeadLetterOut)},
                          **errors("400", "404", "409", "422", *OPERATOR_ERRORS,
                                   conflict="AlreadyRedriven")}}},
    }


def paths() -> dict[str, Any]:
    items: dict[str, Any] = {
        ITEM: {"get": get_operation(
            "getItem", "Read an item", "The item, to its owner or an operator.", s.ItemOut,
            "The item.", links=True)},
        f"{ITEM}/preview": {"get": get_operation(
            "getPreview", "Preview an item",
            "Clip, overlays in play order, total duration, the caption per platform, the "
            "schedule in the item's zone, and each platform's status.", s.PreviewOut,
            "The preview.")},
    }
    for post in POSTS:
        items[f"{ITEM}/{post[0]}"] = {"post": post_operation(*post)}
    resolve = post_operation(
        "resolve", "resolvePlatform", "Settle a platform whose outcome is unknown (operators)",
        "Only for a platform in status `unknown` (a crash left it impossible to establish "
        "whether the platform posted; it is never posted again automatically). `published` "
        "records the post the operator found; `not_published` fails the platform, and a "
        f"retry then posts it again. Needs the `{OPERATOR_SCOPE}` scope (403 otherwise).",
        s.ResolveBody, 200, s.ItemOut, "The item after the change.")
    resolve["parameters"].insert(1, ref("Platform", "parameters"))
    resolve["responses"].update(errors("403"))
    items[f"{ITEM}/platforms/{{platform}}/resolve"] = {"post": resolve}
    plain = {"security": [], "tags": ["operations"]}
    return {
        **items,
        **operator_operations(),
        f"{API}/downloads/{{id}}": {"get": {
            "tags": ["downloads"], "operationId": "followDownload",
            "summary": "Follow a signed download link",
            "description": "No bearer token: the signature is the credential. Redirects to "
                           "the clip's media URL.",
            "security": [],
            "parameters": [ref("ItemId", "parameters"), ref("DownloadExpires", "parameters"),
                           ref("DownloadSignature", "parameters")],
            "responses": {
                "302": {"description": "To the clip.",
                        "headers": {"Location": ref("Location", "headers")}},
                **errors("403", "404", "405", "429", "503", "504", download=True)}}},
        f"{API}/accounts/{{influencer_id}}/{{platform}}/reconnected": {"post": {
            "tags": ["operations"], "operationId": "accountReconnected",
            "summary": "An account on hold is usable again (M10's notice)",
            "description": "After a platform refused an account's token even once refreshed, "
                           "the account's posts on that platform are held (neither attempted "
                           "nor failed) and `account.needs_reconnect` goes out on "
                           "distribution.accounts. This notice lifts the hold: the held posts "
                           "are due at once, and `account.reconnected` goes out. Needs the "
                           f"`{OPERATOR_SCOPE}` scope.",
            "security": BEARER,
            "parameters": [ref("InfluencerId", "parameters"), ref("Platform", "parameters")],
            "responses": {"200": {"description": "What changed.",
                                  "content": json_content(s.AccountReconnectedOut)},
                          **errors("400", *OPERATOR_ERRORS)}}},
        f"{API}/stats": {"get": {
            "tags": ["operations"], "operationId": "getStats",
            "summary": "Live per-platform publishing statistics (operators)",
            "description": "Published and failed outcomes per platform over a sliding window, "
                           f"counted from the outcome topics. Needs the `{OPERATOR_SCOPE}` "
                           "scope.",
            "security": BEARER,
            "responses": {"200": {"description": "The counts.",
                                  "content": json_content(s.StatsOut)},
                          **errors(*OPERATOR_ERRORS)}}},
        "/metrics": {"get": {
            "tags": ["operations"], "operationId": "metrics",
            "summary": "Prometheus metrics (operators)",
            "description": "Prometheus text format: this worker's figures (commands, platform "
                           "attempts, lateness, dead letters, consumer lag, Faust's sensor) "
                           "and the cluster's, read from the database (the same on every "
                           f"worker). Needs the `{OPERATOR_SCOPE}` scope.",
            "security": BEARER,
            "responses": {"200": {"description": "The metrics.", "content": {
                "text/plain": {"schema": {"type": "string"}, "example":
                               "# TYPE distribution_items gauge\n"
                               'distribution_items{status="published"} 12.0\n'}}},
                          **errors(*OPERATOR_ERRORS)}}},
        "/healthz": {"get": {
            **plain, "operationId": "healthz", "summary": "Liveness",
            "description": "Fails when an agent or a task of the worker ended or stalled, or "
                           "its event loop was blocked longer than "
                           "`DISTRIBUTION_HEALTH_MAX_LOOP_BLOCK_SECONDS` in the last minute.",
            "responses": {
                "200": {"description": "Alive.", "content": json_content(s.HealthOut)},
                "503": {"description": "Not alive: `problems` says why.",
                        "content": json_content(s.HealthOut, {
                            "status": "unhealthy",
                            "problems": ["publisher: crashed: RuntimeError: boom"]})},
                **errors("405")}}},
        "/readyz": {"get": {
            **plain, "operationId": "readyz",
            "summary": "Readiness: database, broker and command agent reachable, claims read",
            "responses": {
                "200": {"description": "Ready.", "content": json_content(s.ReadinessOut)},
                "503": {"description": "Not ready: `checks` says what failed.",
                        "content": json_content(s.ReadinessOut, {
                            "status": "unavailable",
                            "checks": {"database": "ok", "broker": "error: TimeoutError",
                                       "commands": "error: Timeout", "claims": "ok"}})},
                **errors("405")}}},
        "/openapi.json": {"get": {
            **plain, "operationId": "getOpenapi", "summary": "This document",
            "responses": {"200": {"description": "The OpenAPI document.", "content": {
                "application/json": {"schema": {"type": "object"}}}},
                          **errors("405")}}},
    }


DESCRIPTION = f"""\
Carries clips that influencers claimed for a campaign to published posts on social \
platforms (tiktok, instagram, youtube, snapchat).

**Authentication.** Every route under `/api/v1/distribution/items` needs a bearer JWT whose \
`sub` is the influencer id; an influencer may read and change only their own items (someone \
else's item is answered 404, like a missing one). A token whose `scope` claim holds \
`{OPERATOR_SCOPE}` is an operator's: any item, any action, and the operator routes \
(`/api/v1/distribution/stats`, `/metrics`). A signed download link needs no token.

**Errors.** Every answer of 400 or above has the body \
`{{"error": {{"code", "message", "details"}}}}` (except `/healthz` and `/readyz`, which \
answer 503 with their own bodies). `code` is one of a fixed set, each with one status (see `ErrorCode`); \
`message` is for people; `details` is an object, empty when there is nothing to add. A 400 \
names the first bad field in `details.field` and lists each problem in `details.errors`. \
Request bodies are strict: an unknown field, a value of the wrong JSON type (`"2.5"` or \
`true` for a number), or a value outside its enum, range, pattern or size is a 400. A \
well-formed request a rule refuses (schedule window, DST gap or fold, caption limits) is a \
422 `rule_violation`. 429, 503 and 504 carry `Retry-After`.

**Idempotency.** Every POST takes an optional `Idempotency-Key` header (1 to 255 printable \
ASCII characters), scoped to the caller, the route and the item. The same key with the same \
body gets the stored answer (status and body, with `Idempotent-Replayed: true`) and takes \
effect once; the same key with another body is a 422 `idempotency_key_mismatch`; the same \
key while the first request is still in flight is a 409 `idempotency_key_in_use` with \
`Retry-After`. Keys are kept {KEY_TTL_HOURS:g} hours. Requests refused before they ran (400, 401, 404) are \
not stored, nor are 503 and 504, whose outcome is not known: the key may be used again."""


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service (a new one each time)."""
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {"title": "Distribution service (M31)", "version": "1.0.0",
                 "description": DESCRIPTION},
        "servers": [{"url": "/", "description": "The worker that serves this document."}],
        "tags": [
            {"name": "items", "description": "Distribution items (bearer token required)."},
            {"name": "downloads", "description": "Signed download links."},
            {"name": "operations", "description": "Health, readiness, metrics and statistics."},
        ],
        "paths": paths(),
        "components": {
            "schemas": component_schemas(),
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "responses": error_responses(),
            "links": {name: {"operationId": operation_id, "description": description,
                             "parameters": {"path.id": "$response.body#/id"}}
                      for name, (operation_id, description) in ITEM_LINKS.items()},
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A JWT (HS256 with the service's secret, or RS256/ES256 from "
                               "the identity provider) with `sub` (the influencer id) and "
                               "`exp`; `iss` and `aud` when the service is configured with "
                               f"them. The scope `{OPERATOR_SCOPE}` in the `scope` claim "
                               "makes the caller an operator (any item; stats and metrics)."}},
        },
    })


def render(document: dict[str, Any]) -> str:
    """The document as the contract file holds it: sorted keys, indent 2, final newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
