/* cdiffusers tokenize / run-component / list-schedulers: tools that work on
 * single components, reading and writing safetensors files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cdiffusers.h"
#include "commands.h"
#include "core/dtype.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "schedulers/scheduler.h"
#include "tokenizer/clip_tokenizer.h"

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

int cmd_tokenize(const cli_options *o) {
    if (!o->model) return cli_error("tokenize: --model DIR is required");
    if (o->n_prompts == 0) return cli_error("tokenize: give at least one prompt");
    char dir[4096], probe[4200];
    /* --model may be a model folder or a tokenizer folder */
    snprintf(probe, sizeof probe, "%s/vocab.json", o->model);
    if (is_file(probe)) snprintf(dir, sizeof dir, "%s", o->model);
    else snprintf(dir, sizeof dir, "%s/tokenizer", o->model);
    cdf_err err = {0};
    cdf_tokenizer *t;
    if (cdf_tokenizer_load(&t, dir, &err)) return cli_error("%s", err.msg);
    const size_t L = cdf_tokenizer_max_length(t);
    int64_t *ids = malloc(L * sizeof *ids);
    int rc = ids ? 0 : cli_error("out of memory");
    for (size_t i = 0; i < o->n_prompts && !rc; i++) {
        if (cdf_tokenizer_encode(t, o->prompts[i], ids, L, NULL, &err)) {
            rc = cli_error("prompt %zu: %s", i + 1, err.msg);
            break;
        }
        putchar('[');
        for (size_t k = 0; k < L; k++) printf(k ? ", %lld" : "%lld", (long long)ids[k]);
        puts("]");
    }
    free(ids);
    cdf_tokenizer_free(t);
    return rc;
}

int cmd_list_schedulers(const cli_options *o) {
    (void)o;
    const cdf_scheduler_alias *al;
    size_t n = cdf_scheduler_aliases(&al);
    printf("%-34s %-24s %s\n", "name", "known as", "diffusers class (overrides)");
    for (size_t i = 0; i < n; i++)
        printf("%-34s %-24s %s%s%s\n", al[i].alias, al[i].display ? al[i].display : "", al[i].class_name,
               al[i].overrides ? " " : "", al[i].overrides ? al[i].overrides : "");
    return 0;
}

/* ---- run-component ---- */

typedef struct comp_ctx {
    cdf_backend *be;
    cdf_exec *ex;
    cdf_weight_opts wo;
    cdf_st_file *in;
    cdf_err err;
} comp_ctx;

static const cdf_st_tensor *input(comp_ctx *c, const char *name, int min_nd, int max_nd) {
    const cdf_st_tensor *t = cdf_st_find(c->in, name);
    if (!t) {
        cdf_errf(&c->err, CDF_ERR_FORMAT, "%s: missing tensor '%s'", cdf_st_path(c->in), name);
        return NULL;
    }
    if (t->ndim < min_nd || t->ndim > max_nd) {
        cdf_errf(&c->err, CDF_ERR_FORMAT, "%s: tensor '%s' has rank %d, expected %d..%d", cdf_st_path(c->in), name,
                 t->ndim, min_nd, max_nd);
        return NULL;
    }
    return t;
}

static float *read_f32(comp_ctx *c, const cdf_st_tensor *t) {
    float *p = cdf_malloc(t->numel ? t->numel : 1, sizeof(float), &c->err);
    if (p) cdf_st_read_f32(t, p);
    return p;
}

