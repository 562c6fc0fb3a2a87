#!/usr/bin/env bash
# tests/gpu/make_pack.sh - the device machine has CUDA 13 and cuDNN but none of our Debian
# libraries (cJSON, sentencepiece, microhttpd, OpenBLAS, FFmpeg): build the GPU binaries here for
# sm_90 (the Hopper-only kernels for sm_90a) and pack them with the shared libraries they load
# into one archive to carry (a device call carries 64 MiB with the tree).
#   PACK=file        the archive (default .dev/gpu/pack.tar.xz; .dev is git-ignored)
#   BUILD=dir        the CUDA build directory (default build-gpu; configured here if new)
#   FFMPEG_LIB=dir   a minimal FFmpeg (tests/gpu/build_ffmpeg_min.sh): sinkstream is built with
#                    FFmpeg and those libraries (+ libx264) go into the pack, so `bench
#                    --with-encode` and file/RTMP outputs run on the device; unset: SK_FFMPEG=OFF
#   TARGETS="..."    default: sinkstream and every gpu_check_*
# On the device:  tar xJf pack.tar.xz -C D && export LD_LIBRARY_PATH=D/lib && D/bin/sinkstream ...
# One xz stream with a 64 MiB dictionary over the whole tar: the binaries share most of their
# bytes (each links the runtime statically), so ~120 MB of binaries pack into ~8 MB where
# per-file compression gives ~24 MB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PACK=${PACK:-$ROOT/.dev/gpu/pack.tar.xz}
BUILD=${BUILD:-$ROOT/build-gpu}
TARGETS=${TARGETS:-"sinkstream gpu_check_ops gpu_check_attn_fa3 gpu_check_dit gpu_check_kv_policies
  gpu_check_taehv gpu_check_umt5 gpu_check_pp gpu_check_fp8"}
FF=OFF
if [ -n "${FFMPEG_LIB:-}" ]; then
  ls "$FFMPEG_LIB"/libavcodec.so.* >/dev/null 2>&1 ||
    { echo "make_pack.sh: FFMPEG_LIB=$FFMPEG_LIB holds no libavcodec.so.* (run tests/gpu/build_ffmpeg_min.sh)" >&2; exit 2; }
  FF=ON
fi
mkdir -p "$BUILD"
echo "make_pack.sh: configuring $BUILD (CUDA sm_90, Release, FFmpeg $FF)"
cmake -S "$ROOT" -B "$BUILD" -DSK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DSK_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=Release -DSK_FFMPEG=$FF >"$BUILD/pack-configure.log" 2>&1 ||
  { tail -20 "$BUILD/pack-configure.log"; exit 1; }
echo "make_pack.sh: building $(echo $TARGETS | wc -w) targets (the CUDA kernels take a while on 2 cores)"
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" --target $TARGETS >"$BUILD/pack-build.log" 2>&1 ||
  { tail -30 "$BUILD/pack-build.log"; exit 1; }
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib"
for t in $TARGETS; do
  f=$(find "$BUILD" -maxdepth 3 -type f -name "$t" -perm -u+x | head -1)
  [ -n "$f" ] || { echo "make_pack.sh: built target $t not found under $BUILD" >&2; exit 1; }
  cp "$f" "$STAGE/bin/" && strip "$STAGE/bin/$t"
done
# every library the binaries load, except what the device has: glibc, libstdc++/libgcc, CUDA,
# cuBLAS, cuDNN, NCCL (the device's own versions are the ones to use)
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libcu|libnv|libnccl)'
for b in "$STAGE"/bin/*; do
  LD_LIBRARY_PATH=${FFMPEG_LIB:-} ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  [[ $name =~ $skip ]] && continue
  cp -L "$path" "$STAGE/lib/$name"
done
if [ -n "${FFMPEG_LIB:-}" ]; then
  for l in "$STAGE"/lib/libav*.so.* "$STAGE"/lib/libsw*.so.*; do
    [ -e "$FFMPEG_LIB/$(basename "$l")" ] ||
      { echo "make_pack.sh: $(basename "$l") did not come from FFMPEG_LIB" >&2; exit 1; }
  done
fi
mkdir -p "$(dirname "$PACK")"
tar cf - -C "$STAGE" bin lib | xz -9 -T1 >"$PACK"
git -C "$ROOT" rev-parse --short HEAD >"$(dirname "$PACK")/PACK_COMMIT"
echo "make_pack.sh: $PACK ($(du -h "$PACK" | cut -f1)): $(ls "$STAGE/bin" | wc -l) binaries, libs: $(ls "$STAGE/lib" | tr '\n' ' ')"
