#include "models/blocks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/component.h"

#define NAME(buf, prefix, name) cdf_join(buf, sizeof buf, prefix, name)

/* ---------------- ResnetBlock2D ---------------- */

cdf_status cdf_resnet_load(cdf_resnet *r, const cdf_loader *ld, const char *prefix, int64_t cin, int64_t cout,
                           int64_t temb_dim, int groups, float eps, float out_scale, cdf_err *err) {
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    r->out_scale = out_scale;
    r->has_temb = temb_dim > 0;
    r->has_shortcut = cin != cout;
    char b[512];
    cdf_status st;
    if ((st = cdf_norm_load(&r->norm1, ld->f, NAME(b, prefix, "norm1"), cin, groups, eps, err)) ||
        (st = cdf_norm_load(&r->norm2, ld->f, NAME(b, prefix, "norm2"), cout, groups, eps, err)) ||
        (st = cdf_conv2d_load(&r->conv1, ld->be, ld->wo, ld->f, NAME(b, prefix, "conv1"), cin, cout, 3, 1, 1, 1, 1, 1,
                              err)) ||
        (st = cdf_conv2d_load(&r->conv2, ld->be, ld->wo, ld->f, NAME(b, prefix, "conv2"), cout, cout, 3, 1, 1, 1, 1,
                              1, err)))
        goto fail;
    if (r->has_temb) {
        const char *p[1] = {NAME(b, prefix, "time_emb_proj")};
        if ((st = cdf_linear_load(&r->temb_proj, ld->be, ld->wo, ld->f, p, 1, temb_dim, cout, 1, err))) goto fail;
    }
    if (r->has_shortcut &&
        (st = cdf_conv2d_load(&r->shortcut, ld->be, ld->wo, ld->f, NAME(b, prefix, "conv_shortcut"), cin, cout, 1, 1,
                              0, 0, 0, 0, err)))
        goto fail;
    return CDF_OK;
fail:
    cdf_resnet_free(r);
    return st;
}

void cdf_resnet_free(cdf_resnet *r) {
    cdf_norm_free(&r->norm1);
    cdf_norm_free(&r->norm2);
    cdf_conv2d_free(&r->conv1);
    cdf_conv2d_free(&r->conv2);
    cdf_conv2d_free(&r->shortcut);
    cdf_linear_free(&r->temb_proj);
}

cdf_status cdf_resnet_forward(cdf_exec *ex, const cdf_resnet *r, float *y, const float *x, int64_t B, int64_t H,
                              int64_t W, const float *temb_silu, cdf_err *err) {
    const int64_t HW = H * W;
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    cdf_status st = CDF_ERR_OUT_OF_MEMORY;
    /* With bf16 arithmetic the normalised activations are written in bf16
     * straight away, so the convolutions read them without a conversion. */
    const int bf = cdf_conv2d_is_bf16(&r->conv1);
    void *a = cdf_arena_alloc(ar, (size_t)(B * HW * (r->cin > r->cout ? r->cin : r->cout)) * (bf ? 2 : 4), err);
    float *h = cdf_arena_f32(ar, (size_t)(B * HW * r->cout), err);
    if (!a || !h) goto out;
    if ((st = cdf_group_norm_x(ex, &r->norm1, a, bf, x, B, HW, 1, err)) ||
        (st = cdf_conv2d_forward_x(ex, &r->conv1, h, a, bf, B, H, W, 0, err)))
        goto out;
    if (r->has_temb) {
        float *t = cdf_arena_f32(ar, (size_t)(B * r->cout), err);
        if (!t) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        if ((st = cdf_linear_forward(ex, &r->temb_proj, t, (size_t)r->cout, temb_silu, (size_t)r->temb_proj.in, B,
                                     err)))
            goto out;
        cdf_add_channel_bias(ex, h, t, B, HW, r->cout);
    }
    if ((st = cdf_group_norm_x(ex, &r->norm2, a, bf, h, B, HW, 1, err))) goto out;
    /* y = shortcut(x), then y += conv2(a): the residual add is fused into conv2. */
    if (r->has_shortcut) st = cdf_conv2d_forward(ex, &r->shortcut, y, x, B, H, W, 0, err);
    else memcpy(y, x, (size_t)(B * HW * r->cout) * sizeof(float));
    if (st || (st = cdf_conv2d_forward_x(ex, &r->conv2, y, a, bf, B, H, W, 1, err))) goto out;
    if (r->out_scale != 1.0f) {
        const float s = r->out_scale;
        const size_t n = (size_t)(B * HW * r->cout);
        for (size_t i = 0; i < n; i++) y[i] /= s;
    }
out:
    cdf_arena_reset(ar, mark);
    return st;
}

