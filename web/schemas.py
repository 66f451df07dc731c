"""Request bodies. More optional fields are fine; a bad field is a 400 that names it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError

from app.domain.errors import InvalidRequest
from app.domain.rules import check_platform

class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class CaptionTextBody(Body):
    text: str = Field("", max_length=10_000)
    hashtags: list[str] = Field(default_factory=list, max_length=200)
    title: str | None = Field(None, max_length=1_000)


class CaptionBody(CaptionTextBody):
    variants: dict[str, CaptionTextBody] = Field(default_factory=dict)

    def checked(self) -> CaptionBody:
        for platform in self.variants:
            check_platform(platform, "caption.variants")
        return self


class OverlayBody(Body):
    type: str
    duration_seconds: FiniteFloat


class ScheduleBody(Body):
    platforms: list[str] = Field(min_length=1, max_length=10)
    scheduled_at: str = Field(min_length=1, max_length=100)
    timezone: str | None = Field(None, min_length=1, max_length=100)
    caption: CaptionBody | None = None


class RescheduleBody(Body):
    scheduled_at: str = Field(min_length=1, max_length=100)
    timezone: str | None = Field(None, min_length=1, max_length=100)


class PublishBody(Body):
    platform: str = Field(min_length=1, max_length=50)
    caption: CaptionBody | None = None

    def payload(self) -> dict[str, Any]:
        data = super().payload()
        data["platforms"] = [data.pop("platform")]
        return data


class PublishMultiBody(Body):
    platforms: list[str] = Field(min_length=1, max_length=10)
    caption: CaptionBody | None = None


class EmptyBody(Body):
    pass


def parse(raw: bytes, schema: type[Body]) -> Body:
    """The body as the schema, or an InvalidRequest naming each bad field."""
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except RecursionError:
            raise InvalidRequest("the body is nested too deeply", field="body") from None
        except ValueError:  # not JSON, not UTF-8, or a number too long to convert
            raise InvalidRequest("the body is not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    try:
        body = schema.model_validate(data)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                  for e in exc.errors()]
        raise InvalidRequest(f"{errors[0]['field']}: {errors[0]['message']}",
                             field=errors[0]["field"], errors=errors) from None
    bad = _unstorable(body.model_dump())
    if bad is not None:
        field = ".".join(map(str, bad)) or "body"
        raise InvalidRequest(f"{field}: text must not contain NUL characters", field=field)
    caption = getattr(body, "caption", None)
    if caption is not None:
        caption.checked()
    return body


def _unstorable(value: Any, path: tuple = ()) -> tuple | None:
    """The path of the first string with a NUL character, which PostgreSQL cannot store as
    text, or None: such a body is the client's error (400), not a command the service then
    fails to apply (503). Pydantic already refuses unpaired surrogates."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unstorable(key, (*path, key)) if isinstance(key, str) else None
            found = found if found is not None else _unstorable(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _unstorable(item, (*path, index))
            if found is not None:
                return found
    return None
