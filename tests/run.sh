#!/usr/bin/env bash
# run.sh - the test command (README, .ci/run): installs dependencies, builds,
# runs the CPU test suite, runs it again under ASan+UBSan, then a bounded
# libFuzzer run of every parser (tests/fuzz/run_all.sh). Exits non-zero on any
# failure and on any skipped or compiled-out test (tests/check_no_skips.sh).
# SK_FUZZ_SECONDS (default 30) bounds each fuzz target; 0 skips only the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
jobs=$(nproc)

echo "== build (release, CUDA compiled when nvcc is present)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
echo "== CPU tests"
# Criterion at verbosity 1 prints one [SKIP] line per skipped test; a skip (or a
# test compiled out, which test files report as a skip) fails the run below.
export CRITERION_VERBOSITY_LEVEL=1
cpu_log=build/ctest-cpu.log
set +e
ctest --test-dir build -L cpu --output-on-failure -V -j "$jobs" >"$cpu_log" 2>&1
rc=$?
set -e
grep -E "tests passed|tests failed|Test +#" "$cpu_log" | tail -60
if [ $rc -ne 0 ]; then
  grep -nE -B2 -A25 "\[FAIL\]|Failed|CRASH" "$cpu_log" | head -200
  echo "CPU tests failed (full log: $cpu_log)" >&2
  exit 1
fi
bash tests/check_no_skips.sh "$cpu_log"

echo "== CPU tests under ASan+UBSan"
# -O1: ASan's usual level; at -O0 the CPU convolutions and attention of the
# end-to-end tests run ~50x slower than release and hit Criterion's timeouts.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
  -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DSK_SANITIZE=ON -DSK_CUDA=OFF >/dev/null
cmake --build build-asan -j "$jobs"
# Criterion runs each test in a forked child and reports it passed even when
# LeakSanitizer complains at the child's exit, so the log is scanned as well.
log=build-asan/ctest-sanitizers.log
set +e
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L cpu -V -j "$jobs" >"$log" 2>&1
rc=$?
set -e
grep -E "tests passed|tests failed|Test +#" "$log" | tail -40
if [ $rc -ne 0 ] || grep -qE "ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:" "$log"; then
  grep -nE -A25 "ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:|Failed|FAIL" "$log" | head -150
  echo "sanitizer run failed (full log: $log)" >&2
  exit 1
fi
bash tests/check_no_skips.sh "$log"

# ---- fuzzing (issue 15): every parser a user or a network peer reaches, each
# for SK_FUZZ_SECONDS (default 30; 7 targets: 3.5 min); 0 skips the fuzzers.
secs=${SK_FUZZ_SECONDS:-30}
if [ "$secs" != "0" ]; then
  bash tests/fuzz/run_all.sh "$secs"
fi
# ---- end of fuzzing
echo "== all tests passed"
