#!/usr/bin/env bash
# tests/gpu/run_fp8.sh - issue 19's FP8 figures on the device machine in one go, each part
# written to $OUT as soon as it is done (at most 8 files):
#   check_fp8.txt    gpu_check_fp8: the ops against the CPU oracle (FP8 attention included), the
#                    tiny DiT, GEMM timings, the FP8 attention table (last)
#   bench_13b.txt    wan2.1-1.3b 832x480, LongLive sink 3 + window 12: --dtype fp8 against a
#                    bf16 engine (speed of both, x0 error of 40 chunks), per-op profile of fp8
#   bench_5b4.txt    wan2.2-5b 1280x704 (multishot), UniPC 4 steps: the same, 8 chunks
#   bench_5b2.txt    the same at 2 steps, 40 chunks (the 5B quality run)
#   bench_fifo.txt   1.3B fifo 21 bf16, 8 warm-up chunks: the ring first wraps in the measured
#                    loop (chunk 8), which must still allocate nothing (issue 19)
#   check_fp8_modes.txt  gpu_check_fp8 with the scales in a second kernel (modes 1 and 2)
#   gpu.txt, log.txt     the card; every command's stderr
#   BIN=dir          sinkstream and gpu_check_fp8 (built for sm_90); LD_LIBRARY_PATH as needed
#   SK_FP8_BUDGET=s  seconds for the whole script (default 240): a step gets what is left
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/build-cuda}
O=${OUT:-/tmp/fp8}
mkdir -p "$O"
export SK_SOURCE_DIR=$ROOT
L=$O/log.txt
END=$((SECONDS + ${SK_FP8_BUDGET:-240}))
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
  >"$O/gpu.txt" 2>&1
step() { # step FILE TIMEOUT CMD...: append the command and its stdout to FILE
  local f=$1 t=$2
  shift 2
  local left=$((END - SECONDS))
  # a step cut off midway reports nothing: skip it unless its whole limit is left
  if [ "$t" -gt "$left" ]; then echo "=== SKIPPED (${left}s of the budget left): $*" |
    tee -a "$O/$f" >>"$L"; return; fi
  echo "=== $* ($(date -u +%T), limit ${t}s)" | tee -a "$O/$f" >>"$L"
  local t0=$SECONDS
  timeout "$t" "$@" >>"$O/$f" 2>>"$L"
  echo "=== rc=$? in $((SECONDS - t0)) s" | tee -a "$O/$f" >>"$L"
}
S=$BIN/sinkstream
step check_fp8.txt 70 "$BIN/gpu_check_fp8" --reps 5
# the benches never time the FP8 attention's emulation kernel: a shape cuDNN declines is an error
export SK_CUDA_FP8_ATTN=cudnn
# FP8 self-attention is opt-in until measured (dit/model.c): these runs measure it
export SK_FP8_ATTENTION=1
step bench_13b.txt 45 "$S" bench --device cuda --config wan2.1-1.3b --height 480 --width 832 --kv-policy sink \
  --kv-sink 3 --kv-window 12 --chunks 40 --dtype fp8 --compare-dtype bf16
A5="--config wan2.2-5b --height 704 --width 1280"
step bench_5b4.txt 50 "$S" bench --device cuda $A5 --num-steps 4 --chunks 8 --warmup 3 --dtype fp8 \
  --compare-dtype bf16
step bench_fifo.txt 20 "$S" bench --device cuda --config wan2.1-1.3b --height 480 --width 832 --kv-policy fifo \
  --kv-window 21 --warmup 8 --chunks 10 --no-profile --dtype bf16
step bench_5b2.txt 75 "$S" bench --device cuda $A5 --num-steps 2 --chunks 40 --warmup 3 --no-profile \
  --dtype fp8 --compare-dtype bf16
unset SK_CUDA_FP8_ATTN
step check_fp8_modes.txt 15 env SK_CUDA_FP8_MODE=1 "$BIN/gpu_check_fp8" --no-time --no-attention
step check_fp8_modes.txt 15 env SK_CUDA_FP8_MODE=2 "$BIN/gpu_check_fp8" --no-time --no-attention
echo "run_fp8.sh done at $SECONDS s" >>"$L"