static int run_text_encoder(comp_ctx *c, const cli_options *o, const char *dir) {
    cdf_clip_text *m;
    if (cdf_clip_text_load(&m, c->be, dir, o->variant, &c->wo, &c->err)) return 1;
    const cdf_st_tensor *t = input(c, "input_ids", 2, 2);
    int rc = 1;
    int64_t *ids = NULL;
    float *last = NULL, *pooled = NULL, *pen = NULL;
    if (!t) goto out;
    if (t->dtype != CDF_DTYPE_I64 && t->dtype != CDF_DTYPE_I32) {
        cdf_errf(&c->err, CDF_ERR_FORMAT, "%s: input_ids must be I64 or I32, not %s", cdf_st_path(c->in),
                 cdf_dtype_name(t->dtype));
        goto out;
    }
    const int64_t B = t->shape[0], L = t->shape[1], D = cdf_clip_text_config(m)->hidden;
    if (!(ids = cdf_malloc((size_t)(B * L) + 1, sizeof *ids, &c->err)) ||
        !(last = cdf_malloc((size_t)(B * L * D) + 1, 4, &c->err)) || !(pen = cdf_malloc((size_t)(B * L * D) + 1, 4, &c->err)) ||
        !(pooled = cdf_malloc((size_t)(B * D) + 1, 4, &c->err)))
        goto out;
    cdf_st_read_i64(t, ids);
    cdf_clip_outputs outs = {last, pooled, pen};
    if (cdf_clip_text_forward(c->ex, m, ids, B, L, (int)o->clip_skip, &outs, &c->err)) goto out;
    cdf_st_out w[3] = {{"last_hidden_state", CDF_DTYPE_F32, 3, {B, L, D}, last},
                       {"pooler_output", CDF_DTYPE_F32, 2, {B, D}, pooled},
                       {"hidden_states_penultimate", CDF_DTYPE_F32, 3, {B, L, D}, pen}};
    rc = cdf_st_write(o->output, w, 3, &c->err) != CDF_OK;
out:
    free(ids); free(last); free(pooled); free(pen);
    cdf_clip_text_free(m);
    return rc;
}

static int run_unet(comp_ctx *c, const cli_options *o, const char *dir) {
    cdf_unet *u;
    if (cdf_unet_load(&u, c->be, dir, o->variant, &c->wo, &c->err)) return 1;
    const cdf_unet_config *cfg = cdf_unet_get_config(u);
    int rc = 1;
    float *x = NULL, *t = NULL, *ctx = NULL, *out = NULL;
    const cdf_st_tensor *ts = input(c, "sample", 4, 4), *tt = ts ? input(c, "timestep", 0, 1) : NULL;
    const cdf_st_tensor *tc = tt ? input(c, "encoder_hidden_states", 3, 3) : NULL;
    if (!tc) goto out;
    const int64_t B = ts->shape[0], h = ts->shape[2], w = ts->shape[3];
    if (ts->shape[1] != cfg->in_channels || tc->shape[0] != B || tc->shape[2] != cfg->cross_attention_dim ||
        (tt->numel != 1 && (int64_t)tt->numel != B)) {
        cdf_errf(&c->err, CDF_ERR_FORMAT,
                 "%s: shapes do not fit the UNet: sample [B,%lld,h,w], timestep scalar or [B], "
                 "encoder_hidden_states [B,L,%lld]",
                 cdf_st_path(c->in), (long long)cfg->in_channels, (long long)cfg->cross_attention_dim);
        goto out;
    }
    if (!(x = read_f32(c, ts)) || !(t = read_f32(c, tt)) || !(ctx = read_f32(c, tc)) ||
        !(out = cdf_malloc((size_t)(B * cfg->out_channels * h * w), 4, &c->err)))
        goto out;
    if (cdf_unet_forward(c->ex, u, out, x, B, h, w, t, (int64_t)tt->numel, ctx, tc->shape[1], NULL, NULL, &c->err))
        goto out;
    cdf_st_out wo = {"out", CDF_DTYPE_F32, 4, {B, cfg->out_channels, h, w}, out};
    rc = cdf_st_write(o->output, &wo, 1, &c->err) != CDF_OK;
out:
    free(x); free(t); free(ctx); free(out);
    cdf_unet_free(u);
    return rc;
}

