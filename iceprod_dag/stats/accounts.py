"""Account tables: users, API tokens and dataset visibility (used by the web UI), on the stats database's Base.

They share ``iceprod_dag.stats.models.Base`` so one database (and one Alembic history) holds everything; the
migration is ``iceprod_dag/stats/migrations/versions/acc1_accounts.py``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Engine, Float, ForeignKey, Index, Integer, String, or_, update
from sqlalchemy.orm import Mapped, mapped_column

from iceprod_dag.stats.db import writer
from iceprod_dag.stats.models import Base

#: roles, weakest first: a user owns datasets, production submits for the shared production account
ROLES = ("user", "production", "admin")
#: the owner name of datasets submitted by production users
PRODUCTION_OWNER = "production"
#: token kinds: "api" acts as its user (CLI); "pilot" may only claim, heartbeat and report for one dataset
TOKEN_KINDS = ("api", "pilot")


class User(Base):
    """A person (or the production account) who logs in to the web UI or uses the API."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(32), default="user")
    #: werkzeug.security hash (scrypt); None: the user can only use tokens
    password_hash: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[float] = mapped_column(Float)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: a login cookie carries the generation it was made in; logout, a password change or a disable bumps it
    session_gen: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiToken(Base):
    """A bearer token, stored as the sha256 of its random text (it is never stored in clear)."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(16), default="api")
    #: sha256 hex of the token text (tokens are 256 random bits, so a fast hash is enough)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: the first characters of the token, to tell tokens apart in listings
    prefix: Mapped[str] = mapped_column(String(16))
    #: pilot tokens: the one dataset they may report for
    dataset_pk: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)


class DatasetAccess(Base):
    """Visibility of a dataset: a private one is seen only by its owner and admins (no row: public)."""

    __tablename__ = "dataset_access"

    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    #: extra priority given at submission (production datasets get more)
    priority: Mapped[int] = mapped_column(Integer, default=0)


ACCOUNT_TABLES = [User.__table__, ApiToken.__table__, DatasetAccess.__table__]

#: last_used_at is rewritten at most this often per token: every write takes the database's one write lock
TOKEN_USE_RESOLUTION_S = 60.0


def record_token_use(engine: Engine, token_id: int, last_used_at: float | None, now: float) -> None:
    """Move a token's ``last_used_at`` to now when it is older than TOKEN_USE_RESOLUTION_S.

    Concurrent requests of one pilot must not queue on the write lock for a timestamp: the write happens
    once a minute, in its own BEGIN IMMEDIATE transaction (a read-then-write deferred transaction fails with
    "database is locked" on SQLite when another connection wrote in between).
    """
    if last_used_at is not None and now - last_used_at < TOKEN_USE_RESOLUTION_S:
        return
    with writer(engine).begin() as conn:
        conn.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id)
            .where(or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - TOKEN_USE_RESOLUTION_S))
            .values(last_used_at=now)
        )
