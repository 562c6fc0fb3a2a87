#!/usr/bin/env bash
# tests/gpu/run_v2v.sh - video-to-video on the device machine (docs/INPUTS.md, "Latency and
# speed"): wan2.1-1.3b random weights at 832x480, LongLive cache (sink 3, window 12), 4 steps,
# synthetic input frames at the model size through the TAEHV encoder (random taew2_1 layout)
# and the strength path, decoded, every op on one stream (bench --with-input). Prints, per
# case, the steady video fps and the latency from an input frame's arrival to its decoded
# frame (p50 / p99), then one table.
#   cases: t2v (text-to-video with the decode, the baseline), v2v strength 0.6 (2 of 4 steps),
#   strength 1.0 (4 steps + the encode), strength 0.6 with frames arriving in real time at
#   16 fps (a camera: the latency includes gathering a chunk of 12 frames), and LongLive 2.0's
#   shapes (wan2.2-5b, 1280x704, chunk 8... as bench's defaults for it) at strength 0.5.
#   SK_BENCH_BIN=path   a prebuilt sinkstream (built for sm_90) instead of building here
#   OUT=dir             JSON reports and logs (default /tmp)
#   SK_V2V_ARGS="..."   replaces the model/size arguments (CPU check: "--config tiny
#                       --device cpu --chunks 3 --warmup 1"); SK_V2V_NO_5B=1 skips the 5B case
# Exit status: the first failing bench's.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SK_BENCH_BIN:-}
LOG=${OUT:-/tmp}
mkdir -p "$LOG"
if [ -z "$BIN" ]; then
  cmake -S "$ROOT" -B "$ROOT/build-gpu" -DSK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DSK_FFMPEG=OFF -DSK_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >"$LOG/v2v_build.log" 2>&1 &&
    cmake --build "$ROOT/build-gpu" --target sinkstream -j"$(nproc)" >>"$LOG/v2v_build.log" 2>&1 ||
    { tail -30 "$LOG/v2v_build.log"; exit 2; }
  BIN="$ROOT/build-gpu/sinkstream"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null
A=${SK_V2V_ARGS:-"--config wan2.1-1.3b --height 480 --width 832 --kv-policy sink --kv-sink 3 --kv-window 12 --chunks 12 --warmup 8"}
rc=0
run() { # name, bench arguments...
  local name=$1
  shift
  echo "== $name: sinkstream bench $A $* --no-profile"
  "$BIN" bench $A "$@" --no-profile --json >"$LOG/v2v_$name.json" 2>"$LOG/v2v_$name.log"
  local r=$?
  [ "$r" -ne 0 ] && { tail -5 "$LOG/v2v_$name.log"; [ "$rc" -eq 0 ] && rc=$r; }
}
run t2v --with-vae --no-overlap
run v2v_s060 --with-input --strength 0.6
run v2v_s100 --with-input --strength 1.0
run v2v_s060_live --with-input --strength 0.6 --input-live
if [ -z "${SK_V2V_ARGS:-}" ] && [ -z "${SK_V2V_NO_5B:-}" ]; then
  A="--config wan2.2-5b --chunks 6 --warmup 4"
  run ll2_v2v_s050 --with-input --strength 0.5
fi
python3 - "$LOG" <<'EOF'
import json, os, sys
d = sys.argv[1]
rows = []
for name in ("t2v", "v2v_s060", "v2v_s100", "v2v_s060_live", "ll2_v2v_s050"):
    p = os.path.join(d, f"v2v_{name}.json")
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        continue
    try:
        j = json.load(open(p))
    except ValueError:
        print(f"{name}: no JSON (see v2v_{name}.log)")
        continue
    i = j.get("input", {})
    rows.append((name, j["config"], f'{j["width"]}x{j["height"]}', j.get("gpu") or j["device"],
                 i.get("strength", "-"), i.get("steps_run", j["steps"]), j["fps"],
                 j["chunk_ms_p50"], j["chunk_ms_p99"], i.get("latency_p50_ms"),
                 i.get("latency_p99_ms"), i.get("latency_frames")))
print()
print("%-14s %-12s %-9s %-26s %8s %5s %8s %9s %9s %11s %11s %7s" % (
    "case", "config", "size", "device", "strength", "steps", "fps", "chunk p50", "chunk p99",
    "lat p50 ms", "lat p99 ms", "frames"))
f = lambda v, fmt: "-" if v is None or v == "-" else fmt % v
for r in rows:
    print("%-14s %-12s %-9s %-26s %8s %5s %8.2f %9.1f %9.1f %11s %11s %7s" % (
        r[0], r[1], r[2], r[3][:26], f(r[4], "%.2f"), r[5], r[6], r[7], r[8],
        f(r[9], "%.1f"), f(r[10], "%.1f"), f(r[11], "%d")))
EOF
echo "run_v2v exit $rc"
exit "$rc"
