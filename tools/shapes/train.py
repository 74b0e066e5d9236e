#!/usr/bin/python3
"""Trains the shapes-tiny text-to-image model and writes it as a diffusers folder.

Stages (each reproducible from --seed; one CPU thread, so the arithmetic does
not depend on thread scheduling):
  1. data:  --n-train images from make_data (held-out triples excluded)
  2. vae:   AutoencoderKL, MSE + a light KL term; scaling_factor = 1 / std of the latents
  3. unet:  CLIP text encoder + UNet2DConditionModel on the VAE's latents,
            v-prediction, SD's scaled_linear betas, min-SNR-5 weighting,
            10% empty captions (for classifier-free guidance), EMA weights
  4. export: fp16 safetensors + configs + tokenizer into --out, then the
            agreement file (sample.py) with our own torch sampler

  nice -n 19 /usr/bin/python3 tools/shapes/train.py --out models/shapes-tiny --work /tmp/shapes-work

Speed: torch uses the system BLAS for its matrix products; Debian's default
reference BLAS is ~30x slower than OpenBLAS (apt-get install
libopenblas0-pthread, or point LD_LIBRARY_PATH at its openblas-pthread folder).
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_data  # noqa: E402
import make_tokenizer  # noqa: E402
import model_io  # noqa: E402
import sdmodules as sm  # noqa: E402

MAX_LEN = 16
PREDICTION = "v_prediction"


def log(f, msg):
    print(msg, flush=True)
    if f:
        f.write(msg + "\n")
        f.flush()


def lr_at(step, total, peak, warmup=100):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def to_tensor(imgs):
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def train_vae(imgs, args, logf):
    g = torch.Generator().manual_seed(args.seed + 1)
    torch.manual_seed(args.seed + 1)
    vae = sm.AutoencoderKL(model_io.vae_config(block_out=args.vae_channels, groups=args.groups))
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    n = len(imgs)
    t0 = time.time()
    acc = [0.0, 0.0]
    for step in range(args.vae_steps):
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, args.vae_steps, args.vae_lr)
        idx = torch.randint(0, n, (args.vae_batch,), generator=g)
        x = to_tensor(imgs[idx.numpy()])
        mean, logvar = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=g)
        rec = vae.decode(z)
        mse = F.mse_loss(rec, x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = mse + args.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc[0] += mse.item()
        acc[1] += kl.item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.vae_steps:
            k = args.log_every if (step + 1) % args.log_every == 0 else (step + 1) % args.log_every
            log(logf, f"vae step {step + 1}/{args.vae_steps} mse {acc[0] / k:.5f} kl {acc[1] / k:.3f} "
                      f"lr {opt.param_groups[0]['lr']:.2e} {time.time() - t0:.0f}s")
            acc = [0.0, 0.0]
    vae.eval()
    return vae


@torch.no_grad()
def encode_all(vae, imgs, bs=256):
    means, stds = [], []
    for i in range(0, len(imgs), bs):
        m, lv = vae.encode(to_tensor(imgs[i:i + bs]))
        means.append(m)
        stds.append(torch.exp(0.5 * lv))
    return torch.cat(means), torch.cat(stds)


def caption_ids(attrs, tok):
    """ids[N, len(FORMS), MAX_LEN]: every caption form of every image, tokenized once."""
    cache = {}
    out = np.empty((len(attrs), len(make_data.FORMS), MAX_LEN), dtype=np.int64)
    for i, a in enumerate(attrs):
        for j, c in enumerate(make_data.all_caption_forms(a)):
            if c not in cache:
                cache[c] = tok.encode(c)
            out[i, j] = cache[c]
    return torch.from_numpy(out)


def ema_update(ema, model, decay):
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1 - decay)


def new_text_unet(vocab_size, tok, args):
    te = sm.CLIPTextModel(model_io.text_config(vocab_size, tok.bos, tok.eos, MAX_LEN, hidden=args.text_dim,
                                               layers=args.text_layers, inner=4 * args.text_dim))
    unet = sm.UNet2DConditionModel(model_io.unet_config(args.text_dim, block_out=args.unet_channels,
                                                        heads=args.unet_heads, groups=args.groups))
    return te, unet


def train_unet(lat_mean, lat_std, scale, ids_all, empty_ids, vocab_size, tok, args, logf, work):
    g = torch.Generator().manual_seed(args.seed + 2)
    torch.manual_seed(args.seed + 2)
    te, unet = new_text_unet(vocab_size, tok, args)
    with torch.no_grad():  # CLIP's initialisation of the embeddings
        te.text_model.embeddings.token_embedding.weight.normal_(0, 0.02, generator=g)
        te.text_model.embeddings.position_embedding.weight.normal_(0, 0.01, generator=g)
    params = list(te.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    ema_te, ema_unet = copy.deepcopy(te), copy.deepcopy(unet)
    ac = model_io.alphas_cumprod(model_io.scheduler_config(PREDICTION, args.beta_schedule))
    n = len(lat_mean)
    form_p = torch.tensor(make_data.FORM_P)
    start = 0
    ck = os.path.join(work, "unet_checkpoint.pt")
    if os.path.exists(ck):
        s = torch.load(ck)
        te.load_state_dict(s["te"]); unet.load_state_dict(s["unet"]); opt.load_state_dict(s["opt"])
        ema_te.load_state_dict(s["ema_te"]); ema_unet.load_state_dict(s["ema_unet"])
        g.set_state(s["gen"]); torch.set_rng_state(s["torch_rng"])
        start = s["step"]
        log(logf, f"resumed from {ck} at step {start}")
    t0 = time.time()
    acc, cnt = 0.0, 0
    for step in range(start, args.unet_steps):
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, args.unet_steps, args.lr)
        B = args.batch
        idx = torch.randint(0, n, (B,), generator=g)
        x0 = (lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape, generator=g)) * scale
        form = torch.multinomial(form_p, B, replacement=True, generator=g)
        ids = ids_all[idx, form]
        drop = torch.rand(B, generator=g) < args.uncond_p
        ids[drop] = empty_ids
        t = torch.randint(0, 1000, (B,), generator=g)
        a = ac[t].view(B, 1, 1, 1)
        eps = torch.randn(x0.shape, generator=g)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        target = a.sqrt() * eps - (1 - a).sqrt() * x0
        pred = unet(xt, t, te(ids))
        snr = ac[t] / (1 - ac[t])
        if args.loss_weight == "min-snr":  # min-SNR-5 for v-prediction: x0 error weighted by min(SNR, 5)
            w = torch.clamp(snr, max=5.0) / (snr + 1)
        else:  # x0 error weighted by min(1 + SNR, 6): plain v-MSE, capped at low noise
            w = torch.clamp(6.0 / (snr + 1), max=1.0)
        loss = (w * (pred - target).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        ema_update(ema_te, te, decay)
        ema_update(ema_unet, unet, decay)
        acc += loss.item()
        cnt += 1
        if (step + 1) % args.log_every == 0 or step + 1 == args.unet_steps:
            el = time.time() - t0
            log(logf, f"unet step {step + 1}/{args.unet_steps} loss {acc / cnt:.5f} lr {opt.param_groups[0]['lr']:.2e} "
                      f"{el:.0f}s ({el / (step + 1 - start):.2f} s/step)")
            acc, cnt = 0.0, 0
        if (step + 1) % args.ckpt_every == 0 and step + 1 < args.unet_steps:
            torch.save({"te": te.state_dict(), "unet": unet.state_dict(), "opt": opt.state_dict(),
                        "ema_te": ema_te.state_dict(), "ema_unet": ema_unet.state_dict(), "gen": g.get_state(),
                        "torch_rng": torch.get_rng_state(), "step": step + 1}, ck + ".tmp")
            os.replace(ck + ".tmp", ck)
    ema_te.eval()
    ema_unet.eval()
    return ema_te, ema_unet


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/shapes-tiny")
    ap.add_argument("--work", default="/tmp/shapes-work", help="checkpoints, log, cached VAE and latents")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=30000)
    ap.add_argument("--vae-steps", type=int, default=1500)
    ap.add_argument("--vae-batch", type=int, default=32)
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--vae-channels", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--kl-weight", type=float, default=1e-4)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--text-dim", type=int, default=64)
    ap.add_argument("--text-layers", type=int, default=3)
    ap.add_argument("--unet-channels", type=int, nargs="+", default=[32, 64, 96])
    ap.add_argument("--unet-heads", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--unet-steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--uncond-p", type=float, default=0.1)
    ap.add_argument("--beta-schedule", default="scaled_linear", choices=["squaredcos_cap_v2", "scaled_linear"])
    ap.add_argument("--loss-weight", default="min-snr", choices=["capped-v", "min-snr"])
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vae-only", action="store_true", help="stop after the VAE stage (for tuning)")
    ap.add_argument("--export-checkpoint", action="store_true",
                    help="write --out from the EMA weights of the last UNet checkpoint in --work (while training)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    logf = open(os.path.join(args.work, "train.log"), "a")
    log(logf, "train.py " + json.dumps(vars(args)))
    T0 = time.time()

    tok_dir = os.path.join(args.out, "tokenizer")
    vocab, merges = make_tokenizer.write_tokenizer(tok_dir, make_data.all_words(), MAX_LEN)
    tok = make_tokenizer.ClipBPE(tok_dir)
    log(logf, f"tokenizer: {len(vocab)} entries, {len(merges)} merges")

    imgs, attrs = make_data.make_dataset(args.n_train, args.seed)
    log(logf, f"data: {len(imgs)} images ({time.time() - T0:.0f}s)")

    vae_ck = os.path.join(args.work, "vae.pt")
    if os.path.exists(vae_ck):
        s = torch.load(vae_ck)
        vae = sm.AutoencoderKL(s["config"])
        vae.load_state_dict(s["state"])
        vae.eval()
        log(logf, f"vae: loaded {vae_ck}")
    else:
        vae = train_vae(imgs, args, logf)
        torch.save({"config": vae.config, "state": vae.state_dict()}, vae_ck)
    # The shipped VAE is fp16: train the UNet on what that VAE encodes, decode
    # checks with what it decodes.
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_(p.half().float())
    lat_mean, lat_std = encode_all(vae, imgs)
    gz = torch.Generator().manual_seed(args.seed + 3)
    z = lat_mean + lat_std * torch.randn(lat_mean.shape, generator=gz)
    scale = float(f"{1.0 / z.std().item():.5g}")
    vae.config["scaling_factor"] = scale
    with torch.no_grad():
        rec = vae.decode(lat_mean[:512])
        mse = F.mse_loss(rec, to_tensor(imgs[:512])).item()
    log(logf, f"vae: latent std {z.std().item():.4f} mean {z.mean().item():.4f} -> scaling_factor {scale}; "
              f"reconstruction mse {mse:.5f} ({time.time() - T0:.0f}s)")

    if args.vae_only:
        with torch.no_grad():
            make_data.save_grid(os.path.join(args.work, "vae_recon.png"), np.concatenate(
                [imgs[:32], ((rec[:32] / 2 + 0.5).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()]))
        return
    if args.export_checkpoint:
        te, unet = new_text_unet(len(vocab), tok, args)
        s = torch.load(os.path.join(args.work, "unet_checkpoint.pt"))
        te.load_state_dict(s["ema_te"])
        unet.load_state_dict(s["ema_unet"])
        model_io.write_folder(args.out, te, unet, vae, model_io.scheduler_config(PREDICTION, args.beta_schedule))
        log(logf, f"exported the step {s['step']} checkpoint to {args.out}")
        return
    ids_all = caption_ids(attrs, tok)
    empty_ids = torch.tensor(tok.encode(""))
    te, unet = train_unet(lat_mean, lat_std, scale, ids_all, empty_ids, len(vocab), tok, args, logf, args.work)
    log(logf, f"training done ({time.time() - T0:.0f}s)")

    model_io.write_folder(args.out, te, unet, vae, model_io.scheduler_config(PREDICTION, args.beta_schedule))
    nparams = {k: sum(p.numel() for p in m.parameters()) for k, m in (("text_encoder", te), ("unet", unet),
                                                                       ("vae", vae))}
    log(logf, f"wrote {args.out}: parameters {nparams} total {sum(nparams.values())}")
    import sample  # noqa: E402
    sample.write_agreement(args.out)
    sample.write_grid(args.out, os.path.join(args.work, "torch_grid.png"))
    log(logf, f"all done, wall time {time.time() - T0:.0f}s")


if __name__ == "__main__":
    main()
