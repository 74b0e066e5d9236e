"""The few diffusers/transformers modules the shapes model needs, in plain PyTorch.

Parameter names and forward semantics follow diffusers 0.26.3
(UNet2DConditionModel, AutoencoderKL) and transformers' CLIPTextModel, so a
state_dict written from these modules is a diffusers folder the C engine
(and diffusers itself) loads. Only the configuration subset used here is
implemented: SiLU everywhere, GroupNorm, non-linear projections in the
transformers, GEGLU feed-forward, no dropout.
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- text encoder

class CLIPAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, mask):
        B, L, D = x.shape
        hd = D // self.heads
        q = self.q_proj(x).view(B, L, self.heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, L, self.heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, L, self.heads, hd).transpose(1, 2)
        w = (q * hd ** -0.5) @ k.transpose(-1, -2) + mask
        o = w.softmax(-1) @ v
        return self.out_proj(o.transpose(1, 2).reshape(B, L, D))


class CLIPMLP(nn.Module):
    def __init__(self, dim, inner, act):
        super().__init__()
        self.fc1 = nn.Linear(dim, inner)
        self.fc2 = nn.Linear(inner, dim)
        self.act = act

    def forward(self, x):
        h = self.fc1(x)
        h = h * torch.sigmoid(1.702 * h) if self.act == "quick_gelu" else F.gelu(h)
        return self.fc2(h)


class CLIPLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        D = c["hidden_size"]
        self.self_attn = CLIPAttention(D, c["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(D, eps=c["layer_norm_eps"])
        self.mlp = CLIPMLP(D, c["intermediate_size"], c["hidden_act"])
        self.layer_norm2 = nn.LayerNorm(D, eps=c["layer_norm_eps"])

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])


class CLIPEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([CLIPLayer(c) for _ in range(c["num_hidden_layers"])])


class CLIPTextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = CLIPEmbeddings(c)
        self.encoder = CLIPEncoder(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])


class CLIPTextModel(nn.Module):
    """transformers' CLIPTextModel: causal transformer; returns last_hidden_state."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.text_model = CLIPTextTransformer(config)

    def forward(self, ids):
        tm = self.text_model
        L = ids.shape[1]
        pos = torch.arange(L, device=ids.device)
        x = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding(pos)[None]
        mask = torch.full((L, L), torch.finfo(x.dtype).min, device=ids.device).triu(1)[None, None]
        for layer in tm.encoder.layers:
            x = layer(x, mask)
        return tm.final_layer_norm(x)


# ---------------------------------------------------------------- shared blocks

class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        if temb:
            self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if hasattr(self, "conv_shortcut"):
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    def __init__(self, ch, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:  # the VAE encoder pads right/bottom only
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def attention(q, k, v, heads):
    B, N, D = q.shape
    hd = D // heads
    q = q.view(B, N, heads, hd).transpose(1, 2)
    k = k.view(B, k.shape[1], heads, hd).transpose(1, 2)
    v = v.view(B, v.shape[1], heads, hd).transpose(1, 2)
    w = (q @ k.transpose(-1, -2)) * hd ** -0.5
    return (w.softmax(-1) @ v).transpose(1, 2).reshape(B, N, D)


class Attention(nn.Module):
    """diffusers Attention; with norm_groups it is the VAE's mid-block attention
    (GroupNorm in front, residual added)."""

    def __init__(self, dim, heads, ctx_dim=None, bias=False, norm_groups=None, eps=1e-6):
        super().__init__()
        self.heads = heads
        if norm_groups:
            self.group_norm = nn.GroupNorm(norm_groups, dim, eps=eps)
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(ctx_dim or dim, dim, bias=bias)
        self.to_v = nn.Linear(ctx_dim or dim, dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        return self.to_out[0](attention(self.to_q(x), self.to_k(ctx), self.to_v(ctx), self.heads))

    def forward_spatial(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x).view(B, C, H * W).transpose(1, 2)
        h = self.forward(h)
        return x + h.transpose(1, 2).reshape(B, C, H, W)


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x):
        h, g = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(g)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, ctx_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, ctx_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, ch, heads, ctx_dim, groups, layers):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(ch, heads, ctx_dim) for _ in range(layers)])
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, ctx):
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x)).view(B, C, H * W).transpose(1, 2)
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        return self.proj_out(h.transpose(1, 2).reshape(B, C, H, W)) + x


