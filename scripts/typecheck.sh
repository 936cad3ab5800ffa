#!/usr/bin/env bash
# mypy on the package as users install it: plugins/, webui/ and config/ install as iceprod_dag.plugins,
# iceprod_dag.webui and iceprod_dag.config (setup.py's package_dir), which an editable install hides from mypy.
# A tree of symlinks under build/typecheck/ gives mypy the installed layout; settings: [tool.mypy] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tree=build/typecheck
rm -rf "$tree"
mkdir -p "$tree/iceprod_dag"
for entry in iceprod_dag/*; do
  case "$(basename "$entry")" in __pycache__) continue ;; esac
  ln -s "$root/$entry" "$tree/iceprod_dag/$(basename "$entry")"
done
for name in plugins webui config; do
  ln -s "$root/$name" "$tree/iceprod_dag/$name"
done
cd "$tree"
exec python3 -m mypy --config-file "$root/pyproject.toml" --cache-dir "$root/build/.mypy_cache" -p iceprod_dag "$@"
