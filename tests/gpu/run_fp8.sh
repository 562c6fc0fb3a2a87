#!/usr/bin/env bash
# tests/gpu/run_fp8.sh - issue 19's FP8 figures on the device machine in one go, each part
# written to $OUT as soon as it is done (at most 8 files):
#   check_fp8.txt    gpu_check_fp8 (ops against the CPU oracle, the tiny DiT, GEMM timings)
#   bench_13b.txt    bench wan2.1-1.3b 832x480 (LongLive sink 3 + window 12), bf16 then fp8;
#                    then fifo 21 (the cudaMalloc of issue 19) bf16
#   bench_5b4.txt    bench wan2.2-5b 1280x704 (multishot), 4 UniPC steps, bf16 then fp8
#   bench_5b2.txt    the same at 2 steps
#   quality.txt      40 chunks fp8 against bf16 (x0 relative L2 per chunk), 1.3B then 5B
#   check_fp8_modes.txt  gpu_check_fp8 with the scales in a second kernel (modes 1 and 2)
#   gpu.txt, log.txt     the card; every command's stderr
#   BIN=dir   sinkstream and gpu_check_fp8 (built for sm_90); LD_LIBRARY_PATH as needed
#   SK_FP8_QUICK=1   skip the 5B quality run (the longest part)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/build-cuda}
O=${OUT:-/tmp/fp8}
mkdir -p "$O"
export SK_SOURCE_DIR=$ROOT
L=$O/log.txt
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
  >"$O/gpu.txt" 2>&1
step() { # step FILE TIMEOUT CMD...: append the command and its stdout to FILE
  local f=$1 t=$2
  shift 2
  echo "=== $* ($(date -u +%T))" | tee -a "$O/$f" >>"$L"
  local t0=$SECONDS
  timeout "$t" "$@" >>"$O/$f" 2>>"$L"
  echo "=== rc=$? in $((SECONDS - t0)) s" | tee -a "$O/$f" >>"$L"
}
S=$BIN/sinkstream
step check_fp8.txt 60 "$BIN/gpu_check_fp8" --reps 10
A13="--config wan2.1-1.3b --height 480 --width 832 --kv-policy sink --kv-sink 3 --kv-window 12"
step bench_13b.txt 40 "$S" bench $A13 --chunks 10 --no-profile --dtype bf16
step bench_13b.txt 45 "$S" bench $A13 --chunks 10 --dtype fp8
A5="--config wan2.2-5b --height 704 --width 1280"
step bench_5b4.txt 60 "$S" bench $A5 --num-steps 4 --chunks 6 --warmup 3 --no-profile --dtype bf16
step bench_5b4.txt 70 "$S" bench $A5 --num-steps 4 --chunks 6 --warmup 3 --dtype fp8
step bench_5b2.txt 45 "$S" bench $A5 --num-steps 2 --chunks 6 --warmup 3 --no-profile --dtype bf16
step bench_5b2.txt 45 "$S" bench $A5 --num-steps 2 --chunks 6 --warmup 3 --no-profile --dtype fp8
step quality.txt 60 "$S" bench $A13 --chunks 40 --warmup 0 --no-profile --dtype fp8 --compare-dtype bf16
step bench_13b.txt 40 "$S" bench --config wan2.1-1.3b --height 480 --width 832 --kv-policy fifo \
  --kv-window 21 --chunks 6 --no-profile --dtype bf16
[ "${SK_FP8_QUICK:-0}" = 1 ] ||
  step quality.txt 100 "$S" bench $A5 --num-steps 2 --chunks 40 --warmup 0 --no-profile \
    --dtype fp8 --compare-dtype bf16
step check_fp8_modes.txt 40 env SK_CUDA_FP8_MODE=1 "$BIN/gpu_check_fp8" --no-time
step check_fp8_modes.txt 40 env SK_CUDA_FP8_MODE=2 "$BIN/gpu_check_fp8" --no-time
echo "run_fp8.sh done" >>"$L"