# ---------------------------------------------------------------- UNet

class Timesteps(nn.Module):
    def __init__(self, dim, flip, shift):
        super().__init__()
        self.dim, self.flip, self.shift = dim, flip, shift

    def forward(self, t):
        half = self.dim // 2
        ex = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - self.shift)
        e = t[:, None].float() * torch.exp(ex)[None]
        e = torch.cat([torch.sin(e), torch.cos(e)], -1)
        return torch.cat([e[:, half:], e[:, :half]], -1) if self.flip else e


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class UNetBlock(nn.Module):
    """CrossAttnDownBlock2D / DownBlock2D / CrossAttnUpBlock2D / UpBlock2D."""

    def __init__(self, res_channels, cout, temb, cross, heads, ctx_dim, groups, eps, tlayers, down, up):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ci, cout, temb, groups, eps) for ci in res_channels])
        if cross:
            self.attentions = nn.ModuleList(
                [Transformer2DModel(cout, heads, ctx_dim, groups, tlayers) for _ in res_channels])
        if down:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, 1)])
        if up:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])


class UNetMidBlock2DCrossAttn(nn.Module):
    def __init__(self, ch, temb, heads, ctx_dim, groups, eps, tlayers):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb, groups, eps) for _ in range(2)])
        self.attentions = nn.ModuleList([Transformer2DModel(ch, heads, ctx_dim, groups, tlayers)])

    def forward(self, x, temb, ctx):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, ctx)
        return self.resnets[1](x, temb)


class UNet2DConditionModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = self.config = config
        bo = c["block_out_channels"]
        n = len(bo)
        heads = c["attention_head_dim"]
        heads = heads if isinstance(heads, list) else [heads] * n
        lpb = c["layers_per_block"]
        G, eps, X = c["norm_num_groups"], c["norm_eps"], c["cross_attention_dim"]
        tl = c.get("transformer_layers_per_block", 1)
        temb = 4 * bo[0]
        self.conv_in = nn.Conv2d(c["in_channels"], bo[0], 3, padding=1)
        self.time_proj = Timesteps(bo[0], c["flip_sin_to_cos"], c["freq_shift"])
        self.time_embedding = TimestepEmbedding(bo[0], temb)
        self.down_blocks = nn.ModuleList()
        cout = bo[0]
        for i, typ in enumerate(c["down_block_types"]):
            cin, cout = cout, bo[i]
            self.down_blocks.append(UNetBlock([cin] + [cout] * (lpb - 1), cout, temb, typ.startswith("CrossAttn"),
                                              heads[i], X, G, eps, tl, down=i < n - 1, up=False))
        self.mid_block = UNetMidBlock2DCrossAttn(bo[-1], temb, heads[-1], X, G, eps, tl)
        self.up_blocks = nn.ModuleList()
        rbo, rheads = bo[::-1], heads[::-1]
        cout = rbo[0]
        for i, typ in enumerate(c["up_block_types"]):
            prev, cout = cout, rbo[i]
            cin = rbo[min(i + 1, n - 1)]
            chans = []
            for j in range(lpb + 1):
                skip = cin if j == lpb else cout
                chans.append((prev if j == 0 else cout) + skip)
            self.up_blocks.append(UNetBlock(chans, cout, temb, typ.startswith("CrossAttn"), rheads[i], X, G, eps, tl,
                                            down=False, up=i < n - 1))
        self.conv_norm_out = nn.GroupNorm(G, bo[0], eps=eps)
        self.conv_out = nn.Conv2d(bo[0], c["out_channels"], 3, padding=1)

    def forward(self, x, t, ctx):
        if t.dim() == 0:
            t = t[None]
        t = t.expand(x.shape[0])
        temb = self.time_embedding(self.time_proj(t).to(x.dtype))  # as diffusers: t_emb.to(sample.dtype)
        x = self.conv_in(x)
        skips = [x]
        for blk in self.down_blocks:
            for k, res in enumerate(blk.resnets):
                x = res(x, temb)
                if hasattr(blk, "attentions"):
                    x = blk.attentions[k](x, ctx)
                skips.append(x)
            if hasattr(blk, "downsamplers"):
                x = blk.downsamplers[0](x)
                skips.append(x)
        x = self.mid_block(x, temb, ctx)
        for blk in self.up_blocks:
            for k, res in enumerate(blk.resnets):
                x = res(torch.cat([x, skips.pop()], 1), temb)
                if hasattr(blk, "attentions"):
                    x = blk.attentions[k](x, ctx)
            if hasattr(blk, "upsamplers"):
                x = blk.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# ---------------------------------------------------------------- VAE

