#!/usr/bin/env python3
"""Cross-checks cdiffusers' schedulers against diffusers itself, far beyond
the shared goldens: runs the goldens' trajectory (synthetic model, seed 0)
through diffusers' own scheduler classes for many configurations and writes
the results in the goldens' layout, so tests/test_schedulers reads them:

    python3 tools/sched_crosscheck/crosscheck.py DIFFUSERS_SRC OUT_DIR [CASES.json]
    CDF_REFERENCE_DIR=OUT_DIR build/tests/test_schedulers

DIFFUSERS_SRC is src/diffusers of a diffusers v0.26.3 checkout: its
configuration_utils.py and schedulers/scheduling_*.py are imported unmodified
from a temporary folder, next to the small stand-ins below for the hub and
logging helpers they import. Needs python3-torch, python3-numpy and
python3-scipy (Debian 12's: the versions of the shared reference; with them
the shared goldens come out bit for bit). DPMSolverSDEScheduler needs
torchsde and is left out. Without CASES.json, cases.py's list is used.
Reads the SD1.5/SD2.1 configs from the shared reference (CDF_REFERENCE_DIR,
default ../shared/reference). On OUT_DIR, test_checker_catches_small_error
(which needs a shared golden file) fails; the other tests apply.
"""
import importlib
import inspect
import json
import os
import shutil
import struct
import sys
import tempfile

STANDINS = {
    "huggingface_hub/__init__.py": "create_repo = None\nhf_hub_download = None\n",
    "huggingface_hub/utils.py": (
        "class EntryNotFoundError(Exception): pass\n"
        "class RepositoryNotFoundError(Exception): pass\n"
        "class RevisionNotFoundError(Exception): pass\n"
        "def validate_hf_hub_args(f): return f\n"),
    "torchsde/__init__.py": "class BrownianTree:\n    def __init__(self, *a, **k): raise RuntimeError('no torchsde')\n",
    "diffusers/__init__.py": (
        "import importlib\n"
        "__version__ = '0.26.3'\n"
        "MODULES = {\n"
        "  'DDIMScheduler': 'ddim', 'DDPMScheduler': 'ddpm', 'PNDMScheduler': 'pndm',\n"
        "  'LMSDiscreteScheduler': 'lms_discrete', 'EulerDiscreteScheduler': 'euler_discrete',\n"
        "  'EulerAncestralDiscreteScheduler': 'euler_ancestral_discrete', 'HeunDiscreteScheduler': 'heun_discrete',\n"
        "  'KDPM2DiscreteScheduler': 'k_dpm_2_discrete', 'KDPM2AncestralDiscreteScheduler': 'k_dpm_2_ancestral_discrete',\n"
        "  'DPMSolverMultistepScheduler': 'dpmsolver_multistep', 'DPMSolverSinglestepScheduler': 'dpmsolver_singlestep',\n"
        "  'DEISMultistepScheduler': 'deis_multistep', 'UniPCMultistepScheduler': 'unipc_multistep',\n"
        "  'DPMSolverSDEScheduler': 'dpmsolver_sde'}\n"
        "def __getattr__(name):\n"
        "    if name in MODULES:\n"
        "        return getattr(importlib.import_module('diffusers.schedulers.scheduling_' + MODULES[name]), name)\n"
        "    raise AttributeError(name)\n"),
    "diffusers/schedulers/__init__.py": "",
    "diffusers/utils/__init__.py": (
        "import logging as _logging\n"
        "from collections import OrderedDict\n"
        "from dataclasses import fields\n"
        "HUGGINGFACE_CO_RESOLVE_ENDPOINT = ''\n"
        "class DummyObject(type): pass\n"
        "class PushToHubMixin: pass\n"
        "def deprecate(*args, **kwargs): return None\n"
        "def extract_commit_hash(*a, **k): return None\n"
        "def http_user_agent(*a, **k): return ''\n"
        "class _Logging:\n"
        "    def get_logger(self, name): return _logging.getLogger(name)\n"
        "logging = _Logging()\n"
        "class BaseOutput(OrderedDict):\n"
        "    def __post_init__(self):\n"
        "        for f in fields(self):\n"
        "            v = getattr(self, f.name)\n"
        "            if v is not None: self[f.name] = v\n"
        "    def __getitem__(self, k):\n"
        "        return dict(self.items())[k] if isinstance(k, str) else tuple(self.values())[k]\n"
        "    def __setattr__(self, name, value):\n"
        "        if name in self.keys() and value is not None: super().__setitem__(name, value)\n"
        "        super().__setattr__(name, value)\n"),
    "diffusers/utils/torch_utils.py": (
        "import torch\n"
        "def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):\n"
        "    layout = layout or torch.strided\n"
        "    if isinstance(generator, list) and len(generator) == 1: generator = generator[0]\n"
        "    if isinstance(generator, list):\n"
        "        one = (1,) + tuple(shape[1:])\n"
        "        return torch.cat([torch.randn(one, generator=g, dtype=dtype, layout=layout) for g in generator])\n"
        "    return torch.randn(shape, generator=generator, dtype=dtype, layout=layout)\n"),
}


