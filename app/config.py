"""Settings: the only place that reads the environment."""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

MIN_SECRET_KEY_LENGTH = 32


class ConfigurationError(RuntimeError):
    """The settings cannot run the service (e.g. no secret key with PostgreSQL)."""


class Settings(BaseSettings):
    """Trialdesk settings, read from variables prefixed ``TRIALDESK_``."""

    model_config = SettingsConfigDict(env_prefix="TRIALDESK_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./trialdesk.db",
        description="SQLAlchemy URL; sqlite:///FILE or postgresql://USER@HOST/DB",
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Server key (32+ characters); required with PostgreSQL"
    )
    base_url: str = Field(default="http://127.0.0.1:8000", description="Public URL, for links")
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for emails; unset: each email is written to mail_dir instead",
    )
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="trialdesk@localhost", max_length=320)
    smtp_user: str | None = Field(default=None, description="SMTP login (with smtp_password)")
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=False, description="upgrade the connection with STARTTLS")
    smtp_timeout_s: float = Field(default=30.0, gt=0, le=600, description="each SMTP step")
    mail_dir: Path | None = Field(
        default=None,
        description="where emails are written without smtp_host (default: mail/ beside the "
        "SQLite database, or ./mail)",
    )
    scheduler: bool = Field(
        default=True, description="run the scheduler (emails) inside the server"
    )
    scheduler_interval_s: float = Field(
        default=60.0, ge=1, le=86_400, description="between two scheduler passes"
    )
    export_time_limit_s: float = Field(
        default=1800.0,
        ge=0,
        le=86_400,
        description="an export download still going after this is cut short (and audited "
        "as aborted): it holds a database connection and a read transaction",
    )
    state_dir: Path | None = Field(
        default=None,
        description="what must live outside the database, such as the audit trail's anchors "
        "(default: the user's state folder, e.g. ~/.local/state/trialdesk)",
    )
    log_level: str = "INFO"
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=20, ge=0, le=1000)
    db_pool_timeout_s: float = Field(
        default=10.0, gt=0, description="wait for a pooled connection before a 503"
    )
    db_lock_timeout_ms: int = Field(
        default=10_000,
        ge=1,
        description="wait for a row lock (PostgreSQL) or the write lock (SQLite) before a 503",
    )
    db_statement_timeout_ms: int = Field(
        default=30_000, ge=1, description="PostgreSQL: longest statement before it is cancelled"
    )
    token_lifetime_days: int = Field(
        default=90, ge=1, le=3650, description="how long a new staff API token is valid"
    )
    sign_in_link_minutes: int = Field(
        default=15, ge=1, le=24 * 60, description="how long a console sign-in link works"
    )
    console_idle_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="a console session unused this long ends"
    )
    console_session_hours: int = Field(
        default=12, ge=1, le=24 * 14, description="a console session ends this long after sign-in"
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="send the console's cookie over HTTPS only (default: when base_url is https)",
    )
    bad_tokens_per_minute: int = Field(
        default=20, ge=1, description="unknown tokens from one address before 429s"
    )
    unknown_links_per_minute: int = Field(
        default=20, ge=1, description="unknown survey links from one address before 429s"
    )
    idempotency_ttl_hours: int = Field(
        default=24, ge=1, le=24 * 30, description="how long an Idempotency-Key is remembered"
    )
    metrics_allowed_from: list[str] = Field(
        default=["127.0.0.1/32", "::1/128"],
        description='networks (CIDR) that may read /metrics; ["*"] for anyone',
    )
    db_connect_timeout_s: int = Field(default=5, ge=1, description="opening a connection")
    request_slot_timeout_s: float = Field(
        default=30.0, gt=0, description="how long a request waits for a slot before a 503"
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_driver(cls, value: str) -> str:
        url = make_url(value)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_KEY_LENGTH} characters")
        return value

    @field_validator("metrics_allowed_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            if network != "*":
                ipaddress.ip_network(network, strict=False)  # ValueError names it
        return value

    @property
    def secure_cookies(self) -> bool:
        """Whether the console's cookies carry `Secure` (only sent over HTTPS)."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.base_url.startswith("https://")

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        database = make_url(self.database_url).database
        if not database or database == ":memory:":
            return None
        return Path(database)

    @property
    def mail_folder(self) -> Path:
        """Where emails are written when no SMTP server is set."""
        if self.mail_dir is not None:
            return self.mail_dir
        path = self.sqlite_path
        return (path.parent if path is not None else Path()) / "mail"

    @property
    def state_folder(self) -> Path:
        """Where state kept outside the database lives (created 0700 when first used)."""
        if self.state_dir is not None:
            return self.state_dir
        from platformdirs import user_state_dir

        return Path(user_state_dir("trialdesk", appauthor=False))

    @cached_property
    def server_key(self) -> bytes:
        """The server-held key; with SQLite and none set, a key file beside the database."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.sqlite_path
        if path is None:
            raise ConfigurationError(
                "TRIALDESK_SECRET_KEY (32 characters or more) is required with this database"
            )
        return _read_or_create_key_file(path.with_name(path.name + ".key"))


def _read_or_create_key_file(path: Path) -> bytes:
    """Reuse the key file, or create it readable by its owner only (never overwritten)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process is creating it: read theirs below
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(key + "\n")
            return key.encode()
    for _ in range(100):  # a concurrent creator may not have written it yet
        key = path.read_text().strip()
        if key:
            return key.encode()
        time.sleep(0.01)
    raise ConfigurationError(f"the key file {path} is empty")
