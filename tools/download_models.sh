#!/usr/bin/env bash
# download_models.sh - downloads a published streaming-video model and converts it into a
# sinkstream model directory (tools/convert_checkpoint.py), ready for
#   sinkstream generate --model models/<family> --prompt "..." -o out.mp4 --device cuda
#
# THIS SCRIPT NEEDS THE INTERNET; it cannot run in CI (no network there). CI checks the same
# converter on tiny checkpoints it writes itself (tests/test_convert.c).
#
# usage: bash tools/download_models.sh FAMILY [DOWNLOADS_DIR] [MODEL_DIR]
#   FAMILY         self-forcing | longlive | longlive2 | reward-forcing | rolling-forcing
#   DOWNLOADS_DIR  where the upstream files go (default: models/downloads; reused when present)
#   MODEL_DIR      the converted model directory (default: models/FAMILY)
# environment:
#   PYTHON=python3   a Python with numpy (default: python3 or /usr/bin/python3, whichever has it;
#                    PyTorch is not needed: the releases are torch.save zip files)
#   HF_TOKEN=...     sent to huggingface.co when set (none of these repositories needs it)
#   DTYPE=bf16       --dtype of the converter (bf16 or f32)
#   LL2_WEIGHTS=bf16 longlive2: bf16 (LongLive-2.0-5B model_bf16.pt), s4 or s2 (the NVFP4-trained
#                    4-step / 2-step models as plain bf16, model_te.pt of -NVFP4-S4 / -S2)
#
# What it fetches (public repositories; see docs/MODELS.md):
#   every family     Wan-AI/Wan2.1-T2V-1.3B (longlive2: Wan-AI/Wan2.2-TI2V-5B):
#                    models_t5_umt5-xxl-enc-bf16.pth (umT5-XXL encoder, ~11 GB),
#                    google/umt5-xxl/{spiece.model,tokenizer.json,tokenizer_config.json,
#                    special_tokens_map.json}, config.json
#                    madebyollin/taehv (GitHub): taew2_1.pth (TAEHV for Wan 2.1 latents;
#                    longlive2: taew2_2.pth, for the 48-channel Wan 2.2 latents)
#   longlive2        also Wan-AI/Wan2.2-TI2V-5B: Wan2.2_VAE.pth (its encoder, for --image)
#   self-forcing     gdhe17/Self-Forcing: checkpoints/self_forcing_dmd.pt
#   longlive         Efficient-Large-Model/LongLive-1.3B: models/longlive_base.pt, models/lora.pt
#                    (the repository was first published as Efficient-Large-Model/LongLive)
#   longlive2        Efficient-Large-Model/LongLive-2.0-5B: model_bf16.pt (merged LoRA, bf16), or
#                    LongLive-2.0-5B-NVFP4-S4 / -S2: model_te.pt (LL2_WEIGHTS=s4 / s2); never
#                    model_4o6.pt (packed NVFP4 for Blackwell, which sinkstream does not read)
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

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
case "$family" in
  self-forcing|longlive|longlive2|reward-forcing|rolling-forcing) ;;
  -h|--help|"") usage ;;
  *) echo "download_models.sh: unknown family '$family'" >&2; usage ;;
esac
if [ -z "$py" ]; then  # the first Python with numpy (a pyenv python3 may shadow Debian's)
  for c in python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import numpy' 2>/dev/null; then py=$c; break; fi
  done
fi
if [ -z "$py" ] || ! "$py" -c 'import numpy' 2>/dev/null; then
  echo "download_models.sh: no Python with numpy (apt-get install python3-numpy or pip install numpy, or set PYTHON=)" >&2
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

# LongLive 2.0 is Wan2.2-TI2V-5B (48 latent channels: taew2_2); the rest Wan2.1-T2V-1.3B
wanrepo=Wan-AI/Wan2.1-T2V-1.3B tae=taew2_1
[ "$family" = longlive2 ] && wanrepo=Wan-AI/Wan2.2-TI2V-5B tae=taew2_2
wan=$dl/${wanrepo#*/}
fetch "$wanrepo" models_t5_umt5-xxl-enc-bf16.pth "$wan"
fetch "$wanrepo" config.json "$wan"
for f in spiece.model tokenizer.json tokenizer_config.json special_tokens_map.json; do
  fetch "$wanrepo" "google/umt5-xxl/$f" "$wan"
done
fetch_url "https://github.com/madebyollin/taehv/raw/main/$tae.pth" "$dl/taehv/$tae.pth"

lora=() extra=()
case "$family" in
  self-forcing)
    fetch gdhe17/Self-Forcing checkpoints/self_forcing_dmd.pt "$dl/Self-Forcing"
    dit=$dl/Self-Forcing/checkpoints/self_forcing_dmd.pt ;;
  longlive)
    fetch Efficient-Large-Model/LongLive-1.3B models/longlive_base.pt "$dl/LongLive-1.3B"
    fetch Efficient-Large-Model/LongLive-1.3B models/lora.pt "$dl/LongLive-1.3B"
    dit=$dl/LongLive-1.3B/models/longlive_base.pt
    lora=(--lora "$dl/LongLive-1.3B/models/lora.pt") ;;
  longlive2)
    case "${LL2_WEIGHTS:-bf16}" in
      bf16) repo=Efficient-Large-Model/LongLive-2.0-5B file=model_bf16.pt ;;
      s4) repo=Efficient-Large-Model/LongLive-2.0-5B-NVFP4-S4 file=model_te.pt ;;
      s2) repo=Efficient-Large-Model/LongLive-2.0-5B-NVFP4-S2 file=model_te.pt ;;
      *) echo "download_models.sh: LL2_WEIGHTS must be bf16, s4 or s2" >&2; exit 2 ;;
    esac
    fetch "$repo" "$file" "$dl/${repo#*/}"
    # the 2-step model samples with 2 UniPC steps
    [ "${LL2_WEIGHTS:-bf16}" = s2 ] && extra=(--set num-steps=2)
    # image-to-video (generate --image) encodes with the Wan2.2 VAE's encoder
    fetch "$wanrepo" Wan2.2_VAE.pth "$wan"
    extra+=(--wan-vae "$wan/Wan2.2_VAE.pth")
    dit=$dl/${repo#*/}/$file ;;
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
  --vae "$dl/taehv/$tae.pth" --dtype "$dtype" --out "$out" "${extra[@]}"

bin=build/sinkstream
if [ -x "$bin" ]; then
  "$bin" inspect "$out"
  echo "next: $bin generate --model $out --prompt \"a cat surfing a wave at sunset\" -o out.mp4 --device cuda"
else
  echo "next: build sinkstream (docs/MODELS.md), then: sinkstream inspect $out"
fi
