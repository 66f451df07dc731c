"""Configuration from the environment (names as in DESIGN §5)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain.model import Platform
from app.domain.quota import DEFAULT_QUOTAS, QuotaRule
from app.domain.rules import CaptionLimits, Policy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISTRIBUTION_", extra="ignore",
                                      populate_by_name=True)

    # Backing services; unset means "start the embedded one" (only `distribution dev` does).
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    kafka_bootstrap_servers: str | None = Field(None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")

    app_id: str = "distribution-service"

    # Bearer tokens (see web/auth.py); at least one key is required outside `distribution dev`.
    jwt_secret: SecretStr | None = None  # HS256 shared secret, at least 32 bytes
    jwt_public_key: str | None = None  # PEM key for RS256/ES256 tokens
    jwt_jwks_url: str | None = None  # the identity provider's JWKS document
    jwt_algorithms: str = "HS256,RS256,ES256"  # allow-list; only those with a key are used
    jwt_issuer: str | None = None  # `iss` required and checked when set
    jwt_audience: str | None = None  # `aud` required and checked when set
    jwt_leeway_seconds: float = 10.0
    jwks_cache_seconds: int = 300
    operator_scope: str = "distribution:operate"  # in the `scope` claim: any item, any action
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    public_base_url: str | None = None  # base of download links; default http://host:port
    topic_partitions: int = 8
    # Local files: Faust's under faust/<app_id> (see faust_datadir); `distribution dev` keeps
    # the embedded PostgreSQL and the broker's log here too (its default: ./.distribution).
    data_dir: str | None = None

    # Rules.
    min_schedule_lead_seconds: float = 300
    max_schedule_ahead_days: float = 30
    max_lateness_seconds: float = 3600
    caption_tiktok_chars: int = 2200
    caption_instagram_chars: int = 2200
    caption_instagram_hashtags: int = 30
    caption_youtube_description_bytes: int = 5000
    caption_youtube_title_chars: int = 100
    caption_snapchat_chars: int = 160

    # Publishing: `simulated` (in-process, the default), `gateway` (our gateway contract at
    # platform_gateway_url; the default when that is set) or `direct` (each platform's API).
    platform_mode: Literal["simulated", "gateway", "direct"] | None = None
    platform_gateway_url: str | None = None
    tiktok_api_url: str = "https://open.tiktokapis.com"
    instagram_api_url: str = "https://graph.facebook.com/v21.0"
    youtube_api_url: str = "https://www.googleapis.com"
    snapchat_api_url: str = "https://businessapi.snapchat.com"
    platform_poll_interval_seconds: float = Field(30.0, gt=0)  # platforms still processing
    platform_timeout_seconds: float = 10.0
    simulated_failures: str = ""  # e.g. "instagram:rejected:1,youtube:transient:2"
    max_platform_attempts: int = 5
    # Posting limits per account, checked when a post is planned (0: no limit).
    quota_instagram_posts_per_24h: int = Field(DEFAULT_QUOTAS[Platform.INSTAGRAM].cap, ge=0)
    quota_tiktok_posts_per_24h: int = Field(DEFAULT_QUOTAS[Platform.TIKTOK].cap, ge=0)
    quota_youtube_uploads_per_pacific_day: int = Field(DEFAULT_QUOTAS[Platform.YOUTUBE].cap,
                                                       ge=0)
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    publish_lease_seconds: float = 60.0
    publisher_interval_seconds: float = 0.5
    # Platform calls under way at once on a worker (an answer being sent holds no place),
    # and the most attempts one lease round takes: one round runs at a time, so with
    # platforms that answer at once this bounds how fast attempts start, and with real
    # calls (seconds each) how many posts go out a second.
    publisher_batch_size: int = 256
    publisher_concurrency: int = 256
    # Of those, Snapchat calls: an upload holds a part of the clip of up to 32 MB in memory
    # (twice while it is copied out).
    publisher_snapchat_concurrency: int = Field(8, ge=1)

    # The command agent applies what arrived while it applied the previous batch, up to
    # this many commands at once (each partition's in one transaction).
    command_batch_size: int = Field(200, ge=1)

    # Timers.
    scheduler_interval_seconds: float = 1.0
    scheduler_batch_size: int = 500
    due_requeue_seconds: float = 30.0
    outbox_interval_seconds: float = 0.5
    outbox_batch_size: int = 500

    # Operations. /healthz fails once the event loop was blocked longer than this (a sync
    # call in async code); /metrics reads the cluster's figures again once this old.
    health_max_loop_block_seconds: float = Field(10.0, gt=0)
    metrics_cluster_max_age_seconds: float = Field(5.0, ge=0)

    # Neighbours.
    media_base_url: str | None = None  # M06 owner API; unset: a deterministic local stand-in
    media_timeout_seconds: float = 2.0
    accounts_url: str | None = None  # M10 owner API (credentials); required in direct mode
    accounts_token: SecretStr | None = None  # sent as a bearer token to M10 when set
    accounts_timeout_seconds: float = 5.0
    download_secret: SecretStr | None = None  # signing key of download links, at least 32 bytes
    download_ttl_seconds: int = 900

    # Broker tuning (see DESIGN §5 on Tansu's timing).
    consumer_fetch_max_wait_ms: int = 20
    # The claims consumer's: nobody waits on a claim's reply, and the embedded broker polls
    # an idle fetch at halves of its wait (an idle worker kept it at 21 % of a core on
    # average with 20 ms here, 16 % with 100 ms; four runs each, 13-30 %).
    claims_fetch_max_wait_ms: int = 100
    broker_session_timeout_seconds: float = 6.0
    request_timeout_seconds: float = 10.0
    stats_window_seconds: int = 3600
    db_pool_min: int = 2
    db_pool_max: int = 10
    log_level: str = "INFO"
    framework_log_level: str = "WARNING"  # Faust, mode and aiokafka
    log_json: bool = True

    # HTTP surface.
    rate_limit_per_second: float = 20.0  # per caller and worker, mutations and reads alike
    rate_limit_burst: int = 40
    idempotency_key_ttl_hours: float = 24.0
    # A command id is remembered this long; it must outlast the commands topic's retention,
    # or a replay of the topic would apply a forgotten command again.
    processed_commands_retention_hours: float = 24.0 * 14
    # A published outbox row is kept this long, then pruned: its event is on the topic by
    # then. A pending row is never pruned.
    outbox_retention_hours: float = 72.0
    housekeeping_interval_seconds: float = 300.0

    # Secured Kafka (every producer, consumer and admin client of the service).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: str | None = None  # PEM bundle; unset: the system's CAs
    kafka_ssl_cert_file: str | None = None  # client certificate (PEM), for mutual TLS
    kafka_ssl_key_file: str | None = None
    kafka_ssl_key_password: SecretStr | None = None
    topic_replication_factor: int = 1  # of the topics the service creates
    topic_retention_hours: float = 24.0 * 7
    # The dead-letter topics keep their records longer, so an operator can re-drive them.
    dlq_retention_hours: float = 24.0 * 14

    def policy(self) -> Policy:
        return Policy(
            min_schedule_lead=timedelta(seconds=self.min_schedule_lead_seconds),
            max_schedule_ahead=timedelta(days=self.max_schedule_ahead_days),
            max_lateness=timedelta(seconds=self.max_lateness_seconds),
            caption_limits=CaptionLimits(
                tiktok_caption_chars=self.caption_tiktok_chars,
                instagram_caption_chars=self.caption_instagram_chars,
                instagram_hashtags=self.caption_instagram_hashtags,
                youtube_description_bytes=self.caption_youtube_description_bytes,
                youtube_title_chars=self.caption_youtube_title_chars,
                snapchat_caption_chars=self.caption_snapchat_chars,
            ),
            max_platform_attempts=self.max_platform_attempts,
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            quotas=self.quotas(),
        )

    def quotas(self) -> dict[Platform, QuotaRule]:
        """The default rules with the configured caps (a cap of 0: no limit)."""
        caps = {Platform.INSTAGRAM: self.quota_instagram_posts_per_24h,
                Platform.TIKTOK: self.quota_tiktok_posts_per_24h,
                Platform.YOUTUBE: self.quota_youtube_uploads_per_pacific_day}
        return {p: replace(DEFAULT_QUOTAS[p], cap=cap) for p, cap in caps.items() if cap > 0}

    @property
    def faust_datadir(self) -> Path:
        """Faust's data directory, one per app id; by default in the user's state directory,
        since Faust's own default (`./<app id>-data`) wrote into whatever directory the
        worker ran in, the repository included."""
        base = (Path(self.data_dir).expanduser().resolve() if self.data_dir
                else _state_home() / "distribution-service")
        return base / "faust" / self.app_id

    @property
    def broker_url(self) -> str:
        servers = self.kafka_bootstrap_servers or "127.0.0.1:9092"
        return ";".join(f"kafka://{s.strip()}" for s in servers.split(",") if s.strip())

    @property
    def download_key(self) -> bytes:
        return self.download_secret.get_secret_value().encode() if self.download_secret else b""

    @property
    def publishing_mode(self) -> str:
        if self.platform_mode is not None:
            return self.platform_mode
        return "gateway" if self.platform_gateway_url else "simulated"

    @property
    def platform_api_urls(self) -> dict[Platform, str]:
        return {Platform.TIKTOK: self.tiktok_api_url,
                Platform.INSTAGRAM: self.instagram_api_url,
                Platform.YOUTUBE: self.youtube_api_url,
                Platform.SNAPCHAT: self.snapchat_api_url}

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.web_host}:{self.web_port}"


def _state_home() -> Path:
    """$XDG_STATE_HOME, else ~/.local/state (XDG Base Directory specification)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


