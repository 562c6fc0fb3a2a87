#!/usr/bin/env bash
# run_check.sh - runs tests/demo/check_demo.py with the first python3 that has numpy (the
# Debian one, /usr/bin/python3, when a pyenv shim without numpy comes first on PATH).
set -euo pipefail
for py in python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c "import numpy" 2>/dev/null; then
    exec "$py" "$(dirname "$0")/check_demo.py" "$@"
  fi
done
echo "run_check.sh: no python3 with numpy (apt-get install python3-numpy; tools/install_deps.sh does)" >&2
exit 1
