#!/usr/bin/env bash
# quickstart.sh - the README's main job on a fresh machine: installs the Debian
# packages, builds sinkstream (CUDA too when nvcc is found), then generates two
# short videos with the demo model committed in models-demo/ (a tiny causal Wan
# DiT + umT5 + TAEHV trained in this repository on rendered shapes, docs/DEMO.md):
# every stage of the real pipeline runs (tokenizer -> umT5 -> causal DiT over the
# sink KV cache -> streaming TAEHV decode -> libx264 MP4). The committed weights
# come from short GPU training runs: they draw an object of the prompt's colour
# moving the prompt's way on its background (both videos below read right), but
# shapes are still blobs and some prompts lose the object in part of the frames
# (docs/DEMO.md, "Status"); the analysis printed at the end says what the video shows.
#
# For real checkpoints see docs/MODELS.md (`sinkstream generate --model DIR`).
#   OUT=path      output file (default out/quickstart.mp4; the switch example
#                 goes next to it as *_switch.mp4)
#   DEVICE=cpu    force the CPU (default auto: the GPU when built with CUDA and one is present)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh

echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

out=${OUT:-out/quickstart.mp4}
mkdir -p "$(dirname "$out")"
prompt="a red circle moving right on a dark blue background"
echo "== generate $out: \"$prompt\""
./build/sinkstream generate --model models-demo --prompt "$prompt" --seconds 6 \
  --device "${DEVICE:-auto}" -o "$out" -y

# a prompt switch half-way (LongLive KV re-cache at the next chunk boundary)
sw="${out%.*}_switch.${out##*.}"
sched="${out%.*}_switch.jsonl"
cat > "$sched" <<'JSONL'
{"at": 0, "prompt": "a yellow square moving left on a gray background"}
{"at": 3, "prompt": "a magenta square moving down on a gray background"}
JSONL
echo "== generate $sw: prompt switch at 3 s ($sched)"
./build/sinkstream generate --model models-demo --prompts "$sched" --seconds 6 \
  --device "${DEVICE:-auto}" -o "$sw" -y

if command -v ffprobe >/dev/null 2>&1; then
  ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=codec_name,width,height,nb_read_frames,r_frame_rate -of default=nw=1 "$out"
fi
echo "== wrote $out and $sw (6 s each, 192x128, 16 fps)"
py=$(for p in python3 /usr/bin/python3; do "$p" -c "import numpy" 2>/dev/null && { echo "$p"; break; }; done || true)
if [ -n "$py" ]; then
  echo "== what the video shows (tests/demo/analyze.py, pixel statistics)"
  "$py" tests/demo/analyze.py "$out" --prompt "$prompt" | grep -E '"(color_ok|shape_ok|background_ok|motion|motion_ok)"'
fi
