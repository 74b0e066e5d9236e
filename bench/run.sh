#!/bin/sh
# Runs the benchmarks of docs/BENCHMARKS.md on this machine (not part of the
# tests; takes a while). Builds first; synthesises the full-size SD 1.5
# model folder (random fp16 weights from the published configs) once.
#   bench/run.sh [OUT_DIR]     (default: build/bench-results)
set -e
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$repo/build/bench-results}"
ref="${CDF_REFERENCE_DIR:-$repo/../shared/reference}"
sh "$repo/scripts/build.sh" >&2
mkdir -p "$out"
model="$repo/build/synthetic-sd15"
if [ ! -f "$model/unet/diffusion_pytorch_model.safetensors" ]; then
    "$repo/build/bench/make_synthetic_model" "$ref/configs/stable-diffusion-v1-5" \
        "$ref/tokenizer/clip-vit-large-patch14" "$model"
fi
b="$repo/build/bench"
{
    echo "## $(date -u +%Y-%m-%dT%H:%MZ) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
    "$b/bench_models" --dtype fp32 --repeat 2
    "$b/bench_models" --dtype bf16 --repeat 2
    "$b/bench_models" --dtype bf16 --repeat 1 --only gemm,unet64 --threads 1
    "$b/bench_models" --dtype fp32 --repeat 1 --only gemm,unet64 --threads 1
    "$b/bench_attention" --dtype bf16
    "$b/bench_attention" --dtype fp32
    "$b/bench_generate" "$model" --dtype bf16 --steps 20 --scheduler dpm++2m
    "$b/bench_generate" "$model" --dtype bf16 --steps 20 --scheduler dpm++2m --low-memory
    "$b/bench_generate" "$model" --dtype bf16 --steps 2 --scheduler dpm++2m --batch 8 --vae-slicing
    "$b/bench_generate" "$model" --dtype fp16 --steps 5 --scheduler dpm++2m
    # The same-machine baseline: PyTorch on the same shapes (Debian's python3-torch).
    if /usr/bin/python3 -c "import torch" 2>/dev/null; then
        /usr/bin/python3 "$repo/bench/torch_baseline.py" --config "$ref/configs/stable-diffusion-v1-5"
    else
        echo "# PyTorch baseline skipped: apt-get install python3-torch"
    fi
} 2>&1 | grep -v '^  \[' | tee "$out/results.txt"
