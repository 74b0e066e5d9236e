#include "models/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "models/blocks.h"
#include "models/component.h"

#define MAXL 16 /* resnets per block */

typedef struct vae_block {
    int nres;
    cdf_resnet res[MAXL];
    int has_resample;
    cdf_conv2d resample;
} vae_block;

typedef struct vae_mid {
    cdf_resnet res[2];
    cdf_vae_attention attn;
    int has_attn;
} vae_mid;

struct cdf_vae {
    cdf_vae_config cfg;
    /* encoder */
    cdf_conv2d e_conv_in, e_conv_out, quant_conv;
    vae_block e_down[CDF_VAE_MAX_BLOCKS];
    vae_mid e_mid;
    cdf_norm e_norm_out;
    /* decoder */
    cdf_conv2d post_quant_conv, d_conv_in, d_conv_out;
    vae_mid d_mid;
    vae_block d_up[CDF_VAE_MAX_BLOCKS];
    cdf_norm d_norm_out;
    cdf_st_file *stream_src; /* streamed weights read from here */
};

const cdf_vae_config *cdf_vae_get_config(const cdf_vae *v) { return &v->cfg; }
int64_t cdf_vae_config_scale_factor(const cdf_vae_config *c) { return (int64_t)1 << (c->nblocks - 1); }
int64_t cdf_vae_scale_factor(const cdf_vae *v) { return cdf_vae_config_scale_factor(&v->cfg); }

cdf_status cdf_vae_read_config(cdf_vae_config *c, const cdf_json *j, cdf_err *err) {
    memset(c, 0, sizeof *c);
    cdf_status st;
    const char *down[CDF_VAE_MAX_BLOCKS], *up[CDF_VAE_MAX_BLOCKS], *act;
    int n, nd, nu;
    int64_t g;
    if ((st = cdf_json_int(j, "in_channels", 3, &c->in_channels, err)) ||
        (st = cdf_json_int(j, "out_channels", 3, &c->out_channels, err)) ||
        (st = cdf_json_int(j, "latent_channels", 4, &c->latent_channels, err)) ||
        (st = cdf_json_int(j, "sample_size", 32, &c->sample_size, err)) ||
        (st = cdf_json_int(j, "layers_per_block", 1, &c->layers_per_block, err)) ||
        (st = cdf_json_int(j, "norm_num_groups", 32, &g, err)) ||
        (st = cdf_json_num(j, "scaling_factor", 0.18215, &c->scaling_factor, err)) ||
        (st = cdf_json_bool(j, "use_quant_conv", 1, &c->use_quant_conv, err)) ||
        (st = cdf_json_bool(j, "use_post_quant_conv", 1, &c->use_post_quant_conv, err)) ||
        (st = cdf_json_bool(j, "mid_block_add_attention", 1, &c->mid_attention, err)) ||
        (st = cdf_json_str(j, "act_fn", "silu", &act, err)) ||
        (st = cdf_json_int_list(j, "block_out_channels", c->block_out, CDF_VAE_MAX_BLOCKS, 0, &n, 1, err)) ||
        (st = cdf_json_str_list(j, "down_block_types", down, CDF_VAE_MAX_BLOCKS, &nd, err)) ||
        (st = cdf_json_str_list(j, "up_block_types", up, CDF_VAE_MAX_BLOCKS, &nu, err)))
        return st;
    if (strcmp(act, "silu") != 0)
        return cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s: act_fn \"%s\" is not supported (silu)", j->label, act);
    if (cdf_json_has(j, "shift_factor"))
        return cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s: key 'shift_factor' is set; only SD 1.x/2.x VAEs are supported",
                        j->label);
    if (n < 1 || nd != n || nu != n)
        return cdf_errf(err, CDF_ERR_FORMAT,
                        "%s: block_out_channels has %d entries but down_block_types has %d and up_block_types %d",
                        j->label, n, nd, nu);
    c->nblocks = n;
    c->norm_num_groups = (int)g;
    for (int i = 0; i < n; i++) {
        if (strcmp(down[i], "DownEncoderBlock2D") != 0)
            return cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s: down_block_types[%d] \"%s\" is not supported (DownEncoderBlock2D)",
                            j->label, i, down[i]);
        if (strcmp(up[i], "UpDecoderBlock2D") != 0)
            return cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s: up_block_types[%d] \"%s\" is not supported (UpDecoderBlock2D)",
                            j->label, i, up[i]);
        if (g < 1 || c->block_out[i] < 1 || c->block_out[i] > 65536 || c->block_out[i] % g)
            return cdf_errf(err, CDF_ERR_FORMAT,
                            "%s: block_out_channels[%d] = %lld must be a positive multiple of norm_num_groups %lld",
                            j->label, i, (long long)c->block_out[i], (long long)g);
    }
    if (c->layers_per_block < 1 || c->layers_per_block >= MAXL || c->in_channels < 1 || c->in_channels > 64 ||
        c->out_channels < 1 || c->out_channels > 64 || c->latent_channels < 1 || c->latent_channels > 64 ||
        !(c->scaling_factor > 0))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: a size or scaling_factor value is out of range", j->label);
    return CDF_OK;
}

