"""Settings: the only place that reads the environment."""

from __future__ import annotations

import ipaddress
import logging
from functools import cached_property
from pathlib import Path
from typing import Literal, Self

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from app import keyfile

MIN_SECRET_KEY_LENGTH = 32


class ConfigurationError(RuntimeError):
    """The settings cannot run the service (e.g. no secret key with PostgreSQL)."""


class Settings(BaseSettings):
    """Trialdesk settings, read from variables prefixed ``TRIALDESK_``, then from a
    ``.env`` file in the working directory (variables win; `make run` writes the base URL
    there, so that every command run beside the server builds links on the same one)."""

    model_config = SettingsConfigDict(
        env_prefix="TRIALDESK_", extra="ignore", env_file=".env", env_file_encoding="utf-8"
    )

    database_url: str = Field(
        default="sqlite:///./trialdesk.db",
        description="SQLAlchemy URL; sqlite:///FILE or postgresql://USER@HOST/DB",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Server key (32+ characters); with PostgreSQL, this or key_file is required",
    )
    key_file: Path | None = Field(
        default=None,
        description="the server key file, when no secret_key is set (default with SQLite: one "
        "file per database in the user's config folder, never beside the database)",
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        max_length=300,
        description="Public URL, for every link (emails, sign-in links, pages, survey links)",
    )
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
    # SPEC 11: text messages. Unset: each text is written as a file into mail_dir/sms/.
    sms_provider: Literal["twilio"] | None = Field(
        default=None, description="who sends text messages; unset: written to mail_dir/sms/"
    )
    twilio_account_sid: str | None = Field(default=None, max_length=64)
    twilio_auth_token: SecretStr | None = Field(
        default=None, description="signs Twilio's callbacks, and logs in to its API"
    )
    twilio_from: str | None = Field(
        default=None, max_length=32, description="the number texts come from (E.164)"
    )
    twilio_messaging_service_sid: str | None = Field(
        default=None, max_length=64, description="instead of twilio_from: a messaging service"
    )
    twilio_api_url: str = Field(default="https://api.twilio.com", max_length=300)
    sms_callback_url: str | None = Field(
        default=None,
        max_length=300,
        description="the public address the provider calls back (default: base_url); the "
        "signature of each callback is checked against it",
    )
    sms_timeout_s: float = Field(default=10.0, gt=0, le=120, description="each call to the API")
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
    forwarded_allow_ips: str = Field(
        default="",
        max_length=4000,
        description="addresses or networks (comma-separated; * for any) of the reverse "
        "proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (`trialdesk serve`); "
        "none by default",
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="a request's head must arrive within this"
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="a request's body must arrive within this"
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_driver(cls, value: str) -> str:
        url = make_url(value)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)

    @field_validator("base_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")) or len(value.split("//", 1)[1]) == 0:
            raise ValueError(
                "must be an http:// or https:// address, such as http://127.0.0.1:8000"
            )
        return value

    @model_validator(mode="after")
    def _sms_provider_complete(self) -> Self:
        if self.sms_provider == "twilio":
            if not self.twilio_account_sid or self.twilio_auth_token is None:
                raise ValueError("sms_provider twilio needs twilio_account_sid and _auth_token")
            if not (self.twilio_from or self.twilio_messaging_service_sid):
                raise ValueError("sms_provider twilio needs twilio_from or a messaging service")
        return self

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

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for address in (a.strip() for a in value.split(",")):
            if address and address != "*":
                ipaddress.ip_network(address, strict=False)  # ValueError names it
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
    def sms_folder(self) -> Path:
        """Where text messages are written when no provider is set (beside the emails)."""
        return self.mail_folder / "sms"

    @property
    def sms_callback_base(self) -> str:
        """The public address the SMS provider's callbacks are sent to and signed for."""
        return (self.sms_callback_url or self.base_url).rstrip("/")

    @property
    def state_folder(self) -> Path:
        """Where state kept outside the database lives (created 0700 when first used)."""
        if self.state_dir is not None:
            return self.state_dir
        from platformdirs import user_state_dir

        return Path(user_state_dir("trialdesk", appauthor=False))

    @property
    def key_file_path(self) -> Path | None:
        """Where the server key file is (None: the key is TRIALDESK_SECRET_KEY, or there is
        no key file for this database). A key file of earlier versions beside a SQLite
        database is still used, with a warning, until it is moved."""
        if self.secret_key is not None:
            return None
        if self.key_file is not None:
            return Path(self.key_file).expanduser().absolute()
        database = self.sqlite_path
        if database is None:
            return None
        legacy, default = legacy_key_file(database), default_key_file(database)
        if legacy.exists() and not default.exists():
            return legacy.absolute()
        return default

    @cached_property
    def server_keys(self) -> list[bytes]:
        """The server keys, oldest first: TRIALDESK_SECRET_KEY alone, or the key file's
        ring (created on first use, readable by its owner only)."""
        if self.secret_key is not None:
            return [self.secret_key.get_secret_value().encode()]
        path = self.key_file_path
        if path is None:
            raise ConfigurationError(
                "TRIALDESK_SECRET_KEY (32 characters or more) or TRIALDESK_KEY_FILE is "
                "required with this database"
            )
        database = self.sqlite_path
        if database is not None:
            _check_key_file_place(path, database)
        try:
            return keyfile.read_or_create(path, note=f"database: {self.safe_database_name}")
        except keyfile.KeyFileError as exc:
            raise ConfigurationError(str(exc)) from None

    @property
    def server_key(self) -> bytes:
        """The newest server key (TRIALDESK_SECRET_KEY, or the key file's last key)."""
        return self.server_keys[-1]

    @property
    def safe_database_name(self) -> str:
        """The database as people name it (no password)."""
        database = self.sqlite_path
        if database is not None:
            return str(database.expanduser().resolve())
        return make_url(self.database_url).render_as_string(hide_password=True)


def default_key_file(database: Path) -> Path:
    """The default key file of a SQLite database, in the user's config folder."""
    return keyfile.default_path(platformdirs.user_config_path("trialdesk"), database)


def legacy_key_file(database: Path) -> Path:
    """Where earlier versions kept the key file: beside the database."""
    return database.with_name(database.name + ".key")


def _check_key_file_place(path: Path, database: Path) -> None:
    legacy = legacy_key_file(database)
    if path != legacy.absolute() and legacy.exists():
        _log.warning(
            "a server key file of earlier versions is still beside the database (%s), "
            "while %s is used: delete it, and any copy of that folder",
            legacy,
            path,
        )
    if path == legacy.absolute():
        target = default_key_file(database)
        _log.warning(
            "the server key file %s is beside the database: whoever copies the folder "
            "takes both. Move it out of the folder: `mkdir -p -m 700 %s && mv %s %s` "
            "(or set TRIALDESK_KEY_FILE)",
            legacy,
            target.parent,
            legacy,
            target,
        )
        return
    if path.parent.resolve() == database.absolute().parent.resolve():
        raise ConfigurationError(
            f"the key file {path} is in the database's folder: whoever copies the folder "
            "would take both; keep it elsewhere (TRIALDESK_KEY_FILE, or leave it unset)"
        )


_log = logging.getLogger("trialdesk.keys")
