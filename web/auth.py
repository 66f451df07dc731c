"""Bearer tokens -> the caller: an influencer, or an operator (any item, any action).

Tokens come from an identity provider (RS256/ES256, by a PEM public key or the provider's
JWKS document) and/or are signed with a shared HS256 secret. Only algorithms on the
allow-list that have a key are accepted; `iss` and `aud` are required and checked when
configured. Anything wrong with a token is a 401, never a 500, and the token itself is
never logged.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import cachetools
import jwt

from app.domain.errors import Forbidden, Unauthorized, Unavailable
from app.domain.model import Actor
from app.settings import Settings

#: A compact JWS is three base64url parts; anything else is refused before parsing.
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
MAX_TOKEN_BYTES = 8192
MAX_SUBJECT_CHARS = 200
ASYMMETRIC = ("RS256", "ES256")
JWKS_TIMEOUT_SECONDS = 5
#: Tokens verified lately, each kept until it expires: a client sends the same token with
#: every request, and verifying it again was ~6 % of a command's CPU in the worker.
VERIFIED_TOKENS = 10_000


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the token's subject, and whether it holds the operator scope."""

    subject: str
    operator: bool = False

    @property
    def actor(self) -> Actor:
        return Actor(self.subject, self.operator)


@dataclass(frozen=True)
class Verified:
    caller: Caller
    until: float  # when to verify it again, in seconds since the epoch


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Only tokens that verified: a refusal is checked again every time.
        self.verified: cachetools.TLRUCache[str, Verified] = cachetools.TLRUCache(
            VERIFIED_TOKENS, ttu=lambda _token, verified, _now: verified.until,
            timer=time.time)
        allowed = {a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()}
        self.hs_secret = (settings.jwt_secret.get_secret_value()
                          if settings.jwt_secret is not None and "HS256" in allowed else None)
        self.asymmetric = [a for a in ASYMMETRIC if a in allowed]
        self.public_key = settings.jwt_public_key if self.asymmetric else None
        self.jwks = (jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True,
                                     lifespan=settings.jwks_cache_seconds,
                                     timeout=JWKS_TIMEOUT_SECONDS)
                     if settings.jwt_jwks_url and self.asymmetric else None)
        self.algorithms = ((["HS256"] if self.hs_secret else [])
                           + (self.asymmetric if (self.public_key or self.jwks) else []))

    async def caller(self, authorization: str | None) -> Caller:
        token = _bearer_token(authorization)
        known = self.verified.get(token)
        if known is not None:
            return known.caller
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise Unauthorized("the token's algorithm is not accepted",
                               accepted=self.algorithms)
        key = await self._key(token, algorithm, header)
        s = self.settings
        required = ["sub", "exp"] + (["iss"] if s.jwt_issuer else []) + (
            ["aud"] if s.jwt_audience else [])
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm], leeway=s.jwt_leeway_seconds,
                                issuer=s.jwt_issuer, audience=s.jwt_audience,
                                options={"require": required,
                                         "verify_aud": s.jwt_audience is not None})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from None
        except (ValueError, TypeError):  # a key the algorithm cannot use
            raise Unauthorized("the token is not valid") from None
        caller = Caller(_subject(claims), s.operator_scope in _scopes(claims))
        # until it expires, and no longer than the provider's keys are cached: a key the
        # provider withdraws stops its tokens here when it would have stopped them anyway
        self.verified[token] = Verified(caller, min(float(claims["exp"]) + s.jwt_leeway_seconds,
                                                    time.time() + s.jwks_cache_seconds))
        return caller

    async def _key(self, token: str, algorithm: str, header: dict[str, Any]) -> Any:
        if algorithm == "HS256":
            return self.hs_secret
        if self.jwks is not None and (header.get("kid") or not self.public_key):
            try:  # PyJWKClient is blocking (urllib) and caches the key set
                return (await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)).key
            except jwt.PyJWKClientConnectionError:
                raise Unavailable("the identity provider's keys cannot be fetched") from None
            except jwt.PyJWTError:
                raise Unauthorized("the token's signing key is unknown") from None
        return self.public_key


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a bearer token is required")
    if len(token) > MAX_TOKEN_BYTES or not TOKEN_SHAPE.match(token):
        raise Unauthorized("the token is not a JWT")
    return token


def _subject(claims: dict[str, Any]) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > MAX_SUBJECT_CHARS:
        raise Unauthorized("the token names no valid subject")
    return sub


def _scopes(claims: dict[str, Any]) -> set[str]:
    """The `scope` claim: space-separated (RFC 8693), or a list as some providers send it."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return set(scope.split())
    if isinstance(scope, list):
        return {s for s in scope if isinstance(s, str)}
    return set()


def require_operator(caller: Caller) -> Caller:
    if not caller.operator:
        raise Forbidden("this needs the operator scope")
    return caller


def issue_token(sub: str, secret: str, ttl: timedelta = timedelta(hours=24),
                now: datetime | None = None, scope: str | None = None,
                issuer: str | None = None, audience: str | None = None) -> str:
    """An HS256 token, for development and tests (production tokens come from the IdP)."""
    now = now or datetime.now(timezone.utc)
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl}
    for name, value in (("scope", scope), ("iss", issuer), ("aud", audience)):
        if value is not None:
            claims[name] = value
    return jwt.encode(claims, secret, algorithm="HS256")