static cdf_status load_mid(vae_mid *m, const cdf_loader *ld, const char *pre, int64_t C, int G, int attn,
                           cdf_err *err) {
    char p[256];
    cdf_status st;
    m->has_attn = attn;
    snprintf(p, sizeof p, "%s.resnets.0", pre);
    if ((st = cdf_resnet_load(&m->res[0], ld, p, C, C, 0, G, 1e-6f, 1.0f, err))) return st;
    snprintf(p, sizeof p, "%s.resnets.1", pre);
    if ((st = cdf_resnet_load(&m->res[1], ld, p, C, C, 0, G, 1e-6f, 1.0f, err))) return st;
    snprintf(p, sizeof p, "%s.attentions.0", pre);
    if (attn && (st = cdf_vae_attention_load(&m->attn, ld, p, C, G, 1e-6f, err))) return st;
    return CDF_OK;
}

static cdf_status load_modules(cdf_vae *v, const cdf_loader *ld0, cdf_err *err) {
    const cdf_vae_config *c = &v->cfg;
    const int n = c->nblocks, G = c->norm_num_groups;
    const int64_t L = c->latent_channels, top = c->block_out[n - 1], S = c->sample_size;
    char p[256];
    cdf_status st;
    /* Layers at encoder level i see S >> i sides, at decoder level i
     * (S >> (n-1)) << i, one image at a time. */
    cdf_weight_opts wo;
    cdf_loader lvl = cdf_loader_at(ld0, &wo, 1, S), *ld = &lvl;
    /* encoder */
    if ((st = cdf_conv2d_load(&v->e_conv_in, ld->be, ld->wo, ld->f, "encoder.conv_in", c->in_channels, c->block_out[0],
                              3, 1, 1, 1, 1, 1, err)))
        return st;
    int64_t ch = c->block_out[0];
    for (int i = 0; i < n; i++) {
        lvl = cdf_loader_at(ld0, &wo, 1, S >> i);
        vae_block *b = &v->e_down[i];
        b->nres = (int)c->layers_per_block;
        b->has_resample = i < n - 1;
        for (int j = 0; j < b->nres; j++) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j);
            if ((st = cdf_resnet_load(&b->res[j], ld, p, ch, c->block_out[i], 0, G, 1e-6f, 1.0f, err))) return st;
            ch = c->block_out[i];
        }
        /* Downsample2D with padding 0: asymmetric (0, 1, 0, 1) padding, stride 2 */
        snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", i);
        if (b->has_resample && (st = cdf_conv2d_load(&b->resample, ld->be, ld->wo, ld->f, p, ch, ch, 3, 2, 0, 0, 1, 1, err)))
            return st;
    }
    lvl = cdf_loader_at(ld0, &wo, 1, S >> (n - 1));
    if ((st = load_mid(&v->e_mid, ld, "encoder.mid_block", top, G, c->mid_attention, err)) ||
        (st = cdf_norm_load(&v->e_norm_out, ld->f, "encoder.conv_norm_out", top, G, 1e-6f, err)) ||
        (st = cdf_conv2d_load(&v->e_conv_out, ld->be, ld->wo, ld->f, "encoder.conv_out", top, 2 * L, 3, 1, 1, 1, 1, 1,
                              err)))
        return st;
    if (c->use_quant_conv &&
        (st = cdf_conv2d_load(&v->quant_conv, ld->be, ld->wo, ld->f, "quant_conv", 2 * L, 2 * L, 1, 1, 0, 0, 0, 0, err)))
        return st;
    /* decoder */
    if (c->use_post_quant_conv &&
        (st = cdf_conv2d_load(&v->post_quant_conv, ld->be, ld->wo, ld->f, "post_quant_conv", L, L, 1, 1, 0, 0, 0, 0, err)))
        return st;
    if ((st = cdf_conv2d_load(&v->d_conv_in, ld->be, ld->wo, ld->f, "decoder.conv_in", L, top, 3, 1, 1, 1, 1, 1, err)) ||
        (st = load_mid(&v->d_mid, ld, "decoder.mid_block", top, G, c->mid_attention, err)))
        return st;
    ch = top;
    for (int i = 0; i < n; i++) {
        lvl = cdf_loader_at(ld0, &wo, 1, (S >> (n - 1)) << i);
        vae_block *b = &v->d_up[i];
        const int64_t oc = c->block_out[n - 1 - i];
        b->nres = (int)c->layers_per_block + 1;
        b->has_resample = i < n - 1;
        for (int j = 0; j < b->nres; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            if ((st = cdf_resnet_load(&b->res[j], ld, p, ch, oc, 0, G, 1e-6f, 1.0f, err))) return st;
            ch = oc;
        }
        lvl = cdf_loader_at(ld0, &wo, 1, (S >> (n - 1)) << (i + 1)); /* after the 2x upsampling */
        snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", i);
        if (b->has_resample && (st = cdf_conv2d_load(&b->resample, ld->be, ld->wo, ld->f, p, ch, ch, 3, 1, 1, 1, 1, 1, err)))
            return st;
    }
    lvl = cdf_loader_at(ld0, &wo, 1, S);
    if ((st = cdf_norm_load(&v->d_norm_out, ld->f, "decoder.conv_norm_out", c->block_out[0], G, 1e-6f, err)) ||
        (st = cdf_conv2d_load(&v->d_conv_out, ld->be, ld->wo, ld->f, "decoder.conv_out", c->block_out[0],
                              c->out_channels, 3, 1, 1, 1, 1, 1, err)))
        return st;
    return CDF_OK;
}

