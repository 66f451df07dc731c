"""Request bodies (web/schemas.py): strict, bounded, and refusing exactly what the OpenAPI
document generated from them calls invalid."""

from __future__ import annotations

import calendar
import json
import re
from datetime import datetime
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from app.db.items import caption_from_json
from app.domain.errors import DomainError, InvalidRequest, RuleViolation, UnsupportedPlatform
from app.domain.rules import check_overlay, check_platforms, parse_schedule_time, parse_zone
from app.wire import make_command
from web import schemas
from web.openapi import COMPONENT_NAMES, build_document
from web.schemas import (EmptyBody, OverlayBody, PublishBody, PublishMultiBody, RescheduleBody,
                         ScheduleBody, parse)

DOCUMENT = build_document()
ITEM = "/api/v1/distribution/items/{id}"
MODEL_BY_COMPONENT = {COMPONENT_NAMES[m.__name__]: m for m in (
    OverlayBody, ScheduleBody, RescheduleBody, PublishBody, PublishMultiBody, EmptyBody,
    schemas.ItemOut, schemas.PreviewOut, schemas.DownloadLinkOut, schemas.StatsOut,
    schemas.ErrorOut, schemas.HealthOut, schemas.ReadinessOut, schemas.ResolveBody,
    schemas.AccountReconnectedOut, schemas.OverviewOut, schemas.ItemPageOut,
    schemas.TimelineOut, schemas.DeadLettersOut, schemas.DeadLetterOut)}


def refused(body: Any, schema: type[schemas.Body]) -> DomainError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises((InvalidRequest, UnsupportedPlatform)) as err:
        parse(raw, schema)
    return err.value


def accepted(body: Any, schema: type[schemas.Body]) -> dict[str, Any]:
    return parse(json.dumps(body).encode(), schema).payload()


# ---------------------------------------------------------------------------------------------
# Strict types.


@pytest.mark.parametrize("duration", ["2.5", True, None, [2.5], {"s": 2.5}])
def test_a_duration_that_is_not_a_json_number_is_refused(duration):
    err = refused({"type": "intro", "duration_seconds": duration}, OverlayBody)
    assert err.code == "invalid_request"
    assert err.details["field"] == "duration_seconds"


def test_an_integer_is_a_number_and_the_payload_is_what_the_handler_reads():
    payload = accepted({"type": "outro", "duration_seconds": 3}, OverlayBody)
    assert payload == {"type": "outro", "duration_seconds": 3.0}
    command = make_command("add-overlay", "i1", "c1", payload).to_domain()
    assert (command.type, command.duration_seconds) == ("outro", 3.0)


@pytest.mark.parametrize("body, field", [
    ({"scheduled_at": 20260301}, "scheduled_at"),
    ({"scheduled_at": "2026-03-01T10:00:00Z", "timezone": 1}, "timezone"),
    ({"platform": ["tiktok"]}, "platform"),
])
def test_a_number_or_list_for_a_string_is_refused(body, field):
    schema = PublishBody if "platform" in body else RescheduleBody
    err = refused(body, schema)
    assert err.code == "invalid_request" and err.details["field"] == field


def test_a_number_for_a_platform_is_an_invalid_request_not_an_unsupported_platform():
    assert refused({"platform": 1}, PublishBody).code == "invalid_request"


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"3", b"null", b"{oops", b"\xff"])
def test_a_body_that_is_not_a_json_object_is_refused_as_the_body(raw):
    assert refused(raw, EmptyBody).details["field"] == "body"


def test_an_empty_body_is_an_empty_object():
    assert parse(b"  ", EmptyBody).payload() == {}
    assert refused(b"", OverlayBody).details["field"] in ("type", "duration_seconds")


# ---------------------------------------------------------------------------------------------
# Unknown fields, enums, sizes.


