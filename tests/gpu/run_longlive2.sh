#!/usr/bin/env bash
# tests/gpu/run_longlive2.sh - issue 18 on the device machine: the LongLive 2.0 reference run
# (tests/fixtures/longlive2: UniPC 4 and 2 steps, multishot with two cuts, shot clean recache)
# through the reference-run interface on CUDA in f32 (bound 1e-4 rel L2) and bf16 (1e-2),
# then `sinkstream bench --config wan2.2-5b` at 1280x704 (4 and 2 steps, DiT only and with the
# taew2_2 decode): the docs/PERF.md "LongLive 2.0" figures.
#   SK_BENCH_BIN=path   a prebuilt sinkstream (sm_90) instead of building here
#   OUT=dir             reports and logs (default /tmp)
#   SK_LL2_NO_BENCH=1   the reference runs only
# Exit status: 1 when a reference run misses its bound or fails.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SK_BENCH_BIN:-}
LOG=${OUT:-/tmp}
if [ -z "$BIN" ]; then
  cmake -S "$ROOT" -B "$ROOT/build-gpu" -DSK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DSK_FFMPEG=OFF -DSK_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >"$LOG/ll2_build.log" 2>&1 &&
    cmake --build "$ROOT/build-gpu" --target sinkstream -j"$(nproc)" >>"$LOG/ll2_build.log" 2>&1 ||
    { tail -30 "$LOG/ll2_build.log"; exit 2; }
  BIN="$ROOT/build-gpu/sinkstream"
fi
F=$ROOT/tests/fixtures/longlive2
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null
rc=0
for run in "4 unipc4" "2 unipc2" "4 unipc4_clean --shot-clean-recache"; do
  set -- $run
  for dt in f32 bf16; do
    tol=1e-4; [ "$dt" = bf16 ] && tol=1e-2
    lat=$LOG/ll2_$2_$dt.safetensors
    if ! "$BIN" generate --device cuda --act-dtype "$dt" --dit "$F/dit_tiny.safetensors" \
        --dit-config "$F/config.json" --text-embeds "$F/embeds.safetensors" \
        --prompts "$F/schedule.jsonl" --noise-file "$F/noise.safetensors" --latents-out "$lat" \
        --frames 20 --latent-height 4 --latent-width 6 --chunk 2 --sampler unipc --num-steps "$1" \
        --shift 5 --kv-policy multishot --kv-sink 2 --kv-window 8 --no-decode ${3:-} \
        2>"$LOG/ll2_$2_$dt.log"; then
      echo "FAIL cuda $dt $2: generate failed"; tail -3 "$LOG/ll2_$2_$dt.log"; rc=1; continue
    fi
    # relative L2 (the bound of the issue); plain Python, no numpy needed
    r=$(python3 - "$lat" "$F/expected_$2.safetensors" <<'PY'
import json, math, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    d = json.loads(b[8:8 + n])["latents"]
    s, e = d["data_offsets"]
    return struct.unpack("<%df" % ((e - s) // 4), b[8 + n + s:8 + n + e])
a, r = load(sys.argv[1]), load(sys.argv[2])
num = sum((x - y) ** 2 for x, y in zip(a, r))
den = sum(y * y for y in r)
print("%.3e" % math.sqrt(num / den) if all(math.isfinite(x) for x in a) else "nan")
PY
)
    ok=$(python3 -c "import sys; print(1 if sys.argv[1] != 'nan' and float(sys.argv[1]) <= float(sys.argv[2]) else 0)" "$r" "$tol")
    echo "$([ "$ok" = 1 ] && echo PASS || echo FAIL) cuda $dt $2: rel L2 $r (bound $tol)"
    [ "$ok" = 1 ] || rc=1
  done
done
[ "${SK_LL2_NO_BENCH:-0}" = 1 ] && exit $rc
A="--config wan2.2-5b --height 704 --width 1280"
for extra in "--num-steps 4" "--num-steps 2" "--num-steps 4 --with-vae --no-profile" \
             "--num-steps 2 --with-vae --no-profile"; do
  name=ll2_bench_$(echo "$extra" | tr -d ' -')
  echo "=== sinkstream bench $A $extra"
  "$BIN" bench $A --chunks 8 --warmup 3 $extra >"$LOG/$name.txt" 2>"$LOG/$name.log"
  echo "rc=$?"
  grep -vE "^    " "$LOG/$name.txt" | head -14
done
exit $rc