cdf_status cdf_vae_create(cdf_vae **out, const cdf_backend *be, const cdf_json *config, const cdf_st_file *f,
                          const cdf_weight_opts *o, cdf_err *err) {
    *out = NULL;
    cdf_vae *v = cdf_calloc(1, sizeof *v, err);
    if (!v) return CDF_ERR_OUT_OF_MEMORY;
    cdf_status st = cdf_vae_read_config(&v->cfg, config, err);
    if (!st) {
        cdf_loader ld = {be, o, f};
        st = load_modules(v, &ld, err);
    }
    if (st) { cdf_vae_free(v); return st; }
    *out = v;
    return CDF_OK;
}

cdf_status cdf_vae_load(cdf_vae **out, const cdf_backend *be, const char *dir, const char *variant,
                        const cdf_weight_opts *o, cdf_err *err) {
    *out = NULL;
    cdf_json j;
    cdf_st_file *f;
    cdf_status st = cdf_component_open(&j, &f, dir, "diffusion_pytorch_model", variant, err);
    if (st) return st;
    st = cdf_vae_create(out, be, &j, f, o, err);
    cdf_component_close(&j, f, !st && o->stream ? &(*out)->stream_src : NULL);
    return st;
}

static void free_block(vae_block *b) {
    for (int j = 0; j < MAXL; j++) cdf_resnet_free(&b->res[j]);
    cdf_conv2d_free(&b->resample);
}

static void free_mid(vae_mid *m) {
    cdf_resnet_free(&m->res[0]);
    cdf_resnet_free(&m->res[1]);
    cdf_vae_attention_free(&m->attn);
}

void cdf_vae_free(cdf_vae *v) {
    if (!v) return;
    cdf_conv2d_free(&v->e_conv_in);
    cdf_conv2d_free(&v->e_conv_out);
    cdf_conv2d_free(&v->quant_conv);
    cdf_conv2d_free(&v->post_quant_conv);
    cdf_conv2d_free(&v->d_conv_in);
    cdf_conv2d_free(&v->d_conv_out);
    for (int i = 0; i < CDF_VAE_MAX_BLOCKS; i++) {
        free_block(&v->e_down[i]);
        free_block(&v->d_up[i]);
    }
    free_mid(&v->e_mid);
    free_mid(&v->d_mid);
    cdf_norm_free(&v->e_norm_out);
    cdf_norm_free(&v->d_norm_out);
    cdf_st_close(v->stream_src);
    free(v);
}

/* The activation chain x -> y -> ... lives at one arena position `at` (the
 * mark just before x): each layer writes a fresh buffer above x, which then
 * moves down over x (cdf_arena_keep), so a decode holds about two
 * activations, not all of them. */
