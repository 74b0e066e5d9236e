#!/bin/sh
# Installs dependencies (scripts/deps.sh) and builds into build/ (Release).
# Extra arguments go to cmake's configure step.
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