static int run_vae(comp_ctx *c, const cli_options *o, const char *dir, int decoder) {
    cdf_vae *v;
    if (cdf_vae_load(&v, c->be, dir, o->vae ? NULL : o->variant, &c->wo, &c->err)) return 1;
    const cdf_vae_config *cfg = cdf_vae_get_config(v);
    const int64_t f = cdf_vae_scale_factor(v), L = cfg->latent_channels;
    int rc = 1;
    float *x = NULL, *y = NULL, *y2 = NULL;
    const cdf_st_tensor *t = input(c, decoder ? "latents" : "image", 4, 4);
    if (!t) goto out;
    const int64_t B = t->shape[0], h = t->shape[2], w = t->shape[3];
    if (t->shape[1] != (decoder ? L : cfg->in_channels)) {
        cdf_errf(&c->err, CDF_ERR_FORMAT, "%s: tensor '%s' has %lld channels, the VAE expects %lld", cdf_st_path(c->in),
                 decoder ? "latents" : "image", (long long)t->shape[1], (long long)(decoder ? L : cfg->in_channels));
        goto out;
    }
    if (!(x = read_f32(c, t))) goto out;
    if (decoder) {
        if (!(y = cdf_malloc((size_t)(B * cfg->out_channels * h * f * w * f), 4, &c->err))) goto out;
        if (cdf_vae_decode(c->ex, v, y, x, B, h, w, &c->err)) goto out;
        cdf_st_out wo = {"image", CDF_DTYPE_F32, 4, {B, cfg->out_channels, h * f, w * f}, y};
        rc = cdf_st_write(o->output, &wo, 1, &c->err) != CDF_OK;
    } else {
        const size_t n = (size_t)(B * L * (h / f) * (w / f)) + 1;
        if (!(y = cdf_malloc(n, 4, &c->err)) || !(y2 = cdf_malloc(n, 4, &c->err))) goto out;
        if (cdf_vae_encode(c->ex, v, y, y2, NULL, x, B, h, w, &c->err)) goto out;
        cdf_st_out wo[2] = {{"mean", CDF_DTYPE_F32, 4, {B, L, h / f, w / f}, y},
                            {"std", CDF_DTYPE_F32, 4, {B, L, h / f, w / f}, y2}};
        rc = cdf_st_write(o->output, wo, 2, &c->err) != CDF_OK;
    }
out:
    free(x); free(y); free(y2);
    cdf_vae_free(v);
    return rc;
}

int cmd_run_component(const cli_options *o) {
    if (!o->model) return cli_error("run-component: --model DIR is required");
    if (!o->component) return cli_error("run-component: --component is required (text_encoder, unet, vae_decoder, vae_encoder)");
    if (!o->input || !o->output) return cli_error("run-component: --input and --output are required");
    const char *comp = o->component;
    int which = strcmp(comp, "text_encoder") == 0 ? 0 : strcmp(comp, "unet") == 0 ? 1
              : strcmp(comp, "vae_decoder") == 0 ? 2 : strcmp(comp, "vae_encoder") == 0 ? 3 : -1;
    if (which < 0)
        return cli_error("run-component: unknown component '%s' (text_encoder, unet, vae_decoder, vae_encoder)", comp);
    comp_ctx c;
    memset(&c, 0, sizeof c);
    int wd, bf16;
    cli_dtype(o->dtype, &wd, &bf16);
    c.wo.storage = (cdf_dtype)wd;
    c.wo.compute = bf16 ? CDF_COMPUTE_BF16 : CDF_COMPUTE_F32;
    int rc = 1;
    if (cdf_backend_create(&c.be, &c.err) || cdf_exec_create(&c.ex, c.be, (int)o->threads, &c.err) ||
        cdf_st_open(&c.in, o->input, &c.err))
        goto out;
    char dir[4096];
    const char *sub = which == 0 ? "text_encoder" : which == 1 ? "unet" : "vae";
    if (which >= 2 && o->vae) snprintf(dir, sizeof dir, "%s", o->vae);
    else snprintf(dir, sizeof dir, "%s/%s", o->model, sub);
    rc = which == 0 ? run_text_encoder(&c, o, dir) : which == 1 ? run_unet(&c, o, dir) : run_vae(&c, o, dir, which == 2);
out:
    if (rc) cli_error("%s", c.err.msg[0] ? c.err.msg : "run-component failed");
    cdf_st_close(c.in);
    cdf_exec_free(c.ex);
    cdf_backend_free(c.be);
    return rc;
}
