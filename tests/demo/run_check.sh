#!/usr/bin/env bash
# run_check.sh SCRIPT.py [ARGS] - runs a tests/demo script with the first python3 that has
# numpy (and torch for check_analyze.py, which renders with the training renderer): the Debian
# /usr/bin/python3 when a pyenv shim without them comes first on PATH.
set -euo pipefail
script=$1
shift
mods=numpy
[ "$(basename "$script")" = check_analyze.py ] && mods=numpy,torch
for py in python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c "import $mods" 2>/dev/null; then
    exec "$py" "$(dirname "$0")/$(basename "$script")" "$@"
  fi
done
echo "run_check.sh: no python3 with $mods (tools/install_deps.sh installs python3-numpy, python3-torch)" >&2
exit 1