#: The HS256 secret `distribution dev` uses; refused everywhere else, since it is public.
DEVELOPMENT_JWT_SECRET = "development-only-secret-change-me-in-production"
DEVELOPMENT_DOWNLOAD_SECRET = "development-only-download-secret-change-me"
MIN_SECRET_BYTES = 32


def _secret_problem(variable: str, secret: SecretStr | None, development: str) -> str | None:
    if secret is None or not secret.get_secret_value():
        return f"{variable} is not set"
    value = secret.get_secret_value()
    if value == development:
        return f"{variable} is the public development default"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"{variable} is shorter than {MIN_SECRET_BYTES} bytes"
    return None


def publishing_problems(settings: Settings) -> list[str]:
    """What the publishing mode needs and is not set."""
    mode, problems = settings.publishing_mode, []
    if mode == "gateway" and not settings.platform_gateway_url:
        problems.append("DISTRIBUTION_PLATFORM_MODE=gateway needs "
                        "DISTRIBUTION_PLATFORM_GATEWAY_URL")
    if mode == "direct":
        for variable, value in (("DISTRIBUTION_ACCOUNTS_URL", settings.accounts_url),
                                ("DISTRIBUTION_MEDIA_BASE_URL", settings.media_base_url)):
            if not value:
                problems.append(f"DISTRIBUTION_PLATFORM_MODE=direct needs {variable}")
    return problems


