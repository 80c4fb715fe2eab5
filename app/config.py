"""Settings, all from the environment (see .env.example)."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

import psycopg2
from psycopg2.extensions import parse_dsn
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Values that must never reach production as a secret.
PLACEHOLDER_SECRETS = {
    "",
    "secret",
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "please-change-me",
    "your-secret-key",
    "dev",
    "development",
}
MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """The settings cannot run the service; the message says what to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: Literal["development", "test", "production"] = "development"
    database_url: str | None = None
    # Moves the app's idea of today (overdue invoices) by this many days: tests, demos.
    clock_shift_days: int = Field(default=0, ge=-36500, le=36500)
    # A replica for the GET routes (they only read); unset: everything uses DATABASE_URL.
    read_database_url: str | None = None
    data_dir: Path = PROJECT_ROOT / ".data"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_acquire_timeout: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=15000, ge=0)
    db_statement_cache: bool = True
    migrate_on_start: bool = True

    secret_key: str | None = None
    access_token_expire_minutes: int = Field(default=60, ge=1, le=60 * 24 * 30)

    webhook_secret: str | None = None
    webhook_tolerance_seconds: int = Field(default=300, ge=1)

    default_currency: str = "INR"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # All request headers together (names and values), at most; more is 431.
    max_header_bytes: int = Field(default=16 * 1024, ge=4096)
    idempotency_ttl_hours: int = Field(default=24, ge=1)

    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)
    login_lockout_seconds: int = Field(default=300, ge=1)

    # argon2id cost; the defaults follow OWASP's password storage guidance.
    argon2_memory_kib: int = Field(default=19456, ge=1024)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)

    cors_origins: str = ""
    # /metrics shows business totals: with a token set, a scrape must send it as a bearer
    # token (Prometheus: `authorization: {credentials_file: ...}`); in production /metrics
    # is closed until one is set.
    metrics_token: str | None = None
    # FastAPI's own OpenTelemetry spans and metrics, through the globally configured
    # providers. Off: the app's observability is /metrics and its logs, and FastAPI looks
    # for configured providers on every request otherwise (docs/PERFORMANCE.md).
    opentelemetry: bool = False
    log_level: str = "INFO"
    # json or text; unset: text in development, json everywhere else (app/ops/logging.py)
    log_format: Literal["json", "text"] | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1)

    # Unset secrets are generated once into DATA_DIR and reused (as in development), also
    # in production: for one machine or a shared volume (docker-compose.yml). Several
    # machines must be given SECRET_KEY and WEBHOOK_SECRET instead.
    generate_secrets: bool = False

    # Outgoing events (app/events/): retention, delivery and its retries.
    event_retention_days: int = Field(default=30, ge=1)
    # Seconds to wait after each failed attempt; one attempt more than delays, then failed.
    delivery_retry_delays: str = "5,300,1800,7200,18000,36000,36000"
    delivery_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # An endpoint whose deliveries have all failed for this long is disabled.
    endpoint_disable_after_seconds: int = Field(default=5 * 24 * 3600, ge=1)
    # How long the old secret still signs after a rotation.
    secret_rotation_overlap_seconds: int = Field(default=24 * 3600, ge=0)
    # Serve also sends deliveries (one in-process worker per server process); off, only
    # `python -m app deliver` does.
    deliver_in_process: bool = True
    delivery_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    delivery_concurrency: int = Field(default=32, ge=1, le=256)
    # Endpoint URLs to loopback and private addresses; unset: allowed except in production.
    webhook_allow_private_urls: bool | None = None

    admin_username: str | None = None
    admin_email: str | None = None
    admin_password: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Settings:
        self.default_currency = self.default_currency.upper()
        self.secret_key = self.secret_key or None  # SECRET_KEY= (empty) is unset
        self.webhook_secret = self.webhook_secret or None
        for name, url in (("DATABASE_URL", self.database_url),
                          ("READ_DATABASE_URL", self.read_database_url)):
            _check_database_url(name, url)
        if self.app_env == "production":
            if self.clock_shift_days:
                raise ConfigError("CLOCK_SHIFT_DAYS is for tests and demos; production runs "
                                  "on the real date")
            if self.generate_secrets:
                for name, value in (("SECRET_KEY", self.secret_key),
                                    ("WEBHOOK_SECRET", self.webhook_secret)):
                    if value is not None and not all(
                            _is_strong(s) for s in self.webhook_secrets_from(value)):
                        raise ConfigError(f"{name} is set but weak; unset it to have one "
                                          "generated, or give one of 32+ random characters")
                return self
            if not _is_strong(self.secret_key):
                raise ConfigError(
                    "APP_ENV=production needs SECRET_KEY: a random value of at least "
                    f"{MIN_SECRET_LENGTH} characters (python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))')"
                )
            if not self.webhook_secret or not all(
                _is_strong(s) for s in self.webhook_secrets_from(self.webhook_secret)
            ):
                raise ConfigError(
                    "APP_ENV=production needs WEBHOOK_SECRET: one or more comma-separated "
                    f"secrets of at least {MIN_SECRET_LENGTH} characters"
                )
        return self

    @staticmethod
    def webhook_secrets_from(raw: str) -> list[str]:
        return [s.strip() for s in raw.split(",") if s.strip()]

    @property
    def resolved_log_format(self) -> str:
        return self.log_format or ("text" if self.app_env == "development" else "json")

    @property
    def retry_delays(self) -> list[float]:
        return [float(d) for d in self.delivery_retry_delays.split(",") if d.strip()]

    @property
    def private_urls_allowed(self) -> bool:
        if self.webhook_allow_private_urls is None:
            return self.app_env != "production"
        return self.webhook_allow_private_urls

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def resolved_secret_key(self) -> str:
        return self.secret_key or _dev_secret(self.data_dir, "secret_key")

    def resolved_webhook_secrets(self) -> list[str]:
        if self.webhook_secret:
            return self.webhook_secrets_from(self.webhook_secret)
        return [_dev_secret(self.data_dir, "webhook_secret")]


def _is_strong(value: str | None) -> bool:
    return (
        value is not None
        and value.strip().lower() not in PLACEHOLDER_SECRETS
        and len(value) >= MIN_SECRET_LENGTH
    )


def _check_database_url(name: str, url: str | None) -> None:
    """A URL libpq can read (several hosts allowed), else what a good one looks like."""
    if not url:
        return
    try:
        parse_dsn(url)
    except psycopg2.ProgrammingError as exc:
        raise ConfigError(
            f"{name} is not a PostgreSQL URL: {str(exc).strip()}; expected postgresql://"
            "user:password@host:5432/database, or several hosts as host1:5432,host2:5432 "
            "with ?target_session_attrs=read-write") from None


@lru_cache
def _dev_secret(data_dir: Path, name: str) -> str:
    """A random secret made once into the data folder and reused (development only)."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    tmp.write_text(value)
    tmp.chmod(0o600)
    try:
        # link() fails if another process got there first; theirs wins.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
