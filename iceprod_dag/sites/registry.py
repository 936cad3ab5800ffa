"""Find site plugins through the `iceprod_dag.sites` entry-point group and check them when loaded.

Built-in sites register exactly as a third-party package would (see setup.py). Names match exactly:
there is no prefix guessing and no module scanning.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from iceprod_dag.common.exceptions import InvalidSiteError, UnknownSiteError
from iceprod_dag.sites.base import ACTION_METHODS, Action, Site

log = logging.getLogger(__name__)

GROUP = "iceprod_dag.sites"


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        # the same distribution seen twice (an editable install plus a build dir) is one plugin
        found.setdefault(ep.name, ep)
    return found


def available_sites() -> list[str]:
    """Names of every installed site plugin, sorted."""
    return sorted(_entry_points())


def site_class(name: str) -> type[Site]:
    """The validated Site subclass registered under exactly this name."""
    eps = _entry_points()
    if name not in eps:
        installed = ", ".join(sorted(eps)) or "none"
        raise UnknownSiteError(f"no site plugin named {name!r}; installed sites: {installed}")
    ep = eps[name]
    try:
        cls = ep.load()
    except Exception as exc:  # a broken plugin must not look like a missing one
        raise InvalidSiteError(f"site plugin {name!r} ({ep.value}) failed to import: {exc}") from exc
    validate_site_class(cls, name, where=ep.value)
    return cls


def validate_site_class(cls: Any, name: str, where: str = "") -> None:
    """Raise InvalidSiteError naming every way cls breaks the site contract for entry point `name`."""
    where = where or getattr(cls, "__qualname__", repr(cls))
    if not (inspect.isclass(cls) and issubclass(cls, Site)):
        raise InvalidSiteError(
            f"site plugin {name!r} ({where}) is not a subclass of iceprod_dag.sites.base.Site"
        )
    problems = []
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        problems.append("does not implement " + ", ".join(missing))
    declared = getattr(cls, "name", None)
    if declared != name:
        problems.append(f"declares name {declared!r} but is registered as {name!r}")
    problems += capability_problems(cls)
    if problems:
        raise InvalidSiteError(f"site plugin {name!r} ({where}) " + "; ".join(problems))


def capability_problems(cls: type[Site]) -> list[str]:
    """How cls's declared capabilities and its action methods disagree (empty when they agree)."""
    caps = cls.capabilities
    if not isinstance(caps, frozenset) or not all(isinstance(a, Action) for a in caps):
        return [f"capabilities must be a frozenset of iceprod_dag.sites.base.Action, not {caps!r}"]
    problems = []
    for action, method in ACTION_METHODS.items():
        # the class's own method, looked up to check the declaration (callers never probe for it)
        overridden = getattr(cls, method) is not getattr(Site, method)
        if action in caps and not overridden:
            problems.append(f"declares {action.value!r} but does not implement {method}()")
        elif overridden and action not in caps:
            problems.append(
                f"implements {method}() but does not declare Action.{action.name} in capabilities"
            )
    return problems


def load_site(name: str, options: Mapping[str, Any] | None = None) -> Site:
    """An instance of the site plugin registered as `name`, configured with options."""
    cls = site_class(name)
    log.debug("loaded site %s from %s", name, cls.__module__)
    return cls(options)
