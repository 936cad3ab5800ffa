"""What every blueprint shares: the database engine, who is asking, permission checks, CSRF, JSON errors."""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from flask import abort, current_app, g, jsonify, request, session
from sqlalchemy import Engine, select
from werkzeug.exceptions import HTTPException

from iceprod_dag.stats.accounts import User
from iceprod_dag.webui.services import accounts
from iceprod_dag.webui.services.accounts import Principal

F = TypeVar("F", bound=Callable[..., Any])


class ApiError(HTTPException):
    """An API error answered as JSON ``{"error": message, "field": field}``."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = status
        self.message = message
        self.field = field


def engine() -> Engine:
    return current_app.extensions["iceprod_dag_engine"]


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics"


def json_error(status: int, message: str, field: str | None = None) -> Any:
    body: dict[str, Any] = {"error": message, "status": status}
    if field:
        body["field"] = field
    return jsonify(body), status


def load_principal() -> None:
    """Set ``g.who`` from a bearer token, else from the session cookie (None: anonymous)."""
    g.who = None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "header 'Authorization': expected 'Bearer <token>'", "Authorization")
        who = accounts.verify_token(engine(), token.strip())
        if who is None:
            raise ApiError(401, "header 'Authorization': unknown, expired or revoked token", "Authorization")
        g.who = who
        g.by_token = True
        return
    g.by_token = False
    uid = session.get("uid")
    if uid is None:
        return
    with engine().connect() as conn:
        row = conn.execute(
            select(User.id, User.name, User.role, User.disabled, User.session_gen).where(User.id == uid)
        ).first()
    # a cookie made before a logout, password change or disable carries an older generation: ended
    if row is None or row.disabled or session.get("gen") != row.session_gen:
        session.clear()
        return
    g.who = Principal(row.id, row.name, row.role)


def who() -> Principal:
    """The principal of this request; 401 (JSON) or a redirect to the login page when there is none."""
    principal = g.get("who")
    if principal is None:
        if wants_json():
            raise ApiError(401, "log in or send 'Authorization: Bearer <token>'", "Authorization")
        from flask import redirect, url_for

        abort(redirect(url_for("auth.login", next=request.full_path)))
    return principal


def login_required(view: F) -> F:
    """Pages and API calls for logged-in users (pilot tokens only reach the pilot endpoints)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = who()
        if principal.is_pilot and not getattr(view, "pilot_ok", False):
            raise ApiError(403, "a pilot token may only claim work, heartbeat, report stats and upload logs")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = who()
        if not principal.is_admin or principal.is_pilot:
            if wants_json():
                raise ApiError(403, "admins only")
            abort(403)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------- CSRF (forms and cookie-authenticated API calls)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


#: the endpoints that take an unsafe request without a session (they still need the CSRF token)
ANONYMOUS_FORMS = frozenset({"auth.login", "auth.logout"})


def check_csrf() -> None:
    """Unsafe requests authenticated by the session cookie must carry the session's CSRF token.

    Token-authenticated API calls carry no cookie, so they cannot be forged by another site.
    """
    if request.method in ("GET", "HEAD", "OPTIONS") or g.get("by_token"):
        return
    if g.get("who") is None and request.endpoint not in ANONYMOUS_FORMS:
        who()  # 401 (or the login page) first: without a session there is nothing to forge
    if current_app.config.get("CSRF_DISABLED"):
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent, expected):
        if wants_json():
            raise ApiError(
                400,
                "missing or wrong CSRF token (form field 'csrf_token' or header X-CSRF-Token)",
                "csrf_token",
            )
        abort(400, "missing or wrong CSRF token; reload the page and try again")


# every byte to a space but digits to '0': 19 digits in a row may be an integer beyond 64 bits, which orjson
# reads as a float, silently; the json module keeps it an int, which the database then refuses with a 400
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_NUMBER = b"0" * 19


def _fast_loads(raw: bytes) -> Any:
    """The JSON document by orjson (a batch of stats records parses ~3x faster), None when orjson cannot
    read it exactly."""
    if _LONG_NUMBER in raw.translate(_DIGITS):
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def json_body() -> dict[str, Any]:
    """The request's JSON object; 400 naming the problem for anything else."""
    if not request.is_json:
        raise ApiError(415, "body: expected Content-Type application/json", "body")
    data = _fast_loads(request.get_data())
    if data is None:  # what only the json module reads (NaN, integers beyond 64 bits, UTF-16), or not JSON
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nested deeper than the json module can follow
            raise ApiError(400, "body: JSON nested too deep", "body") from None
    if data is None:
        raise ApiError(400, "body: not valid JSON", "body")
    if not isinstance(data, dict):
        raise ApiError(400, f"body: expected a JSON object, got {type(data).__name__}", "body")
    return data


def int_arg(name: str, default: int | None = None, lo: int = 0, hi: int = 10**12) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query '{name}': expected an integer, got {raw!r}", name) from None
    if not lo <= value <= hi:
        raise ApiError(400, f"query '{name}': must be between {lo} and {hi}, got {value}", name)
    return value


def not_found(message: str) -> Any:
    if wants_json():
        raise ApiError(404, message)
    abort(404, message)


def dataset_or_404(pk: int, change: bool = False) -> dict[str, Any]:
    """A dataset the principal may read (and change, if asked); someone else's private one is a 404."""
    from iceprod_dag.webui.services import queries

    principal = who()
    if not 0 <= pk < 2**63:  # an id from a JSON body: the database's integers are 64-bit
        not_found(f"no dataset {pk}")
    with engine().connect() as conn:
        ds = queries.get_dataset(conn, pk)
    if ds is None or not accounts.can_read(principal, ds["owner"], bool(ds["private"]), ds["id"]):
        not_found(f"no dataset {pk}")
    assert ds is not None
    if change and not accounts.can_change(principal, ds["owner"]):
        if wants_json():
            raise ApiError(403, f"dataset {pk} belongs to {ds['owner']!r}; you may not change it")
        abort(403)
    return ds
