#!/bin/sh
# One end-to-end tiny-sd1 generation under valgrind memcheck: no invalid
# access, no definite or indirect leak (the script exits 1 otherwise).
# Valgrind 3.19 cannot run AVX-512 code, so this uses its own build
# (build-valgrind/, -march=x86-64-v3: AVX2 + FMA); oneDNN detects the CPU
# that valgrind presents and JITs AVX2 code itself. Suppressions (only
# third-party runtime internals, each justified): tests/valgrind.supp.
# Takes a few minutes (valgrind runs the code about 50x slower).
# Reference data: $CDF_REFERENCE_DIR, default ../shared/reference.
set -e
cd "$(dirname "$0")/.."
REF=${CDF_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference}
sh scripts/deps.sh --dev
cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCDF_ARCH_FLAGS="-march=x86-64-v3" \
    -DCDF_BUILD_TESTS=OFF -DCDF_BUILD_BENCH=OFF >/dev/null
cmake --build build-valgrind -j"$(nproc)" >/dev/null
out=build-valgrind/valgrind-out
mkdir -p "$out"
rm -f "$out/image.png"
log=build-valgrind/valgrind.log
# Two threads (libgomp's pool and oneDNN's parallel paths), classifier-free
# guidance with a negative prompt, two images, PNG output.
status=0
valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=40 \
    --suppressions=tests/valgrind.supp --log-file="$log" \
    build-valgrind/cdiffusers generate --model "$REF/tiny-sd1" -p "portrait photo of a old warrior chief" \
    -n "blurry" --batch 2 --steps 2 -H 32 -W 32 --seed 0 --threads 2 -o "$out/image.png" --grid 1x2 -q ||
    status=$?
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|suppressed:" "$log" |
    sed 's/^==[0-9]*== *//'
if [ "$status" -ne 0 ] || [ ! -s "$out/image.png" ]; then
    echo "valgrind: FAILED (exit $status); see $log" >&2
    exit 1
fi
echo "valgrind: clean (log: $log)"
