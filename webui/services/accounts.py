"""Users, passwords, tokens and who may see or change a dataset.

Passwords are hashed with werkzeug (scrypt). Tokens are 256 random bits shown once; only their sha256 is
stored, so a stolen database does not give working tokens, and looking one up costs one indexed query.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import threading
import time
from typing import Any

from sqlalchemy import Engine, insert, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from iceprod_dag.common.exceptions import AuthError, IceprodDagError
from iceprod_dag.stats.accounts import (
    PRODUCTION_OWNER,
    ROLES,
    TOKEN_KINDS,
    ApiToken,
    DatasetAccess,
    User,
    record_token_use,
)
from iceprod_dag.stats.db import writer
from iceprod_dag.stats.models import Dataset

log = logging.getLogger(__name__)

TOKEN_PREFIX = "idt_"
#: werkzeug hash method of new passwords (tests lower the cost; stored hashes name their own method)
PASSWORD_METHOD = "scrypt"


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in user, or a token acting for one (pilot tokens are scoped)."""

    user_id: int
    name: str
    role: str
    token_kind: str | None = None  #: None for a browser session
    dataset_pk: int | None = None  #: the one dataset a pilot token may report for

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_pilot(self) -> bool:
        return self.token_kind == "pilot"


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise IceprodDagError(f"role must be one of {', '.join(ROLES)}, got {role!r}")


def add_user(engine: Engine, name: str, role: str = "user", password: str | None = None) -> int:
    """Create a user; the error names an existing name or a bad role."""
    _check_role(role)
    if not name or len(name) > 255 or any(c.isspace() for c in name):
        raise IceprodDagError(f"user name must be 1-255 characters without spaces, got {name!r}")
    with writer(engine).begin() as conn:  # BEGIN IMMEDIATE: read-then-write never meets a stale snapshot
        if conn.scalar(select(User.id).where(User.name == name)) is not None:
            raise IceprodDagError(f"user {name!r} already exists")
        pw = generate_password_hash(password, method=PASSWORD_METHOD) if password else None
        row = insert(User).values(
            name=name, role=role, password_hash=pw, created_at=time.time(), disabled=False
        )
        return int(conn.execute(row.returning(User.id)).scalar_one())


def _update_user(engine: Engine, name: str, **values: Any) -> None:
    """Change a user and end every login session of theirs (a new session generation)."""
    with writer(engine).begin() as conn:  # BEGIN IMMEDIATE: read-then-write never meets a stale snapshot
        done = conn.execute(
            update(User).where(User.name == name).values(session_gen=User.session_gen + 1, **values)
        )
        if not done.rowcount:
            raise IceprodDagError(f"no user named {name!r}")


def set_password(engine: Engine, name: str, password: str) -> None:
    """A new password; every session logged in with the old one ends."""
    _update_user(engine, name, password_hash=generate_password_hash(password, method=PASSWORD_METHOD))


def set_disabled(engine: Engine, name: str, disabled: bool) -> None:
    """Disable (or enable again) a user: their sessions end at once, their tokens within TOKEN_CACHE's TTL."""
    _update_user(engine, name, disabled=disabled)
    TOKEN_CACHE.clear()


def end_sessions(engine: Engine, name: str) -> None:
    """Log a user out everywhere: every copy of every session cookie of theirs stops working."""
    _update_user(engine, name)


def session_generation(engine: Engine, user_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(User.session_gen).where(User.id == user_id)) or 0)


def list_users(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(User.id, User.name, User.role, User.created_at, User.disabled).order_by(User.name)
        )
        return [dict(r._mapping) for r in rows]


