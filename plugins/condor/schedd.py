"""Locate the schedd a site configuration names: the local one, or a named one through a collector."""

from __future__ import annotations

import htcondor2

from iceprod_dag.common.exceptions import SiteError


def locate_schedd(name: str | None = None, collector: str | None = None) -> htcondor2.Schedd:
    """The schedd to talk to; a SiteError names the schedd and pool when it cannot be found."""
    if not name and not collector:
        try:
            return htcondor2.Schedd()
        except Exception as exc:  # HTCondorException: no local schedd or no configuration
            raise SiteError(f"cannot find the local schedd ({exc}); is CONDOR_CONFIG set?") from exc
    pool = collector or "the local pool"
    try:
        coll = htcondor2.Collector(collector) if collector else htcondor2.Collector()
        ad = (
            coll.locate(htcondor2.DaemonType.Schedd, name)
            if name
            else coll.locate(htcondor2.DaemonType.Schedd)
        )
    except Exception as exc:
        raise SiteError(f"cannot locate schedd {name or '(default)'} in {pool}: {exc}") from exc
    return htcondor2.Schedd(ad)
