#!/usr/bin/env bash
# quickstart.sh - the README's main job on a fresh machine: installs the Debian
# packages, builds sinkstream (CUDA too when nvcc is found), then generates a
# short video from a prompt with the tiny test models committed under
# tests/fixtures (random weights: the video is structured noise, but every
# stage of the real pipeline runs: tokenizer -> umT5 -> causal DiT over the
# sink KV cache -> streaming TAEHV decode -> libx264 MP4).
#
# For real checkpoints see docs/MODELS.md (`sinkstream generate --model DIR`).
#   OUT=path      output file (default out/quickstart.mp4)
#   DEVICE=cpu    force the CPU (default auto: the GPU when built with CUDA and one is present)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh

echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

out=${OUT:-out/quickstart.mp4}
mkdir -p "$(dirname "$out")"
fx=tests/fixtures
echo "== generate $out"
./build/sinkstream generate \
  --dit $fx/demo/dit_demo_c16.safetensors \
  --text-encoder $fx/text/umt5_tiny.safetensors --tokenizer $fx/text/spiece_tiny.model \
  --prompt "a cat surfing a wave at sunset" \
  --vae $fx/taehv/taehv_tiny_21.safetensors \
  --frames 21 --height 128 --width 192 --fps 16 \
  --device "${DEVICE:-auto}" -o "$out" -y

if command -v ffprobe >/dev/null 2>&1; then
  ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=codec_name,width,height,nb_read_frames,r_frame_rate -of default=nw=1 "$out"
fi
echo "== wrote $out (21 latent frames -> 81 video frames)"
