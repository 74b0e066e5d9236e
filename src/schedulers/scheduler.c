/* The public scheduler API: creation through the registry, the diffusers
 * methods dispatched to the family, add_noise, and the effective config as
 * JSON text. */
#include "schedulers/sched_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

cdf_status cdf_scheduler_create(cdf_scheduler **out, const char *class_name, const cJSON *config,
                                const cJSON *overrides, cdf_err *err) {
    *out = NULL;
    const cdf_scheduler_alias *a = class_name ? cdf_scheduler_resolve(class_name) : NULL;
    if (!a) {
        const char *const *names;
        size_t n = cdf_scheduler_class_names(&names);
        char list[1024];
        size_t len = 0;
        list[0] = '\0';
        for (size_t i = 0; i < n && len < sizeof list; i++) {
            int w = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", names[i]);
            if (w < 0) break;
            len += (size_t)w;
        }
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                        "unknown scheduler '%s'; valid classes: %s (or an alias: cdiffusers list-schedulers)",
                        class_name ? class_name : "(null)", list);
    }
    const sched_class *cls = cdf_sched_find_class(a->class_name);
    if (!cls) return cdf_errf(err, CDF_ERR_INTERNAL, "scheduler alias '%s' names no class", class_name);

    /* The alias's own overrides first, the caller's on top of them. */
    cJSON *merged = NULL;
    if (a->overrides) {
        merged = cJSON_Parse(a->overrides);
        if (!merged) return cdf_errf(err, CDF_ERR_INTERNAL, "scheduler alias '%s': bad overrides", a->alias);
        if (overrides) {
            if (!cJSON_IsObject(overrides)) {
                cJSON_Delete(merged);
                return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: the overrides must be a JSON object", cls->name);
            }
            const cJSON *it;
            cJSON_ArrayForEach(it, overrides) {
                cJSON *dup = cJSON_Duplicate(it, 1);
                if (!dup) { cJSON_Delete(merged); return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory"); }
                cJSON_DeleteItemFromObjectCaseSensitive(merged, it->string);
                cJSON_AddItemToObject(merged, it->string, dup);
            }
        }
    }
    cdf_scheduler *s = cdf_calloc(1, sizeof *s, err);
    if (!s) { cJSON_Delete(merged); return CDF_ERR_OUT_OF_MEMORY; }
    s->cls = cls;
    s->step_index = -1;
    cdf_status st = sched_configure(s, config, merged ? merged : overrides, err);
    cJSON_Delete(merged);
    if (!st) st = cls->init(s, err);
    if (st) { cdf_scheduler_free(s); return st; }
    *out = s;
    return CDF_OK;
}

void cdf_scheduler_free(cdf_scheduler *s) {
    if (!s) return;
    if (s->cls && s->cls->destroy) s->cls->destroy(s);
    cJSON_Delete(s->config);
    free(s->betas);
    free(s->alphas_cumprod);
    free(s->timesteps);
    free(s->sigmas);
    free(s);
}

const char *cdf_scheduler_class(const cdf_scheduler *s) { return s->cls->name; }

/* ---- config as JSON text, the way Python's json.dumps writes it ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void put_number(sbuf *b, double v) {
    char tmp[64];
    if (isnan(v)) snprintf(tmp, sizeof tmp, "NaN");
    else if (isinf(v)) snprintf(tmp, sizeof tmp, v > 0 ? "Infinity" : "-Infinity");
    else if (floor(v) == v && fabs(v) < 9007199254740992.0) snprintf(tmp, sizeof tmp, "%.0f", v);
    else {
        for (int prec = 1; prec <= 17; prec++) { /* shortest text that reads back exactly, like repr() */
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) break;
        }
    }
    puts_(b, tmp);
}

static void put_string(sbuf *b, const char *s) {
    put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(b, esc, 2); }
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); puts_(b, esc); }
        else put(b, (const char *)&c, 1);
    }
    put(b, "\"", 1);
}

static void put_value(sbuf *b, const cJSON *v, int depth) {
    if (cJSON_IsNull(v)) puts_(b, "null");
    else if (cJSON_IsTrue(v)) puts_(b, "true");
    else if (cJSON_IsFalse(v)) puts_(b, "false");
    else if (cJSON_IsNumber(v)) put_number(b, v->valuedouble);
    else if (cJSON_IsString(v)) put_string(b, v->valuestring);
    else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        int obj = cJSON_IsObject(v), first = 1;
        put(b, obj ? "{" : "[", 1);
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            puts_(b, first ? "\n" : ",\n");
            first = 0;
            for (int i = 0; i <= depth; i++) puts_(b, "  ");
            if (obj) { put_string(b, it->string ? it->string : ""); puts_(b, ": "); }
            put_value(b, it, depth + 1);
        }
        if (!first) {
            puts_(b, "\n");
            for (int i = 0; i < depth; i++) puts_(b, "  ");
        }
        put(b, obj ? "}" : "]", 1);
    }
}

char *cdf_scheduler_config_json(const cdf_scheduler *s) {
    sbuf b = {0};
    put_value(&b, s->config, 0);
    puts_(&b, "\n");
    if (b.oom) { free(b.p); return NULL; }
    return b.p;
}

