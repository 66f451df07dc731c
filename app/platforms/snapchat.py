"""Snapchat Spotlight through the Public Profile API (PLATFORMS.md §4), direct mode.

1. `POST /v1/public_profiles/{profile}/media` {type, name, key, iv}: Snap gives a media id
   and the paths to upload it to. Nothing visible yet.
2. The clip is streamed from M06, encrypted with AES-256-CBC on the way (Snap decrypts it
   with the key and IV given in step 1) and sent in parts of PART_BYTES (`ADD`), then
   `FINALIZE`d. Snap processes the media for a while: posting it too early answers
   MEDIA_PROCESSING, so the lease that finalizes ends "in progress".
3. `POST /v1/public_profiles/{profile}/spotlights` {media_id, description}: the point of no
   return. It answers the spotlight id.

Snap has no idempotency key and no endpoint listing one's own spotlights, so a spotlight
call whose answer was lost (a crash, a timeout, an ambiguous gateway error) can never be
checked: the next lease reports the outcome as unknown and never posts again. Media that
was created but not finalized is simply abandoned (it expires after 24 h): a new lease
makes new media, so the AES key never needs to be stored.

Ledger steps and the handles each records:
    media_created  profile_id, media_id, add_path, finalize_path, media_created_at
    finalized      parts, finalized_at
    posting        posting_sent_at (recorded BEFORE the spotlight call)
    posted         spotlight_id
    not_posted     refused_with: Snap's definite refusal of the spotlight call
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.domain.model import ErrorClass
from app.domain.rules import rendered_caption

from .direct import DirectAttempt, FlowStopped, Reply
from .gateway import PublishOutcome, failure, in_progress, published, unknown

PLATFORM = "snapchat"
#: The `snapchat` base URL setting's default; tests point the PlatformApi at the fake.
DEFAULT_BASE_URL = "https://businessapi.snapchat.com"
POST_URL = "https://www.snapchat.com/spotlight/{spotlight_id}"

# Ledger steps ("started" is the ledger's own, before anything).
MEDIA_CREATED = "media_created"
FINALIZED = "finalized"
POSTING = "posting"
POSTED = "posted"
NOT_POSTED = "not_posted"

#: Encrypted bytes per uploaded part: Snap wants files over 32 MB split into 32 MB parts.
PART_BYTES = 32 * 1024 * 1024
MAX_PARTS = 35
MAX_MEDIA_BYTES = 1024 ** 3  # 1 GB in all
DESCRIPTION_CHARS = 160  # hashtags included
LOCALE = "en_US"
#: How much of the clip is read from M06 at a time (what is held besides one part).
READ_BYTES = 256 * 1024

# Snap's error codes that the flow acts on.
MEDIA_PROCESSING = "MEDIA_PROCESSING"
MEDIA_EXPIRED = "MEDIA_EXPIRED"
MEDIA_POSTING_ALREADY_IN_PROGRESS = "MEDIA_POSTING_ALREADY_IN_PROGRESS"
AUTHORIZATION_PERMISSION_DENIED = "AUTHORIZATION_PERMISSION_DENIED"
# Our own reason codes.
OUTCOME_UNKNOWN = "spotlight_outcome_unknown"


# --- what Snap's answers mean (pure) ----------------------------------------------------

@dataclass(frozen=True)
class SnapError:
    """A refusal: Snap's `error_code` (or `http_<status>` when the body names none)."""

    status: int
    code: str
    message: str
    retry_after: float | None
    #: Snap itself answered ({request_status: "ERROR"}), or a 4xx refused the call at the
    #: edge: either way nothing was done. A 5xx without Snap's shape (a proxy's 502/504)
    #: may hide a request that went through.
    definite: bool


#: Codes whose class does not follow from the HTTP status.
CODE_CLASSES: Mapping[str, ErrorClass] = {
    MEDIA_EXPIRED: ErrorClass.PERMANENT,  # the media is gone; a new attempt makes new media
    AUTHORIZATION_PERMISSION_DENIED: ErrorClass.AUTH,  # the app is not allowlisted (yet)
}
STATUS_CLASSES: Mapping[int, ErrorClass] = {
    401: ErrorClass.AUTH,
    408: ErrorClass.TRANSIENT,
    429: ErrorClass.TRANSIENT,
}


def succeeded(reply: Reply) -> bool:
    """A 2xx whose body does not say ERROR (success carries request_status SUCCESS)."""
    body = reply.body
    return (200 <= reply.status < 300 and isinstance(body, dict)
            and str(body.get("request_status", "")).upper() != "ERROR")