def check_password(engine: Engine, name: str, password: str) -> Principal | None:
    """The user if the password matches (and the user is enabled), else None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(User.id, User.name, User.role, User.password_hash, User.disabled).where(User.name == name)
        ).first()
    if row is None or row.disabled or not row.password_hash:
        # spend the same time as a real check so that timing does not reveal which names exist
        check_password_hash(_DUMMY_HASH(), password)
        return None
    if not check_password_hash(row.password_hash, password):
        return None
    return Principal(row.id, row.name, row.role)


_dummy: list[str] = []


def _DUMMY_HASH() -> str:  # noqa: N802 - a lazily made constant
    if not _dummy:
        _dummy.append(generate_password_hash(secrets.token_hex(8), method=PASSWORD_METHOD))
    return _dummy[0]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    engine: Engine,
    user: str,
    *,
    name: str = "",
    kind: str = "api",
    dataset_pk: int | None = None,
    expires_in_s: float | None = None,
) -> tuple[int, str]:
    """A new token for a user: (its id, its text). The text is shown once and never stored."""
    if kind not in TOKEN_KINDS:
        raise IceprodDagError(f"token kind must be one of {', '.join(TOKEN_KINDS)}, got {kind!r}")
    if kind == "pilot" and dataset_pk is None:
        raise IceprodDagError("a pilot token needs the dataset it may report for")
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    with writer(engine).begin() as conn:  # BEGIN IMMEDIATE: read-then-write never meets a stale snapshot
        user_id = conn.scalar(select(User.id).where(User.name == user))
        if user_id is None:
            raise IceprodDagError(f"no user named {user!r}")
        if dataset_pk is not None and conn.scalar(select(Dataset.id).where(Dataset.id == dataset_pk)) is None:
            raise IceprodDagError(f"no dataset with id {dataset_pk}")
        values = {
            "user_id": user_id,
            "name": name,
            "kind": kind,
            "token_hash": token_hash(text),
            "prefix": text[: len(TOKEN_PREFIX) + 6],
            "dataset_pk": dataset_pk,
            "created_at": now,
            "expires_at": now + expires_in_s if expires_in_s else None,
        }
        token_id = conn.execute(insert(ApiToken).values(**values).returning(ApiToken.id)).scalar_one()
    return int(token_id), text


def list_tokens(engine: Engine, user_id: int | None = None) -> list[dict[str, Any]]:
    cols = (
        ApiToken.id,
        ApiToken.name,
        ApiToken.kind,
        ApiToken.prefix,
        ApiToken.dataset_pk,
        ApiToken.created_at,
        ApiToken.expires_at,
        ApiToken.revoked_at,
        ApiToken.last_used_at,
        User.name.label("user"),
    )
    q = select(*cols).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    if user_id is not None:
        q = q.where(ApiToken.user_id == user_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def revoke_token(engine: Engine, token_id: int, by: Principal | None = None) -> None:
    """Revoke a token; a non-admin may revoke only their own."""
    with writer(engine).begin() as conn:  # BEGIN IMMEDIATE: read-then-write never meets a stale snapshot
        owner = conn.scalar(select(ApiToken.user_id).where(ApiToken.id == token_id))
        if owner is None:
            raise IceprodDagError(f"no token with id {token_id}")
        if by is not None and not by.is_admin and owner != by.user_id:
            raise AuthError(f"token {token_id} belongs to another user")
        conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=time.time()))


class _TokenCache:
    """Recently verified tokens for a few seconds, so that a pilot's reports cost no extra query each."""

    TTL_S = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Principal]] = {}

    def get(self, digest: str) -> Principal | None:
        hit = self._items.get(digest)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[digest] = (time.monotonic() + self.TTL_S, principal)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


TOKEN_CACHE = _TokenCache()


def verify_token(engine: Engine, token: str) -> Principal | None:
    """The principal a bearer token acts as, or None (unknown, revoked, expired, disabled user).

    A revocation takes effect within ``_TokenCache.TTL_S`` seconds in other server processes, at once here.
    """
    digest = token_hash(token)
    cached = TOKEN_CACHE.get(digest)
    if cached is not None:
        return cached
    now = time.time()
    q = (
        select(
            ApiToken.id,
            ApiToken.kind,
            ApiToken.dataset_pk,
            ApiToken.expires_at,
            ApiToken.revoked_at,
            ApiToken.last_used_at,
            User.id.label("uid"),
            User.name,
            User.role,
            User.disabled,
        )
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest)
    )
    with engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None or row.revoked_at is not None or row.disabled:
        return None
    if row.expires_at is not None and row.expires_at < now:
        return None
    record_token_use(engine, row.id, row.last_used_at, now)
    principal = Principal(row.uid, row.name, row.role, row.kind, row.dataset_pk)
    TOKEN_CACHE.put(digest, principal)
    return principal


# ---------------------------------------------------------------- dataset permissions


def owner_for(principal: Principal) -> str:
    """The owner name a new dataset gets: production users submit for the production account."""
    return PRODUCTION_OWNER if principal.role == "production" else principal.name


def can_change(principal: Principal, owner: str | None) -> bool:
    """Suspend, resume, retry or edit a dataset of this owner."""
    if principal.is_pilot:
        return False
    if principal.is_admin:
        return True
    if owner == principal.name:
        return True
    return principal.role == "production" and owner == PRODUCTION_OWNER


def can_read(principal: Principal, owner: str | None, private: bool, dataset_pk: int | None = None) -> bool:
    """See a dataset: public ones are seen by everyone logged in; private ones by who may change them."""
    if principal.is_pilot:
        return dataset_pk is not None and principal.dataset_pk == dataset_pk
    return not private or can_change(principal, owner)


def set_private(engine: Engine, dataset_pk: int, private: bool, priority: int | None = None) -> None:
    with writer(engine).begin() as conn:  # BEGIN IMMEDIATE: read-then-write never meets a stale snapshot
        found = conn.execute(select(DatasetAccess).where(DatasetAccess.dataset_pk == dataset_pk)).first()
        if found is None:
            conn.execute(
                insert(DatasetAccess).values(dataset_pk=dataset_pk, private=private, priority=priority or 0)
            )
        else:
            values: dict[str, Any] = {"private": private}
            if priority is not None:
                values["priority"] = priority
            conn.execute(update(DatasetAccess).where(DatasetAccess.dataset_pk == dataset_pk).values(**values))
