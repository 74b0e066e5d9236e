#!/usr/bin/python3
"""Same-machine baseline: PyTorch (Debian's python3-torch) running SD1.5-shaped
UNet and VAE decoder modules with random weights, timed like bench_models.

The modules are tools/shapes/sdmodules.py: diffusers' layer structure and
attention as diffusers' default processor computes it on torch 1.x (the full
score matrix, softmax, then the product), checked against the C engine in
tools/shapes/check_modules.py. Speed does not depend on the weights' values.

  /usr/bin/python3 bench/torch_baseline.py [--config DIR] [--threads 2] [--only unet64,vae]

Prints one line and one JSON line per measurement, as bench_models does (the
peak RSS is the process's so far, so it only grows from line to line).
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "shapes"))
import sdmodules as sm  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def timed(fn, repeat):
    fn()  # warm-up: oneDNN primitive creation, allocator
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def report(what, seconds):
    print(f"{what:<44} {seconds:8.3f} s  peak RSS {peak_rss_mb():6d} MiB", flush=True)
    print("JSON " + json.dumps({"what": what, "seconds": round(seconds, 4), "peak_rss_mb": peak_rss_mb()}), flush=True)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ref = os.environ.get("CDF_REFERENCE_DIR", os.path.join(here, "..", "..", "shared", "reference"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=os.path.join(ref, "configs", "stable-diffusion-v1-5"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", default="unet64,vae")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    only = set(args.only.split(","))
    with open(os.path.join(args.config, "unet", "config.json")) as f:
        ucfg = json.load(f)
    with open(os.path.join(args.config, "vae", "config.json")) as f:
        vcfg = json.load(f)
    print(f"# torch {torch.__version__}, {args.threads} threads, config {args.config}", flush=True)
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        with torch.inference_mode():
            if "unet64" in only:
                unet = sm.UNet2DConditionModel(ucfg).eval().to(dtype)
                x = torch.randn(2, 4, 64, 64, dtype=dtype)
                t = torch.tensor([500, 500])
                ctx = torch.randn(2, 77, ucfg["cross_attention_dim"], dtype=dtype)
                report(f"torch UNet step, batch 2, 64x64 latents {name}", timed(lambda: unet(x, t, ctx), args.repeat))
                del unet
            if "vae" in only:
                vae = sm.AutoencoderKL(vcfg).eval().to(dtype)
                z = torch.randn(1, vcfg["latent_channels"], 64, 64, dtype=dtype)
                side = 64 * 2 ** (len(vcfg["block_out_channels"]) - 1)
                report(f"torch VAE decode, 64x64 -> {side}x{side} {name}", timed(lambda: vae.decode(z), args.repeat))
                del vae


if __name__ == "__main__":
    main()
