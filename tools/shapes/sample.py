#!/usr/bin/python3
"""Text-to-image with our torch modules, as diffusers' StableDiffusionPipeline
with DPMSolverMultistepScheduler (dpmsolver++, 2nd order, midpoint) does it,
and the agreement file the C test compares against.

  /usr/bin/python3 tools/shapes/sample.py models/shapes-tiny --grid grid.png
  /usr/bin/python3 tools/shapes/sample.py models/shapes-tiny --agreement
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_data  # noqa: E402
import make_tokenizer  # noqa: E402
import model_io  # noqa: E402
import sdmodules as sm  # noqa: E402


class DPMSolverPP2M:
    """DPMSolverMultistepScheduler 0.26.3 for the configs we ship: dpmsolver++,
    solver_order 2, midpoint, linspace or leading spacing, scaled_linear or
    squaredcos_cap_v2 betas, no Karras sigmas, no lambda clipping,
    final_sigmas_type zero or sigma_min, lower_order_final."""

    def __init__(self, cfg):
        assert cfg["algorithm_type"] == "dpmsolver++" and cfg["solver_order"] == 2
        assert cfg["solver_type"] == "midpoint" and cfg["lambda_min_clipped"] == float("-inf")
        assert not cfg.get("use_karras_sigmas") and not cfg.get("use_lu_lambdas") and not cfg.get("thresholding")
        self.cfg = cfg
        self.alphas_cumprod = model_io.alphas_cumprod(cfg)

    def set_timesteps(self, n):
        T = self.cfg["num_train_timesteps"]
        ac = self.alphas_cumprod
        # lambda_min_clipped = -inf clips nothing: last_timestep = T
        if self.cfg["timestep_spacing"] == "linspace":
            ts = np.linspace(0, T - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
        elif self.cfg["timestep_spacing"] == "leading":
            r = T // (n + 1)
            ts = (np.arange(0, n + 1) * r).round()[::-1][:-1].copy().astype(np.int64) + self.cfg["steps_offset"]
        else:
            raise ValueError(self.cfg["timestep_spacing"])
        sig = np.array(((1 - ac) / ac) ** 0.5)
        sig = np.interp(ts, np.arange(0, len(sig)), sig)
        last = 0 if self.cfg["final_sigmas_type"] == "zero" else (((1 - ac[0]) / ac[0]) ** 0.5).item()
        self.sigmas = torch.from_numpy(np.concatenate([sig, [last]]).astype(np.float32))
        self.timesteps = torch.from_numpy(ts)
        self.outputs = [None, None]
        self.lower_order_nums = 0
        self.i = 0

    @staticmethod
    def _alpha_sigma(s):
        a = 1 / ((s ** 2 + 1) ** 0.5)
        return a, s * a

    def step(self, model_output, sample):
        i, n, c = self.i, len(self.timesteps), self.cfg
        low_final = i == n - 1 and (c["euler_at_final"] or (c["lower_order_final"] and n < 15)
                                    or c["final_sigmas_type"] == "zero")
        low_second = i == n - 2 and c["lower_order_final"] and n < 15
        a_s0, s_s0 = self._alpha_sigma(self.sigmas[i])
        if c["prediction_type"] == "epsilon":
            x0 = (sample - s_s0 * model_output) / a_s0
        elif c["prediction_type"] == "v_prediction":
            x0 = a_s0 * sample - s_s0 * model_output
        else:
            raise ValueError(c["prediction_type"])
        self.outputs = [self.outputs[1], x0]
        a_t, s_t = self._alpha_sigma(self.sigmas[i + 1])
        lam_t, lam_s0 = torch.log(a_t) - torch.log(s_t), torch.log(a_s0) - torch.log(s_s0)
        h = lam_t - lam_s0
        if self.lower_order_nums < 1 or low_final:
            x = (s_t / s_s0) * sample - (a_t * (torch.exp(-h) - 1.0)) * x0
        else:
            a_s1, s_s1 = self._alpha_sigma(self.sigmas[i - 1])
            lam_s1 = torch.log(a_s1) - torch.log(s_s1)
            m0, m1 = self.outputs[1], self.outputs[0]
            r0 = (lam_s0 - lam_s1) / h
            d0, d1 = m0, (1.0 / r0) * (m0 - m1)
            x = (s_t / s_s0) * sample - (a_t * (torch.exp(-h) - 1.0)) * d0 - 0.5 * (a_t * (torch.exp(-h) - 1.0)) * d1
        if self.lower_order_nums < 2:
            self.lower_order_nums += 1
        del low_second  # order 2: the second-to-last step is second order either way
        self.i += 1
        return x


class Pipeline:
    def __init__(self, folder):
        self.te, self.unet, self.vae, self.sched_cfg = model_io.load_folder(folder)
        self.tok = make_tokenizer.ClipBPE(os.path.join(folder, "tokenizer"))

    @torch.no_grad()
    def encode(self, prompts):
        ids = torch.tensor([self.tok.encode(p) for p in prompts])
        return ids, self.te(ids)

    @torch.no_grad()
    def __call__(self, prompts, latents, steps=20, guidance=7.5, negative=""):
        """float images [B, H, W, 3] in [0, 1] (output_type="np")."""
        B = len(prompts)
        _, cond = self.encode(prompts)
        cfg = guidance > 1.0
        if cfg:
            _, unc = self.encode([negative] * B)
            ctx = torch.cat([unc, cond])
        else:
            ctx = cond
        s = DPMSolverPP2M(self.sched_cfg)
        s.set_timesteps(steps)
        x = latents.clone()  # init_noise_sigma = 1
        for t in s.timesteps:
            xin = torch.cat([x, x]) if cfg else x
            out = self.unet(xin, t, ctx)
            if cfg:
                u, c = out.chunk(2)
                out = u + guidance * (c - u)
            x = s.step(out, x)
        img = self.vae.decode(x / self.vae.config["scaling_factor"])
        return (img / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).contiguous()


AGREEMENT_PROMPTS = [
    "a small red circle on the left, blue background",
    "a large blue triangle in the center, white background",
    "a yellow square on a black background",
    "a large green diamond at the top, orange background",
]


def write_agreement(folder, steps=20, guidance=7.5, seed=1):
    """agreement.safetensors (latents, input_ids, image) + agreement.json (how)."""
    p = Pipeline(folder)
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn((len(AGREEMENT_PROMPTS), 4, 16, 16), generator=g)
    ids, _ = p.encode(AGREEMENT_PROMPTS)
    img = p(AGREEMENT_PROMPTS, lat, steps, guidance)
    sm.save_safetensors(os.path.join(folder, "agreement.safetensors"),
                        {"latents": lat, "input_ids": ids, "image": img})
    with open(os.path.join(folder, "agreement.json"), "w") as f:
        json.dump({"prompts": AGREEMENT_PROMPTS, "negative_prompt": "", "num_inference_steps": steps,
                   "guidance_scale": guidance, "scheduler": p.sched_cfg["_class_name"],
                   "latents": f"torch.randn((4, 4, 16, 16), generator=torch.Generator().manual_seed({seed}))",
                   "made_by": "tools/shapes/sample.py (our torch modules, fp16 weights widened to float32)"},
                  f, indent=2)
        f.write("\n")


def write_grid(folder, path, n=32, seed=0, guidance=7.5, steps=20):
    """A grid of the first n held-out evaluation prompts (torch side)."""
    p = Pipeline(folder)
    attrs = make_data.eval_prompts()[:n]
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn((n, 4, 16, 16), generator=g)
    img = p([make_data.caption(a) for a in attrs], lat, steps, guidance)
    make_data.save_grid(path, (img.numpy() * 255).round().astype(np.uint8))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--grid")
    ap.add_argument("--agreement", action="store_true")
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.agreement:
        write_agreement(args.folder)
    if args.grid:
        write_grid(args.folder, args.grid, guidance=args.guidance, steps=args.steps)


if __name__ == "__main__":
    main()
