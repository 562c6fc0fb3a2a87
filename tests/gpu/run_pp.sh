#!/usr/bin/env bash
# tests/gpu/run_pp.sh - pipeline parallelism on the device machine (docs/MULTIGPU.md):
# builds gpu_check_pp (CUDA + NCCL, sm_90) unless SK_GPU_PP_BIN names a prebuilt one,
# runs the correctness part on every GPU count and, with --time, the scaling table
# (1, 2, 4, ... GPUs, 1 lane and as many lanes as GPUs) on all GPUs of the machine.
#   bash tests/gpu/run_pp.sh            # correctness (1 GPU: NCCL self-loop + loopback)
#   bash tests/gpu/run_pp.sh --time     # + the scaling table (needs 2+ GPUs to mean much)
#   OUT=dir                             # also write the logs there
# NVLink multicast stays off (NCCL_NVLS_ENABLE=0; the transport forces it too).
set -u
export NCCL_NVLS_ENABLE=0
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOG=${OUT:-/tmp}
BIN=${SK_GPU_PP_BIN:-}
if [ -z "$BIN" ]; then
  cmake -S "$ROOT" -B "$ROOT/build-gpu-pp" -DSK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DSK_FFMPEG=OFF -DSK_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >"$LOG/pp_build.log" 2>&1 &&
    cmake --build "$ROOT/build-gpu-pp" --target gpu_check_pp -j"$(nproc)" >>"$LOG/pp_build.log" 2>&1 ||
    { tail -30 "$LOG/pp_build.log"; exit 2; }
  grep -E "NCCL" "$LOG/pp_build.log" | head -2
  BIN="$ROOT/build-gpu-pp/gpu_check_pp"
fi
NG=$(nvidia-smi -L 2>/dev/null | wc -l)
[ "$NG" -ge 1 ] || { echo "no GPU"; exit 2; }
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
nvidia-smi topo -m 2>/dev/null | head -$((NG + 1))
"$BIN" --gpus "$NG" "$@" 2>&1 | tee "$LOG/check_pp.log"
exit "${PIPESTATUS[0]}"
