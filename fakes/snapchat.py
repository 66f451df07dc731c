"""Snapchat's Public Profile API (PLATFORMS.md §4) as a real HTTP server on loopback.

    media = FakeMediaServer(size_bytes=300_000); media.start_in_thread()
    snap = FakeSnapchat(media=media, processing_seconds=0.1); snap.start_in_thread()
    snap.faults.script("spotlights", RATE_LIMITED, HANG_AFTER)
    # the next spotlight call answers 429 with Retry-After; the one after creates the
    # spotlight, then says nothing (a hang after the point of no return)
    ...
    [post] = snap.posts            # text: the description as posted
    snap.media[media_id].digest    # SHA-256 of what Snap decrypted

What it does, as Snap does:
- `POST /v1/public_profiles/{profile_id}/media` {type, name, key, iv} makes media, usable
  for `media_ttl_seconds` (24 h), and answers its `add_path` and `finalize_path`.
- `POST {add_path}` (multipart: action=ADD, part_number 1..35, file) stores a part;
  `POST {finalize_path}` (action=FINALIZE) joins the parts, DECRYPTS them with the media's
  AES-256-CBC key and IV and, when built with the media server, compares the plaintext's
  SHA-256 with `media_digest` of the clip named by the media's `name`: a mismatch fails
  the media (MEDIA_UPLOAD_INVALID: not a documented code, our stand-in's).
- The media is then processed for `processing_seconds`: a spotlight of it meanwhile
  answers MEDIA_PROCESSING.
- `POST /v1/public_profiles/{profile_id}/spotlights` {media_id, description, locale}
  creates the post and answers its `spotlight_id`. A second spotlight of the same media
  answers MEDIA_POSTING_ALREADY_IN_PROGRESS; expired media answers MEDIA_EXPIRED. There is
  no idempotency key and no listing of one's spotlights.
- `GET /v1/spotlights/{spotlight_id}`: SUBMITTED, then LIVE after `processing_seconds` of
  review.
- Every refusal has Snap's shape {request_status: "ERROR", request_id, error_code,
  debug_message, display_message}; a call without a bearer token answers 401.

Faults, scripted per step ("media", "add", "finalize", "spotlights", "spotlight_status"):
one of FAULTS' names (one per class of PLATFORMS.md §4(d)), HANG, or HANG_AFTER.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .media import FakeMediaServer, media_digest
from .platform_kit import HANG, HANG_AFTER, FakePlatform

MEDIA_ROUTE = "/v1/public_profiles/{profile_id}/media"
UPLOAD_ROUTE = "/v1/public_profiles/{profile_id}/media/{media_id}/multipart-upload-v2"
SPOTLIGHTS_ROUTE = "/v1/public_profiles/{profile_id}/spotlights"
SPOTLIGHT_ROUTE = "/v1/spotlights/{spotlight_id}"

MEDIA_TTL_SECONDS = 24 * 3600.0
MAX_PARTS = 35
MAX_MEDIA_BYTES = 1024 ** 3
DESCRIPTION_CHARS = 160

# Fault names: Snap's own codes where it has one, ours for the HTTP-level answers.
UNAUTHORIZED = "unauthorized"  # 401
PERMISSION_DENIED = "AUTHORIZATION_PERMISSION_DENIED"  # 403: the app is not allowlisted
RATE_LIMITED = "rate_limited"  # 429 with Retry-After
SERVER_ERROR = "server_error"  # 500 in Snap's error shape
BAD_GATEWAY = "bad_gateway"  # 502 from a proxy in front of Snap: an HTML page
MEDIA_PROCESSING = "MEDIA_PROCESSING"
MEDIA_EXPIRED = "MEDIA_EXPIRED"
MEDIA_POSTING_ALREADY_IN_PROGRESS = "MEDIA_POSTING_ALREADY_IN_PROGRESS"
MEDIA_UPLOAD_INVALID = "MEDIA_UPLOAD_INVALID"  # ours: Snap's code for it is not documented

#: fault -> (HTTP status, error_code, message)
FAULTS: dict[str, tuple[int, str, str]] = {
    UNAUTHORIZED: (401, "UNAUTHORIZED", "The access token is invalid or expired"),
    PERMISSION_DENIED: (403, PERMISSION_DENIED, "The app may not use the Public Profile API"),
    RATE_LIMITED: (429, "RATE_LIMIT_EXCEEDED", "Too many requests"),
    SERVER_ERROR: (500, "INTERNAL_SERVER_ERROR", "Something went wrong"),
    MEDIA_PROCESSING: (400, MEDIA_PROCESSING, "The media is still being processed"),
    MEDIA_EXPIRED: (400, MEDIA_EXPIRED, "The media has expired"),
    MEDIA_POSTING_ALREADY_IN_PROGRESS: (400, MEDIA_POSTING_ALREADY_IN_PROGRESS,
                                        "This media is already being posted"),
}


@dataclass
class FakeMedia:
    media_id: str
    profile_id: str
    name: str
    key: bytes
    iv: bytes
    created_at: float
    parts: dict[int, bytes] = field(default_factory=dict)
    ready_at: float | None = None  # set by FINALIZE: processing ends then
    part_sizes: list[int] = field(default_factory=list)  # as finalized, in order
    digest: str | None = None  # SHA-256 of the decrypted upload
    spotlight_id: str | None = None


@dataclass
class FakeSpotlight:
    spotlight_id: str
    media_id: str
    description: str
    created_at: float


class SnapRefusal(Exception):
    """Ends a handler with Snap's error answer."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_answer(status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"request_status": "ERROR", "request_id": uuid.uuid4().hex,
                              "error_code": code, "debug_message": message,
                              "display_message": message}, status=status, headers=headers)