def read_error(reply: Reply) -> SnapError:
    body = reply.body if isinstance(reply.body, dict) else {}
    shaped = str(body.get("request_status", "")).upper() == "ERROR"
    code = str(body.get("error_code") or f"http_{reply.status}")
    message = (body.get("debug_message") or body.get("display_message")
               or reply.raw.decode("utf-8", errors="replace").strip() or "no message")
    return SnapError(reply.status, code, f"HTTP {reply.status} {code}: {message}",
                     reply.retry_after, definite=shaped or reply.status < 500)


def error_class(error: SnapError) -> ErrorClass:
    if error.code in CODE_CLASSES:
        return CODE_CLASSES[error.code]
    if error.status in STATUS_CLASSES:
        return STATUS_CLASSES[error.status]
    return ErrorClass.TRANSIENT if error.status >= 500 else ErrorClass.PERMANENT


def failure_of(error: SnapError) -> PublishOutcome:
    error_kind = error_class(error)
    retry_after = error.retry_after if error_kind is ErrorClass.TRANSIENT else None
    return failure(error_kind, error.code, error.message, retry_after=retry_after)


def spotlight_description(caption: Mapping[str, Any]) -> str:
    """The caption as posted; a Spotlight description holds 160 characters, tags included."""
    description = rendered_caption(caption.get("text", ""), tuple(caption.get("hashtags", ())))
    if len(description) > DESCRIPTION_CHARS:
        raise FlowStopped(failure(ErrorClass.PERMANENT, "description_too_long",
                                  f"the description has {len(description)} characters; "
                                  f"Spotlight takes {DESCRIPTION_CHARS}"))
    return description


def post_url(spotlight_id: str) -> str:
    return POST_URL.format(spotlight_id=spotlight_id)


# --- the flow ---------------------------------------------------------------------------

async def publish(attempt: DirectAttempt, *, part_bytes: int | None = None) -> PublishOutcome:
    """Reconcile from what earlier leases recorded, then advance as far as this lease can.
    `part_bytes` overrides PART_BYTES (tests upload in several small parts)."""
    step, handles = attempt.entry.step, attempt.entry.handles
    if step == POSTED:
        return published(handles["spotlight_id"], post_url(handles["spotlight_id"]))
    if step == POSTING:
        # The spotlight call went out and its answer was never recorded. Snap cannot be
        # asked whether it posted: posting again could post twice.
        return unknown(OUTCOME_UNKNOWN,
                       f"a spotlight of media {handles.get('media_id')} was requested at "
                       f"{handles.get('posting_sent_at')} and its answer was lost; Snap "
                       "lists no spotlights to check: settle by hand")
    if step == FINALIZED:
        return await _post_spotlight(attempt, handles)
    # "started", "not_posted", or "media_created" (an upload cut short: its AES key is
    # gone with the lease that made it): new media.
    return await _upload(attempt, part_bytes or PART_BYTES)


async def _upload(attempt: DirectAttempt, part_bytes: int) -> PublishOutcome:
    spotlight_description(attempt.request.caption)  # refuse before uploading, not after
    size = attempt.media.size_bytes
    if size is not None and size > MAX_MEDIA_BYTES:
        return failure(ErrorClass.MEDIA, "media_too_large",
                       f"the clip has {size} bytes; Snap takes {MAX_MEDIA_BYTES}")
    profile_id = attempt.credentials.platform_account_id
    key, iv = os.urandom(32), os.urandom(16)
    created = await _checked(attempt, "POST", f"/v1/public_profiles/{profile_id}/media", json={
        "type": "VIDEO", "name": attempt.request.clip_id,
        "key": base64.b64encode(key).decode(), "iv": base64.b64encode(iv).decode()})
    media_id, add_path, finalize_path = _fields(created, "media_id", "add_path",
                                                "finalize_path")
    await attempt.ledger.record(MEDIA_CREATED, profile_id=profile_id, media_id=media_id,
                                add_path=add_path, finalize_path=finalize_path,
                                media_created_at=attempt.now())
    parts = 0
    async with contextlib.aclosing(_encrypted_parts(attempt, key, iv, part_bytes)) as chunks:
        async for part in chunks:
            parts += 1
            if parts > MAX_PARTS:
                return failure(ErrorClass.MEDIA, "too_many_parts",
                               f"the encrypted clip needs more than {MAX_PARTS} parts of "
                               f"{part_bytes} bytes")
            await _checked(attempt, "POST", add_path, data=_form(
                action="ADD", part_number=str(parts), file=part))
    await _checked(attempt, "POST", finalize_path, data=_form(action="FINALIZE"))
    await attempt.ledger.record(FINALIZED, parts=parts, finalized_at=attempt.now())
    # Snap answers MEDIA_PROCESSING to a spotlight call right after FINALIZE: look again
    # after the poll interval rather than spend a call certain to be refused.
    return in_progress(MEDIA_PROCESSING, f"media {media_id} finalized; Snap is processing it",
                       attempt.poll_seconds)