@pytest.mark.parametrize("body, schema, field", [
    ({"type": "intro", "duration_seconds": 1, "colour": "red"}, OverlayBody, "colour"),
    ({"colour": "red"}, EmptyBody, "colour"),
    ({"platform": "tiktok", "caption": {"text": "a", "font": "x"}}, PublishBody, "caption.font"),
    ({"platform": "tiktok", "caption": {"variants": {"youtube": {"txt": "a"}}}}, PublishBody,
     "caption.variants.youtube.txt"),
])
def test_an_unknown_field_is_a_400_naming_it(body, schema, field):
    err = refused(body, schema)
    assert err.code == "invalid_request"
    assert err.details["field"] == field
    assert {"field": field, "message": "Extra inputs are not permitted"} in err.details["errors"]


def test_every_problem_is_listed_and_the_first_is_named():
    err = refused({"type": "sideways", "duration_seconds": 9, "x": 1}, OverlayBody)
    assert err.details["field"] == "type"
    assert [e["field"] for e in err.details["errors"]] == ["type", "duration_seconds", "x"]


@pytest.mark.parametrize("body, schema, field", [
    ({"platform": "myspace"}, PublishBody, "platform"),
    ({"platforms": ["tiktok", "myspace"]}, PublishMultiBody, "platforms.1"),
    ({"platforms": ["TikTok"]}, PublishMultiBody, "platforms.0"),
    ({"platform": "tiktok", "caption": {"variants": {"myspace": {"text": "a"}}}}, PublishBody,
     "caption.variants.myspace"),
])
def test_a_platform_outside_the_enum_is_an_unsupported_platform_naming_the_field(
        body, schema, field):
    err = refused(body, schema)
    assert err.code == "unsupported_platform"
    assert err.details["field"] == field
    assert err.details["supported"] == ["tiktok", "instagram", "youtube", "snapchat"]


@pytest.mark.parametrize("kind", ["sideways", "INTRO", ""])
def test_an_overlay_type_outside_intro_and_outro_is_refused(kind):
    err = refused({"type": kind, "duration_seconds": 1}, OverlayBody)
    assert err.code == "invalid_request" and err.details["field"] == "type"


@pytest.mark.parametrize("duration, ok", [(0, False), (-1, False), (1e-9, True), (3, True),
                                          (3.0000001, False), (1e400, False)])
def test_the_duration_is_above_zero_and_at_most_three_seconds(duration, ok):
    body = {"type": "intro", "duration_seconds": duration}
    if ok:
        assert accepted(body, OverlayBody)["duration_seconds"] == duration
    else:
        assert refused(body, OverlayBody).details["field"] == "duration_seconds"


def test_a_non_finite_duration_is_refused():
    refused(b'{"type": "intro", "duration_seconds": NaN}', OverlayBody)
    refused(b'{"type": "intro", "duration_seconds": Infinity}', OverlayBody)


@pytest.mark.parametrize("platforms", [[], ["tiktok", "tiktok"],
                                       ["tiktok", "instagram", "youtube", "snapchat", "tiktok"]])
def test_platforms_are_one_to_four_and_each_once(platforms):
    err = refused({"platforms": platforms}, PublishMultiBody)
    assert err.code == "invalid_request" and err.details["field"] == "platforms"


def test_the_four_platforms_in_any_order_are_accepted_in_that_order():
    order = ["snapchat", "tiktok", "youtube", "instagram"]
    assert accepted({"platforms": order}, PublishMultiBody)["platforms"] == order


def test_publish_turns_its_platform_into_the_platforms_the_handler_reads():
    payload = accepted({"platform": "youtube", "caption": {"text": "t", "title": "T"}},
                       PublishBody)
    assert payload == {"platforms": ["youtube"],
                       "caption": {"text": "t", "hashtags": [], "title": "T", "variants": {}}}
    command = make_command("publish", "i", "c", payload).to_domain()
    assert [p.value for p in check_platforms(command.platforms)] == ["youtube"]


CAPS = [
    ("text", "x" * schemas.MAX_CAPTION_TEXT_CHARS, "caption.text"),
    ("title", "x" * schemas.MAX_TITLE_CHARS, "caption.title"),
    ("hashtags", ["x" * schemas.MAX_HASHTAG_CHARS], "caption.hashtags.0"),
    ("hashtags", ["x"] * schemas.MAX_HASHTAGS, "caption.hashtags"),
]


