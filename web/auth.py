"""Bearer token -> the influencer id of the caller."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt

from app.domain.errors import Unauthorized
from app.settings import Settings


def caller(authorization: str | None, settings: Settings) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required")
    keys = [(settings.jwt_secret, ["HS256"])]
    if settings.jwt_public_key:
        keys.append((settings.jwt_public_key, ["RS256", "ES256"]))
    last_error: Exception | None = None
    for key, algorithms in keys:
        try:
            claims = jwt.decode(token.strip(), key, algorithms=algorithms,
                                leeway=settings.jwt_leeway_seconds,
                                options={"require": ["sub", "exp"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            last_error = exc
            continue
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("the token names no subject")
        return sub
    raise Unauthorized(f"the token is not valid: {last_error}")


def issue_token(sub: str, secret: str, ttl: timedelta = timedelta(hours=24),
                now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return jwt.encode({"sub": sub, "iat": now, "exp": now + ttl}, secret, algorithm="HS256")
