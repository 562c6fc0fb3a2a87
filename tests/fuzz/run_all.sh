#!/usr/bin/env bash
# run_all.sh - builds the libFuzzer targets (clang, ASan+UBSan, build-fuzz/) and
# fuzzes each for a bounded time from its seed corpus in tests/fuzz/corpus_<name>
# (the inputs it finds are kept in build-fuzz/corpus_<name>). Prints, per target,
# the executions and the coverage libFuzzer reached; exits non-zero on the first
# crash, leak, timeout or sanitizer report (the reproducer is in build-fuzz/).
# Usage: tests/fuzz/run_all.sh [SECONDS_PER_TARGET (default 30)] [TARGET ...]
# CI (tests/run.sh) runs it with the default: 7 targets x 30 s = 3.5 min of fuzzing.
# A longer run, e.g. an hour each overnight: tests/fuzz/run_all.sh 3600
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(safetensors prompts model_json config_json control_lines http serve_json)
fi
jobs=$(nproc)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DSK_FUZZ=ON -DSK_TESTS=OFF -DSK_CUDA=OFF \
  -DSK_FFMPEG=OFF >/dev/null
cmake --build build-fuzz -j "$jobs" --target $(printf 'fuzz_%s ' "${targets[@]}")
summary=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus_$t
  mkdir -p "$corpus"
  # the seed corpus of safetensors predates this script's naming
  seeds=tests/fuzz/corpus_$t
  [ -d "$seeds" ] || { echo "no seed corpus $seeds" >&2; exit 1; }
  echo "== fuzz $t for ${secs}s"
  log=build-fuzz/fuzz_$t.log
  # -close_fd_mask=1: the control target's "status" command prints to stdout
  if ! (cd build-fuzz && ./fuzz_$t -max_total_time="$secs" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -close_fd_mask=1 \
        "corpus_$t" "../$seeds") >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz_$t failed (log: $log; reproducer: build-fuzz/crash-* / leak-* / timeout-*)" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  units=$(ls "$corpus" | wc -l)
  # edges instrumented in the binary (the parser and whatever it links)
  edges=$(grep -oE '\(([0-9]+) inline 8-bit counters\)' "$log" | grep -oE '[0-9]+' | head -1)
  line=$(printf '%-14s %10s execs  %-22s of %6s edges  corpus %s' "$t" "${execs:-?}" \
    "${cov:-?}" "${edges:-?}" "$units")
  echo "$line"
  summary+=("$line")
done
echo "== fuzz summary (${secs}s each)"
printf '%s\n' "${summary[@]}"