@pytest.mark.parametrize("key, at_cap, field", CAPS, ids=[c[2] for c in CAPS])
def test_every_caption_string_and_list_is_capped(key, at_cap, field):
    accepted({"platform": "tiktok", "caption": {key: at_cap}}, PublishBody)
    over = at_cap + ["x"] if isinstance(at_cap, list) and len(at_cap) > 1 else (
        [at_cap[0] + "x"] if isinstance(at_cap, list) else at_cap + "x")
    err = refused({"platform": "tiktok", "caption": {key: over}}, PublishBody)
    assert err.code == "invalid_request" and err.details["field"] == field
    variant = refused({"platform": "tiktok", "caption": {"variants": {"tiktok": {key: over}}}},
                      PublishBody)
    assert variant.details["field"] == field.replace("caption.", "caption.variants.tiktok.")


def test_caps_are_generous_and_the_platform_limits_are_the_domains():
    """Far above any platform's limit: the limits are settings, answered 422 later."""
    assert schemas.MAX_CAPTION_TEXT_CHARS >= 5_000 and schemas.MAX_HASHTAGS >= 30
    assert schemas.MAX_TITLE_CHARS >= 100


@pytest.mark.parametrize("caption, field", [
    ({"text": "a\x00b"}, "caption.text"),
    ({"hashtags": ["ok", "b\x00"]}, "caption.hashtags.1"),
    ({"title": "\x00"}, "caption.title"),
    ({"variants": {"snapchat": {"text": "\x00"}}}, "caption.variants.snapchat.text"),
])
def test_a_nul_character_is_refused_naming_the_field(caption, field):
    err = refused({"platform": "tiktok", "caption": caption}, PublishBody)
    assert err.code == "invalid_request" and err.details["field"] == field



# ---------------------------------------------------------------------------------------------
# scheduled_at and timezone.

SCHEDULED = re.compile(schemas.SCHEDULED_AT_PATTERN.removeprefix("^").removesuffix("$"))


@pytest.mark.parametrize("value", [
    "2026-03-01T18:30:00", "2026-03-01T17:30:00Z", "2026-03-01T17:30:00.5+01:00",
    "2026-03-01T17:30:00.123456-00:00", "2000-01-01T00:00:00", "2099-12-31T23:59:59+23:59",
    "2028-02-29T12:00:00", "2000-02-29T12:00:00Z",
])
def test_rfc3339_with_an_offset_and_local_date_times_are_accepted(value):
    payload = accepted({"scheduled_at": value, "timezone": "Europe/Paris"}, RescheduleBody)
    assert payload == {"scheduled_at": value, "timezone": "Europe/Paris"}


@pytest.mark.parametrize("value", [
    "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "9999-12-31T23:59:59+00:00",
    "0001-01-01T00:00:00", "-2026-03-01T10:00:00Z", "20260-03-01T10:00:00Z",
    "2026-02-30T10:00:00", "2027-02-29T10:00:00Z", "2026-04-31T10:00:00", "2026-13-01T10:00:00",
    "2026-03-01T24:00:00", "2026-03-01T23:60:00", "2026-03-01T23:59:60Z",
    "2026-03-01T10:00:00+24:00", "2026-03-01T10:00:00+0100", "2026-03-01T10:00:00.1234567Z",
    "2026-03-01 10:00:00", "2026-03-01t10:00:00z", "2026-03-01T10:00", "2026-03-01",
    "2026-03-01T10:00:00Z\n", " 2026-03-01T10:00:00Z", "", "2026-03-01T10:00:00Z[Europe/Paris]",
])
def test_anything_else_is_a_400_on_scheduled_at_by_the_schema(value):
    err = refused({"scheduled_at": value}, RescheduleBody)
    assert err.code == "invalid_request" and err.details["field"] == "scheduled_at"