class VAEMid(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, None, groups, 1e-6) for _ in range(2)])
        self.attentions = nn.ModuleList([Attention(ch, 1, bias=True, norm_groups=groups)])

    def forward(self, x):
        x = self.resnets[0](x)
        x = self.attentions[0].forward_spatial(x)
        return self.resnets[1](x)


class VAEBlock(nn.Module):
    def __init__(self, chans, cout, groups, down, up):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ci, cout, None, groups, 1e-6) for ci in chans])
        if down:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, 0)])
        if up:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if hasattr(self, "downsamplers"):
            x = self.downsamplers[0](x)
        if hasattr(self, "upsamplers"):
            x = self.upsamplers[0](x)
        return x


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        bo, G, lpb = c["block_out_channels"], c["norm_num_groups"], c["layers_per_block"]
        self.conv_in = nn.Conv2d(c["in_channels"], bo[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cout = bo[0]
        for i in range(len(bo)):
            cin, cout = cout, bo[i]
            self.down_blocks.append(VAEBlock([cin] + [cout] * (lpb - 1), cout, G, down=i < len(bo) - 1, up=False))
        self.mid_block = VAEMid(bo[-1], G)
        self.conv_norm_out = nn.GroupNorm(G, bo[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(bo[-1], 2 * c["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        bo, G, lpb = c["block_out_channels"], c["norm_num_groups"], c["layers_per_block"]
        rbo = bo[::-1]
        self.conv_in = nn.Conv2d(c["latent_channels"], rbo[0], 3, padding=1)
        self.mid_block = VAEMid(rbo[0], G)
        self.up_blocks = nn.ModuleList()
        cout = rbo[0]
        for i in range(len(bo)):
            prev, cout = cout, rbo[i]
            self.up_blocks.append(VAEBlock([prev] + [cout] * lpb, cout, G, down=False, up=i < len(bo) - 1))
        self.conv_norm_out = nn.GroupNorm(G, bo[0], eps=1e-6)
        self.conv_out = nn.Conv2d(bo[0], c["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        L = config["latent_channels"]
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * L, 2 * L, 1)
        self.post_quant_conv = nn.Conv2d(L, L, 1)

    def encode(self, x):
        """image in [-1, 1] -> (mean, logvar) of the latent distribution (unscaled)."""
        m = self.quant_conv(self.encoder(x))
        mean, logvar = m.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        """unscaled latents -> image in [-1, 1] (unclamped)."""
        return self.decoder(self.post_quant_conv(z))


# ---------------------------------------------------------------- safetensors

_DT = {"F32": (np.float32, torch.float32), "F16": (np.float16, torch.float16), "I64": (np.int64, torch.int64),
       "I32": (np.int32, torch.int32)}


def save_safetensors(path, tensors, metadata=None):
    """tensors: name -> torch tensor (F32/F16/I64/I32), written in name order."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        code = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64", torch.int32: "I32"}[t.dtype]
        b = t.numpy().astype(_DT[code][0]).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=_DT[info["dtype"]][0]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out
