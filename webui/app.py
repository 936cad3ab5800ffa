"""The Flask application factory: settings, database, blueprints, error pages and JSON errors."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from iceprod_dag.common.exceptions import IceprodDagError
from iceprod_dag.dataset import limits
from iceprod_dag.webui import config as webconfig

log = logging.getLogger(__name__)

#: the Content-Security-Policy of every response (tests/test_webui_browser.py checks the pages keep working)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(test_config: Mapping[str, Any] | None = None, config_file: str | None = None) -> Flask:
    """Build the app. ``test_config`` holds explicit settings (the highest layer, e.g. ``{"DB": url}``)."""
    from iceprod_dag.stats import accounts  # noqa: F401 - the account tables on Base
    from iceprod_dag.stats.db import init_db, make_engine
    from iceprod_dag.stats.inbox import Drainer, drain, usable
    from iceprod_dag.webui.views.auth import LoginThrottle

    app = Flask(__name__)
    # every <int:...> of every route: ids beyond the database's 64-bit integers are a 404 (no such route),
    # not an OverflowError (500) in the driver
    app.url_map.converters["int"] = _Int64Converter
    settings = webconfig.load_config(test_config, config_file)
    app.config.update(settings)
    app.config.update(
        SECRET_KEY=webconfig.secret_key(settings),
        SESSION_COOKIE_SECURE=bool(settings["COOKIE_SECURE"]),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="iceprod_dag_session",
        PERMANENT_SESSION_LIFETIME=datetime.timedelta(hours=12),
        MAX_CONTENT_LENGTH=int(settings["MAX_UPLOAD_MB"]) * 1024 * 1024,
    )
    engine = settings.get("ENGINE") or make_engine(settings["DB"])
    if engine.dialect.name == "sqlite":
        _sqlite_cache(engine, int(settings["SQLITE_CACHE_MB"]))
    if settings.get("INIT_DB", True):
        init_db(engine)
    app.extensions["iceprod_dag_engine"] = engine
    app.extensions["iceprod_dag_limits"] = limits.from_settings(settings)
    app.extensions["iceprod_dag_throttle"] = LoginThrottle()
    app.extensions["iceprod_dag_drainer"] = Drainer(engine)
    if usable(engine):
        while drain(engine):  # reports queued before a crash or restart
            pass
    _register(app)
    return app


class _Int64Converter(IntegerConverter):
    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def _sqlite_cache(engine: Any, megabytes: int) -> None:
    """A bigger page cache per connection: over a million jobs, the jobs table's ten indexes far exceed
    SQLite's 2 MB default, and every report then reads its index pages back from the OS."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA cache_size = -{megabytes * 1024}")
        cur.close()


def _register(app: Flask) -> None:
    from iceprod_dag.webui.views import api, auth, datasets, jobs, logs, monitoring, pilot
    from iceprod_dag.webui.web import ApiError, check_csrf, csrf_token, json_error, load_principal, wants_json

    for bp in (auth.bp, datasets.bp, jobs.bp, logs.bp, monitoring.bp, api.bp, pilot.bp):
        app.register_blueprint(bp)

    @app.before_request
    def _auth() -> None:
        g.started = time.perf_counter()
        g.started_cpu = time.thread_time()
        if request.endpoint == "static":
            return
        load_principal()
        check_csrf()

    @app.after_request
    def _security_headers(response: Any) -> Any:
        # pages load scripts and styles only from /static (data for the plots rides in JSON blocks, which
        # no browser executes); style attributes stay allowed for the progress bars' widths
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.after_request
    def _timing(response: Any) -> Any:
        # Server-Timing (shown by browsers' dev tools; read by bench/web.py): wall and CPU time of this thread
        if "started" in g:
            wall = (time.perf_counter() - g.started) * 1000
            cpu = (time.thread_time() - g.started_cpu) * 1000
            response.headers["Server-Timing"] = f"app;dur={wall:.2f}, cpu;dur={cpu:.2f}"
        return response

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "who": g.get("who")}

    app.jinja_env.filters["ts"] = _format_time
    app.jinja_env.filters["num"] = _format_number

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return json_error(exc.code or 400, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if wants_json():
            return json_error(exc.code or 500, exc.description or exc.name)
        if exc.code in (301, 302, 303, 307, 308) or exc.response is not None:
            return exc.response or exc
        return render_template("error.html", error=exc), exc.code

    @app.errorhandler(IceprodDagError)
    def _our_error(exc: IceprodDagError) -> Any:
        if wants_json():
            return json_error(400, str(exc))
        return render_template("error.html", error=exc), 400

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unexpected error on %s %s", request.method, request.path)
        if wants_json():
            return json_error(500, "internal error; see the server log")
        return render_template("error.html", error=exc), 500


def _format_time(value: float | None) -> str:
    if value is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))


def _format_number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"
