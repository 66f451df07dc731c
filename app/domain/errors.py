"""One error family; each subclass is one error code of the HTTP contract."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """The request cannot be carried out."""

    code = "invalid_request"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DomainError:
        """Rebuild an error carried in a reply."""
        error_class = ERRORS_BY_CODE.get(data.get("code", ""), DomainError)
        return error_class(data.get("message"), **(data.get("details") or {}))


class InvalidRequest(DomainError):
    """The request is not valid."""

    code = "invalid_request"


class UnsupportedPlatform(DomainError):
    """The platform is not supported."""

    code = "unsupported_platform"


class Unauthorized(DomainError):
    """A valid bearer token is required."""

    code = "unauthorized"


class Forbidden(DomainError):
    """Only the influencer who owns the item may do this."""

    code = "forbidden"


class NotFound(DomainError):
    """No such item."""

    code = "not_found"


class InvalidStateTransition(DomainError):
    """The item's status does not allow this."""

    code = "invalid_state_transition"


class QuotaExceeded(DomainError):
    """The post does not fit the platform's posting limit for the account; `details.earliest`
    is the earliest time it would."""

    code = "quota_exceeded"


class RuleViolation(DomainError):
    """The request is well formed, but a rule of the item's lifecycle refuses it (schedule
    window, DST gap or fold, caption limits, claim window)."""

    code = "rule_violation"


class AlreadyRedriven(DomainError):
    """The dead-lettered record was sent back to its topic before."""

    code = "already_redriven"


class IdempotencyKeyMismatch(DomainError):
    """This Idempotency-Key was used before with another request body."""

    code = "idempotency_key_mismatch"


class IdempotencyKeyInUse(DomainError):
    """A request with this Idempotency-Key is still being processed; try again shortly."""

    code = "idempotency_key_in_use"


class RateLimited(DomainError):
    """Too many requests from this caller; try again after Retry-After seconds."""

    code = "rate_limited"


class Unavailable(DomainError):
    """A backing service (database or broker) cannot be reached; try again shortly."""

    code = "unavailable"


class Timeout(DomainError):
    """The command was sent but no answer came in time; it may still be applied."""

    code = "timeout"


ERRORS_BY_CODE: dict[str, type[DomainError]] = {
    c.code: c
    for c in (InvalidRequest, UnsupportedPlatform, Unauthorized, Forbidden, NotFound,
              InvalidStateTransition, QuotaExceeded, RuleViolation, IdempotencyKeyMismatch,
              IdempotencyKeyInUse, RateLimited, Unavailable, Timeout)
}
