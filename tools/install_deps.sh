#!/usr/bin/env bash
# install_deps.sh - installs the Debian packages sinkstream builds and tests with.
# Idempotent: skips apt when every package is already installed. Needs root (or sudo).
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
      libavdevice-dev # --input lavfi:GRAPH and V4L2 cameras (runtime/input/ffmpeg_input.c)
      libcriterion-dev libstb-dev libcjson-dev libsentencepiece-dev libmicrohttpd-dev
      nginx-light libnginx-mod-rtmp # nginx: the RTMP server of tests/test_live_rtmp.c (started by the test)
      # tools/convert_checkpoint.py and pth_to_safetensors.py need only numpy (PyTorch's zip
      # checkpoints are read by tools/torchzip.py; Debian has no python3-safetensors: they write
      # safetensors themselves); the tests write their tiny checkpoints with PyTorch and compare
      # with it (tests/test_convert*.c); sentencepiece checks the tokenizer (python3-sentencepiece)
      # and trains fixtures (spm_train)
      python3-torch python3-numpy python3-sentencepiece sentencepiece
      # curl: the docs' example commands (docs/SERVER.md), run by tests/test_docs_examples.c
      curl
      # the fast CPU backend's sgemm (runtime/cpu/cpu_fast_gemm.c)
      libopenblas-dev
      # tests/python/test_binding.py: pip install ./tools/python (ctypes binding, no compiler)
      python3-pip python3-setuptools python3-wheel
      # tests/serve_browser.py: the web page of `sinkstream serve` in headless Chromium
      chromium chromium-driver python3-selenium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "install_deps: installing ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
