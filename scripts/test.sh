#!/bin/sh
# Sets up (dependencies, build) and runs the whole test suite.
# Reference data: $CDF_REFERENCE_DIR, default ../shared/reference.
set -e
cd "$(dirname "$0")/.."
sh scripts/build.sh
cd build && ctest --output-on-failure -j1 "$@"
