"""Bearer tokens against real keys and a real JWKS endpoint on loopback: what is accepted,
and that everything else is a 401 (never an exception that would become a 500)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import jwt
import pytest
from pydantic import SecretStr

from app.domain.errors import Unauthorized, Unavailable
from app.embedded import free_port
from app.settings import Settings
from tests.fakes.identity_provider import AUDIENCE, ISSUER, IdentityProvider, public_pem
from web.auth import Caller, TokenVerifier, issue_token

SECRET = "a-shared-secret-of-more-than-32-bytes-for-hs256"


@pytest.fixture
async def idp():
    async with IdentityProvider() as provider:
        yield provider


def verifier(**values) -> TokenVerifier:
    base = {"jwt_secret": SecretStr(SECRET), "jwt_leeway_seconds": 10.0}
    return TokenVerifier(Settings.model_construct(**{**Settings().model_dump(), **base,
                                                     **values}))


def hs256(sub: str = "influencer-1", **claims) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 60, **claims}, SECRET,
                      algorithm="HS256")


async def refused(v: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthorized) as err:
        await v.caller(f"Bearer {token}")
    return err.value.message


async def test_an_hs256_token_names_its_subject():
    assert await verifier().caller(f"Bearer {hs256('influencer-7')}") == Caller("influencer-7")


async def test_the_operator_scope_is_read_from_a_space_separated_scope_claim():
    v = verifier()
    assert (await v.caller(f"Bearer {hs256(scope='read distribution:operate')}")).operator
    assert not (await v.caller(f"Bearer {hs256(scope='distribution:operated read')}")).operator
    assert (await v.caller(f"Bearer {hs256(scope=['distribution:operate'])}")).operator
    custom = verifier(operator_scope="ops:all")
    assert (await custom.caller(f"Bearer {hs256(scope='ops:all')}")).operator
    assert not (await custom.caller(f"Bearer {hs256(scope='distribution:operate')}")).operator


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz",
                                    "Bearer not-a-jwt", "Bearer a.b", "Bearer " + "a" * 9000,
                                    "Bearer ey.ey.ey.ey", "Bearer \x00.\x00.\x00"])
async def test_a_missing_or_malformed_header_is_a_401(header):
    with pytest.raises(Unauthorized):
        await verifier().caller(header)


async def test_forged_expired_and_subjectless_tokens_are_401s():
    v = verifier()
    assert "expired" in await refused(v, hs256(exp=int(time.time()) - 60))
    await refused(v, jwt.encode({"sub": "x", "exp": int(time.time()) + 60},
                                "another-secret-of-more-than-32-bytes-long", algorithm="HS256"))
    await refused(v, jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"))
    await refused(v, jwt.encode({"sub": "x"}, SECRET, algorithm="HS256"))  # no exp
    await refused(v, hs256(sub=""))
    await refused(v, hs256(sub="x" * 201))
    await refused(v, jwt.encode({"sub": 42, "exp": int(time.time()) + 60}, SECRET,
                                algorithm="HS256"))


async def test_a_token_a_few_seconds_past_expiry_is_within_the_leeway():
    v = verifier()
    assert await v.caller(f"Bearer {hs256(exp=int(time.time()) - 5)}") == Caller("influencer-1")
    await refused(v, hs256(exp=int(time.time()) - 30))


async def test_a_verified_token_is_remembered_until_it_expires_then_refused():
    v = verifier(jwt_leeway_seconds=0.0)
    token = hs256("influencer-3", exp=int(time.time()) + 1)
    assert await v.caller(f"Bearer {token}") == Caller("influencer-3")
    assert token in v.verified  # the next request with it skips the signature check
    assert await v.caller(f"Bearer {token}") == Caller("influencer-3")
    deadline = time.monotonic() + 10
    while token in v.verified and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "expired" in await refused(v, token)
    # a token that differs by one character is verified on its own, never taken from memory
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    await refused(v, tampered)
    assert tampered not in v.verified


async def test_a_verified_token_is_verified_again_once_the_providers_keys_would_be_fetched():
    v = verifier(jwks_cache_seconds=60)
    token = hs256(exp=int(time.time()) + 3600)
    await v.caller(f"Bearer {token}")
    assert v.verified[token].until <= time.time() + 60


async def test_the_none_algorithm_and_algorithms_off_the_allow_list_are_refused():
    v = verifier(jwt_algorithms="RS256")
    assert "algorithm" in await refused(v, hs256())
    unsigned = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, None, algorithm="none")
    assert "algorithm" in await refused(verifier(), unsigned)


async def test_an_hs256_token_signed_with_the_public_key_is_refused(idp):
    """The classic algorithm confusion: the public key used as an HMAC secret."""
    pem = public_pem(idp.rsa)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = base64.urlsafe_b64encode(json.dumps({"sub": "attacker",
                                                "exp": int(time.time()) + 60}).encode())
    import hashlib
    import hmac
    signing_input = header.rstrip(b"=") + b"." + body.rstrip(b"=")
    signature = base64.urlsafe_b64encode(
        hmac.new(pem.encode(), signing_input, hashlib.sha256).digest()).rstrip(b"=")
    forged = (signing_input + b"." + signature).decode()
    await refused(verifier(jwt_secret=None, jwt_public_key=pem), forged)
    await refused(verifier(jwt_public_key=pem), forged)


async def test_rs256_and_es256_tokens_verify_with_a_pem_public_key(idp):
    rs = verifier(jwt_secret=None, jwt_public_key=public_pem(idp.rsa))
    assert (await rs.caller(f"Bearer {idp.token('inf-rs')}")).subject == "inf-rs"
    es = verifier(jwt_secret=None, jwt_public_key=public_pem(idp.ec))
    assert (await es.caller(f"Bearer {idp.token('inf-es', alg='ES256')}")).subject == "inf-es"
    await refused(rs, idp.token("inf-es", alg="ES256"))  # signed by another key


async def test_tokens_verify_by_the_providers_jwks_which_is_fetched_once_and_cached(idp):
    v = verifier(jwt_secret=None, jwt_jwks_url=idp.jwks_url, jwt_issuer=ISSUER,
                 jwt_audience=AUDIENCE)
    for n in range(5):
        assert (await v.caller(f"Bearer {idp.token(f'inf-{n}')}")).subject == f"inf-{n}"
        assert (await v.caller(f"Bearer {idp.token(f'inf-{n}', alg='ES256')}")).subject
    assert idp.jwks_requests == 1
    assert "signing key" in await refused(v, idp.token("x", kid="unknown-kid"))


async def test_issuer_and_audience_are_required_and_checked_when_configured(idp):
    v = verifier(jwt_secret=None, jwt_jwks_url=idp.jwks_url, jwt_issuer=ISSUER,
                 jwt_audience=AUDIENCE)
    await refused(v, idp.token("x", iss="https://evil.test/"))
    await refused(v, idp.token("x", aud="another-service"))
    await refused(v, idp.token("x", iss=None))
    await refused(v, idp.token("x", aud=None))
    lax = verifier(jwt_secret=None, jwt_jwks_url=idp.jwks_url)
    assert (await lax.caller(f"Bearer {idp.token('x', aud='another-service')}")).subject == "x"


async def test_an_unreachable_jwks_endpoint_is_a_503_not_a_500():
    v = verifier(jwt_secret=None, jwt_jwks_url=f"http://127.0.0.1:{free_port()}/jwks")
    token = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "k" * 32, algorithm="HS256",
                       headers={"kid": "k1"})
    with pytest.raises(Unauthorized):  # HS256 is not accepted without a shared secret
        await v.caller(f"Bearer {token}")
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, key, algorithm="RS256",
                    headers={"kid": "k1"})
    with pytest.raises(Unavailable):
        await v.caller(f"Bearer {rs}")


def test_development_tokens_carry_the_claims_asked_for():
    token = issue_token("inf", SECRET, scope="distribution:operate", issuer=ISSUER,
                        audience=AUDIENCE)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["scope"] == "distribution:operate" and claims["iss"] == ISSUER
