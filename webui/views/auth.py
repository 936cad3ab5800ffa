"""Log in and out, and manage one's API tokens; failed logins are throttled per user name and address, per
address and per user name."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for

from iceprod_dag.common.exceptions import IceprodDagError
from iceprod_dag.webui.services import accounts
from iceprod_dag.webui.web import engine, login_required, who

bp = Blueprint("auth", __name__)


class LoginThrottle:
    """Failed logins per key (user name and address, address, user name); after too many in the window
    the login is refused.

    Kept in memory: one server process serves the UI (waitress threads share it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str], window: float) -> list[float]:
        now = time.monotonic()
        kept = [t for t in self._failures.get(key, []) if now - t < window]
        self._failures[key] = kept
        return kept

    def blocked_for(self, key: tuple[str, str], limit: int, window: float) -> float:
        """Seconds until this key may try again (0: it may try now)."""
        with self._lock:
            recent = self._recent(key, window)
            if len(recent) < limit:
                return 0.0
            return max(0.0, window - (time.monotonic() - recent[-limit]))

    def fail(self, key: tuple[str, str]) -> None:
        with self._lock:
            if len(self._failures) > 100_000:  # a spray over many names must not grow this without end
                self._failures = {k: v for k, v in self._failures.items() if len(v) > 1}
            self._failures.setdefault(key, []).append(time.monotonic())

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)


def _safe_next(target: str | None) -> str:
    # only local paths: an absolute URL here would make the login page an open redirect
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("datasets.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    name = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    throttle: LoginThrottle = current_app.extensions["iceprod_dag_throttle"]
    address = request.remote_addr or "?"
    key = (name.lower(), address)
    # one name from one address; one address over many names (a password sprayed); one name from many
    # addresses: whichever is over its limit refuses the login (" " is in no user name: it stands for any)
    cfg = current_app.config
    limits = {
        key: cfg["LOGIN_MAX_FAILURES"],
        (" ", address): cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"],
        (name.lower(), " "): cfg["LOGIN_MAX_FAILURES_PER_NAME"],
    }
    wait = max(throttle.blocked_for(k, limit, cfg["LOGIN_LOCK_S"]) for k, limit in limits.items())
    if wait:
        return render_template(
            "login.html",
            next=request.form.get("next", ""),
            error=f"Too many failed logins; try again in {int(wait) + 1} s.",
        ), 429
    principal = accounts.check_password(engine(), name, password) if name and password else None
    if principal is None:
        for k in limits:
            throttle.fail(k)
        return render_template(
            "login.html", next=request.form.get("next", ""), error="Wrong user name or password."
        ), 401
    throttle.forget(key)
    session.clear()  # a fresh session (and CSRF token) on login: no session fixation
    session.permanent = True
    session["uid"] = principal.user_id
    session["gen"] = accounts.session_generation(engine(), principal.user_id)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Any:
    principal = g.get("who")
    if principal is not None and not g.get("by_token"):
        # the cookie is signed, not stored: only a new generation makes a copy of it stop working
        accounts.end_sessions(engine(), principal.name)
    session.clear()
    return redirect(url_for("auth.login"))


@bp.get("/tokens")
@login_required
def tokens() -> Any:
    principal = who()
    items = accounts.list_tokens(engine(), None if principal.is_admin else principal.user_id)
    return render_template("tokens.html", tokens=items, new_token=session.pop("new_token", None))


@bp.post("/tokens")
@login_required
def create_token() -> Any:
    principal = who()
    kind = request.form.get("kind", "api")
    dataset = request.form.get("dataset", "").strip()
    try:
        dataset_pk = int(dataset) if dataset else None
        if kind == "pilot":
            from iceprod_dag.webui.web import dataset_or_404

            if dataset_pk is None:
                raise IceprodDagError("a pilot token needs a dataset id")
            dataset_or_404(dataset_pk, change=True)
        _, text = accounts.create_token(
            engine(), principal.name, name=request.form.get("name", ""), kind=kind, dataset_pk=dataset_pk
        )
    except (ValueError, IceprodDagError) as exc:
        flash(f"Cannot make the token: {exc}", "error")
        return redirect(url_for("auth.tokens"))
    session["new_token"] = text
    return redirect(url_for("auth.tokens"))


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def revoke(token_id: int) -> Any:
    try:
        accounts.revoke_token(engine(), token_id, by=who())
        accounts.TOKEN_CACHE.clear()
        flash(f"Token {token_id} revoked.", "info")
    except IceprodDagError as exc:
        flash(str(exc), "error")
    return redirect(url_for("auth.tokens"))
