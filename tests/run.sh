#!/usr/bin/env bash
# run.sh - the test command (README, .ci/run): installs dependencies, builds,
# runs the CPU test suite, runs it again under ASan+UBSan, then a bounded
# libFuzzer run of the safetensors parser. Exits non-zero on any failure.
# SK_FUZZ_SECONDS (default 60) bounds the fuzz run; 0 skips only the fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
jobs=$(nproc)

echo "== build (release, CUDA compiled when nvcc is present)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
echo "== CPU tests"
ctest --test-dir build -L cpu --output-on-failure -j "$jobs"

echo "== CPU tests under ASan+UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSK_SANITIZE=ON -DSK_CUDA=OFF >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L cpu --output-on-failure -j "$jobs"

secs=${SK_FUZZ_SECONDS:-60}
if [ "$secs" != "0" ]; then
  echo "== fuzz safetensors parser for ${secs}s"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DSK_FUZZ=ON -DSK_TESTS=OFF -DSK_CUDA=OFF -DSK_FFMPEG=OFF >/dev/null
  cmake --build build-fuzz -j "$jobs" --target fuzz_safetensors
  mkdir -p build-fuzz/corpus
  ./build-fuzz/fuzz_safetensors -max_total_time="$secs" -max_len=65536 \
    build-fuzz/corpus tests/fuzz/corpus_safetensors
fi
echo "== all tests passed"
