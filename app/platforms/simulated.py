"""An in-process stand-in for the platform gateway, used when no gateway URL is set.

It answers the way the gateway does: deterministic post ids and URLs, the same post for
the same idempotency key (the gateway's 409), and failures injected per platform by a
configuration string (the `DISTRIBUTION_SIMULATED_FAILURES` setting), e.g.
``"instagram:rejected:1,youtube:transient:2,tiktok:quota:1,snapchat:policy"``: the first
post attempt to Instagram is rejected, the first two to YouTube are transient, the first to
TikTok finds the posting window full, every one to Snapchat is refused by policy. A kind is
any error class (transient, permanent, auth, quota, media, policy), or `rejected`
(permanent).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from app.domain.model import Platform

from .gateway import ErrorClass, Outcome, PostRequest, PublishOutcome

logger = logging.getLogger("distribution.platforms")

_KINDS = {"rejected": ErrorClass.PERMANENT, **{kind.value: kind for kind in ErrorClass}}
#: When a simulated full posting window resets.
QUOTA_RESET_SECONDS = 60.0


@dataclass(frozen=True)
class FailureRule:
    """Fail the first `count` post attempts to a platform (every one when `count` is None)."""

    kind: ErrorClass
    count: int | None = None


def parse_failures(text: str) -> dict[str, FailureRule]:
    """``"platform:kind[:count],..."`` -> {platform: FailureRule}; ValueError when malformed.

    kind is an error class or ``rejected``; count is a positive whole number, omitted for
    "always". Blank input means no failures.
    """
    rules: dict[str, FailureRule] = {}
    if not text or not text.strip():
        return rules
    supported = ", ".join(p.value for p in Platform)
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        parts = [p.strip() for p in entry.split(":")]
        if len(parts) not in (2, 3):
            raise ValueError(
                f"simulated failures: {entry!r} is not 'platform:kind' or 'platform:kind:count'")
        platform, kind = parts[0].lower(), parts[1].lower()
        if platform not in {p.value for p in Platform}:
            raise ValueError(
                f"simulated failures: unknown platform {parts[0]!r} in {entry!r} "
                f"(supported: {supported})")
        if kind not in _KINDS:
            raise ValueError(
                f"simulated failures: unknown kind {parts[1]!r} in {entry!r} "
                f"(expected rejected or one of {', '.join(ErrorClass)})")
        count: int | None = None
        if len(parts) == 3:
            if not parts[2].isdigit() or int(parts[2]) < 1:
                raise ValueError(
                    f"simulated failures: count {parts[2]!r} in {entry!r} "
                    f"is not a positive whole number")
            count = int(parts[2])
        if platform in rules:
            raise ValueError(f"simulated failures: platform {platform!r} is given twice")
        rules[platform] = FailureRule(_KINDS[kind], count)
    return rules


def simulated_failure(platform: str, kind: ErrorClass) -> PublishOutcome:
    retryable = kind in (ErrorClass.TRANSIENT, ErrorClass.QUOTA)
    return PublishOutcome(
        Outcome.TRANSIENT if retryable else Outcome.REJECTED,
        error=f"simulated {kind.value} failure at {platform}", error_class=kind,
        reason_code=f"simulated_{kind.value}",
        retry_after=QUOTA_RESET_SECONDS if kind is ErrorClass.QUOTA else None)


def simulated_post_id(request: PostRequest) -> str:
    digest = hashlib.sha1(request.idempotency_key.encode()).hexdigest()[:12]
    return f"sim-{request.platform}-{digest}"


def simulated_post_url(platform: str, post_id: str) -> str:
    return f"https://{platform}.example/posts/{post_id}"


def simulated_post(request: PostRequest) -> PublishOutcome:
    """The post a key makes, the same each time it is asked."""
    post_id = simulated_post_id(request)
    return PublishOutcome(Outcome.PUBLISHED, post_id=post_id,
                          post_url=simulated_post_url(request.platform, post_id))


class SimulatedGateway:
    """Behaves like the platform gateway, in process.

    `posts` lists the requests that created a post; `attempts` every request received.
    A key already posted answers with the same post before any injected failure applies,
    as the gateway recognises a key before doing anything else.

    It serves a worker for as long as it runs (`distribution dev`, the benchmark): the
    lists keep the last `kept_requests` requests and it remembers the last `kept_keys`
    keys posted (a post's id and address derive from its key), so that memory does not
    grow with every post (it grew by ~2 KB for each: 40 MB for 10,000 items on two
    platforms).
    """

    def __init__(self, failures: str = "", kept_requests: int = 1000,
                 kept_keys: int = 100_000) -> None:
        self.failures: dict[str, FailureRule] = parse_failures(failures)
        self.posts: deque[PostRequest] = deque(maxlen=kept_requests)
        self.attempts: deque[PostRequest] = deque(maxlen=kept_requests)
        self._posted: OrderedDict[str, None] = OrderedDict()  # keys, oldest first
        self._kept_keys = kept_keys
        self._failed: dict[str, int] = {}  # injected failures so far, per platform
        self._lock = threading.Lock()

    async def post(self, request: PostRequest) -> PublishOutcome:
        with self._lock:
            outcome = self._answer(request)
        level = logging.INFO if outcome.outcome is Outcome.PUBLISHED else logging.WARNING
        logger.log(
            level, "simulated platform post %s: %s %s", outcome.outcome.value,
            request.platform, request.item_id,
            extra={"action": "platform_post", "item_id": request.item_id,
                   "platform": request.platform, "idempotency_key": request.idempotency_key,
                   "outcome": outcome.outcome.value, "post_id": outcome.post_id,
                   "error": outcome.error, "simulated": True})
        return outcome

    def _answer(self, request: PostRequest) -> PublishOutcome:
        self.attempts.append(request)
        if request.idempotency_key in self._posted:
            return simulated_post(request)
        rule = self.failures.get(request.platform)
        failed = self._failed.get(request.platform, 0)
        if rule is not None and (rule.count is None or failed < rule.count):
            self._failed[request.platform] = failed + 1
            return simulated_failure(request.platform, rule.kind)
        self._posted[request.idempotency_key] = None
        if len(self._posted) > self._kept_keys:
            self._posted.popitem(last=False)  # the oldest key's post is forgotten
        self.posts.append(request)
        return simulated_post(request)

    async def close(self) -> None:
        return None