async def _post_spotlight(attempt: DirectAttempt,
                          handles: Mapping[str, Any]) -> PublishOutcome:
    description = spotlight_description(attempt.request.caption)
    profile_id, media_id = handles["profile_id"], handles["media_id"]
    await attempt.ledger.record(POSTING, posting_sent_at=attempt.now())
    # The point of no return: from here on only an answer says what happened.
    reply = await _send(attempt, "POST", f"/v1/public_profiles/{profile_id}/spotlights",
                        json={"media_id": media_id, "description": description,
                              "locale": LOCALE})
    if succeeded(reply):
        spotlight_id = reply.body.get("spotlight_id")
        if not spotlight_id:
            return unknown("spotlight_id_missing",
                           f"Snap accepted the spotlight of media {media_id} but named no id")
        await attempt.ledger.record(POSTED, spotlight_id=str(spotlight_id))
        return published(str(spotlight_id), post_url(str(spotlight_id)))
    error = read_error(reply)
    if error.code == MEDIA_POSTING_ALREADY_IN_PROGRESS:
        # Snap has this media's spotlight already (a lost earlier answer?): never repost.
        return unknown(error.code, error.message)
    if not error.definite:
        # The "posting" step stays: the next lease reports the outcome as unknown.
        return failure_of(error)
    if error.code == MEDIA_PROCESSING:
        await attempt.ledger.record(FINALIZED)  # nothing posted: post this media again later
        return in_progress(error.code, error.message, attempt.poll_seconds)
    await attempt.ledger.record(NOT_POSTED, refused_with=error.code)
    return failure_of(error)


# --- calls ------------------------------------------------------------------------------

async def _send(attempt: DirectAttempt, method: str, path: str, **kwargs: Any) -> Reply:
    headers = {"Authorization": f"Bearer {attempt.credentials.access_token}"}
    return await attempt.api.call(method, path, headers=headers, **kwargs)


async def _checked(attempt: DirectAttempt, method: str, path: str,
                   **kwargs: Any) -> dict[str, Any]:
    """The body of a successful answer; any refusal stops the flow with its class (used
    before the point of no return only, where a refusal cannot hide a post)."""
    reply = await _send(attempt, method, path, **kwargs)
    if not succeeded(reply):
        raise FlowStopped(failure_of(read_error(reply)))
    return reply.body


def _fields(body: Mapping[str, Any], *names: str) -> list[str]:
    missing = [name for name in names if not body.get(name)]
    if missing:
        raise FlowStopped(failure(ErrorClass.TRANSIENT, "malformed_answer",
                                  f"Snap's answer lacks {', '.join(missing)}"))
    return [str(body[name]) for name in names]


def _form(**fields: str | bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        if isinstance(value, bytes):
            form.add_field(name, value, filename="media.enc",
                           content_type="application/octet-stream")
        else:
            form.add_field(name, value)
    return form


async def _encrypted_parts(attempt: DirectAttempt, key: bytes, iv: bytes,
                           part_bytes: int) -> AsyncIterator[bytes]:
    """The clip streamed from M06 and encrypted on the way (AES-256-CBC, PKCS7), in parts
    of `part_bytes` (the last one shorter): at most one part is held at a time."""
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    pending = bytearray()
    seconds = attempt.api.timeout_seconds
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
    try:
        async with attempt.api.session.get(attempt.media.url, timeout=timeout) as response:
            if response.status != 200:
                raise FlowStopped(_media_refused(response.status, attempt.media.url))
            async for chunk in response.content.iter_chunked(READ_BYTES):
                pending += encryptor.update(padder.update(chunk))
                while len(pending) >= part_bytes:
                    yield bytes(pending[:part_bytes])
                    del pending[:part_bytes]
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise FlowStopped(failure(ErrorClass.TRANSIENT, "media_download_failed",
                                  f"reading {attempt.media.url}: {type(exc).__name__}: {exc}"))
    pending += encryptor.update(padder.finalize()) + encryptor.finalize()
    while pending:
        yield bytes(pending[:part_bytes])
        del pending[:part_bytes]


def _media_refused(status: int, url: str) -> PublishOutcome:
    """M06 would not serve the clip: gone for a 4xx, for now otherwise."""
    if 400 <= status < 500 and status not in (408, 429):
        return failure(ErrorClass.MEDIA, "media_unavailable", f"GET {url}: HTTP {status}")
    return failure(ErrorClass.TRANSIENT, "media_download_failed", f"GET {url}: HTTP {status}")
