"""An identity provider on loopback: a real HTTP server publishing its JWKS document, and
the keys to sign tokens as the provider would (RS256 and ES256, each with a `kid`)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.embedded import free_port

ISSUER = "https://idp.test/"
AUDIENCE = "distribution-service"


def public_pem(private_key) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class IdentityProvider:
    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.port = free_port()
        self.jwks_requests = 0
        self.runner: web.AppRunner | None = None

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key, alg in (("rsa-1", self.rsa, "RS256"), ("ec-1", self.ec, "ES256")):
            algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
            jwk = json.loads(algorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": keys}

    def token(self, sub: str, alg: str = "RS256", kid: str | None = "default",
              ttl: float = 300, **claims: Any) -> str:
        key = self.rsa if alg == "RS256" else self.ec
        if kid == "default":
            kid = "rsa-1" if alg == "RS256" else "ec-1"
        now = int(time.time())
        body = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + ttl,
                **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, key,
                          algorithm=alg, headers={"kid": kid} if kid else None)

    async def _serve_jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        return web.json_response(self.jwks())

    async def __aenter__(self) -> IdentityProvider:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._serve_jwks)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()
