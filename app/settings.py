"""Configuration from the environment (names as in DESIGN §5)."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain.rules import CaptionLimits, Policy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISTRIBUTION_", extra="ignore",
                                      populate_by_name=True)

    # Backing services; unset means "start the embedded one" (only `distribution dev` does).
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    kafka_bootstrap_servers: str | None = Field(None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")

    app_id: str = "distribution-service"
    jwt_secret: str = "development-only-secret-change-me-in-production"
    jwt_public_key: str | None = None  # RS256/ES256 verification key (PEM), beside the HS256 key
    jwt_leeway_seconds: float = 30.0
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    public_base_url: str | None = None  # base of download links; default http://host:port
    topic_partitions: int = 8
    data_dir: str = ".distribution"

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

    # Publishing.
    platform_gateway_url: str | None = None  # unset: the simulated adapter
    platform_timeout_seconds: float = 10.0
    simulated_failures: str = ""  # e.g. "instagram:rejected:1,youtube:transient:2"
    max_platform_attempts: int = 5
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    publish_lease_seconds: float = 60.0
    publisher_interval_seconds: float = 0.5
    publisher_batch_size: int = 50
    publisher_concurrency: int = 16

    # Timers.
    scheduler_interval_seconds: float = 1.0
    scheduler_batch_size: int = 500
    due_requeue_seconds: float = 30.0
    outbox_interval_seconds: float = 0.5
    outbox_batch_size: int = 500

    # Neighbours.
    media_base_url: str | None = None  # M06 owner API; unset: a deterministic local stand-in
    media_timeout_seconds: float = 2.0
    download_secret: str | None = None  # defaults to the JWT secret
    download_ttl_seconds: int = 900

    # Broker tuning (see DESIGN §5 on Tansu's timing).
    consumer_fetch_max_wait_ms: int = 20
    broker_session_timeout_seconds: float = 6.0
    request_timeout_seconds: float = 10.0
    stats_window_seconds: int = 3600
    db_pool_min: int = 2
    db_pool_max: int = 10
    log_level: str = "INFO"
    framework_log_level: str = "WARNING"  # Faust, mode and aiokafka
    log_json: bool = True

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
        )

    @property
    def broker_url(self) -> str:
        servers = self.kafka_bootstrap_servers or "127.0.0.1:9092"
        return ";".join(f"kafka://{s.strip()}" for s in servers.split(",") if s.strip())

    @property
    def download_key(self) -> bytes:
        return (self.download_secret or self.jwt_secret).encode()

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.web_host}:{self.web_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
