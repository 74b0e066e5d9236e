/* UNet2DConditionModel: loading (module tree from the config, weights by
 * diffusers' names) and the forward pass on channels-last activations. */
#include "models/unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/component.h"
#include "models/unet_internal.h"

const cdf_unet_config *cdf_unet_get_config(const cdf_unet *u) { return &u->cfg; }

static cdf_status load_modules(cdf_unet *u, const cdf_loader *ld0, cdf_err *err) {
    const cdf_unet_config *c = &u->cfg;
    /* Level i sees sample_size >> i sides at batch 2 (classifier-free guidance). */
    cdf_weight_opts wo;
    cdf_loader lvl = cdf_loader_at(ld0, &wo, 2, c->sample_size), *ld = &lvl;
    const int n = c->nblocks, G = c->norm_num_groups;
    const float eps = (float)c->norm_eps, ros = (float)c->resnet_out_scale_factor;
    const int64_t TD = c->time_embed_dim;
    char p[256];
    cdf_status st;
    const char *l1[1] = {"time_embedding.linear_1"}, *l2[1] = {"time_embedding.linear_2"};
    if ((st = cdf_linear_load(&u->t_lin1, ld->be, ld->wo, ld->f, l1, 1, c->block_out[0], TD, 1, err)) ||
        (st = cdf_linear_load(&u->t_lin2, ld->be, ld->wo, ld->f, l2, 1, TD, TD, 1, err)))
        return st;
    const int ki = c->conv_in_kernel, ko = c->conv_out_kernel;
    if ((st = cdf_conv2d_load(&u->conv_in, ld->be, ld->wo, ld->f, "conv_in", c->in_channels, c->block_out[0], ki, 1,
                              ki / 2, ki / 2, ki / 2, ki / 2, err)))
        return st;
    /* Skip-connection channels, pushed as the down path produces them. */
    int64_t skips[CDF_UNET_MAX_BLOCKS * (CDF_UNET_MAX_LAYERS + 1) + 1];
    int ns = 0;
    skips[ns++] = c->block_out[0];
    int64_t ch = c->block_out[0];
    for (int i = 0; i < n; i++) {
        lvl = cdf_loader_at(ld0, &wo, 2, c->sample_size >> i);
        unet_down *d = &u->down[i];
        d->nres = (int)c->layers_per_block[i];
        if (d->nres > CDF_UNET_MAX_LAYERS) return cdf_errf(err, CDF_ERR_UNSUPPORTED, "unet: too many layers per block");
        d->has_attn = c->down_cross[i];
        d->has_down = i < n - 1;
        const int64_t oc = c->block_out[i];
        for (int j = 0; j < d->nres; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            if ((st = cdf_resnet_load(&d->res[j], ld, p, j == 0 ? ch : oc, oc, TD, G, eps, ros, err))) return st;
            if (d->has_attn) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
                if ((st = cdf_transformer2d_load(&d->attn[j], ld, p, oc, c->heads[i], oc / c->heads[i],
                                                 (int)c->tlayers[i], c->cross_attention_dim, G,
                                                 c->use_linear_projection, err)))
                    return st;
            }
            skips[ns++] = oc;
        }
        ch = oc;
        if (d->has_down) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            const int pd = c->downsample_padding;
            if ((st = cdf_conv2d_load(&d->down, ld->be, ld->wo, ld->f, p, oc, oc, 3, 2, pd, pd, 1, 1, err)))
                return st;
            skips[ns++] = oc;
        }
    }
    const int64_t mc = c->block_out[n - 1];
    const float ms = (float)c->mid_block_scale_factor;
    lvl = cdf_loader_at(ld0, &wo, 2, c->sample_size >> (n - 1));
    if ((st = cdf_resnet_load(&u->mid_res[0], ld, "mid_block.resnets.0", mc, mc, TD, G, eps, ms, err)) ||
        (st = cdf_transformer2d_load(&u->mid_attn, ld, "mid_block.attentions.0", mc, c->heads[n - 1],
                                     mc / c->heads[n - 1], (int)c->tlayers[n - 1], c->cross_attention_dim, G,
                                     c->use_linear_projection, err)) ||
        (st = cdf_resnet_load(&u->mid_res[1], ld, "mid_block.resnets.1", mc, mc, TD, G, eps, ms, err)))
        return st;
    for (int i = 0; i < n; i++) {
        unet_up *up = &u->up[i];
        const int r = n - 1 - i; /* the down block this one mirrors */
        lvl = cdf_loader_at(ld0, &wo, 2, c->sample_size >> r);
        up->nres = (int)c->layers_per_block[r] + 1;
        if (up->nres > CDF_UNET_MAX_LAYERS) return cdf_errf(err, CDF_ERR_UNSUPPORTED, "unet: too many layers per block");
        up->has_attn = c->up_cross[i];
        up->has_up = i < n - 1;
        const int64_t oc = c->block_out[r];
        for (int j = 0; j < up->nres; j++) {
            if (ns == 0) return cdf_errf(err, CDF_ERR_FORMAT, "unet/config.json: up blocks need more skip connections");
            up->skip_ch[j] = skips[--ns];
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            if ((st = cdf_resnet_load(&up->res[j], ld, p, ch + up->skip_ch[j], oc, TD, G, eps, ros, err))) return st;
            ch = oc;
            if (up->has_attn) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                if ((st = cdf_transformer2d_load(&up->attn[j], ld, p, oc, c->heads[r], oc / c->heads[r],
                                                 (int)c->tlayers[r], c->cross_attention_dim, G,
                                                 c->use_linear_projection, err)))
                    return st;
            }
        }
        if (up->has_up) {
            lvl = cdf_loader_at(ld0, &wo, 2, c->sample_size >> (r - 1)); /* after the 2x upsampling */
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            if ((st = cdf_conv2d_load(&up->up, ld->be, ld->wo, ld->f, p, oc, oc, 3, 1, 1, 1, 1, 1, err))) return st;
        }
    }
    if (ns != 0)
        return cdf_errf(err, CDF_ERR_FORMAT, "unet/config.json: %d skip connections are left unused", ns);
    lvl = cdf_loader_at(ld0, &wo, 2, c->sample_size);
    if ((st = cdf_norm_load(&u->norm_out, ld->f, "conv_norm_out", c->block_out[0], G, eps, err)) ||
        (st = cdf_conv2d_load(&u->conv_out, ld->be, ld->wo, ld->f, "conv_out", c->block_out[0], c->out_channels, ko,
                              1, ko / 2, ko / 2, ko / 2, ko / 2, err)))
        return st;
    return CDF_OK;
}