/* ---------------- Attention ---------------- */

cdf_status cdf_attention_load(cdf_attention_layer *a, const cdf_loader *ld, const char *prefix, int64_t dim,
                              int64_t ctx_dim, int64_t heads, int64_t dhead, int qkv_bias, cdf_err *err) {
    memset(a, 0, sizeof *a);
    a->dim = dim;
    a->self = ctx_dim <= 0;
    a->ctx_dim = a->self ? dim : ctx_dim;
    a->heads = heads;
    a->dhead = dhead;
    a->compute = ld->wo->compute;
    const int64_t inner = heads * dhead;
    char q[512], k[512], v[512], o[512];
    /* diffusers names, or the deprecated VAE names older checkpoints carry */
    const int old = cdf_st_find(ld->f, NAME(q, prefix, "query.weight")) != NULL;
    NAME(q, prefix, old ? "query" : "to_q");
    NAME(k, prefix, old ? "key" : "to_k");
    NAME(v, prefix, old ? "value" : "to_v");
    NAME(o, prefix, old ? "proj_attn" : "to_out.0");
    cdf_status st;
    if (a->self) {
        const char *p[3] = {q, k, v};
        st = cdf_linear_load(&a->qkv, ld->be, ld->wo, ld->f, p, 3, dim, inner, qkv_bias, err);
    } else {
        const char *pq[1] = {q}, *pkv[2] = {k, v};
        st = cdf_linear_load(&a->qkv, ld->be, ld->wo, ld->f, pq, 1, dim, inner, qkv_bias, err);
        if (!st) st = cdf_linear_load(&a->kv, ld->be, ld->wo, ld->f, pkv, 2, ctx_dim, inner, qkv_bias, err);
    }
    const char *po[1] = {o};
    if (!st) st = cdf_linear_load(&a->out, ld->be, ld->wo, ld->f, po, 1, inner, dim, 1, err);
    if (st) cdf_attention_free(a);
    return st;
}

void cdf_attention_free(cdf_attention_layer *a) {
    cdf_linear_free(&a->qkv);
    cdf_linear_free(&a->kv);
    cdf_linear_free(&a->out);
}

cdf_status cdf_attention_forward(cdf_exec *ex, const cdf_attention_layer *a, float *y, const void *x, int x_bf16,
                                 int64_t B, int64_t N, const void *ctx, int ctx_bf16, int64_t Nc, cdf_err *err) {
    const int64_t inner = a->heads * a->dhead, M = B * N;
    const int bf = cdf_linear_is_bf16(&a->out);
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    cdf_status st = CDF_ERR_OUT_OF_MEMORY;
    void *o = cdf_arena_f32(ar, (size_t)(M * inner), err); /* bf16 when the projection takes bf16 */
    if (!o) goto out;
    cdf_attn_shape s = {B, N, 0, a->heads, a->dhead, 0, 0, 0, (size_t)inner, 1.0f / sqrtf((float)a->dhead), 0,
                        a->compute, bf};
    if (a->self) {
        float *qkv = cdf_arena_f32(ar, (size_t)(M * 3 * inner), err);
        if (!qkv) goto out;
        if ((st = cdf_linear_forward_x(ex, &a->qkv, qkv, (size_t)(3 * inner), x, x_bf16, (size_t)a->dim, M, err)))
            goto out;
        s.Nk = N;
        s.ldq = s.ldk = s.ldv = (size_t)(3 * inner);
        st = cdf_attention(ex, &s, o, qkv, qkv + inner, qkv + 2 * inner, err);
    } else {
        float *q = cdf_arena_f32(ar, (size_t)(M * inner), err);
        float *kv = cdf_arena_f32(ar, (size_t)(B * Nc * 2 * inner), err);
        if (!q || !kv) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        if ((st = cdf_linear_forward_x(ex, &a->qkv, q, (size_t)inner, x, x_bf16, (size_t)a->dim, M, err)) ||
            (st = cdf_linear_forward_x(ex, &a->kv, kv, (size_t)(2 * inner), ctx, ctx_bf16, (size_t)a->ctx_dim, B * Nc,
                                       err)))
            goto out;
        s.Nk = Nc;
        s.ldq = (size_t)inner;
        s.ldk = s.ldv = (size_t)(2 * inner);
        st = cdf_attention(ex, &s, o, q, kv, kv + inner, err);
    }
    if (st) goto out;
    /* to_out, then the residual add (kept separate from the product to
     * follow diffusers' rounding: out = to_out(o) + residual). */
    {
        float *t = cdf_arena_f32(ar, (size_t)(M * a->dim), err);
        if (!t) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        if ((st = cdf_linear_forward_x(ex, &a->out, t, (size_t)a->dim, o, bf, (size_t)inner, M, err))) goto out;
        cdf_add_scaled(ex, y, y, t, (size_t)(M * a->dim), 1.0f);
    }
out:
    cdf_arena_reset(ar, mark);
    return st;
}

