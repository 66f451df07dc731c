"""The one error body, and the HTTP status of each error code."""

from __future__ import annotations

import logging
import math

from aiohttp import web
from faust.web import Request, Response, View
from faust.web.exceptions import WebError

from app.domain.errors import DomainError

log = logging.getLogger("distribution.web")

STATUS_BY_CODE = {
    "invalid_request": 400, "unsupported_platform": 400, "unauthorized": 401,
    "forbidden": 403, "not_found": 404, "method_not_allowed": 405,
    "invalid_state_transition": 409, "idempotency_key_in_use": 409, "quota_exceeded": 409,
    "already_redriven": 409,
    "payload_too_large": 413, "rule_violation": 422, "idempotency_key_mismatch": 422,
    "rate_limited": 429, "internal": 500, "unavailable": 503, "timeout": 504,
}
CODE_BY_STATUS = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                  400: "invalid_request", 401: "unauthorized", 403: "forbidden"}
RETRY_AFTER_SECONDS = 2
#: Refusals that asking again will not change (the item's status; a full posting window
#: for that time: `details.earliest` says when a post fits).
NO_RETRY_AFTER = {"invalid_state_transition", "quota_exceeded", "already_redriven"}
#: Headers of aiohttp's own refusals worth keeping (405 names the allowed methods).
KEPT_HEADERS = ("Allow",)


def error_response(code: str, message: str, details: dict | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    status = STATUS_BY_CODE.get(code, 400)
    headers = dict(headers or {})
    details = details or {}
    if status in (409, 429, 503, 504) and code not in NO_RETRY_AFTER:
        retry_after = details.get("retry_after_seconds", RETRY_AFTER_SECONDS)
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if code == "unauthorized":
        headers["WWW-Authenticate"] = 'Bearer realm="distribution"'
    body = {"error": {"code": code, "message": message, "details": details}}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as err:
        return error_response(err.code, err.message, err.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects
        code = CODE_BY_STATUS.get(exc.status, "invalid_request")
        kept = {h: exc.headers[h] for h in KEPT_HEADERS if h in exc.headers}
        return error_response(code, exc.reason or code, headers=kept)
    except Exception:
        log.exception("unexpected error", extra={"path": request.path,
                                                  "method": request.method})
        return error_response("internal", "an unexpected error occurred")


class ApiView(View):
    """A view whose framework-level refusals use the one error body too. Faust routes HEAD
    to every view and answers a view without `get` itself (a 405 in its own shape, without
    `Allow`); here that 405 names the methods the route does take."""

    async def on_request_error(self, request: Request, exc: WebError) -> Response:
        status = int(exc.code)
        if status != 405:
            return error_response(CODE_BY_STATUS.get(status, "invalid_request"), exc.detail)
        declared = self.get_methods() - {"HEAD"}
        allowed = declared | ({"HEAD"} if "GET" in declared else set())
        return error_response("method_not_allowed", f"{request.method} is not allowed here",
                              headers={"Allow": ", ".join(sorted(allowed))})