def success(**fields: Any) -> web.Response:
    return web.json_response({"request_status": "SUCCESS", "request_id": uuid.uuid4().hex,
                              **fields})


class FakeSnapchat(FakePlatform):
    id_prefix = "spotlight"

    def __init__(self, host: str = "127.0.0.1", processing_seconds: float = 0.2, *,
                 media: FakeMediaServer | None = None,
                 media_ttl_seconds: float = MEDIA_TTL_SECONDS, retry_after_seconds: int = 1,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(host, processing_seconds)
        self.media_server = media  # what uploads are checked against (skipped when None)
        self.media_ttl_seconds = media_ttl_seconds
        self.retry_after_seconds = retry_after_seconds
        self.clock = clock
        self.media: dict[str, FakeMedia] = {}
        self.spotlights: dict[str, FakeSpotlight] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(MEDIA_ROUTE, self._create_media)
        app.router.add_post(UPLOAD_ROUTE, self._upload)
        app.router.add_post(SPOTLIGHTS_ROUTE, self._create_spotlight)
        app.router.add_get(SPOTLIGHT_ROUTE, self._spotlight_status)

    # --- routes ---------------------------------------------------------------------

    async def _create_media(self, request: web.Request) -> web.StreamResponse:
        async def create() -> web.Response:
            body = await _json_body(request)
            profile_id = request.match_info["profile_id"]
            if body.get("type") not in ("VIDEO", "IMAGE"):
                raise SnapRefusal(400, "INVALID_MEDIA_TYPE", "type must be VIDEO or IMAGE")
            key, iv = _b64(body, "key", 32), _b64(body, "iv", 16)
            media_id = str(uuid.uuid4())
            self.media[media_id] = FakeMedia(media_id, profile_id, str(body.get("name", "")),
                                             key, iv, self.clock())
            upload = UPLOAD_ROUTE.format(profile_id=profile_id, media_id=media_id)
            return success(media_id=media_id, add_path=f"{upload}?action=ADD",
                           finalize_path=f"{upload}?action=FINALIZE")
        return await self._answer(request, "media", create)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        action = str(form.get("action") or request.query.get("action", "")).upper()
        step = {"ADD": "add", "FINALIZE": "finalize"}.get(action, "upload")

        async def upload() -> web.Response:
            media = self._usable_media(request.match_info["media_id"],
                                       request.match_info["profile_id"])
            if media.ready_at is not None:
                raise SnapRefusal(400, "MEDIA_ALREADY_FINALIZED", "The media is finalized")
            if action == "ADD":
                return self._add_part(media, form)
            if action == "FINALIZE":
                return self._finalize(media)
            raise SnapRefusal(400, "INVALID_ACTION", f"unknown action {action!r}")
        return await self._answer(request, step, upload)

    async def _create_spotlight(self, request: web.Request) -> web.StreamResponse:
        async def create() -> web.Response:
            body = await _json_body(request)
            profile_id = request.match_info["profile_id"]
            media = self._usable_media(str(body.get("media_id", "")), profile_id)
            if media.spotlight_id is not None:
                raise SnapRefusal(400, *FAULTS[MEDIA_POSTING_ALREADY_IN_PROGRESS][1:])
            if media.ready_at is None or media.digest is None:
                raise SnapRefusal(400, "MEDIA_NOT_FINALIZED", "The media is not finalized")
            if self.clock() < media.ready_at:
                raise SnapRefusal(400, *FAULTS[MEDIA_PROCESSING][1:])
            description = str(body.get("description", ""))
            if len(description) > DESCRIPTION_CHARS:
                raise SnapRefusal(400, "INVALID_DESCRIPTION",
                                  f"description is longer than {DESCRIPTION_CHARS}")
            post = self.add_post(profile_id, description, None, media_id=media.media_id,
                                 name=media.name, locale=body.get("locale"))
            media.spotlight_id = post.post_id
            self.spotlights[post.post_id] = FakeSpotlight(post.post_id, media.media_id,
                                                          description, self.clock())
            return success(spotlight_id=post.post_id)
        return await self._answer(request, "spotlights", create)

    async def _spotlight_status(self, request: web.Request) -> web.StreamResponse:
        async def status() -> web.Response:
            spotlight = self.spotlights.get(request.match_info["spotlight_id"])
            if spotlight is None:
                raise SnapRefusal(404, "SPOTLIGHT_NOT_FOUND", "No such spotlight")
            reviewed = self.clock() >= spotlight.created_at + self.processing_seconds
            return success(spotlights=[{"sub_request_status": "SUCCESS", "spotlight": {
                "id": spotlight.spotlight_id, "media_id": spotlight.media_id,
                "description": spotlight.description,
                "status": "LIVE" if reviewed else "SUBMITTED"}}])
        return await self._answer(request, "spotlight_status", status)

    # --- what the routes share ---------------------------------------------------------

    async def _answer(self, request: web.Request, step: str,
                      act: Callable[[], Any]) -> web.StreamResponse:
        """Note the call, check the token, play a scripted fault, else act."""
        self.note_call(request, step)
        fault = self.faults.take(step)
        if fault == HANG:
            return await self.hang_now()
        try:
            if not _bearer(request):
                raise SnapRefusal(*FAULTS[UNAUTHORIZED])
            if fault == BAD_GATEWAY:
                return web.Response(status=502, content_type="text/html",
                                    text="<html><body>502 Bad Gateway</body></html>")
            if fault is not None and fault != HANG_AFTER:
                if fault not in FAULTS:
                    raise ValueError(f"FakeSnapchat knows no fault {fault!r}")
                headers = ({"Retry-After": str(self.retry_after_seconds)}
                           if fault == RATE_LIMITED else None)
                raise SnapRefusal(*FAULTS[fault], headers=headers)
            answer = await act()
        except SnapRefusal as refusal:
            return error_answer(refusal.status, refusal.code, refusal.message, refusal.headers)
        if fault == HANG_AFTER:
            return await self.hang_now()
        return answer

    def _usable_media(self, media_id: str, profile_id: str) -> FakeMedia:
        media = self.media.get(media_id)
        if media is None or media.profile_id != profile_id:
            raise SnapRefusal(404, "MEDIA_NOT_FOUND", f"No media {media_id!r} on this profile")
        if self.clock() >= media.created_at + self.media_ttl_seconds:
            raise SnapRefusal(400, *FAULTS[MEDIA_EXPIRED][1:])
        return media

    def _add_part(self, media: FakeMedia, form: Any) -> web.Response:
        try:
            part_number = int(form.get("part_number", ""))
        except ValueError:
            part_number = 0
        if not 1 <= part_number <= MAX_PARTS:
            raise SnapRefusal(400, "INVALID_PART_NUMBER",
                              f"part_number must be 1..{MAX_PARTS}")
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise SnapRefusal(400, "MISSING_FILE", "file is required")
        data = upload.file.read()
        if sum(map(len, media.parts.values())) + len(data) > MAX_MEDIA_BYTES:
            raise SnapRefusal(400, "MEDIA_TOO_LARGE", "The media exceeds 1 GB")
        media.parts[part_number] = data
        return success(media_id=media.media_id, part_number=part_number)

    def _finalize(self, media: FakeMedia) -> web.Response:
        numbers = sorted(media.parts)
        if numbers != list(range(1, len(numbers) + 1)) or not numbers:
            raise SnapRefusal(400, "MISSING_PARTS", f"parts received: {numbers}")
        media.part_sizes = [len(media.parts[n]) for n in numbers]
        plaintext = _decrypt(media, b"".join(media.parts[n] for n in numbers))
        media.parts.clear()
        digest = hashlib.sha256(plaintext).hexdigest() if plaintext is not None else None
        expected = (media_digest(media.name, self.media_server.size_bytes)
                    if self.media_server is not None else digest)
        if digest is None or digest != expected:
            raise SnapRefusal(400, MEDIA_UPLOAD_INVALID,
                              "The media could not be decrypted into the expected file")
        media.digest = digest
        media.ready_at = self.clock() + self.processing_seconds
        return success(media_id=media.media_id)


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SnapRefusal(400, "INVALID_REQUEST", "The body must be a JSON object")
    return body


def _b64(body: dict[str, Any], name: str, size: int) -> bytes:
    try:
        value = base64.b64decode(str(body.get(name, "")), validate=True)
    except (binascii.Error, ValueError):
        value = b""
    if len(value) != size:
        raise SnapRefusal(400, "INVALID_ENCRYPTION", f"{name} must be {size} bytes, base64")
    return value


def _decrypt(media: FakeMedia, ciphertext: bytes) -> bytes | None:
    """The plaintext of an AES-256-CBC, PKCS7-padded upload; None when it is not one."""
    if not ciphertext or len(ciphertext) % 16:
        return None
    decryptor = Cipher(algorithms.AES(media.key), modes.CBC(media.iv)).decryptor()
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    try:
        return unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) \
            + unpadder.finalize()
    except ValueError:
        return None