static float *resnet_step(cdf_exec *ex, const cdf_resnet *r, cdf_arena_mark at, const float *x, int64_t B, int64_t H,
                          int64_t W, cdf_status *st, cdf_err *err) {
    cdf_arena *ar = cdf_exec_arena(ex);
    const size_t n = (size_t)(B * H * W * r->cout);
    float *y = cdf_arena_f32(ar, n, err);
    if (!y) { *st = CDF_ERR_OUT_OF_MEMORY; return NULL; }
    if ((*st = cdf_resnet_forward(ex, r, y, x, B, H, W, NULL, err))) return NULL;
    return cdf_arena_keep(ar, at, y, n * sizeof(float));
}

static float *mid_forward(cdf_exec *ex, const vae_mid *m, cdf_arena_mark at, const float *x, int64_t B, int64_t H,
                          int64_t W, cdf_status *st, cdf_err *err) {
    float *a = resnet_step(ex, &m->res[0], at, x, B, H, W, st, err);
    if (!a) return NULL;
    if (m->has_attn && (*st = cdf_vae_attention_forward(ex, &m->attn, a, B, H, W, err))) return NULL;
    return resnet_step(ex, &m->res[1], at, a, B, H, W, st, err);
}

cdf_status cdf_vae_decode(cdf_exec *ex, const cdf_vae *v, float *image, const float *latents, int64_t B, int64_t h,
                          int64_t w, cdf_err *err) {
    const cdf_vae_config *c = &v->cfg;
    const int64_t L = c->latent_channels;
    if (B < 1 || h < 1 || w < 1)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "vae: bad latent shape [%lld, %lld, %lld, %lld]", (long long)B,
                        (long long)L, (long long)h, (long long)w);
    cdf_exec_begin_sized(ex, (size_t)(B * h * w * c->block_out[0]) << (2 * (c->nblocks - 1)));
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    cdf_status st = CDF_ERR_OUT_OF_MEMORY;
    int64_t H = h, W = w;
    float *z = cdf_arena_f32(ar, (size_t)(B * h * w * L), err), *z2 = cdf_arena_f32(ar, (size_t)(B * h * w * L), err);
    if (!z || !z2) goto out;
    cdf_nchw_to_nhwc(z, latents, B, L, h, w);
    const float inv = (float)c->scaling_factor;
    for (size_t i = 0; i < (size_t)(B * h * w * L); i++) z[i] = z[i] / inv;
    if (c->use_post_quant_conv) {
        if ((st = cdf_conv2d_forward(ex, &v->post_quant_conv, z2, z, B, H, W, 0, err))) goto out;
        z = z2;
    }
    int64_t C = c->block_out[c->nblocks - 1];
    const cdf_arena_mark at = cdf_arena_save(ar);
    float *x = cdf_arena_f32(ar, (size_t)(B * H * W * C), err);
    if (!x) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
    if ((st = cdf_conv2d_forward(ex, &v->d_conv_in, x, z, B, H, W, 0, err))) goto out;
    if (!(x = mid_forward(ex, &v->d_mid, at, x, B, H, W, &st, err))) goto out;
    for (int i = 0; i < c->nblocks; i++) {
        const vae_block *b = &v->d_up[i];
        for (int j = 0; j < b->nres; j++) {
            if (!(x = resnet_step(ex, &b->res[j], at, x, B, H, W, &st, err))) goto out;
            C = b->res[j].cout;
        }
        if (b->has_resample) {
            const size_t n = (size_t)(B * 4 * H * W * C);
            float *t = cdf_arena_f32(ar, n, err);
            float *y = cdf_arena_f32(ar, n, err);
            if (!t || !y) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
            cdf_upsample_nearest(ex, t, x, B, H, W, C, 2 * H, 2 * W);
            H *= 2;
            W *= 2;
            if ((st = cdf_conv2d_forward(ex, &b->resample, y, t, B, H, W, 0, err))) goto out;
            x = cdf_arena_keep(ar, at, y, n * sizeof(float));
        }
    }
    {
        float *g = cdf_arena_f32(ar, (size_t)(B * H * W * C), err);
        float *y = cdf_arena_f32(ar, (size_t)(B * H * W * c->out_channels), err);
        if (!g || !y) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        if ((st = cdf_group_norm(ex, &v->d_norm_out, g, x, B, H * W, 1, err)) ||
            (st = cdf_conv2d_forward(ex, &v->d_conv_out, y, g, B, H, W, 0, err)))
            goto out;
        cdf_nhwc_to_nchw(image, y, B, c->out_channels, H, W);
    }
out:
    cdf_arena_reset(ar, mark);
    return st;
}

