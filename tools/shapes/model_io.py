"""Configs of the shapes model and reading/writing it as a diffusers folder.

The config dicts carry every key diffusers 0.26.3 / transformers write, so
the folder loads in diffusers as well as in the C engine.
"""
import json
import math
import os

import torch

import sdmodules as sm

DIFFUSERS_VERSION = "0.26.3"


def text_config(vocab_size, bos, eos, max_len, hidden=64, layers=3, heads=4, inner=256):
    return {
        "_name_or_path": "shapes-tiny", "architectures": ["CLIPTextModel"], "attention_dropout": 0.0,
        "bos_token_id": bos, "dropout": 0.0, "eos_token_id": eos, "hidden_act": "quick_gelu",
        "hidden_size": hidden, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": inner,
        "layer_norm_eps": 1e-05, "max_position_embeddings": max_len, "model_type": "clip_text_model",
        "num_attention_heads": heads, "num_hidden_layers": layers, "pad_token_id": eos, "projection_dim": hidden,
        "torch_dtype": "float16", "transformers_version": "4.38.2", "vocab_size": vocab_size,
    }


def unet_config(cross_dim, block_out=(32, 64, 128), heads=(1, 2, 4), groups=8, layers_per_block=1, sample_size=16,
                down=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")):
    return {
        "_class_name": "UNet2DConditionModel", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "silu",
        "addition_embed_type": None, "addition_embed_type_num_heads": 64, "addition_time_embed_dim": None,
        "attention_head_dim": list(heads), "attention_type": "default", "block_out_channels": list(block_out),
        "center_input_sample": False, "class_embed_type": None, "class_embeddings_concat": False,
        "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": cross_dim, "cross_attention_norm": None,
        "down_block_types": list(down), "downsample_padding": 1, "dropout": 0.0, "dual_cross_attention": False,
        "encoder_hid_dim": None, "encoder_hid_dim_type": None, "flip_sin_to_cos": True, "freq_shift": 0,
        "in_channels": 4, "layers_per_block": layers_per_block, "mid_block_only_cross_attention": None,
        "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05,
        "norm_num_groups": groups, "num_attention_heads": None, "num_class_embeds": None,
        "only_cross_attention": False, "out_channels": 4, "projection_class_embeddings_input_dim": None,
        "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": False, "resnet_time_scale_shift": "default",
        "reverse_transformer_layers_per_block": None, "sample_size": sample_size, "time_cond_proj_dim": None,
        "time_embedding_act_fn": None, "time_embedding_dim": None, "time_embedding_type": "positional",
        "timestep_post_act": None, "transformer_layers_per_block": 1, "up_block_types": list(up),
        "upcast_attention": False, "use_linear_projection": False,
    }


def vae_config(block_out=(16, 32), groups=8, layers_per_block=1, scaling_factor=1.0):
    n = len(block_out)
    return {
        "_class_name": "AutoencoderKL", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "silu",
        "block_out_channels": list(block_out), "down_block_types": ["DownEncoderBlock2D"] * n,
        "force_upcast": True, "in_channels": 3, "latent_channels": 4, "layers_per_block": layers_per_block,
        "norm_num_groups": groups, "out_channels": 3, "sample_size": 32, "scaling_factor": scaling_factor,
        "up_block_types": ["UpDecoderBlock2D"] * n,
    }


def scheduler_config(prediction_type, beta_schedule="scaled_linear"):
    """DPMSolverMultistepScheduler with the training schedule."""
    return {
        "_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": DIFFUSERS_VERSION,
        "algorithm_type": "dpmsolver++", "beta_end": 0.012, "beta_schedule": beta_schedule,
        "beta_start": 0.00085, "dynamic_thresholding_ratio": 0.995, "euler_at_final": False,
        "final_sigmas_type": "zero", "lambda_min_clipped": float("-inf"), "lower_order_final": True,
        "num_train_timesteps": 1000, "prediction_type": prediction_type, "sample_max_value": 1.0,
        "solver_order": 2, "solver_type": "midpoint", "steps_offset": 1, "thresholding": False,
        "timestep_spacing": "linspace", "trained_betas": None, "use_karras_sigmas": False,
        "use_lu_lambdas": False, "variance_type": None,
    }


MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": DIFFUSERS_VERSION,
    "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
    "safety_checker": [None, None], "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
}


def alphas_cumprod(cfg):
    """The scheduler's alphas_cumprod (float32), as diffusers computes it."""
    T = cfg["num_train_timesteps"]
    if cfg["beta_schedule"] == "scaled_linear":
        betas = torch.linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, T, dtype=torch.float32) ** 2
    elif cfg["beta_schedule"] == "squaredcos_cap_v2":  # betas_for_alpha_bar, in Python floats
        def f(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.tensor([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)], dtype=torch.float32)
    else:
        raise ValueError(cfg["beta_schedule"])
    return torch.cumprod(1.0 - betas, dim=0)


def _dump(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        # Python's json writes -Infinity for lambda_min_clipped, as diffusers does
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def half_state(module):
    return {k: v.detach().to(torch.float16) for k, v in module.state_dict().items()}


def write_folder(out, te, unet, vae, sched, dtype=torch.float16):
    """Writes the diffusers folder (tokenizer/ is written by make_tokenizer)."""
    _dump(os.path.join(out, "model_index.json"), MODEL_INDEX)
    _dump(os.path.join(out, "scheduler", "scheduler_config.json"), sched)
    for name, mod, fname in (("text_encoder", te, "model"), ("unet", unet, "diffusion_pytorch_model"),
                             ("vae", vae, "diffusion_pytorch_model")):
        _dump(os.path.join(out, name, "config.json"), mod.config)
        sd = {k: v.detach().to(dtype) for k, v in mod.state_dict().items()}
        sm.save_safetensors(os.path.join(out, name, fname + ".safetensors"), sd, {"format": "pt"})


def load_folder(folder):
    """(text_encoder, unet, vae, scheduler_config) with the folder's weights in float32."""
    def cfg(name):
        with open(os.path.join(folder, name)) as f:
            return json.load(f)

    te = sm.CLIPTextModel(cfg("text_encoder/config.json"))
    unet = sm.UNet2DConditionModel(cfg("unet/config.json"))
    vae = sm.AutoencoderKL(cfg("vae/config.json"))
    for mod, path in ((te, "text_encoder/model.safetensors"), (unet, "unet/diffusion_pytorch_model.safetensors"),
                      (vae, "vae/diffusion_pytorch_model.safetensors")):
        sd = {k: v.float() for k, v in sm.load_safetensors(os.path.join(folder, path)).items()}
        mod.load_state_dict(sd, strict=True)
        mod.eval()
    return te, unet, vae, cfg("scheduler/scheduler_config.json")
