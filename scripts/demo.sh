#!/usr/bin/env bash
# The main job on a fresh machine: install iceprod-dag, run the demo dataset on the local site (this
# machine, no cluster), then serve the web UI over its results on http://127.0.0.1:${PORT:-8080}.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e .
# the same data home as every later `iceprod-dag` command (~/.local/share/iceprod-dag unless $ICEPROD_DAG_HOME
# says otherwise), so that the runs a user makes after the demo show in this web UI too
home="$(python3 -c 'from iceprod_dag.stats.db import data_home; print(data_home())')"
mkdir -p "$home"
echo "stats database and web UI data in $home"

# the DAG's own exit status (a failed node makes it 1) must not stop the demo before the UI starts
iceprod-dag submit config/examples/demo.yaml --run-dir runs/demo-sim || echo "the demo DAG ended with status $?"
iceprod-dag status runs/demo-sim || true

# the first admin; the password comes from $ICEPROD_DAG_ADMIN_PASSWORD or is made up and printed once
password_file="$home/admin-password"
if [ ! -s "$password_file" ]; then
  (umask 077; printf '%s' "${ICEPROD_DAG_ADMIN_PASSWORD:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')}" > "$password_file")
  iceprod-dag user add admin --role admin --password-file "$password_file"
fi
echo "web UI: http://127.0.0.1:${PORT:-8080}/  user: admin  password: $(cat "$password_file")"
exec iceprod-dag serve --host 127.0.0.1 --port "${PORT:-8080}" --insecure-cookies
