#!/usr/bin/env bash
# device_run.sh - one device call of the demo training (tools/train_demo/README in docs/DEMO.md).
#   WORK=dir   checkpoints (resumed from, when they are there; default /tmp/demo_work)
#   STAGES=... train.py --stages (default ae,dit,finetune); LIMIT=seconds hard stop
#   extra arguments go to train.py
# Copies ae.pt, losses.json, the log and dit.pt (split in 15 MB parts) into $OUT when set.
set -uo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/demo_work}
mkdir -p "$WORK"
for f in spiece.model tokens.json ae.pt losses.json; do
  [ -f "$WORK/$f" ] || { [ -f tools/train_demo/ckpt/$f ] && cp tools/train_demo/ckpt/$f "$WORK/"; }
done
[ -f "$WORK/dit.pt" ] || { ls tools/train_demo/ckpt/dit.pt.part_* >/dev/null 2>&1 && cat tools/train_demo/ckpt/dit.pt.part_* > "$WORK/dit.pt"; }
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
timeout "${LIMIT:-500}" python3 tools/train_demo/train.py --work "$WORK" --stages "${STAGES:-ae,dit,finetune}" "$@" 2>&1 | tee "${OUT:-/tmp}/train.log"
rc=$?
echo "train.py exit $rc"
if [ -n "${OUT:-}" ]; then
  cp "$WORK"/ae.pt "$WORK"/losses.json "$OUT"/ 2>/dev/null
  [ -f "$WORK/dit.pt" ] && split -b 15M "$WORK/dit.pt" "$OUT/dit.pt.part_"
  ls -la "$OUT"
fi
exit $rc
