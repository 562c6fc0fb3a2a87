#!/usr/bin/env bash
# check_no_skips.sh LOG - fails when a ctest -V log of the Criterion suites (run
# with CRITERION_VERBOSITY_LEVEL=1) shows a skipped test, and names each one.
# Tests that are compiled out without an optional library report themselves as
# a skip (e.g. output::ffmpeg_tests_compiled_out), so they are caught here too.
# A green suite with skips would hide what was never checked (issue 16, point 5).
set -euo pipefail
log=${1:?usage: check_no_skips.sh CTEST_LOG}
[ -f "$log" ] || { echo "check_no_skips: no log '$log'" >&2; exit 2; }
# the log must come from a verbose run, else "no [SKIP] line" proves nothing
if ! grep -qE "\[(PASS|RUN ) *\]" "$log"; then
  echo "check_no_skips: '$log' has no per-test lines; run ctest -V with CRITERION_VERBOSITY_LEVEL=1" >&2
  exit 2
fi
skips=$(grep -E "\[SKIP\]" "$log" | sed -E 's/^[0-9]+: //' | sort -u || true)
if [ -n "$skips" ]; then
  echo "== $(printf '%s\n' "$skips" | wc -l) test(s) skipped or compiled out (every test must run;" \
       "install the missing library with tools/install_deps.sh):" >&2
  printf '%s\n' "$skips" >&2
  exit 1
fi
echo "== no test skipped ($(grep -cE "\[PASS\]" "$log") passed)"