def unsafe_settings(settings: Settings) -> list[str]:
    """Why these settings must not serve anyone but a developer (empty: they may)."""
    problems = []
    if settings.jwt_secret is not None or not (settings.jwt_public_key or settings.jwt_jwks_url):
        # An HS256 secret is optional only when tokens are verified by a public key.
        problem = _secret_problem("DISTRIBUTION_JWT_SECRET", settings.jwt_secret,
                                  DEVELOPMENT_JWT_SECRET)
        if problem and settings.jwt_secret is None:
            problem += (" (nor DISTRIBUTION_JWT_PUBLIC_KEY or DISTRIBUTION_JWT_JWKS_URL: "
                        "no token could be verified)")
        if problem:
            problems.append(problem)
    problem = _secret_problem("DISTRIBUTION_DOWNLOAD_SECRET", settings.download_secret,
                              DEVELOPMENT_DOWNLOAD_SECRET)
    if problem:
        problems.append(problem)
    if settings.jwt_secret is not None and settings.download_secret is not None and (
            settings.jwt_secret.get_secret_value() == settings.download_secret.get_secret_value()):
        problems.append("DISTRIBUTION_DOWNLOAD_SECRET must differ from DISTRIBUTION_JWT_SECRET")
    problems += publishing_problems(settings)
    retention = settings.processed_commands_retention_hours
    if retention <= settings.topic_retention_hours:
        problems.append(
            f"DISTRIBUTION_PROCESSED_COMMANDS_RETENTION_HOURS ({retention:g}) must exceed "
            f"DISTRIBUTION_TOPIC_RETENTION_HOURS ({settings.topic_retention_hours:g}): a replay "
            "of the commands topic would apply forgotten commands again")
    return problems
