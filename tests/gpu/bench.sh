#!/usr/bin/env bash
# tests/gpu/bench.sh - the docs/PERF.md "Full DiT chunk loop" measurement on the device
# machine: wan2.1-1.3b at 832x480, LongLive cache, graphs on vs off (latents must be
# bitwise identical), then with the TAEHV decode (overlapped on a second stream, then in
# turn, --no-overlap). Extra arguments go to every bench.
#   SK_BENCH_BIN=path   use a prebuilt sinkstream (built for sm_90) instead of building here
#   OUT=dir             write the JSON reports and logs there (default /tmp)
# Exit status: the first failing bench's (1: allocation in the loop or graph mismatch).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SK_BENCH_BIN:-}
LOG=${OUT:-/tmp}
if [ -z "$BIN" ]; then
  cmake -S "$ROOT" -B "$ROOT/build-gpu" -DSK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DSK_FFMPEG=OFF -DSK_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >"$LOG/bench_build.log" 2>&1 &&
    cmake --build "$ROOT/build-gpu" --target sinkstream -j"$(nproc)" >>"$LOG/bench_build.log" 2>&1 ||
    { tail -30 "$LOG/bench_build.log"; exit 2; }
  BIN="$ROOT/build-gpu/sinkstream"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null
A="--config wan2.1-1.3b --height 480 --width 832 --kv-policy sink --kv-sink 3 --kv-window 12"
rc=0
"$BIN" bench $A --chunks 12 --compare-graph "$@" | tee "$LOG/bench_dit.txt"
r=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] && rc=$r
"$BIN" bench $A --chunks 12 --compare-graph --json "$@" >"$LOG/bench_dit.json" 2>"$LOG/bench_dit.log"
r=$?; [ "$rc" -eq 0 ] && rc=$r
"$BIN" bench $A --chunks 8 --with-vae "$@" | tee "$LOG/bench_vae.txt"
r=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] && rc=$r
"$BIN" bench $A --chunks 8 --with-vae --no-overlap "$@" | tee "$LOG/bench_vae_seq.txt"
r=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] && rc=$r
echo "bench exit $rc"
exit "$rc"
