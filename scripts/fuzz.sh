#!/bin/sh
# Builds the libFuzzer harnesses of fuzz/ (clang, ASan + UBSan, in build-fuzz/)
# and runs each for SECONDS (default 60), one after another, then prints the
# number of executions per harness. Findings (crash, leak, sanitizer report,
# an allocation over 2 GiB, an input taking over 30 s) are written to
# build-fuzz/artifacts/<harness>/ and make the script exit 1; fix the bug
# and copy the input to fuzz/crashers/<harness>/ (the test suite replays it).
# Usage: scripts/fuzz.sh [SECONDS] [HARNESS...]
#   harnesses: safetensors config tokenizer_load tokenizer cli
# Reference data (seed corpora, tokenizer): $CDF_REFERENCE_DIR, default ../shared/reference.
set -e
cd "$(dirname "$0")/.."
SECS=${1:-60}
[ $# -gt 0 ] && shift
HARNESSES=${*:-safetensors config tokenizer_load tokenizer cli}
REF=${CDF_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference}
export CDF_REFERENCE_DIR="$REF"
sh scripts/deps.sh --dev
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCDF_FUZZ=ON \
    -DCDF_BUILD_TESTS=OFF -DCDF_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null

# Seeds made from the reference folder at run time (too large for the repository).
SEEDS=build-fuzz/seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS/config" "$SEEDS/safetensors"
build-fuzz/fuzz/fuzz_seeds "$REF" "$SEEDS" >/dev/null
i=0
find "$REF" -name '*.json' -size -8k | sort | while read -r f; do
    i=$((i + 1)); cp "$f" "$SEEDS/config/$i-$(basename "$f")"
done
find "$REF" -name '*.safetensors' -size -16k | sort | while read -r f; do
    i=$((i + 1)); cp "$f" "$SEEDS/safetensors/$i-$(basename "$f")"
done

status=0
printf '%-16s %12s %8s  %s\n' harness executions seconds result
for h in $HARNESSES; do
    work=build-fuzz/corpus/$h art=build-fuzz/artifacts/$h log=build-fuzz/fuzz_$h.log
    mkdir -p "$work" "$art"
    dirs="fuzz/corpus/$h fuzz/crashers/$h"
    [ -d "$SEEDS/$h" ] && dirs="$dirs $SEEDS/$h"
    # Input size limits: a little above the largest seed; larger inputs only
    # slow the search down (the parsers' own limits are tested by the unit tests).
    case $h in
        safetensors | tokenizer_load) maxlen=16384 ;;
        config) maxlen=8192 ;;
        *) maxlen=4096 ;;
    esac
    dict=""
    [ -f "fuzz/$h.dict" ] && dict="-dict=fuzz/$h.dict"
    # The first folder collects new inputs; the others are read only.
    # shellcheck disable=SC2086
    if build-fuzz/fuzz/fuzz_$h "$work" $dirs $dict -max_total_time="$SECS" -max_len=$maxlen -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1; then
        result=ok
    else
        result="FINDING: see $log and $art/"
        status=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    printf '%-16s %12s %8s  %s\n' "$h" "${execs:-?}" "$SECS" "$result"
done
exit $status
