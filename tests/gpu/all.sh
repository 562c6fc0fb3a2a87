#!/usr/bin/env bash
# tests/gpu/all.sh - every GPU correctness check, on the device machine, in one go:
#   gpu_check_ops        the op case table, CPU oracle vs CUDA f32 and bf16 (incl. the
#                        fused rmsnorm_rope3d at widths up to 5120), then attention
#                        again on the mma.sync path (SK_CUDA_NO_WGMMA=1) and on cuDNN
#                        (SK_CUDA_CUDNN_ATTN=1) and on the one-pass FA3 kernel (SK_CUDA_ATTN=fa3)
#   gpu_check_attn_fa3   the FA3 kernel in every tile config against the CPU (ragged, several
#                        non-adjacent ranges, 12/24 heads) and, at the real shapes, against
#                        the generic kernel
#   gpu_check_dit        the tiny DiT fixtures (sink run, prompt switch): CPU, CUDA f32, bf16
#   gpu_check_kv_policies every KV fixture (policies, switches, built-in noise, rolling rel/abs)
#   gpu_check_taehv      full-width random TAEHV decode/encode: CUDA vs CPU, streaming vs whole
#   gpu_check_umt5       the umT5 encoder, CUDA f32 / bf16 vs CPU
#   gpu_check_pp         pipeline parallelism (1 GPU: NCCL self-loop + loopback)
#   gpu_check_fp8        the FP8 ops (quantize bytes equal to the CPU's, e4m3 GEMM against the
#                        CPU emulation) and the tiny DiT with --dtype fp8; again with the row
#                        scales applied in a second kernel (SK_CUDA_FP8_MODE=1, =2)
#   check_vae_overlap.sh generate with the VAE overlapped vs not: bitwise identical frames
# then prints one table and exits non-zero when any check failed, crashed, or ran no
# comparison (a check that compares nothing proves nothing). Timings are not run here
# (tests/gpu/bench.sh and the checks' own timing parts are benchmarks).
#
#   bash tests/gpu/all.sh              # build (sm_90) unless SK_GPU_BIN_DIR is set, then run
#   SK_GPU_BIN_DIR=dir                 # prebuilt gpu_check_* and sinkstream (CUDA) in dir
#   OUT=dir                            # logs and the table go there too (default: a temp dir)
#   SK_GPU_MEMCHECK=1                  # add compute-sanitizer memcheck of the op cases
#   SK_GPU_CHECK_TIMEOUT=s             # per-check limit (default 600 s; a timeout fails)
#   SK_GPU_FA3_TIMEOUT=s               # the same for the two FA3 checks (default 300 s)
set -u
export NCCL_NVLS_ENABLE=0
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOG=${OUT:-$(mktemp -d)}
mkdir -p "$LOG"
BIN=${SK_GPU_BIN_DIR:-}
if [ -z "$BIN" ]; then
  cmake -S "$ROOT" -B "$ROOT/build-gpu" -DSK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DSK_FFMPEG=OFF -DSK_TESTS=OFF >"$LOG/gpu_build.log" 2>&1 &&
    cmake --build "$ROOT/build-gpu" -j"$(nproc)" --target gpu_check_ops gpu_check_attn_fa3 gpu_check_dit \
      gpu_check_kv_policies gpu_check_taehv gpu_check_umt5 gpu_check_pp gpu_check_fp8 sinkstream \
      >>"$LOG/gpu_build.log" 2>&1 || { tail -30 "$LOG/gpu_build.log"; exit 2; }
  BIN="$ROOT/build-gpu"
fi
export SK_SOURCE_DIR="$ROOT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
  head -1 | tee "$LOG/gpu.txt"

rows=()
fail=0
# run NAME PASS_RE FAIL_RE CMD...: the check's exit status and its count of passing and
# failing comparison lines (PASS_RE / FAIL_RE: extended regexes on its output)
run() {
  local name=$1 pre=$2 fre=$3
  shift 3
  local t0=$SECONDS
  timeout "${SK_GPU_CHECK_TIMEOUT:-600}" "$@" >"$LOG/$name.log" 2>&1
  local rc=$? secs=$((SECONDS - t0))
  [ "$rc" -eq 124 ] && echo "$name: timed out after ${SK_GPU_CHECK_TIMEOUT:-600}s (FAIL)" >>"$LOG/$name.log"
  local np nf
  np=$(grep -cE "$pre" "$LOG/$name.log")
  nf=$(grep -cE "$fre|timed out after" "$LOG/$name.log")
  local verdict=PASS
  if [ "$rc" -ne 0 ] || [ "$nf" -ne 0 ]; then verdict=FAIL; fi
  if [ $((np + nf)) -eq 0 ]; then verdict="FAIL (no comparison)"; fi
  [ "$verdict" = PASS ] || fail=1
  rows+=("$(printf '| %-34s | %5d | %5d | %4d | %5ds | %s |' "$name" "$np" "$nf" "$rc" "$secs" "$verdict")")
  echo "== $name: $verdict ($np passed, $nf failed, exit $rc, ${secs}s)"
  [ "$verdict" = PASS ] || grep -E "$fre|error|Error" "$LOG/$name.log" | head -20
}

