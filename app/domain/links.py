"""Signed, expiring download links: an HMAC of the item id and the expiry."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

from .errors import Forbidden


def signature(item_id: str, expires: int, key: bytes) -> str:
    return hmac.new(key, f"{item_id}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign(item_id: str, now: datetime, ttl_seconds: int, key: bytes) -> tuple[int, str]:
    expires = int(now.timestamp()) + ttl_seconds
    return expires, signature(item_id, expires, key)


def verify(item_id: str, expires: str, given: str, now: datetime, key: bytes) -> None:
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        raise Forbidden("the download link is not valid") from None
    if not hmac.compare_digest(signature(item_id, expires_at, key), given or ""):
        raise Forbidden("the download link is not valid")
    if now.timestamp() > expires_at:
        raise Forbidden("the download link has expired",
                        expired_at=datetime.fromtimestamp(expires_at, timezone.utc).isoformat())