def test_the_pattern_admits_exactly_the_calendar_dates_of_2000_to_2099():
    for year in range(1999, 2101):
        for month in range(1, 13):
            days = calendar.monthrange(year, month)[1]
            for day in range(1, 32):
                value = f"{year:04d}-{month:02d}-{day:02d}T12:00:00"
                exists = 2000 <= year <= 2099 and day <= days
                assert (SCHEDULED.fullmatch(value) is not None) == exists, value


@settings(max_examples=300, deadline=None)
@given(st.from_regex(SCHEDULED, fullmatch=True), st.sampled_from(["Europe/Paris", None]))
def test_a_time_the_schema_admits_never_makes_the_domain_refuse_it_as_malformed(value, zone):
    assert SCHEDULED.fullmatch(value)
    assert accepted({"scheduled_at": value}, RescheduleBody)["scheduled_at"] == value
    datetime.fromisoformat(value)  # what the domain parses with
    try:
        parse_schedule_time(value, zone)
    except RuleViolation:  # a DST gap or fold, or a local time without a zone: 422
        pass


def test_a_local_time_without_a_zone_is_left_to_the_domain_which_answers_422():
    payload = accepted({"platforms": ["tiktok"], "scheduled_at": "2030-01-01T10:00:00"},
                       ScheduleBody)
    assert "timezone" not in payload
    with pytest.raises(RuleViolation):
        parse_schedule_time(payload["scheduled_at"], payload.get("timezone"))


@pytest.mark.parametrize("zone", ["Mars/Olympus", "europe/paris", "Europe/Paris ", "",
                                  "/etc/passwd", "../zoneinfo/UTC", "localtime"])
def test_a_zone_outside_the_iana_names_is_a_400_on_timezone(zone):
    err = refused({"scheduled_at": "2030-01-01T10:00:00", "timezone": zone}, RescheduleBody)
    assert err.code == "invalid_request" and err.details["field"] == "timezone"
    assert len(err.message) < 200  # not the list of every zone


def test_every_zone_of_the_enum_is_one_the_domain_resolves():
    names = [z.value for z in schemas.TimeZone]
    assert len(names) > 400 and names == sorted(names)
    assert {"Europe/Paris", "America/New_York", "UTC", "Asia/Kolkata"} <= set(names)
    for name in names:
        assert parse_zone(name).key == name


def test_a_schedule_payload_is_what_the_handler_reads():
    body = {"platforms": ["tiktok", "instagram"], "scheduled_at": "2030-01-01T10:00:00",
            "timezone": "Europe/Paris", "caption": {
                "text": "t", "hashtags": ["#a"], "variants": {"instagram": {"text": "i"}}}}
    payload = accepted(body, ScheduleBody)
    assert payload == {**body, "caption": {"text": "t", "hashtags": ["#a"], "variants": {
        "instagram": {"text": "i", "hashtags": []}}}}
    command = make_command("schedule", "i", "c", payload).to_domain()
    assert command.timezone == "Europe/Paris"
    assert caption_from_json(payload["caption"]).variants


def test_null_optional_fields_are_left_out_of_the_payload():
    payload = accepted({"scheduled_at": "2030-01-01T10:00:00Z", "timezone": None}, RescheduleBody)
    assert payload == {"scheduled_at": "2030-01-01T10:00:00Z"}
    assert accepted({"platform": "tiktok", "caption": None}, PublishBody) == {
        "platforms": ["tiktok"]}


# ---------------------------------------------------------------------------------------------
# Path and query parts.


@pytest.mark.parametrize("value", ["a", "clm_01HZX3J8Q9W6N4T2", "claim-1.2:3", "A" * 200])
def test_an_item_id_of_the_pattern_is_returned(value):
    assert schemas.check_item_id(value) == value


@pytest.mark.parametrize("value", ["", "_a", "-a", ".a", "a/b", "a b", "a\n", "é", "A" * 201,
                                   "a%2F", "a\x00"])
def test_any_other_item_id_is_a_400_on_id(value):
    with pytest.raises(InvalidRequest) as err:
        schemas.check_item_id(value)
    assert err.value.details == {"field": "id"}


