#!/usr/bin/env bash
# tests/gpu/run.sh - build the CUDA backend for sm_90 and run the GPU op checks
# (on the device machine). Extra arguments go to gpu_check_ops.
#   SK_GPU_BIN=path   use a prebuilt gpu_check_ops instead of building here
#   OUT=dir           also write the full logs there
# Exit status: that of gpu_check_ops (0 pass, 1 a case failed, 2 setup),
# or 3 when compute-sanitizer reports an error.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SK_GPU_BIN:-}
LOG=${OUT:-/tmp}
if [ -z "$BIN" ]; then
  cmake -S "$ROOT" -B "$ROOT/build-gpu" -DSK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DSK_FFMPEG=OFF -DSK_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >"$LOG/gpu_build.log" 2>&1 &&
    cmake --build "$ROOT/build-gpu" --target gpu_check_ops -j"$(nproc)" >>"$LOG/gpu_build.log" 2>&1 ||
    { tail -30 "$LOG/gpu_build.log"; exit 2; }
  BIN="$ROOT/build-gpu/gpu_check_ops"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null

"$BIN" "$@" 2>&1 | tee "$LOG/check_ops.log"
rc=${PIPESTATUS[0]}

# the mma.sync attention kernel (the non-Hopper / fallback path) on the same cases
SK_CUDA_NO_WGMMA=1 "$BIN" --op attention --no-time >"$LOG/check_attention_mma.log" 2>&1
arc=$?
echo "attention with SK_CUDA_NO_WGMMA=1: $(grep -E '^check_ops:' "$LOG/check_attention_mma.log" | tail -1) (exit $arc)"
[ "$rc" -eq 0 ] && rc=$arc
# the cuDNN attention path on every attention case it accepts (by default it
# takes only the large shapes)
SK_CUDA_CUDNN_ATTN=1 "$BIN" --op attention --no-time >"$LOG/check_attention_cudnn.log" 2>&1
arc=$?
echo "attention with SK_CUDA_CUDNN_ATTN=1: $(grep -E '^check_ops:' "$LOG/check_attention_cudnn.log" | tail -1) (exit $arc)"
[ "$rc" -eq 0 ] && rc=$arc

src=0
if command -v compute-sanitizer >/dev/null 2>&1; then
  echo "== compute-sanitizer memcheck (shared-table cases of linear, norms, attention, rope, conv, layout) =="
  compute-sanitizer --tool memcheck --error-exitcode 3 --print-limit 20 "$BIN" --quick --no-time \
    --op linear,layernorm,rmsnorm,modulate,gated_add,attention,rope3d,conv2d,patchify,unpatchify,embedding,noise,convert \
    >"$LOG/memcheck.log" 2>&1
  src=$?
  grep -E "ERROR SUMMARY|Invalid|check_ops:" "$LOG/memcheck.log" | tail -5
else
  echo "compute-sanitizer not found: memcheck skipped"
fi

echo "== summary =="
grep -E "FAIL" "$LOG/check_ops.log" | head -20
grep -E "^check_ops:" "$LOG/check_ops.log" | tail -1
echo "check_ops exit $rc, memcheck exit $src"
[ "$rc" -ne 0 ] && exit "$rc"
[ "$src" -ne 0 ] && exit 3
exit 0