cdf_status cdf_unet_create(cdf_unet **out, const cdf_backend *be, const cdf_json *config, const cdf_st_file *f,
                           const cdf_weight_opts *o, cdf_err *err) {
    *out = NULL;
    cdf_unet *u = cdf_calloc(1, sizeof *u, err);
    if (!u) return CDF_ERR_OUT_OF_MEMORY;
    cdf_status st = cdf_unet_read_config(&u->cfg, config, err);
    if (!st) {
        cdf_loader ld = {be, o, f};
        st = load_modules(u, &ld, err);
    }
    if (st) {
        cdf_unet_free(u);
        return st;
    }
    *out = u;
    return CDF_OK;
}

cdf_status cdf_unet_load(cdf_unet **out, const cdf_backend *be, const char *dir, const char *variant,
                         const cdf_weight_opts *o, cdf_err *err) {
    *out = NULL;
    cdf_json j;
    cdf_st_file *f;
    cdf_status st = cdf_component_open(&j, &f, dir, "diffusion_pytorch_model", variant, err);
    if (st) return st;
    st = cdf_unet_create(out, be, &j, f, o, err);
    cdf_component_close(&j, f, !st && o->stream ? &(*out)->stream_src : NULL);
    return st;
}

void cdf_unet_free(cdf_unet *u) {
    if (!u) return;
    cdf_linear_free(&u->t_lin1);
    cdf_linear_free(&u->t_lin2);
    cdf_conv2d_free(&u->conv_in);
    cdf_conv2d_free(&u->conv_out);
    for (int i = 0; i < CDF_UNET_MAX_BLOCKS; i++) {
        for (int j = 0; j < CDF_UNET_MAX_LAYERS; j++) {
            cdf_resnet_free(&u->down[i].res[j]);
            cdf_transformer2d_free(&u->down[i].attn[j]);
            cdf_resnet_free(&u->up[i].res[j]);
            cdf_transformer2d_free(&u->up[i].attn[j]);
        }
        cdf_conv2d_free(&u->down[i].down);
        cdf_conv2d_free(&u->up[i].up);
    }
    cdf_resnet_free(&u->mid_res[0]);
    cdf_resnet_free(&u->mid_res[1]);
    cdf_transformer2d_free(&u->mid_attn);
    cdf_norm_free(&u->norm_out);
    cdf_st_close(u->stream_src);
    free(u);
}

/* diffusers' get_timestep_embedding in float32: exponent = -ln(10000) * i /
 * (half - shift); emb = t * exp(exponent); [sin, cos] (flipped: [cos, sin]). */