def test_the_download_query_patterns_take_the_whole_value():
    assert schemas.matches(schemas.EXPIRES_PATTERN, "1772385300")
    assert not schemas.matches(schemas.EXPIRES_PATTERN, "1772385300\n")
    assert not schemas.matches(schemas.EXPIRES_PATTERN, "1" * 13)
    assert schemas.matches(schemas.SIGNATURE_PATTERN, "ab" * 32)
    assert not schemas.matches(schemas.SIGNATURE_PATTERN, "AB" * 32)


# ---------------------------------------------------------------------------------------------
# The document's examples, and the rule behind schemathesis.


def _request_examples() -> list[tuple[str, str, Any]]:
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {}).get(
                "application/json")
            if content:
                name = content["schema"]["$ref"].rsplit("/", 1)[-1]
                found += [(f"{method} {path}", name, e["value"])
                          for e in content["examples"].values()]
    return found


REQUEST_EXAMPLES = _request_examples()


@pytest.mark.parametrize("where, name, example", REQUEST_EXAMPLES,
                         ids=[f"{w}-{i}" for i, (w, _, _) in enumerate(REQUEST_EXAMPLES)])
def test_every_request_example_of_the_document_passes_its_model(where, name, example):
    model = MODEL_BY_COMPONENT[name]
    payload = parse(json.dumps(example).encode(), model).payload()
    kind = {"OverlayRequest": "add-overlay", "ScheduleRequest": "schedule",
            "RescheduleRequest": "reschedule", "PublishRequest": "publish",
            "PublishMultiRequest": "publish-multi", "EmptyRequest": "retry",
            "ResolveRequest": "resolve-platform"}[name]
    if kind == "resolve-platform":
        payload["platform"] = "tiktok"  # from the path
    make_command(kind, "i", "c", payload).to_domain()


def test_every_post_has_request_examples_and_they_cover_each_body():
    assert {name for _, name, _ in REQUEST_EXAMPLES} == {
        "OverlayRequest", "ScheduleRequest", "RescheduleRequest", "PublishRequest",
        "PublishMultiRequest", "EmptyRequest", "ResolveRequest"}


def _response_examples() -> list[tuple[str, str, Any]]:
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                content = answer.get("content", {}).get("application/json", {})
                if "$ref" in content.get("schema", {}) and "example" in content:
                    found.append((f"{method} {path} {status}",
                                  content["schema"]["$ref"].rsplit("/", 1)[-1],
                                  content["example"]))
    for name, schema in DOCUMENT["components"]["schemas"].items():
        found += [(name, name, e) for e in schema.get("examples", [])
                  if name in MODEL_BY_COMPONENT and not name.endswith("Request")]
    return found


RESPONSE_EXAMPLES = _response_examples()


@pytest.mark.parametrize("where, name, example", RESPONSE_EXAMPLES,
                         ids=[f"{w}-{i}" for i, (w, _, _) in enumerate(RESPONSE_EXAMPLES)])
def test_every_answer_example_passes_its_model(where, name, example):
    MODEL_BY_COMPONENT[name].model_validate(example)


def test_an_answer_model_refuses_what_the_service_does_not_send():
    item = json.loads(json.dumps(schemas.ITEM_EXAMPLE))
    with pytest.raises(ValueError):
        schemas.ItemOut.model_validate({**item, "extra": 1})
    del item["platform_status"][0]["attempts"]
    with pytest.raises(ValueError):
        schemas.ItemOut.model_validate(item)


def _validator(component: str):
    root = {"$ref": f"#/components/schemas/{component}",
            "components": DOCUMENT["components"]}
    return jsonschema_rs.Draft202012Validator(root)


API = schemathesis.openapi.from_dict(DOCUMENT)
BODIES = [(f"{ITEM}/{route}", model) for route, model in [
    ("overlays", OverlayBody), ("schedule", ScheduleBody), ("reschedule", RescheduleBody),
    ("publish", PublishBody), ("publish-multi", PublishMultiBody), ("retry", EmptyBody),
    ("download", EmptyBody)]]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("path, model", BODIES, ids=[p.rsplit("/", 1)[-1] for p, _ in BODIES])