/* ---------------- Transformer2DModel ---------------- */

cdf_status cdf_transformer2d_load(cdf_transformer2d *t, const cdf_loader *ld, const char *prefix, int64_t channels,
                                  int64_t heads, int64_t dhead, int depth, int64_t ctx_dim, int groups,
                                  int linear_proj, cdf_err *err) {
    memset(t, 0, sizeof *t);
    t->channels = channels;
    t->inner = heads * dhead;
    t->ff_inner = 4 * t->inner;
    t->depth = depth;
    t->linear_proj = linear_proj;
    char b[512], p[512];
    cdf_status st;
    /* Transformer2DModel's GroupNorm uses eps 1e-6 regardless of the UNet's norm_eps. */
    if ((st = cdf_norm_load(&t->norm, ld->f, NAME(b, prefix, "norm"), channels, groups, 1e-6f, err))) goto fail;
    if (linear_proj) {
        const char *pi[1] = {NAME(b, prefix, "proj_in")};
        if ((st = cdf_linear_load(&t->proj_in_lin, ld->be, ld->wo, ld->f, pi, 1, channels, t->inner, 1, err))) goto fail;
        const char *po[1] = {NAME(b, prefix, "proj_out")};
        if ((st = cdf_linear_load(&t->proj_out_lin, ld->be, ld->wo, ld->f, po, 1, t->inner, channels, 1, err)))
            goto fail;
    } else if ((st = cdf_conv2d_load(&t->proj_in_conv, ld->be, ld->wo, ld->f, NAME(b, prefix, "proj_in"), channels,
                                     t->inner, 1, 1, 0, 0, 0, 0, err)) ||
               (st = cdf_conv2d_load(&t->proj_out_conv, ld->be, ld->wo, ld->f, NAME(b, prefix, "proj_out"), t->inner,
                                     channels, 1, 1, 0, 0, 0, 0, err))) {
        goto fail;
    }
    if (!(t->blocks = cdf_calloc((size_t)depth, sizeof *t->blocks, err))) { st = CDF_ERR_OUT_OF_MEMORY; goto fail; }
    for (int i = 0; i < depth; i++) {
        cdf_transformer_block *k = &t->blocks[i];
        char bp[512];
        snprintf(bp, sizeof bp, "%s.transformer_blocks.%d", prefix, i);
        const char *ffi[1] = {NAME(p, bp, "ff.net.0.proj")};
        if ((st = cdf_norm_load(&k->norm1, ld->f, NAME(b, bp, "norm1"), t->inner, 0, 1e-5f, err)) ||
            (st = cdf_norm_load(&k->norm2, ld->f, NAME(b, bp, "norm2"), t->inner, 0, 1e-5f, err)) ||
            (st = cdf_norm_load(&k->norm3, ld->f, NAME(b, bp, "norm3"), t->inner, 0, 1e-5f, err)) ||
            (st = cdf_attention_load(&k->attn1, ld, NAME(b, bp, "attn1"), t->inner, 0, heads, dhead, 0, err)) ||
            (st = cdf_attention_load(&k->attn2, ld, NAME(b, bp, "attn2"), t->inner, ctx_dim, heads, dhead, 0, err)) ||
            (st = cdf_linear_load(&k->ff_in, ld->be, ld->wo, ld->f, ffi, 1, t->inner, 2 * t->ff_inner, 1, err)))
            goto fail;
        const char *ffo[1] = {NAME(p, bp, "ff.net.2")};
        if ((st = cdf_linear_load(&k->ff_out, ld->be, ld->wo, ld->f, ffo, 1, t->ff_inner, t->inner, 1, err))) goto fail;
    }
    return CDF_OK;
fail:
    cdf_transformer2d_free(t);
    return st;
}

