#!/usr/bin/env bash
# Install iceprod-dag as users do, from a built wheel into a fresh venv, and use it from outside the checkout:
# every site plugin, the web UI, the pilot zipapp (scripts/wheel_check.py) and `iceprod-dag validate`.
# The venv sees the system's packages for the dependencies; the project itself comes only from the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# setuptools builds in build/lib: a stale copy there would hide a file the wheel lacks
rm -rf build/wheel build/lib build/bdist.*
python3 -m pip wheel -q --no-deps . -w build/wheel
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv --without-pip --system-site-packages "$work/venv"  # its pip: the system's, seen through
"$work/venv/bin/python" -m pip install -q --no-deps build/wheel/iceprod_dag-*.whl
cd "$work"
"$work/venv/bin/python" "$root/scripts/wheel_check.py"
"$work/venv/bin/iceprod-dag" validate "$root/config/examples/demo.yaml"
