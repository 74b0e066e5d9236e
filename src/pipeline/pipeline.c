/* Per-run pipeline state: scheduler selection, execution context, last
 * error; and the single-component entry points. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/internal.h"

void cdf_pipeline_params_default(cdf_pipeline_params *p) { memset(p, 0, sizeof *p); }

cdf_status cdf_pipeline_fail(cdf_pipeline *p, const cdf_err *err) {
    if (err != &p->err) p->err = *err;
    return p->err.code ? p->err.code : CDF_ERR_INTERNAL;
}

const char *cdf_pipeline_last_error(const cdf_pipeline *p) { return p->err.msg; }

static cdf_status parse_overrides(const char *json, cJSON **out, cdf_err *err) {
    *out = NULL;
    if (!json || !*json) return CDF_OK;
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "scheduler config overrides: not a JSON object: %.200s", json);
    }
    *out = o;
    return CDF_OK;
}

static cdf_status make_scheduler(const cdf_model *m, const char *name, const char *overrides, cdf_scheduler **out,
                                 cdf_err *err) {
    cJSON *ov;
    cdf_status st = parse_overrides(overrides, &ov, err);
    if (st) return st;
    st = cdf_scheduler_create(out, name ? name : m->sched_class, m->sched_config, ov, err);
    cJSON_Delete(ov);
    return st;
}

cdf_status cdf_pipeline_new_scheduler(const cdf_pipeline *p, cdf_scheduler **out, cdf_err *err) {
    return make_scheduler(p->m, p->sched_name, p->sched_overrides, out, err);
}

static char *dup_or_null(const char *s, cdf_err *err) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory");
    return d;
}

cdf_status cdf_pipeline_set_scheduler(cdf_pipeline *p, const char *name, const char *config_json) {
    cdf_err err = {0};
    cdf_scheduler *s;
    cdf_status st = make_scheduler(p->m, name, config_json, &s, &err);
    if (st) return cdf_pipeline_fail(p, &err);
    char *n = dup_or_null(name, &err), *o = dup_or_null(config_json, &err);
    char *cfg = cdf_scheduler_config_json(s);
    if ((name && !n) || (config_json && !o) || !cfg) {
        free(n); free(o); free(cfg);
        cdf_scheduler_free(s);
        cdf_errf(&err, CDF_ERR_OUT_OF_MEMORY, "out of memory");
        return cdf_pipeline_fail(p, &err);
    }
    cdf_scheduler_free(p->sched);
    free(p->sched_name);
    free(p->sched_overrides);
    free(p->sched_config_json);
    p->sched = s;
    p->sched_name = n;
    p->sched_overrides = o;
    p->sched_config_json = cfg;
    return CDF_OK;
}

const char *cdf_pipeline_scheduler_class(const cdf_pipeline *p) { return cdf_scheduler_class(p->sched); }
const char *cdf_pipeline_scheduler_config(const cdf_pipeline *p) { return p->sched_config_json; }

cdf_status cdf_pipeline_create(cdf_pipeline **out, const cdf_model *m, const cdf_pipeline_params *params,
                               cdf_error_buf *ebuf) {
    *out = NULL;
    cdf_pipeline_params def;
    if (!params) {
        cdf_pipeline_params_default(&def);
        params = &def;
    }
    cdf_err err = {0};
    cdf_pipeline *p = cdf_calloc(1, sizeof *p, &err);
    cdf_status st = CDF_ERR_OUT_OF_MEMORY;
    if (!p) goto fail;
    p->m = m;
    if ((st = cdf_exec_create(&p->ex, m->be, params->threads, &err))) goto fail;
    if ((st = cdf_pipeline_set_scheduler(p, params->scheduler, params->scheduler_config))) {
        err = p->err;
        goto fail;
    }
    *out = p;
    return CDF_OK;
fail:
    if (ebuf) snprintf(ebuf->message, sizeof ebuf->message, "%s", err.msg);
    cdf_pipeline_free(p);
    return st;
}

void cdf_pipeline_free(cdf_pipeline *p) {
    if (!p) return;
    cdf_exec_free(p->ex);
    cdf_scheduler_free(p->sched);
    free(p->sched_name);
    free(p->sched_overrides);
    free(p->sched_config_json);
    free(p);
}

cdf_status cdf_pipeline_tokenize(cdf_pipeline *p, const char *prompt, int64_t *ids, size_t max_len) {
    cdf_err err = {0};
    if (cdf_tokenizer_encode(p->m->tok, prompt, ids, max_len, NULL, &err)) return cdf_pipeline_fail(p, &err);
    return CDF_OK;
}

cdf_status cdf_pipeline_encode_tokens(cdf_pipeline *p, const int64_t *ids, int64_t B, int64_t L, int clip_skip,
                                      float *last_hidden, float *pooled, float *penultimate) {
    cdf_err err = {0};
    cdf_clip_outputs o = {last_hidden, pooled, penultimate};
    cdf_clip_text *te;
    if (cdf_model_text_encoder(p->m, &te, &err)) return cdf_pipeline_fail(p, &err);
    cdf_status st = cdf_clip_text_forward(p->ex, te, ids, B, L, clip_skip, &o, &err);
    cdf_model_release_text_encoder(p->m, te);
    return st ? cdf_pipeline_fail(p, &err) : CDF_OK;
}

cdf_status cdf_pipeline_unet(cdf_pipeline *p, const float *sample, int64_t B, int64_t h, int64_t w,
                             const float *timesteps, int64_t nt, const float *ctx, int64_t L, float *out) {
    cdf_err err = {0};
    cdf_unet *u;
    if (cdf_model_unet(p->m, &u, &err)) return cdf_pipeline_fail(p, &err);
    cdf_status st = cdf_unet_forward(p->ex, u, out, sample, B, h, w, timesteps, nt, ctx, L, NULL, NULL, &err);
    cdf_model_release_unet(p->m, u);
    return st ? cdf_pipeline_fail(p, &err) : CDF_OK;
}

cdf_status cdf_pipeline_vae_decode(cdf_pipeline *p, const float *latents, int64_t B, int64_t h, int64_t w,
                                   float *image) {
    cdf_err err = {0};
    cdf_vae *v;
    if (cdf_model_vae(p->m, &v, &err)) return cdf_pipeline_fail(p, &err);
    cdf_status st = cdf_vae_decode(p->ex, v, image, latents, B, h, w, &err);
    cdf_model_release_vae(p->m, v);
    return st ? cdf_pipeline_fail(p, &err) : CDF_OK;
}

cdf_status cdf_pipeline_vae_encode(cdf_pipeline *p, const float *image, int64_t B, int64_t H, int64_t W,
                                   float *mean, float *std) {
    cdf_err err = {0};
    cdf_vae *v;
    if (cdf_model_vae(p->m, &v, &err)) return cdf_pipeline_fail(p, &err);
    cdf_status st = cdf_vae_encode(p->ex, v, mean, std, NULL, image, B, H, W, &err);
    cdf_model_release_vae(p->m, v);
    return st ? cdf_pipeline_fail(p, &err) : CDF_OK;
}