def make_package(diffusers_src):
    d = tempfile.mkdtemp(prefix="cdf-crosscheck-")
    for rel, text in STANDINS.items():
        os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(d, rel), "w") as f:
            f.write(text)
    shutil.copy(os.path.join(diffusers_src, "configuration_utils.py"), os.path.join(d, "diffusers"))
    src = os.path.join(diffusers_src, "schedulers")
    for f in os.listdir(src):
        if f.startswith("scheduling_") and f.endswith(".py"):
            shutil.copy(os.path.join(src, f), os.path.join(d, "diffusers", "schedulers"))
    return d


def write_safetensors(path, tensors, np):
    names = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name]).tobytes()
        header[name] = {"dtype": names[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main(diffusers_src, out_dir, cases_path):
    sys.path.insert(0, make_package(diffusers_src))
    import numpy as np
    import torch
    import diffusers
    torch.set_num_threads(1)

    draws, current = [], [0]  # every randn_tensor call inside step(), with its loop index
    for mod in set(diffusers.MODULES.values()):
        m = importlib.import_module("diffusers.schedulers.scheduling_" + mod)
        if hasattr(m, "randn_tensor"):
            def recording(*a, _orig=m.randn_tensor, **k):
                t = _orig(*a, **k)
                draws.append((current[0], t.clone()))
                return t
            m.randn_tensor = recording

    ref = os.environ.get("CDF_REFERENCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                "..", "..", "..", "shared", "reference")
    shared = os.path.join(ref, "goldens", "schedulers")
    manifest = json.load(open(os.path.join(shared, "manifest.json")))
    out_sched = os.path.join(out_dir, "goldens", "schedulers")
    os.makedirs(out_sched, exist_ok=True)
    shutil.copy(os.path.join(shared, "sd15_schedule.safetensors"), out_sched)
    if cases_path:
        cases = json.load(open(cases_path))
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import cases as case_list
        cases = case_list.CASES

    def run(name, cls, base, overrides, steps, step_kwargs):
        cfg = manifest["sd21_scheduler_config" if base.startswith("SD2.1") else "sd15_scheduler_config"]
        s = getattr(diffusers, cls).from_config(cfg, **overrides)
        s.set_timesteps(steps)
        x = torch.randn((1, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(0)) * s.init_noise_sigma
        gen = torch.Generator("cpu").manual_seed(0)
        kw = {"generator": gen} if "generator" in inspect.signature(s.step).parameters else {}
        kw.update(step_kwargs or {})
        draws.clear()
        rec = {"model_input": [], "model_output": [], "prev_sample": [], "pred_original_sample": []}
        t_init = s.timesteps.clone()
        x_init = x.clone()
        for i, t in enumerate(s.timesteps):
            current[0] = i
            xs = s.scale_model_input(x, t)
            m = 0.9 * xs + 0.1 * torch.sin(3.0 * xs + float(t) / 100.0)
            out = s.step(m, t, x, **kw)
            x = out.prev_sample
            p = out["pred_original_sample"] if "pred_original_sample" in out.keys() else None
            for k, v in (("model_input", xs), ("model_output", m), ("prev_sample", x), ("pred_original_sample", p)):
                rec[k].append(None if v is None else v.clone())
        T = {"timesteps": t_init.numpy(), "x_init": x_init.numpy()}
        for k, v in rec.items():
            if all(e is not None for e in v):
                T[k] = torch.stack(v).numpy()
        if getattr(s, "sigmas", None) is not None:
            T["sigmas"] = s.sigmas.numpy().astype(np.float32)
        if draws:
            T["noise"] = torch.stack([n for _, n in draws]).numpy()
            T["noise_step_index"] = np.array([i for i, _ in draws], dtype=np.int64)
        write_safetensors(os.path.join(out_sched, name + ".safetensors"), T, np)
        return {"class": cls, "num_inference_steps": steps, "from_config_overrides": overrides, "base_config": base,
                "config": dict(s.config), "order": s.order, "init_noise_sigma": float(s.init_noise_sigma),
                "num_noise_draws": len(draws), "file": name + ".safetensors", "step_kwargs": step_kwargs or {}}

    out = {"sd15_scheduler_config": manifest["sd15_scheduler_config"],
           "sd21_scheduler_config": manifest["sd21_scheduler_config"], "cases": {}}
    refused = 0
    for c in cases:
        try:
            out["cases"][c[0]] = run(c[0], c[1], c[2], c[3], c[4], c[5] if len(c) > 5 else None)
        except Exception as e:  # a combination diffusers itself rejects
            print("diffusers refused", c[0], repr(e)[:160])
            refused += 1
    with open(os.path.join(out_sched, "manifest.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(len(out["cases"]), "cases written,", refused, "refused by diffusers")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