OPS_PASS='\| PASS$'
OPS_FAIL='\| FAIL|CUDA failed|CPU reference failed|no comparison ran'
run check_ops "$OPS_PASS" "$OPS_FAIL" "$BIN/gpu_check_ops" --no-time
run check_ops_attention_mma "$OPS_PASS" "$OPS_FAIL" env SK_CUDA_NO_WGMMA=1 \
  "$BIN/gpu_check_ops" --op attention --no-time
run check_ops_attention_cudnn "$OPS_PASS" "$OPS_FAIL" env SK_CUDA_CUDNN_ATTN=1 \
  "$BIN/gpu_check_ops" --op attention --no-time
# the FA3 kernel has never run: its own check first (it prints a HANG line and stops
# within seconds when a barrier deadlocks), and both FA3 runs capped at 300 s so a hang
# cannot eat the whole device call
SK_GPU_CHECK_TIMEOUT=${SK_GPU_FA3_TIMEOUT:-300} \
  run check_attn_fa3 "$OPS_PASS" "$OPS_FAIL|failed:|HANG" "$BIN/gpu_check_attn_fa3" --no-time
SK_GPU_CHECK_TIMEOUT=${SK_GPU_FA3_TIMEOUT:-300} \
  run check_ops_attention_fa3 "$OPS_PASS" "$OPS_FAIL" env SK_CUDA_ATTN=fa3 \
  "$BIN/gpu_check_ops" --op attention --no-time
run check_ops_rmsnorm_rope3d "$OPS_PASS" "$OPS_FAIL" "$BIN/gpu_check_ops" --op rmsnorm_rope3d --no-time
run check_dit ' PASS ' ' FAIL |no comparison ran' "$BIN/gpu_check_dit" --no-time
run check_kv_policies ' PASS ' ' FAIL |no comparison ran' "$BIN/gpu_check_kv_policies" --no-time
run check_taehv ' PASS ' ' FAIL ' "$BIN/gpu_check_taehv" --no-time
run check_umt5 ' ok$' 'FAIL' "$BIN/gpu_check_umt5"
run check_pp ' PASS ' ' FAIL ' "$BIN/gpu_check_pp" --gpus 1
run check_fp8 ' PASS ' ' FAIL |no comparison ran' "$BIN/gpu_check_fp8" --no-time
run check_fp8_mode1 ' PASS ' ' FAIL |no comparison ran' env SK_CUDA_FP8_MODE=1 \
  "$BIN/gpu_check_fp8" --no-time
run check_fp8_mode2 ' PASS ' ' FAIL |no comparison ran' env SK_CUDA_FP8_MODE=2 \
  "$BIN/gpu_check_fp8" --no-time
run check_vae_overlap 'bitwise identical' 'DIFFER|did not overlap|overlapped' \
  env SK_BENCH_BIN="$BIN/sinkstream" bash "$ROOT/tests/gpu/check_vae_overlap.sh"
if [ "${SK_GPU_MEMCHECK:-0}" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  run memcheck_ops "$OPS_PASS" "$OPS_FAIL|Invalid|ERROR SUMMARY: [1-9]" compute-sanitizer \
    --tool memcheck --error-exitcode 3 --print-limit 20 "$BIN/gpu_check_ops" --quick --no-time \
    --op linear,rmsnorm,rmsnorm_rope3d,attention,rope3d,conv2d,noise
fi

{
  echo
  echo "GPU: $(cat "$LOG/gpu.txt" 2>/dev/null)"
  echo
  echo "| check                              | pass  | fail  | exit | time   | result |"
  echo "|------------------------------------|-------|-------|------|--------|--------|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "all.sh: $([ $fail -eq 0 ] && echo 'every GPU check passed' || echo 'FAILED')"
} | tee "$LOG/table.md"
exit $fail
