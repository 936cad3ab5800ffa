"""Load every part of iceprod-dag from an installed wheel: the site plugins, the web UI, the pilot zipapp.

Run by scripts/wheel-check.sh with the fresh venv's Python, outside the checkout. Every iceprod_dag module
loaded must come from that venv: one found in the checkout (an editable install seen through
--system-site-packages) means the wheel lacks it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

SITES = ("local", "condor", "slurm", "sge", "pbs", "lsf")


def main() -> int:
    installed = Path(sysconfig.get_paths()["purelib"]).resolve()
    work = Path(tempfile.mkdtemp(prefix="wheel-check-"))
    os.environ["ICEPROD_DAG_HOME"] = str(work / "home")

    from iceprod_dag.sites.registry import site_class

    for name in SITES:
        site_class(name)

    from iceprod_dag.webui import create_app

    app = create_app({"DB": f"sqlite:///{work / 'stats.sqlite'}", "RUNS_DIR": str(work / "runs")})
    client = app.test_client()
    for url in ("/login", "/static/style.css"):  # a template and a static file, both package data
        status = client.get(url).status_code
        if status != 200:
            raise SystemExit(f"wheel check: GET {url} answered {status}")

    from iceprod_dag.compile.pilotzip import build_zipapp

    pilot = build_zipapp(work / "pilot.pyz")
    subprocess.run([sys.executable, pilot, "run", "--help"], check=True, stdout=subprocess.DEVNULL)

    outside = sorted(
        f"{name} ({module.__file__})"
        for name, module in list(sys.modules.items())
        if name.startswith("iceprod_dag")
        and getattr(module, "__file__", None)
        and not Path(module.__file__).resolve().is_relative_to(installed)
    )
    if outside:
        raise SystemExit("wheel check: loaded from outside the wheel's install:\n  " + "\n  ".join(outside))
    loaded = sum(1 for name in sys.modules if name.startswith("iceprod_dag"))
    sys.stderr.write(f"wheel check: {len(SITES)} sites, the web UI and the pilot load from {installed} ")
    sys.stderr.write(f"({loaded} modules)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
