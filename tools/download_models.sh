#!/usr/bin/env bash
# download_models.sh - downloads a published streaming-video model and converts it into a
# sinkstream model directory (tools/convert_checkpoint.py), ready for
#   sinkstream generate --model models/<family> --prompt "..." -o out.mp4 --device cuda
#
# THIS SCRIPT NEEDS THE INTERNET; it cannot run in CI (no network there). CI checks the same
# converter on tiny checkpoints it writes itself (tests/test_convert.c).
#
# usage: bash tools/download_models.sh FAMILY [DOWNLOADS_DIR] [MODEL_DIR]
#   FAMILY         self-forcing | longlive | reward-forcing | rolling-forcing
#   DOWNLOADS_DIR  where the upstream files go (default: models/downloads; reused when present)
#   MODEL_DIR      the converted model directory (default: models/FAMILY)
# environment:
#   PYTHON=python3   a Python with PyTorch (default: python3 or /usr/bin/python3, whichever has it)
#   HF_TOKEN=...     sent to huggingface.co when set (none of these repositories needs it)
#   DTYPE=bf16       --dtype of the converter (bf16 or f32)
#
# What it fetches (public repositories; see docs/MODELS.md):
#   every family     Wan-AI/Wan2.1-T2V-1.3B: models_t5_umt5-xxl-enc-bf16.pth (umT5-XXL encoder,
#                    ~11 GB), google/umt5-xxl/{spiece.model,tokenizer.json,tokenizer_config.json,
#                    special_tokens_map.json}, config.json
#                    madebyollin/taehv (GitHub): taew2_1.pth (TAEHV for Wan 2.1 latents)
#   self-forcing     gdhe17/Self-Forcing: checkpoints/self_forcing_dmd.pt
#   longlive         Efficient-Large-Model/LongLive-1.3B: models/longlive_base.pt, models/lora.pt
#                    (the repository was first published as Efficient-Large-Model/LongLive)
#   reward-forcing   JaydenLu666/Reward-Forcing-T2V-1.3B: rewardforcing.pt
#   rolling-forcing  TencentARC/RollingForcing: checkpoints/rolling_forcing_dmd.pt
# Files are fetched with `hf download` / `huggingface-cli download` when one is installed,
# else with curl from https://huggingface.co/<repo>/resolve/main/<file>.
set -euo pipefail
cd "$(dirname "$0")/.."

family=${1:-}
dl=${2:-models/downloads}
out=${3:-models/${family}}
py=${PYTHON:-}
dtype=${DTYPE:-bf16}

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
case "$family" in
  self-forcing|longlive|reward-forcing|rolling-forcing) ;;
  -h|--help|"") usage ;;
  *) echo "download_models.sh: unknown family '$family'" >&2; usage ;;
esac
if [ -z "$py" ]; then  # the first Python with PyTorch (a pyenv python3 may shadow Debian's)
  for c in python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import torch' 2>/dev/null; then py=$c; break; fi
  done
fi
if [ -z "$py" ] || ! "$py" -c 'import torch' 2>/dev/null; then
  echo "download_models.sh: no Python with PyTorch (apt-get install python3-torch, or set PYTHON=)" >&2
  exit 1
fi

# fetch REPO FILE DEST_DIR: DEST_DIR/FILE (keeps the repository's sub-folders)
fetch() {
  local repo=$1 file=$2 dest=$3
  if [ -s "$dest/$file" ]; then echo "have $dest/$file"; return; fi
  mkdir -p "$dest/$(dirname "$file")"
  echo "download $repo $file"
  if command -v hf >/dev/null 2>&1; then
    hf download "$repo" "$file" --local-dir "$dest"
  elif command -v huggingface-cli >/dev/null 2>&1; then
    huggingface-cli download "$repo" "$file" --local-dir "$dest"
  else
    local auth=()
    [ -n "${HF_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $HF_TOKEN")
    curl -fL --retry 3 -C - "${auth[@]}" -o "$dest/$file.part" \
      "https://huggingface.co/$repo/resolve/main/$file"
    mv "$dest/$file.part" "$dest/$file"
  fi
}

fetch_url() {
  local url=$1 dest=$2
  if [ -s "$dest" ]; then echo "have $dest"; return; fi
  mkdir -p "$(dirname "$dest")"
  echo "download $url"
  curl -fL --retry 3 -C - -o "$dest.part" "$url"
  mv "$dest.part" "$dest"
}

wan=$dl/Wan2.1-T2V-1.3B
fetch Wan-AI/Wan2.1-T2V-1.3B models_t5_umt5-xxl-enc-bf16.pth "$wan"
fetch Wan-AI/Wan2.1-T2V-1.3B config.json "$wan"
for f in spiece.model tokenizer.json tokenizer_config.json special_tokens_map.json; do
  fetch Wan-AI/Wan2.1-T2V-1.3B "google/umt5-xxl/$f" "$wan"
done
fetch_url https://github.com/madebyollin/taehv/raw/main/taew2_1.pth "$dl/taehv/taew2_1.pth"

lora=()
case "$family" in
  self-forcing)
    fetch gdhe17/Self-Forcing checkpoints/self_forcing_dmd.pt "$dl/Self-Forcing"
    dit=$dl/Self-Forcing/checkpoints/self_forcing_dmd.pt ;;
  longlive)
    fetch Efficient-Large-Model/LongLive-1.3B models/longlive_base.pt "$dl/LongLive-1.3B"
    fetch Efficient-Large-Model/LongLive-1.3B models/lora.pt "$dl/LongLive-1.3B"
    dit=$dl/LongLive-1.3B/models/longlive_base.pt
    lora=(--lora "$dl/LongLive-1.3B/models/lora.pt") ;;
  reward-forcing)
    fetch JaydenLu666/Reward-Forcing-T2V-1.3B rewardforcing.pt "$dl/Reward-Forcing-T2V-1.3B"
    dit=$dl/Reward-Forcing-T2V-1.3B/rewardforcing.pt ;;
  rolling-forcing)
    fetch TencentARC/RollingForcing checkpoints/rolling_forcing_dmd.pt "$dl/RollingForcing"
    dit=$dl/RollingForcing/checkpoints/rolling_forcing_dmd.pt ;;
esac

echo "convert -> $out"
"$py" tools/convert_checkpoint.py --family "$family" --dit "$dit" "${lora[@]}" \
  --dit-config "$wan/config.json" \
  --text-encoder "$wan/models_t5_umt5-xxl-enc-bf16.pth" --tokenizer "$wan/google/umt5-xxl" \
  --vae "$dl/taehv/taew2_1.pth" --dtype "$dtype" --out "$out"

bin=build/sinkstream
if [ -x "$bin" ]; then
  "$bin" inspect "$out"
  echo "next: $bin generate --model $out --prompt \"a cat surfing a wave at sunset\" -o out.mp4 --device cuda"
else
  echo "next: build sinkstream (docs/MODELS.md), then: sinkstream inspect $out"
fi
