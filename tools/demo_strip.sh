#!/usr/bin/env bash
# demo_strip.sh - the README's picture: three frames (0 s, 2 s, 4 s) of a video made by
# `sinkstream generate --frames-dir` with the demo model, side by side in one PNG (FFmpeg's
# hstack). Usage: tools/demo_strip.sh [OUT.png] [PROMPT]   (run after building into build/)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/demo_strip.png}
prompt=${2:-a red circle moving right on a dark blue background}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./build/sinkstream generate --model models-demo --prompt "$prompt" --seconds 5 --seed 1 \
  --frames-dir "$tmp" >/dev/null
f() { printf "%s/frame_%06d.png" "$tmp" "$1"; }
ffmpeg -v error -y -i "$(f 0)" -i "$(f 32)" -i "$(f 64)" -filter_complex \
  "[0]pad=iw+4:ih:0:0:white[a];[1]pad=iw+4:ih:0:0:white[b];[a][b][2]hstack=3,scale=iw*2:ih*2:flags=neighbor" \
  "$out"
echo "wrote $out: \"$prompt\" at 0, 2 and 4 s"