/* ---- the diffusers methods ---- */

cdf_status cdf_scheduler_set_timesteps(cdf_scheduler *s, int num_inference_steps, cdf_err *err) {
    if (num_inference_steps < 1 || (int64_t)num_inference_steps > s->cfg.num_train_timesteps)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                        "%s: num_inference_steps %d is out of range: it must be between 1 and num_train_timesteps (%lld)",
                        s->cls->name, num_inference_steps, (long long)s->cfg.num_train_timesteps);
    s->step_index = -1;
    return s->cls->set_timesteps(s, num_inference_steps, err);
}

size_t cdf_scheduler_num_timesteps(const cdf_scheduler *s) { return s->n_ts; }
double cdf_scheduler_timestep(const cdf_scheduler *s, size_t i) { return i < s->n_ts ? s->timesteps[i] : NAN; }
cdf_dtype cdf_scheduler_timestep_dtype(const cdf_scheduler *s) { return s->ts_dtype; }

size_t cdf_scheduler_sigmas(const cdf_scheduler *s, const float **out) {
    *out = s->n_sigmas ? s->sigmas : NULL;
    return s->n_sigmas;
}

double cdf_scheduler_init_noise_sigma(const cdf_scheduler *s) { return s->init_noise_sigma; }
int cdf_scheduler_order(const cdf_scheduler *s) { return s->cls->order; }

static cdf_status check_shape(const cdf_scheduler *s, const int64_t shape[4], size_t *n, cdf_err *err) {
    size_t total = 1;
    for (int i = 0; i < 4; i++) {
        if (shape[i] <= 0 || !cdf_mul_ok(total, (size_t)shape[i], &total))
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: bad sample shape [%lld, %lld, %lld, %lld]",
                            s->cls->name, (long long)shape[0], (long long)shape[1], (long long)shape[2],
                            (long long)shape[3]);
    }
    if (s->n_ts == 0)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: call set_timesteps before stepping", s->cls->name);
    *n = total;
    return CDF_OK;
}

cdf_status cdf_scheduler_scale_model_input(cdf_scheduler *s, float *out, const float *in, const int64_t shape[4],
                                           double t, cdf_err *err) {
    size_t n = 0;
    cdf_status st = check_shape(s, shape, &n, err);
    if (st) return st;
    if (!s->cls->scale) {
        if (out != in) memmove(out, in, n * sizeof(float));
        return CDF_OK;
    }
    return s->cls->scale(s, out, in, n, t, err);
}

cdf_status cdf_scheduler_step(cdf_scheduler *s, const float *model_output, double t, float *sample,
                              const int64_t shape[4], const cdf_noise_source *noise, float *pred_original,
                              int *has_pred_original, cdf_err *err) {
    size_t n = 0;
    cdf_status st = check_shape(s, shape, &n, err);
    if (st) return st;
    if (has_pred_original) *has_pred_original = 0;
    sched_step_args a = {model_output, t, sample, n, shape, noise, pred_original, has_pred_original};
    return s->cls->step(s, &a, err);
}

cdf_status cdf_scheduler_add_noise(const cdf_scheduler *s, float *out, const float *original, const float *noise,
                                   size_t n, double t, cdf_err *err) {
    switch (s->cls->noise_kind) {
    case NK_ALPHAS: {
        if (!(t >= 0) || t >= (double)s->n_train || floor(t) != t)
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: add_noise: timestep %g is not a training timestep",
                            s->cls->name, t);
        float a = s->alphas_cumprod[(size_t)t];
        float sa = sqrtf(a), sb = sqrtf(1.0f - a);
        for (size_t i = 0; i < n; i++) out[i] = sa * original[i] + sb * noise[i];
        return CDF_OK;
    }
    case NK_ALPHA_SIGMA:
    case NK_SIGMA: {
        cdf_scheduler tmp = *s; /* index lookup without touching the run's step index */
        cdf_status st = sched_init_step_index(&tmp, t, s->cls->noise_kind == NK_ALPHA_SIGMA, err);
        if (st) return st;
        if ((size_t)tmp.step_index >= s->n_sigmas)
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: add_noise: no sigma for timestep %g", s->cls->name, t);
        float sigma = s->sigmas[tmp.step_index];
        if (s->cls->noise_kind == NK_SIGMA) {
            for (size_t i = 0; i < n; i++) out[i] = original[i] + noise[i] * sigma;
        } else {
            float alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f), sigma_t = sigma * alpha_t;
            for (size_t i = 0; i < n; i++) out[i] = alpha_t * original[i] + sigma_t * noise[i];
        }
        return CDF_OK;
    }
    }
    return cdf_errf(err, CDF_ERR_INTERNAL, "%s: add_noise kind", s->cls->name);
}

void cdf_scheduler_set_brownian_override(cdf_scheduler *s, cdf_brownian_fn fn, void *user) {
    s->brownian_fn = fn;
    s->brownian_user = user;
}

void cdf_scheduler_set_default_noise_seed(cdf_scheduler *s, uint64_t seed) {
    s->has_default_seed = 1;
    s->default_seed = seed;
}

void cdf_scheduler_set_eta(cdf_scheduler *s, double eta) { s->eta = eta; }
