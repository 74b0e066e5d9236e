#!/bin/sh
# The whole test suite built with AddressSanitizer + UndefinedBehaviorSanitizer
# (separate build folder build-asan/).
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCDF_SANITIZE=ON -DCDF_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$(nproc)"
# oneDNN's JIT and OpenMP runtime allocate thread pools that live until exit;
# leak checking stays on for everything else (see tests/lsan.supp).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd build-asan && ctest --output-on-failure -j1 "$@"