void cdf_transformer2d_free(cdf_transformer2d *t) {
    cdf_norm_free(&t->norm);
    cdf_conv2d_free(&t->proj_in_conv);
    cdf_conv2d_free(&t->proj_out_conv);
    cdf_linear_free(&t->proj_in_lin);
    cdf_linear_free(&t->proj_out_lin);
    if (t->blocks) {
        for (int i = 0; i < t->depth; i++) {
            cdf_transformer_block *k = &t->blocks[i];
            cdf_norm_free(&k->norm1);
            cdf_norm_free(&k->norm2);
            cdf_norm_free(&k->norm3);
            cdf_attention_free(&k->attn1);
            cdf_attention_free(&k->attn2);
            cdf_linear_free(&k->ff_in);
            cdf_linear_free(&k->ff_out);
        }
    }
    free(t->blocks);
    memset(t, 0, sizeof *t);
}

static cdf_status block_forward(cdf_exec *ex, const cdf_transformer2d *t, const cdf_transformer_block *k, float *h,
                                int64_t B, int64_t N, const float *ctx, int64_t Nc, void *tmp, float *ffh,
                                cdf_err *err) {
    const int64_t M = B * N, C = t->inner, F = t->ff_inner;
    const int bf = cdf_linear_is_bf16(&k->ff_in); /* normalised activations in bf16 for bf16 products */
    cdf_status st;
    cdf_layer_norm_x(ex, &k->norm1, tmp, bf, h, M);
    if ((st = cdf_attention_forward(ex, &k->attn1, h, tmp, bf, B, N, tmp, bf, N, err))) return st;
    cdf_layer_norm_x(ex, &k->norm2, tmp, bf, h, M);
    if ((st = cdf_attention_forward(ex, &k->attn2, h, tmp, bf, B, N, ctx, 0, Nc, err))) return st;
    cdf_layer_norm_x(ex, &k->norm3, tmp, bf, h, M);
    /* feed-forward in row chunks: the [rows, 2F] GEGLU input stays small.
     * GEGLU writes a dense [rows, F] buffer: oneDNN's fast matmuls want a
     * dense source (a strided bf16 source falls back to a slow GEMM). */
    const int64_t chunk = 2048;
    for (int64_t r0 = 0; r0 < M; r0 += chunk) {
        const int64_t rn = M - r0 < chunk ? M - r0 : chunk;
        const void *in = bf ? (const void *)((const uint16_t *)tmp + r0 * C) : (const void *)((const float *)tmp + r0 * C);
        float *gg = ffh + rn * 2 * F;                 /* [rn, F] GEGLU output (bf16 uses half of it) */
        float *dst = gg + rn * F;                     /* [rn, C] projection */
        if ((st = cdf_linear_forward_x(ex, &k->ff_in, ffh, (size_t)(2 * F), in, bf, (size_t)C, rn, err))) return st;
        if (bf) cdf_geglu_bf16(ex, (uint16_t *)gg, (size_t)F, ffh, rn, F);
        else cdf_geglu(ex, gg, (size_t)F, ffh, rn, F);
        if ((st = cdf_linear_forward_x(ex, &k->ff_out, dst, (size_t)C, gg, bf, (size_t)F, rn, err))) return st;
        cdf_add_scaled(ex, h + r0 * C, h + r0 * C, dst, (size_t)(rn * C), 1.0f);
    }
    return CDF_OK;
}

