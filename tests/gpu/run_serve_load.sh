#!/usr/bin/env bash
# tests/gpu/run_serve_load.sh - how many real-time sessions one GPU sustains in
# `sinkstream serve` (docs/SERVER.md "Several sessions on one GPU"), on the device machine:
# tools/serve_load.py starts the server, then 1, 2, 4, 6, 8 unbounded real-time sessions of
# 832x480 at 16 fps (live view on), and prints the table: sessions, fps per session, min
# fps, lag, real time yes/no, GPU memory.
#
#   SK_LIB_DIR=.dev/serve/lib SK_SERVE_BIN=.dev/serve/sinkstream bash tests/gpu/run_serve_load.sh
#
#   SK_SERVE_BIN=path   a CUDA build of sinkstream (default build-cuda/sinkstream)
#   SK_LIB_DIR=dir      shared libraries the device lacks (cJSON, libmicrohttpd, FFmpeg,
#                       sentencepiece, OpenBLAS: `ldd` of the binary here), put first on
#                       LD_LIBRARY_PATH
#   SK_MODEL=dir        a converted model directory; default: random weights of the
#                       wan2.1-1.3b shape (serve --random-model: no files, the same sizes)
#   SK_SESSIONS=list    session counts (default 1,2,4,6,8)
#   SK_SERVE_DEVICE=d   default cuda
#   OUT=dir             serve_load.txt (the table) and serve_load.json there (default /tmp)
# Extra arguments go to tools/serve_load.py (e.g. --fps 24 --seconds 30 --no-live-view).
# Exit status: 2 when the binary cannot run (a library missing), else serve_load.py's.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SK_SERVE_BIN:-$ROOT/build-cuda/sinkstream}
LOG=${OUT:-/tmp}
mkdir -p "$LOG"
if [ -n "${SK_LIB_DIR:-}" ]; then
  LIBS=$(cd "$SK_LIB_DIR" && pwd)
  export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if [ ! -x "$BIN" ]; then
  echo "run_serve_load.sh: $BIN is not an executable; set SK_SERVE_BIN to a CUDA build" >&2
  exit 2
fi
missing=$(ldd "$BIN" 2>/dev/null | grep "not found")
if [ -n "$missing" ]; then
  echo "run_serve_load.sh: $BIN needs libraries this machine lacks; copy them into SK_LIB_DIR:" >&2
  echo "$missing" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
if [ -n "${SK_MODEL:-}" ]; then
  MODEL=(--model "$SK_MODEL")
else
  MODEL=(--random-model wan2.1-1.3b)
fi
python3 "$ROOT/tools/serve_load.py" --spawn "$BIN" "${MODEL[@]}" --device "${SK_SERVE_DEVICE:-cuda}" \
  --sessions "${SK_SESSIONS:-1,2,4,6,8}" --width 832 --height 480 --json "$LOG/serve_load.json" "$@" \
  2>"$LOG/serve_load.log" | tee "$LOG/serve_load.txt"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || tail -40 "$LOG/serve_load.log" >&2
exit "$rc"
