"""The web UI and JSON API (Flask), installed as iceprod_dag.webui: ``create_app`` builds the app."""

from __future__ import annotations

from iceprod_dag.webui.app import create_app

__all__ = ["create_app"]
