#!/usr/bin/python3
"""Checks that our torch modules compute what the C engine computes, per
component, with random weights in the shapes model's configs: writes a
folder, runs `cdiffusers run-component` on it and compares.

  /usr/bin/python3 tools/shapes/check_modules.py --cli build/cdiffusers
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_data  # noqa: E402
import make_tokenizer  # noqa: E402
import model_io  # noqa: E402
import sdmodules as sm  # noqa: E402


def randomize(mod, gen):
    """Random weights of a visible size (zero-initialised parts would hide bugs)."""
    with torch.no_grad():
        for name, p in mod.named_parameters():
            if p.dim() == 1 and ("norm" in name):
                p.copy_((1 + 0.2 * torch.randn(p.shape, generator=gen)) if name.endswith("weight")
                        else 0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan = p[0].numel() if p.dim() > 1 else 1
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / fan) ** 0.5 * (1 if p.dim() > 1 else 0.2))
            p.copy_(p.half().float())  # the folder stores fp16


def compare(name, got, ref):
    err = (got - ref).abs().max().item()
    scale = ref.abs().max().item()
    print(f"{name:14s} max abs {err:.3e}  max |ref| {scale:.3e}  rel {err / scale:.2e}")
    return err <= 1e-4 * scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default="build/cdiffusers")
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    d = tempfile.mkdtemp(prefix="shapes-check-")
    vocab, _ = make_tokenizer.write_tokenizer(os.path.join(d, "tokenizer"), make_data.all_words(), 16)
    te = sm.CLIPTextModel(model_io.text_config(len(vocab), len(vocab) - 2, len(vocab) - 1, 16))
    unet = sm.UNet2DConditionModel(model_io.unet_config(64))
    vae = sm.AutoencoderKL(model_io.vae_config(scaling_factor=0.7))
    for m in (te, unet, vae):
        randomize(m, gen)
        m.eval()
    model_io.write_folder(d, te, unet, vae, model_io.scheduler_config("v_prediction"))
    ok = True
    with torch.no_grad():
        ids = torch.randint(0, len(vocab), (2, 16), generator=gen)
        x = torch.randn(2, 4, 16, 16, generator=gen)
        t = torch.tensor([981.0, 17.0])
        ctx = torch.randn(2, 16, 64, generator=gen)
        img = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
        cases = [
            ("text_encoder", {"input_ids": ids}, te(ids), "last_hidden_state"),
            ("unet", {"sample": x, "timestep": t, "encoder_hidden_states": ctx}, unet(x, t, ctx), "out"),
            ("vae_decoder", {"latents": x}, vae.decode(x / 0.7), "image"),
            ("vae_encoder", {"image": img}, vae.encode(img)[0], "mean"),
        ]
        for comp, inputs, ref, key in cases:
            fi, fo = os.path.join(d, comp + "-in.safetensors"), os.path.join(d, comp + "-out.safetensors")
            sm.save_safetensors(fi, inputs)
            subprocess.run([args.cli, "run-component", "--model", d, "--component", comp, "--input", fi, "--output",
                            fo, "--threads", "1"], check=True)
            ok &= compare(comp, sm.load_safetensors(fo)[key], ref)
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
