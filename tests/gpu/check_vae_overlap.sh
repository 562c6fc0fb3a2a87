#!/usr/bin/env bash
# tests/gpu/check_vae_overlap.sh - on the device machine: `sinkstream generate
# --device cuda --vae ...` must write bitwise the same decoded frames (--rgb-out)
# with the TAEHV decode overlapped on a second stream (default) and in turn on
# the DiT's stream (--no-overlap, and SK_NO_VAE_OVERLAP=1), in bf16 and fp32.
#   SK_BENCH_BIN=path  the sinkstream binary (default build-gpu/sinkstream)
# Exit status: 0 when every pair is identical.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SK_BENCH_BIN:-$ROOT/build-gpu/sinkstream}
FX=$ROOT/tests/fixtures
T=$(mktemp -d)
rc=0
for dt in bf16 fp32; do
  A="generate --device cuda --dtype $dt --dit $FX/demo/dit_demo_c16.safetensors
     --text-embeds $FX/dit/embeds.safetensors --vae $FX/taehv/taehv_tiny_21.safetensors
     --height 128 --width 192 --frames 15 --seed 7"
  "$BIN" $A --rgb-out "$T/on_$dt.safetensors" 2>"$T/on_$dt.log" || { tail -5 "$T/on_$dt.log"; rc=1; }
  "$BIN" $A --no-overlap --rgb-out "$T/off_$dt.safetensors" 2>"$T/off_$dt.log" || { tail -5 "$T/off_$dt.log"; rc=1; }
  SK_NO_VAE_OVERLAP=1 "$BIN" $A --rgb-out "$T/env_$dt.safetensors" 2>"$T/env_$dt.log" || rc=1
  grep -q "second CUDA stream" "$T/on_$dt.log" || { echo "$dt: the default run did not overlap"; rc=1; }
  grep -q "second CUDA stream" "$T/off_$dt.log" && { echo "$dt: --no-overlap overlapped"; rc=1; }
  if cmp -s "$T/on_$dt.safetensors" "$T/off_$dt.safetensors" &&
     cmp -s "$T/on_$dt.safetensors" "$T/env_$dt.safetensors"; then
    echo "$dt: frames bitwise identical with and without overlap ($(stat -c %s "$T/on_$dt.safetensors") bytes)"
  else
    echo "$dt: frames DIFFER with and without overlap"; rc=1
  fi
done
rm -rf "$T"
echo "check_vae_overlap exit $rc"
exit $rc