static void timestep_embedding(float *emb, const float *t, int64_t B, int64_t nt, int64_t dim, int flip,
                               double shift) {
    const int64_t half = dim / 2;
    const float lnmax = (float)(-log(10000.0));
    for (int64_t b = 0; b < B; b++) {
        float tb = t[nt == 1 ? 0 : b];
        float *e = emb + b * dim;
        for (int64_t i = 0; i < half; i++) {
            float ex = (float)i * lnmax;
            ex = (float)((double)ex / ((double)half - shift));
            float a = tb * expf(ex);
            float s = sinf(a), co = cosf(a);
            e[flip ? half + i : i] = s;
            e[flip ? i : half + i] = co;
        }
        if (dim & 1) e[dim - 1] = 0.0f;
    }
}

typedef struct skip {
    float *p;
    int64_t C, H, W;
    cdf_arena_mark at; /* the arena position just before p */
} skip;

cdf_status cdf_unet_forward(cdf_exec *ex, const cdf_unet *u, float *out, const float *sample, int64_t B, int64_t h,
                            int64_t w, const float *timesteps, int64_t nt, const float *ctx, int64_t L,
                            cdf_unet_tap tap, void *tu, cdf_err *err) {
    const cdf_unet_config *c = &u->cfg;
    const int n = c->nblocks;
    if (B < 1 || h < 1 || w < 1 || L < 1 || (nt != 1 && nt != B))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "unet: bad input shape (B %lld, %lldx%lld, %lld timesteps)",
                        (long long)B, (long long)h, (long long)w, (long long)nt);
    cdf_exec_begin_sized(ex, (size_t)(B * h * w * c->block_out[0]));
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    cdf_status st = CDF_ERR_OUT_OF_MEMORY;
    const int64_t TD = c->time_embed_dim, C0 = c->block_out[0];
    /* time embedding: temb_silu = silu(linear_2(silu(linear_1(proj(t))))) */
    float *tp = cdf_arena_f32(ar, (size_t)(B * C0), err), *t1 = cdf_arena_f32(ar, (size_t)(B * TD), err);
    float *temb = cdf_arena_f32(ar, (size_t)(B * TD), err);
    float *x = cdf_arena_f32(ar, (size_t)(B * h * w * c->in_channels), err);
    skip *skips = cdf_arena_alloc(ar, sizeof(skip) * (size_t)(n * (CDF_UNET_MAX_LAYERS + 1) + 1), err);
    int ns = 0;
    if (!tp || !t1 || !temb || !x || !skips) goto out;
    timestep_embedding(tp, timesteps, B, nt, C0, c->flip_sin_to_cos, c->freq_shift);
    if (tap) tap(tu, "time_proj", tp, B, C0, 1, 1);
    if ((st = cdf_linear_forward(ex, &u->t_lin1, t1, (size_t)TD, tp, (size_t)C0, B, err))) goto out;
    cdf_silu(ex, t1, t1, (size_t)(B * TD));
    if ((st = cdf_linear_forward(ex, &u->t_lin2, temb, (size_t)TD, t1, (size_t)TD, B, err))) goto out;
    if (tap) tap(tu, "time_embedding", temb, B, TD, 1, 1);
    cdf_silu(ex, temb, temb, (size_t)(B * TD));

    cdf_nchw_to_nhwc(x, sample, B, c->in_channels, h, w);
    if (c->center_input_sample)
        for (size_t i = 0; i < (size_t)(B * h * w * c->in_channels); i++) x[i] = 2.0f * x[i] - 1.0f;
    int64_t H = h, W = w, C = C0;
    cdf_arena_mark at = cdf_arena_save(ar);
    float *cur = cdf_arena_f32(ar, (size_t)(B * H * W * C), err);
    if (!cur) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
    if ((st = cdf_conv2d_forward(ex, &u->conv_in, cur, x, B, H, W, 0, err))) goto out;
    if (tap) tap(tu, "conv_in", cur, B, C, H, W);
    skips[ns++] = (skip){cur, C, H, W, at};
    char name[64];
    for (int i = 0; i < n; i++) {
        const unet_down *d = &u->down[i];
        for (int j = 0; j < d->nres; j++) {
            const int64_t oc = d->res[j].cout;
            at = cdf_arena_save(ar);
            float *y = cdf_arena_f32(ar, (size_t)(B * H * W * oc), err);
            if (!y) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
            if ((st = cdf_resnet_forward(ex, &d->res[j], y, cur, B, H, W, temb, err))) goto out;
            if (d->has_attn && (st = cdf_transformer2d_forward(ex, &d->attn[j], y, B, H, W, ctx, L, err))) goto out;
            cur = y;
            C = oc;
            skips[ns++] = (skip){cur, C, H, W, at};
        }
        if (d->has_down) {
            int64_t Ho, Wo;
            cdf_conv2d_out_size(&d->down, H, W, &Ho, &Wo);
            at = cdf_arena_save(ar);
            float *y = cdf_arena_f32(ar, (size_t)(B * Ho * Wo * C), err);
            if (!y) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
            if ((st = cdf_conv2d_forward(ex, &d->down, y, cur, B, H, W, 0, err))) goto out;
            cur = y;
            H = Ho;
            W = Wo;
            skips[ns++] = (skip){cur, C, H, W, at};
        }
        snprintf(name, sizeof name, "down_blocks.%d", i);
        if (tap) tap(tu, name, cur, B, C, H, W);
    }
    {
        /* the last down output is also a skip: the mid block writes above it */
        at = cdf_arena_save(ar);
        const size_t n = (size_t)(B * H * W * C);
        float *y = cdf_arena_f32(ar, n, err);
        float *y2 = cdf_arena_f32(ar, n, err);
        if (!y || !y2) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        if ((st = cdf_resnet_forward(ex, &u->mid_res[0], y, cur, B, H, W, temb, err)) ||
            (st = cdf_transformer2d_forward(ex, &u->mid_attn, y, B, H, W, ctx, L, err)) ||
            (st = cdf_resnet_forward(ex, &u->mid_res[1], y2, y, B, H, W, temb, err)))
            goto out;
        cur = cdf_arena_keep(ar, at, y2, n * sizeof(float));
        if (tap) tap(tu, "mid_block", cur, B, C, H, W);
    }
    for (int i = 0; i < n; i++) {
        const unet_up *up = &u->up[i];
        for (int j = 0; j < up->nres; j++) {
            skip s = skips[--ns];
            if (s.H != H || s.W != W) {
                st = cdf_errf(err, CDF_ERR_INTERNAL, "unet: skip %lldx%lld does not match %lldx%lld", (long long)s.H,
                              (long long)s.W, (long long)H, (long long)W);
                goto out;
            }
            const int64_t oc = up->res[j].cout;
            float *cat = cdf_arena_f32(ar, (size_t)(B * H * W * (C + s.C)), err);
            float *y = cdf_arena_f32(ar, (size_t)(B * H * W * oc), err);
            if (!cat || !y) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
            cdf_concat_channels(ex, cat, cur, C, s.p, s.C, B * H * W);
            if ((st = cdf_resnet_forward(ex, &up->res[j], y, cat, B, H, W, temb, err))) goto out;
            /* the skip, the previous activation and cat are spent: y moves down over them */
            at = s.at;
            cur = y = cdf_arena_keep(ar, at, y, (size_t)(B * H * W * oc) * sizeof(float));
            if (up->has_attn && (st = cdf_transformer2d_forward(ex, &up->attn[j], y, B, H, W, ctx, L, err))) goto out;
            C = oc;
        }
        if (up->has_up) {
            /* Nearest 2x, or to the next skip's size when the input sides are
             * not multiples of 2^(levels-1) (diffusers' upsample_size). */
            int64_t Ho = 2 * H, Wo = 2 * W;
            if (ns > 0) {
                Ho = skips[ns - 1].H;
                Wo = skips[ns - 1].W;
            }
            float *t = cdf_arena_f32(ar, (size_t)(B * Ho * Wo * C), err);
            float *y = cdf_arena_f32(ar, (size_t)(B * Ho * Wo * C), err);
            if (!t || !y) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
            cdf_upsample_nearest(ex, t, cur, B, H, W, C, Ho, Wo);
            H = Ho;
            W = Wo;
            if ((st = cdf_conv2d_forward(ex, &up->up, y, t, B, H, W, 0, err))) goto out;
            cur = cdf_arena_keep(ar, at, y, (size_t)(B * H * W * C) * sizeof(float));
        }
        snprintf(name, sizeof name, "up_blocks.%d", i);
        if (tap) tap(tu, name, cur, B, C, H, W);
    }
    {
        float *g = cdf_arena_f32(ar, (size_t)(B * H * W * C), err);
        float *y = cdf_arena_f32(ar, (size_t)(B * H * W * c->out_channels), err);
        if (!g || !y) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        if ((st = cdf_group_norm(ex, &u->norm_out, g, cur, B, H * W, 1, err)) ||
            (st = cdf_conv2d_forward(ex, &u->conv_out, y, g, B, H, W, 0, err)))
            goto out;
        cdf_nhwc_to_nchw(out, y, B, c->out_channels, H, W);
    }
out:
    cdf_arena_reset(ar, mark);
    return st;
}
