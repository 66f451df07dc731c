"""TikTok: Content Posting API, Direct Post with the clip pulled from its URL (PLATFORMS.md §1).

    creator_info ─▶ [init_sending] ─▶ video/init ─▶ [init_sent] ─▶ status/fetch ─▶ [published]
                                        └─ refused ─▶ [not_posted]    └─ FAILED ─▶ [not_posted]

video/init is the point of no return: TikTok starts pulling the video at once and posts it
with no further call, and it has no idempotency key (a second init is a second post). So
the ledger says "init_sending" (with the title and when) before init goes out, and holds
the publish_id as soon as it comes back. Each lease reconciles from that:
- `init_sent`: poll status/fetch for the publish_id; never init again.
- `init_sending` without a publish_id (a crash, or the answer to init was lost): TikTok
  has no lookup by client key, so look for the post in video/list by title and create
  time. It lists public, moderated posts only, so allow a grace period before giving up
  with `unknown`; never init again.
- `started` or `not_posted` (a definite answer said nothing was posted): post afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.model import ErrorClass
from app.domain.rules import rendered_caption

from .direct import DirectAttempt, FlowStopped, Reply
from .gateway import PublishOutcome, failure, in_progress, published, unknown

PLATFORM = "tiktok"

CREATOR_INFO_PATH = "/v2/post/publish/creator_info/query/"
INIT_PATH = "/v2/post/publish/video/init/"
STATUS_PATH = "/v2/post/publish/status/fetch/"
LIST_PATH = "/v2/video/list/"
LIST_FIELDS = "id,create_time,title,video_description,share_url"
LIST_PAGE_SIZE = 20  # TikTok's most
#: How far back video/list is paged; far more posts than a creator makes in minutes.
LIST_MAX_PAGES = 10

# Ledger steps ("started" is the ledger's own, for a new entry).
STARTED = "started"
INIT_SENDING = "init_sending"  # handles: init_sent_at, title, creator_username, privacy_level
INIT_SENT = "init_sent"        # handles: publish_id
PUBLISHED = "published"        # handles: post_id, post_url, found_by
NOT_POSTED = "not_posted"      # handles: reason_code; a definite answer: nothing was posted

PREFERRED_PRIVACY_LEVEL = "PUBLIC_TO_EVERYONE"
PROCESSING_STATUSES = frozenset({"PROCESSING_DOWNLOAD", "PROCESSING_UPLOAD"})
#: How far TikTok's create_time may lag our init_sent_at (the two clocks differ).
CLOCK_SKEW = timedelta(minutes=2)
#: How many poll intervals after init a post missing from video/list may still appear
#: there (moderation delays listing) before the outcome is called unknown.
LISTING_GRACE_POLLS = 10
#: How many poll intervals after the init a public post's id is waited for; past that the
#: post counts as published under its publish id (moderation can take hours).
MODERATION_WAIT_POLLS = 120
#: TikTok's post cap is a rolling 24 h per creator and says nothing of when a slot frees
#: up: look again in an hour rather than wait a whole day or hammer it.
QUOTA_RECHECK_SECONDS = 3600.0
#: TikTok's rate limits are per minute per token: a 429 without Retry-After waits that.
RATE_LIMIT_WINDOW_SECONDS = 60.0


# --- error mapping (pure) -------------------------------------------------------------------

#: error.code -> class (PLATFORMS.md §1(d)).
ERROR_CLASSES: Mapping[str, ErrorClass] = {
    "invalid_param": ErrorClass.PERMANENT,
    "invalid_params": ErrorClass.PERMANENT,
    "invalid_file_upload": ErrorClass.MEDIA,
    "access_token_invalid": ErrorClass.AUTH,
    "scope_not_authorized": ErrorClass.AUTH,
    "scope_permission_missed": ErrorClass.AUTH,
    "spam_risk_too_many_posts": ErrorClass.QUOTA,
    "reached_active_user_cap": ErrorClass.QUOTA,
    "spam_risk_too_many_pending_share": ErrorClass.QUOTA,
    "spam_risk_user_banned_from_posting": ErrorClass.POLICY,
    "unaudited_client_can_only_post_to_private_accounts": ErrorClass.POLICY,
    "url_ownership_unverified": ErrorClass.PERMANENT,
    "privacy_level_option_mismatch": ErrorClass.PERMANENT,
    "rate_limit_exceeded": ErrorClass.TRANSIENT,
    "internal_error": ErrorClass.TRANSIENT,
}

#: status/fetch's fail_reason of a FAILED publish -> class (PLATFORMS.md §1(d)). A failed
#: pull is retried: our URLs come from M06 and are sound, so it was the connection.
FAIL_REASON_CLASSES: Mapping[str, ErrorClass] = {
    "file_format_check_failed": ErrorClass.MEDIA,
    "duration_check_failed": ErrorClass.MEDIA,
    "frame_rate_check_failed": ErrorClass.MEDIA,
    "picture_size_check_failed": ErrorClass.MEDIA,
    "internal": ErrorClass.TRANSIENT,
    "video_pull_failed": ErrorClass.TRANSIENT,
    "photo_pull_failed": ErrorClass.TRANSIENT,
    "publish_cancelled": ErrorClass.PERMANENT,
    "auth_removed": ErrorClass.AUTH,
    "spam_risk_too_many_posts": ErrorClass.QUOTA,
    "spam_risk_user_banned_from_posting": ErrorClass.POLICY,
    "spam_risk_text": ErrorClass.POLICY,
    "spam_risk": ErrorClass.POLICY,
}


def error_class(http_status: int, code: str | None) -> ErrorClass:
    """The class of an error answer: by its code, else by its HTTP status."""
    if code in ERROR_CLASSES:
        return ERROR_CLASSES[code]
    if http_status == 401:
        return ErrorClass.AUTH
    if http_status == 429 or http_status >= 500:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def fail_reason_class(fail_reason: str) -> ErrorClass:
    """A FAILED publish posted nothing; a reason we do not know is not retried."""
    return FAIL_REASON_CLASSES.get(fail_reason, ErrorClass.PERMANENT)


def retry_after(error_class: ErrorClass, code: str, offered: float | None) -> float | None:
    """How long to wait: Retry-After when TikTok gave one, else what its window implies."""
    if error_class is ErrorClass.QUOTA:
        return offered if offered is not None else QUOTA_RECHECK_SECONDS
    if error_class is ErrorClass.TRANSIENT:
        if offered is not None:
            return offered
        return RATE_LIMIT_WINDOW_SECONDS if code == "rate_limit_exceeded" else None
    return None


def classed_failure(error_class: ErrorClass, code: str, message: str,
                    offered_retry_after: float | None = None) -> PublishOutcome:
    return failure(error_class, code, message,
                   retry_after=retry_after(error_class, code, offered_retry_after))


def after_point_of_no_return(outcome: PublishOutcome) -> PublishOutcome:
    """A refusal of status/fetch or video/list says nothing about whether the post exists.
    Transient and quota keep the attempt's key and auth gets the flow run again, so the
    next lease reconciles; any other failure would end the key, and the next key would
    init again: that one is unknown instead."""
    if outcome.error_class in (ErrorClass.TRANSIENT, ErrorClass.QUOTA, ErrorClass.AUTH):
        return outcome
    return unknown(outcome.reason_code or "refused", outcome.error or "")


def choose_privacy_level(options: list[str] | tuple[str, ...]) -> str | None:
    """Public when the creator offers it, else the first option the creator has."""
    if PREFERRED_PRIVACY_LEVEL in options:
        return PREFERRED_PRIVACY_LEVEL
    return options[0] if options else None


def post_url(username: str | None, post_id: str) -> str | None:
    return f"https://www.tiktok.com/@{username}/video/{post_id}" if username else None


def matching_videos(videos: list[Mapping[str, Any]], title: str,
                    not_before: datetime) -> list[Mapping[str, Any]]:
    """The listed videos that can be the post our init made: same caption (TikTok shows the
    posted title as the title or the description), created no earlier than the init."""
    earliest = not_before.timestamp()
    wanted = title.strip()
    return [v for v in videos
            if wanted in (str(v.get("title") or "").strip(),
                          str(v.get("video_description") or "").strip())
            and _number(v.get("create_time")) >= earliest]


@dataclass(frozen=True)
class Answer:
    """One TikTok reply. `code` is error.code ("ok" is the only success, whatever the HTTP
    status); None when the reply carries no TikTok envelope (a proxy's page, a cut body)."""

    http_status: int
    data: Mapping[str, Any]
    code: str | None
    message: str
    offered_retry_after: float | None

    @classmethod
    def of(cls, reply: Reply) -> Answer:
        body = reply.body
        body = body if isinstance(body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        code = error.get("code")
        return cls(reply.status, data, str(code) if code else None,
                   str(error.get("message") or ""), reply.retry_after)

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    @property
    def reason_code(self) -> str:
        return self.code or f"http_{self.http_status}"

    def failure(self, what: str) -> PublishOutcome:
        text = f"{what}: HTTP {self.http_status} {self.reason_code}"
        return classed_failure(error_class(self.http_status, self.code), self.reason_code,
                               f"{text}: {self.message}" if self.message else text,
                               self.offered_retry_after)


# --- the flow ---------------------------------------------------------------------------

async def publish(attempt: DirectAttempt) -> PublishOutcome:
    """Reconcile from what earlier leases recorded, then advance as far as this lease can."""
    entry = attempt.entry
    if entry.step == PUBLISHED:
        return published(entry.handles["post_id"], entry.handles.get("post_url"))
    if entry.step == INIT_SENT:
        return await _follow_publish(attempt)
    if entry.step == INIT_SENDING:
        return await _find_unacknowledged_post(attempt)
    if entry.step in (STARTED, NOT_POSTED):
        return await _post(attempt)
    # Never post on a step this flow does not know: what it did is not known either.
    return unknown("unexpected_ledger_step", f"tiktok: ledger step {entry.step!r}")


async def _post(attempt: DirectAttempt) -> PublishOutcome:
    """creator_info, then the init: nothing of this key exists on TikTok yet."""
    creator = await _creator_info(attempt)
    title = rendered_caption(attempt.request.caption.get("text", ""),
                             tuple(attempt.request.caption.get("hashtags", ())))
    await attempt.ledger.record(
        INIT_SENDING, init_sent_at=attempt.now(), title=title,
        creator_username=creator.username, privacy_level=creator.privacy_level,
        publish_id=None, reason_code=None)  # clear what an earlier, failed init left
    answer = await _ask(attempt, INIT_PATH, body={
        "post_info": {"title": title, "privacy_level": creator.privacy_level},
        "source_info": {"source": "PULL_FROM_URL", "video_url": attempt.media.url},
    })
    publish_id = answer.data.get("publish_id") if answer.ok else None
    if publish_id:
        await attempt.ledger.record(INIT_SENT, publish_id=str(publish_id))
        return await _follow_publish(attempt)
    if answer.code is not None and not answer.ok:
        # TikTok refused the init: it posted nothing, the same key may start afresh.
        await attempt.ledger.record(NOT_POSTED, reason_code=answer.code)
        return answer.failure("video/init")
    # No envelope, or "ok" without a publish_id: whether TikTok started is not known. The
    # ledger stays at init_sending, and the next lease looks in video/list.
    return classed_failure(ErrorClass.TRANSIENT, answer.reason_code,
                           f"video/init: HTTP {answer.http_status} without a publish_id")


@dataclass(frozen=True)
class Creator:
    """What creator_info decides about the post."""

    username: str | None  # for the post URL
    privacy_level: str


async def _creator_info(attempt: DirectAttempt) -> Creator:
    """Who posts and how: the username (for the post URL) and the privacy level. Refuses
    a clip longer than the creator may post before anything is sent."""
    answer = await _ask(attempt, CREATOR_INFO_PATH)
    if not answer.ok:  # spam and cap refusals come with HTTP 200
        raise FlowStopped(answer.failure("creator_info"))
    limit = answer.data.get("max_video_post_duration_sec")
    duration = attempt.media.duration_seconds
    if limit is not None and duration > _number(limit):
        raise FlowStopped(classed_failure(
            ErrorClass.MEDIA, "duration_check_failed",
            f"the clip lasts {duration:g} s; the creator may post {limit} s at most"))
    privacy_level = choose_privacy_level(answer.data.get("privacy_level_options") or [])
    if privacy_level is None:
        raise FlowStopped(classed_failure(ErrorClass.PERMANENT, "no_privacy_level_option",
                                          "creator_info offers no privacy level"))
    return Creator(answer.data.get("creator_username"), privacy_level)


async def _follow_publish(attempt: DirectAttempt) -> PublishOutcome:
    """status/fetch for the recorded publish_id."""
    answer = await _ask(attempt, STATUS_PATH,
                        body={"publish_id": attempt.entry.handles["publish_id"]})
    if not answer.ok:
        raise FlowStopped(after_point_of_no_return(answer.failure("status/fetch")))
    status = answer.data.get("status")
    if status == "PUBLISH_COMPLETE":
        post_ids = answer.data.get("publicaly_available_post_id") or []  # sic
        if post_ids:
            return await _settle(attempt, str(post_ids[0]), found_by="status")
        handles = attempt.entry.handles
        waited = attempt.now() - datetime.fromisoformat(handles["init_sent_at"])
        if (handles.get("privacy_level") != PREFERRED_PRIVACY_LEVEL
                or waited > MODERATION_WAIT_POLLS * timedelta(seconds=attempt.poll_seconds)):
            # Posted, but no public id will come: a post that is not public never gets one,
            # and moderation can take hours. The publish id stands for the post.
            publish_id = str(handles["publish_id"])
            await attempt.ledger.record(PUBLISHED, post_id=publish_id, post_url=None,
                                        found_by="status_without_public_id")
            return published(publish_id, None)
        return in_progress("awaiting_moderation",
                           "tiktok: published, the public post id awaits moderation",
                           attempt.poll_seconds)
    if status in PROCESSING_STATUSES:
        return in_progress(status, f"tiktok: {status}", attempt.poll_seconds)
    if status == "FAILED":
        reason = str(answer.data.get("fail_reason") or "unknown_fail_reason")
        await attempt.ledger.record(NOT_POSTED, reason_code=reason)
        return classed_failure(fail_reason_class(reason), reason,
                               f"tiktok: publish failed: {reason}")
    return unknown(f"status_{status}", f"tiktok: unexpected publish status {status!r}")


async def _find_unacknowledged_post(attempt: DirectAttempt) -> PublishOutcome:
    """Init went out, its publish_id never came back: find the post in video/list."""
    handles = attempt.entry.handles
    sent_at = datetime.fromisoformat(handles["init_sent_at"])
    matches = await _listed_matches(attempt, handles["title"], sent_at - CLOCK_SKEW)
    if len(matches) == 1:
        return await _settle(attempt, str(matches[0]["id"]), found_by="video_list")
    if matches:
        return unknown("init_outcome_ambiguous",
                       f"tiktok: {len(matches)} listed videos match the title since init")
    grace = timedelta(seconds=LISTING_GRACE_POLLS * attempt.poll_seconds)
    if attempt.now() < sent_at + grace:
        return in_progress("awaiting_listing",
                           "tiktok: init's answer was lost; the post is not listed yet",
                           attempt.poll_seconds)
    return unknown("init_outcome_unknown",
                   f"tiktok: init sent at {sent_at.isoformat()}, its answer lost, and no "
                   f"listed video matches after {grace.total_seconds():g} s")


async def _listed_matches(attempt: DirectAttempt, title: str,
                          not_before: datetime) -> list[Mapping[str, Any]]:
    """video/list newest first, page by page, until the videos are older than `not_before`."""
    matches: list[Mapping[str, Any]] = []
    cursor = None
    for _ in range(LIST_MAX_PAGES):
        body: dict[str, Any] = {"max_count": LIST_PAGE_SIZE}
        if cursor is not None:
            body["cursor"] = cursor
        answer = await _ask(attempt, LIST_PATH, params={"fields": LIST_FIELDS}, body=body)
        if not answer.ok:
            raise FlowStopped(after_point_of_no_return(answer.failure("video/list")))
        videos = answer.data.get("videos") or []
        matches += matching_videos(videos, title, not_before)
        oldest = min((_number(v.get("create_time")) for v in videos), default=0.0)
        if not answer.data.get("has_more") or oldest < not_before.timestamp():
            break
        cursor = answer.data.get("cursor")
    return matches


async def _settle(attempt: DirectAttempt, post_id: str, found_by: str) -> PublishOutcome:
    url = post_url(attempt.entry.handles.get("creator_username"), post_id)
    await attempt.ledger.record(PUBLISHED, post_id=post_id, post_url=url, found_by=found_by)
    return published(post_id, url)


async def _ask(attempt: DirectAttempt, path: str, *, body: dict[str, Any] | None = None,
               params: dict[str, str] | None = None) -> Answer:
    headers = {"Authorization": f"Bearer {attempt.credentials.access_token}",
               "Content-Type": "application/json; charset=UTF-8"}
    return Answer.of(await attempt.api.call("POST", path, headers=headers, json=body,
                                            params=params))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