cdf_status cdf_transformer2d_forward(cdf_exec *ex, const cdf_transformer2d *t, float *x, int64_t B, int64_t H,
                                     int64_t W, const float *ctx, int64_t Nc, cdf_err *err) {
    const int64_t N = H * W, M = B * N, C = t->channels, I = t->inner;
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    cdf_status st = CDF_ERR_OUT_OF_MEMORY;
    const int bf = t->linear_proj ? cdf_linear_is_bf16(&t->proj_in_lin) : cdf_conv2d_is_bf16(&t->proj_in_conv);
    const int64_t rows = M < 2048 ? M : 2048;
    float *g = cdf_arena_f32(ar, (size_t)(M * C), err);
    float *h = cdf_arena_f32(ar, (size_t)(M * I), err);
    void *tmp = cdf_arena_f32(ar, (size_t)(M * I), err);
    float *ffh = cdf_arena_f32(ar, (size_t)(rows * (3 * t->ff_inner + I)), err);
    if (!g || !h || !tmp || !ffh) goto out;
    if ((st = cdf_group_norm_x(ex, &t->norm, g, bf, x, B, N, 0, err))) goto out;
    st = t->linear_proj ? cdf_linear_forward_x(ex, &t->proj_in_lin, h, (size_t)I, g, bf, (size_t)C, M, err)
                        : cdf_conv2d_forward_x(ex, &t->proj_in_conv, h, g, bf, B, H, W, 0, err);
    for (int i = 0; i < t->depth && !st; i++) st = block_forward(ex, t, &t->blocks[i], h, B, N, ctx, Nc, tmp, ffh, err);
    if (st) goto out;
    /* proj_out, then the residual: x = proj_out(h) + x */
    st = t->linear_proj ? cdf_linear_forward(ex, &t->proj_out_lin, g, (size_t)C, h, (size_t)I, M, err)
                        : cdf_conv2d_forward(ex, &t->proj_out_conv, g, h, B, H, W, 0, err);
    if (!st) cdf_add_scaled(ex, x, g, x, (size_t)(M * C), 1.0f);
out:
    cdf_arena_reset(ar, mark);
    return st;
}

/* ---------------- VAE mid-block attention ---------------- */

cdf_status cdf_vae_attention_load(cdf_vae_attention *v, const cdf_loader *ld, const char *prefix, int64_t channels,
                                  int groups, float eps, cdf_err *err) {
    memset(v, 0, sizeof *v);
    char b[512];
    const int old = cdf_st_find(ld->f, NAME(b, prefix, "query.weight")) != NULL;
    cdf_status st = cdf_norm_load(&v->norm, ld->f, NAME(b, prefix, old ? "group_norm" : "group_norm"), channels,
                                  groups, eps, err);
    if (!st) st = cdf_attention_load(&v->attn, ld, prefix, channels, 0, 1, channels, 1, err);
    if (st) cdf_vae_attention_free(v);
    return st;
}

void cdf_vae_attention_free(cdf_vae_attention *v) {
    cdf_norm_free(&v->norm);
    cdf_attention_free(&v->attn);
}

cdf_status cdf_vae_attention_forward(cdf_exec *ex, const cdf_vae_attention *v, float *x, int64_t B, int64_t H,
                                     int64_t W, cdf_err *err) {
    const int64_t N = H * W, C = v->attn.dim;
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    const int bf = cdf_linear_is_bf16(&v->attn.qkv);
    float *g = cdf_arena_f32(ar, (size_t)(B * N * C), err);
    cdf_status st = CDF_ERR_OUT_OF_MEMORY;
    if (g && !(st = cdf_group_norm_x(ex, &v->norm, g, bf, x, B, N, 0, err)))
        st = cdf_attention_forward(ex, &v->attn, x, g, bf, B, N, g, bf, N, err);
    cdf_arena_reset(ar, mark);
    return st;
}
