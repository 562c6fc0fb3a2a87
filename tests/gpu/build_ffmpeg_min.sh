#!/usr/bin/env bash
# tests/gpu/build_ffmpeg_min.sh - a minimal FFmpeg for the device machine, which has no FFmpeg:
# the same version as this machine's libav*-dev (Debian's source package, fetched and checked by
# apt), so its libraries carry the same sonames and symbol versions and a sinkstream built here
# against the Debian headers runs on them; only what sinkstream's outputs and inputs use (x264,
# MJPEG/PNG/raw encoders, the H.264/MJPEG/PNG/raw decoders, MP4/FLV/MPEG-TS/Matroska/raw/null
# muxers and demuxers, file/pipe/tcp/udp/rtmp, swscale, avdevice without devices). Debian's
# libavcodec pulls in ~200 libraries (~240 MB); this set with libx264 is ~10 MB, so it fits a
# device call's carry (tests/gpu/make_pack.sh adds it to the pack).
#   PREFIX=dir   where the libraries go (default /tmp/ffmin); WORK=dir for the sources (/tmp/ffsrc)
# Needs: network to the Debian archive, apt, dpkg-dev (dpkg-source), a C compiler. Takes ~5 min
# on 2 cores. Prints the PREFIX/lib path last.
set -euo pipefail
PREFIX=${PREFIX:-/tmp/ffmin}
WORK=${WORK:-/tmp/ffsrc}
mkdir -p "$WORK" && cd "$WORK"
VER=$(dpkg-query -W -f='${source:Version}' libavcodec-dev 2>/dev/null) ||
  { echo "build_ffmpeg_min.sh: libavcodec-dev is not installed (bash tools/install_deps.sh)" >&2; exit 2; }
# apt with a private source list and state: the system's configuration is left alone, and the
# source package is verified by the archive's signed Release files as apt-get source always does
ST=$WORK/apt
mkdir -p "$ST/lists/partial" "$ST/cache/archives/partial"
cat >"$ST/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $(. /etc/os-release; echo "$VERSION_CODENAME") main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $(. /etc/os-release; echo "$VERSION_CODENAME")-security main
SRC
APT=(-o Dir::Etc::SourceList="$ST/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$ST/lists" -o Dir::Cache="$ST/cache" -o APT::Sandbox::User=root)
apt-get "${APT[@]}" -qq update
[ -d "ffmpeg-${VER%%-*}" ] || apt-get "${APT[@]}" -qq source --download-only "ffmpeg=$VER"
SRCDIR=$(ls -d ffmpeg-[0-9]* 2>/dev/null | head -1 || true)
if [ -z "$SRCDIR" ]; then
  tar xJf ffmpeg_*.orig.tar.xz
  SRCDIR=$(ls -d ffmpeg-[0-9]* | head -1)
fi
# x264's headers (libx264-dev) and nasm, unpacked here, not installed
for p in libx264-dev nasm; do
  ls "$p"_*.deb >/dev/null 2>&1 || apt-get -qq -o APT::Sandbox::User=root download "$p"
  [ -d "x_$p" ] || dpkg -x "$p"_*.deb "x_$p"
done
X264=$(ls /usr/lib/x86_64-linux-gnu/libx264.so.* | head -1)
mkdir -p x264lib
ln -sf "$X264" x264lib/libx264.so
cat >x264lib/x264.pc <<PC
Name: x264
Description: H.264 encoder
Version: 0.164
Libs: -L$WORK/x264lib -lx264
Cflags: -I$WORK/x_libx264-dev/usr/include
PC
export PATH=$WORK/x_nasm/usr/bin:$PATH PKG_CONFIG_PATH=$WORK/x264lib
cd "$SRCDIR"
./configure --prefix="$PREFIX" --enable-shared --disable-static --disable-programs --disable-doc \
  --disable-autodetect --disable-everything --enable-gpl --enable-libx264 --enable-zlib \
  --enable-encoder=libx264,mjpeg,rawvideo,png --enable-decoder=h264,hevc,vp9,mpeg4,mjpeg,rawvideo,png \
  --enable-muxer=mp4,mov,flv,mpegts,matroska,rawvideo,null,image2,image2pipe \
  --enable-demuxer=mov,matroska,rawvideo,image2,image2pipe,flv,mpegts,h264 \
  --enable-protocol=file,pipe,tcp,udp,rtmp --enable-parser=h264,hevc,mjpeg,png \
  --enable-bsf=h264_mp4toannexb,extract_extradata --disable-avfilter --disable-postproc \
  --disable-swresample >"$WORK/configure.log" 2>&1 || { tail -20 "$WORK/configure.log"; exit 1; }
make -j"$(nproc)" >"$WORK/make.log" 2>&1 && make install >>"$WORK/make.log" 2>&1 ||
  { tail -20 "$WORK/make.log"; exit 1; }
cp -L "$X264" "$PREFIX/lib/"
echo "$PREFIX/lib"