def test_a_body_the_document_calls_valid_is_accepted_and_any_other_is_a_400(path, model, mode):
    """The rule schemathesis holds the service to, checked on the bodies it generates: the
    document's verdict (by the validator schemathesis uses) is the model's verdict."""
    validator = _validator(COMPONENT_NAMES[model.__name__])
    verdicts = {True: 0, False: 0}

    @settings(max_examples=40 if mode is GenerationMode.POSITIVE else 100, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))
    @given(API[path]["POST"].as_strategy(generation_mode=mode))
    def check(case):
        has_body = isinstance(case.body, (dict, list, str, int, float, bool)) or case.body is None
        body = case.body if has_body else {}
        raw = json.dumps(body).encode() if has_body else b""
        valid = validator.is_valid(body)
        verdicts[valid] += 1
        if valid:
            parse(raw, model)
        else:
            with pytest.raises((InvalidRequest, UnsupportedPlatform)):
                parse(raw, model)

    check()
    if mode is GenerationMode.POSITIVE:
        assert verdicts[True] > 0
    elif model is not EmptyBody:
        assert verdicts[False] > 0


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(API[f"{ITEM}/schedule"]["POST"].as_strategy(generation_mode=GenerationMode.POSITIVE))
def test_a_valid_schedule_body_is_never_refused_as_malformed_by_the_domain(case):
    payload = parse(json.dumps(case.body).encode(), ScheduleBody).payload()
    command = make_command("schedule", "i", "c", payload).to_domain()
    check_platforms(command.platforms)
    caption_from_json(payload.get("caption"))
    try:
        parse_schedule_time(command.scheduled_at, command.timezone)
    except RuleViolation:
        pass


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(API[f"{ITEM}/overlays"]["POST"].as_strategy(generation_mode=GenerationMode.POSITIVE))
def test_a_valid_overlay_body_is_never_refused_by_the_domain(case):
    payload = parse(json.dumps(case.body).encode(), OverlayBody).payload()
    command = make_command("add-overlay", "i", "c", payload).to_domain()
    check_overlay(command.type, command.duration_seconds)


# ---------------------------------------------------------------------------------------------
# The answer models mirror what the read model returns.


def _items():
    from app.domain import commands as c
    from tests.unit.builders import (NOW, apply, claimed_item, failed_item, publishing_item,
                                     published_item)

    decorated = apply(claimed_item(), c.AddOverlay("outro", 1.5)).item
    decorated = apply(decorated, c.AddOverlay("intro", 2)).item
    caption = caption_from_json({"text": "t", "hashtags": ["#a"], "title": None, "variants": {
        "youtube": {"text": "y", "hashtags": [], "title": "Y"}}})
    scheduled = apply(decorated, c.Schedule(["youtube", "tiktok"], "2026-03-01T18:30:00",
                                            "Europe/Paris", caption)).item
    return {"claimed": claimed_item(), "scheduled": scheduled, "publishing": publishing_item(),
            "published": published_item(), "failed": failed_item()}, NOW


@pytest.mark.parametrize("status", ["claimed", "scheduled", "publishing", "published", "failed"])
def test_the_item_and_preview_the_read_model_returns_match_the_models_and_the_document(status):
    from app.db.items import StoredItem
    from app.db.read_model import item_json, preview_json

    items, now = _items()
    item = items[status]
    as_json = json.loads(json.dumps(item_json(StoredItem(item, now, now))))
    schemas.ItemOut.model_validate(as_json)
    assert set(as_json) == set(schemas.ItemOut.model_fields)
    assert _validator("Item").is_valid(as_json), list(_validator("Item").iter_errors(as_json))
    preview = json.loads(json.dumps(preview_json(item, "https://media.example/c.mp4", 12)))
    schemas.PreviewOut.model_validate(preview)
    assert _validator("Preview").is_valid(preview)
    if status == "scheduled":
        assert as_json["caption"]["variants"]["youtube"]["title"] == "Y"
        assert [o["type"] for o in preview["overlays"]] == ["intro", "outro"]
    if status == "published":
        assert all(p["post_id"] for p in as_json["platform_status"])
