#!/usr/bin/env bash
# train_all.sh - the one command that retrains the demo family from scratch (docs/DEMO.md):
# tokenizer, TAEHV, DiT + umT5 (teacher forcing, then self-generated context), then the model
# directory through tools/convert_checkpoint.py and the loss curves into docs/.
#   PRESET=cpu|h100  default: h100 where PyTorch sees a CUDA device, else cpu. cpu: small
#                    models on 64x96 crops, ~23 min on 2 CPU cores (the first demo weights:
#                    they drew the background only); h100: the committed
#                    models-demo/'s models and stage lengths for one H100 (~13 min of stages,
#                    docs/DEMO.md)
#   OUT_MODEL=dir    model directory to write (default models-demo)
#   WORK=dir         checkpoints (default out/train_demo); SEED=n (default 0)
# Needs python3 with PyTorch (CUDA is used when present) and sentencepiece (tokenizer stage,
# and the converter's tokenizer check).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-out/train_demo}
stages=tokenizer,ae,dit,finetune
if ! python3 -c "import sentencepiece" 2>/dev/null; then
  # the device machines have no sentencepiece module: the tokenizer stage (a second of CPU,
  # deterministic: the ids in tokens.json are what the trainer reads) runs where it is installed
  if [ -f "$WORK/tokens.json" ] && [ -f "$WORK/spiece.model" ]; then
    stages=ae,dit,finetune
    echo "train_all.sh: no sentencepiece module here; using the tokenizer in $WORK"
  else
    echo "train_all.sh: python3 has no sentencepiece module, and $WORK has no tokenizer yet;" >&2
    echo "  run 'python3 tools/train_demo/train.py --work $WORK --stages tokenizer' where it is" >&2
    echo "  installed (Debian: python3-sentencepiece), then this again" >&2
    exit 2
  fi
fi
common=(--work "$WORK" --seed "${SEED:-0}" --check --stages "$stages" --ae-init structured)
PRESET=${PRESET:-$(python3 -c "import torch; print('h100' if torch.cuda.is_available() else 'cpu')")}
case "$PRESET" in cpu|h100) ;; *) echo "train_all.sh: PRESET=$PRESET: expected cpu or h100" >&2; exit 2;; esac
echo "train_all.sh: preset $PRESET, work dir $WORK, seed ${SEED:-0}"
if [ "$PRESET" = cpu ]; then
  python3 tools/train_demo/train.py "${common[@]}" --preset cpu --device cpu \
    --ae-seconds 110 --ae-batch 4 --ae-lr 3e-4 --dit-seconds 1020 --ft-seconds 240 \
    --dit-batch 4 --chunks 3 --dit-lr 1e-3 --ft-lr 3e-4 --ema 0.99 --save-every 100
else
  # one H100: ~13 min of stages; split over device calls with --stages (each stage resumes
  # from $WORK): device_run.sh
  python3 tools/train_demo/train.py "${common[@]}" --preset h100 \
    --ae-seconds 90 --ae-lr 5e-4 --dit-seconds 380 --dit-batch 48 --ft-seconds 270
fi
python3 tools/train_demo/export.py --work "$WORK" --out "${OUT_MODEL:-models-demo}"
python3 tools/train_demo/plot_losses.py "$WORK/losses.json" docs/demo_losses.png
