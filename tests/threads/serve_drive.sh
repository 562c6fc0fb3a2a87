#!/usr/bin/env bash
# serve_drive.sh - drives `sinkstream serve` through every call at once (two sessions,
# fMP4 + MJPEG + SSE readers, prompts racing the steps, pause/resume, deletes while
# streams are open, shutdown with a session running); exits non-zero when the server
# does not stop cleanly or a ThreadSanitizer report appears in its log. For a TSan build:
#   cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSK_CUDA=OFF \
#     -DCMAKE_C_FLAGS_DEBUG="-g -O1 -fsanitize=thread" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1 -fsanitize=thread" \
#     -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread
#   cmake --build build-tsan --target sinkstream && bash tests/threads/serve_drive.sh build-tsan/sinkstream
set -euo pipefail
bin=${1:?usage: serve_drive.sh path/to/sinkstream}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/serve.log
TSAN_OPTIONS="halt_on_error=0 ${TSAN_OPTIONS:-}" "$bin" serve --model tests/fixtures/tiny_model \
  --port 0 --max-sessions 3 --record-dir "$tmp/rec" >"$log" 2>&1 &
sp=$!
for _ in $(seq 150); do grep -q "ready on" "$log" && break; sleep 0.2; done
port=$(grep -o "ready on http://127.0.0.1:[0-9]*" "$log" | grep -o "[0-9]*$")
s=http://127.0.0.1:$port
id() { python3 -c "import json,sys; print(json.load(sys.stdin)['id'])"; }
a=$(curl -sf -XPOST $s/v1/sessions -d '{"prompt":"a cat","width":64,"height":64,"unbounded":true,"record":true}' | id)
b=$(curl -sf -XPOST $s/v1/sessions -d '{"prompt":"a cat","width":64,"height":64,"seconds":2,"pace":false}' | id)
timeout 8 curl -sN $s/v1/sessions/$a/live.mp4 -o /dev/null &
timeout 8 curl -sN $s/v1/sessions/$a/live.mjpeg -o /dev/null &
timeout 8 curl -sN $s/v1/sessions/$a/events -o /dev/null &
timeout 8 curl -sN $s/v1/sessions/$b/events -o /dev/null &
for _ in 1 2 3; do
  curl -s -XPOST $s/v1/sessions/$a/prompt -d '{"prompt":"a dog"}' >/dev/null &
  curl -s $s/v1/sessions >/dev/null; curl -s $s/v1/server >/dev/null; sleep 0.5
done
curl -sf -XPOST $s/v1/sessions/$a/pause >/dev/null; sleep 1; curl -sf -XPOST $s/v1/sessions/$a/resume >/dev/null
sleep 2; curl -sf -XDELETE $s/v1/sessions/$b >/dev/null
sleep 2; curl -sf -XDELETE $s/v1/sessions/$a >/dev/null
c=$(curl -sf -XPOST $s/v1/sessions -d '{"prompt":"x","width":64,"height":64,"unbounded":true}' | id)
timeout 3 curl -sN $s/v1/sessions/$c/live.mp4 -o /dev/null &
sleep 2
kill -INT $sp
rc=0; wait $sp || rc=$?
wait || true
n=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
echo "serve_drive: server exit $rc, $n ThreadSanitizer reports"
[ "$n" = 0 ] || grep -A30 "WARNING: ThreadSanitizer" "$log" | head -80
[ "$rc" = 0 ] && [ "$n" = 0 ]