void cdf_vae_moments_to_dist(const float *mom, int64_t B, int64_t L, int64_t h, int64_t w, float *mean, float *stdv,
                             float *logvar) {
    const size_t hw = (size_t)(h * w);
    for (int64_t b = 0; b < B; b++)
        for (int64_t ch = 0; ch < L; ch++)
            for (size_t p = 0; p < hw; p++) {
                const size_t o = (size_t)(b * L + ch) * hw + p;
                float lv = mom[(size_t)(b * 2 * L + L + ch) * hw + p];
                lv = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
                if (mean) mean[o] = mom[(size_t)(b * 2 * L + ch) * hw + p];
                if (logvar) logvar[o] = lv;
                if (stdv) stdv[o] = expf(0.5f * lv);
            }
}

cdf_status cdf_vae_encode(cdf_exec *ex, const cdf_vae *v, float *mean, float *stdv, float *logvar, const float *image,
                          int64_t B, int64_t H, int64_t W, cdf_err *err) {
    const int64_t f = cdf_vae_scale_factor(v), L = v->cfg.latent_channels;
    float *mom = cdf_malloc((size_t)(B * 2 * L * (H / f) * (W / f)) + 1, sizeof(float), err);
    if (!mom) return CDF_ERR_OUT_OF_MEMORY;
    cdf_status st = cdf_vae_encode_moments(ex, v, mom, image, B, H, W, err);
    if (!st) cdf_vae_moments_to_dist(mom, B, L, H / f, W / f, mean, stdv, logvar);
    free(mom);
    return st;
}

cdf_status cdf_vae_encode_moments(cdf_exec *ex, const cdf_vae *v, float *moments, const float *image, int64_t B,
                                  int64_t H, int64_t W, cdf_err *err) {
    const cdf_vae_config *c = &v->cfg;
    const int64_t f = cdf_vae_scale_factor(v), L = c->latent_channels;
    if (B < 1 || H < 1 || W < 1 || H % f || W % f)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "vae: image size %lldx%lld must be a positive multiple of %lld",
                        (long long)H, (long long)W, (long long)f);
    cdf_exec_begin_sized(ex, (size_t)(B * H * W * c->block_out[0]));
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    cdf_status st = CDF_ERR_OUT_OF_MEMORY;
    int64_t C = c->block_out[0];
    float *in = cdf_arena_f32(ar, (size_t)(B * H * W * c->in_channels), err);
    const cdf_arena_mark at = cdf_arena_save(ar);
    float *x = cdf_arena_f32(ar, (size_t)(B * H * W * C), err);
    if (!in || !x) goto out;
    cdf_nchw_to_nhwc(in, image, B, c->in_channels, H, W);
    if ((st = cdf_conv2d_forward(ex, &v->e_conv_in, x, in, B, H, W, 0, err))) goto out;
    for (int i = 0; i < c->nblocks; i++) {
        const vae_block *b = &v->e_down[i];
        for (int j = 0; j < b->nres; j++) {
            if (!(x = resnet_step(ex, &b->res[j], at, x, B, H, W, &st, err))) goto out;
            C = b->res[j].cout;
        }
        if (b->has_resample) {
            int64_t Ho, Wo;
            cdf_conv2d_out_size(&b->resample, H, W, &Ho, &Wo);
            const size_t n = (size_t)(B * Ho * Wo * C);
            float *y = cdf_arena_f32(ar, n, err);
            if (!y) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
            if ((st = cdf_conv2d_forward(ex, &b->resample, y, x, B, H, W, 0, err))) goto out;
            x = cdf_arena_keep(ar, at, y, n * sizeof(float));
            H = Ho;
            W = Wo;
        }
    }
    if (!(x = mid_forward(ex, &v->e_mid, at, x, B, H, W, &st, err))) goto out;
    {
        float *g = cdf_arena_f32(ar, (size_t)(B * H * W * C), err);
        float *m = cdf_arena_f32(ar, (size_t)(B * H * W * 2 * L), err);
        float *q = cdf_arena_f32(ar, (size_t)(B * H * W * 2 * L), err);
        if (!g || !m || !q) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        if ((st = cdf_group_norm(ex, &v->e_norm_out, g, x, B, H * W, 1, err)) ||
            (st = cdf_conv2d_forward(ex, &v->e_conv_out, m, g, B, H, W, 0, err)))
            goto out;
        if (c->use_quant_conv) {
            if ((st = cdf_conv2d_forward(ex, &v->quant_conv, q, m, B, H, W, 0, err))) goto out;
            m = q;
        }
        cdf_nhwc_to_nchw(moments, m, B, 2 * L, H, W);
    }
out:
    cdf_arena_reset(ar, mark);
    return st;
}
