"""Users, their site assignments and their API tokens (stored as hashes only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.principal import Role
from app.db.base import Base


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(String(32))
    created_at: Mapped[datetime]
    # A deactivated user is refused at once, whatever tokens they hold.
    deactivated_at: Mapped[datetime | None]
    deactivation_reason: Mapped[str | None] = mapped_column(String(2000))

    site_links: Mapped[list[UserSite]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class UserSite(Base):
    """A coordinator's access to one site of one study."""

    __tablename__ = "user_sites"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)

    user: Mapped[User] = relationship(back_populates="site_links")


class ApiToken(Base):
    """A bearer token; only its SHA-256 is kept, so a database leak reveals no token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class SignInLink(Base):
    """A one-time link to the staff console. Its token is an HMAC of the server key and
    the link's id (so the email can be written when it is sent, and nothing secret is
    stored); only the token's hash is kept, to find the link."""

    __tablename__ = "sign_in_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    salt: Mapped[str] = mapped_column(String(32))  # random: a reused id makes a new token
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random token; only its hash is kept. A
    session ends at sign-out, when revoked, after `idle` without a request, or at its
    absolute end."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
