/* PNDMScheduler (diffusers 0.26.3 scheduling_pndm.py): Runge-Kutta warm-up
 * (PRK, 12 sub-steps) unless skip_prk_steps, then linear multistep (PLMS). */
#include "schedulers/sched_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char *const pndm_predictions[] = {"epsilon", "v_prediction", NULL};

static const sched_param pndm_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.0001", NULL},
    {"beta_end", P_NUM, "0.02", NULL},
    {"beta_schedule", P_STR, "\"linear\"", sched_beta_schedules},
    {"trained_betas", P_BETAS, "null", NULL},
    {"skip_prk_steps", P_BOOL, "false", NULL},
    {"set_alpha_to_one", P_BOOL, "false", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", pndm_predictions},
    {"timestep_spacing", P_STR, "\"leading\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct pndm_state {
    float final_alpha_cumprod;
    size_t n_prk;                /* len(prk_timesteps) */
    long counter;
    float *ets[4];               /* the last model outputs, oldest first */
    int n_ets;
    float *cur_mo, *cur_sample, *mo;
    int has_cur_mo, has_cur_sample;
    size_t cap;                  /* numel the buffers hold */
} pndm_state;

static cdf_status pndm_init(cdf_scheduler *s, cdf_err *err) {
    cdf_status st = sched_make_alphas(s, err);
    if (st) return st;
    pndm_state *p = cdf_calloc(1, sizeof *p, err);
    if (!p) return CDF_ERR_OUT_OF_MEMORY;
    s->fam = p;
    p->final_alpha_cumprod = s->cfg.set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
    s->init_noise_sigma = 1.0f;
    return CDF_OK;
}

static cdf_status pndm_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    pndm_state *p = s->fam;
    const sched_cfg *c = &s->cfg;
    int64_t T = c->num_train_timesteps;
    /* _timesteps, ascending */
    size_t m = (size_t)n;
    double *base = cdf_malloc((size_t)n + 2, sizeof(double), err);
    if (!base) return CDF_ERR_OUT_OF_MEMORY;
    if (sched_streq(c->timestep_spacing, "linspace")) {
        sched_np_linspace(base, 0.0, (double)(T - 1), n);
        for (int i = 0; i < n; i++) base[i] = rint(base[i]);
    } else if (sched_streq(c->timestep_spacing, "leading")) {
        int64_t ratio = T / n;
        for (int i = 0; i < n; i++) base[i] = (double)((int64_t)i * ratio + c->steps_offset);
    } else {
        double ratio = (double)T / n;
        m = sched_np_arange_len((double)T, 0.0, -ratio);
        if (m > (size_t)n + 1) m = (size_t)n + 1;
        double *tmp = base + 0;
        sched_np_arange(tmp, m, (double)T, -ratio);
        for (size_t i = 0; i < m / 2; i++) {
            double t = tmp[i];
            tmp[i] = tmp[m - 1 - i];
            tmp[m - 1 - i] = t;
        }
        for (size_t i = 0; i < m; i++) base[i] = rint(base[i]) - 1.0;
    }
    size_t n_prk = 0, n_plms;
    if (c->skip_prk_steps) {
        n_plms = m >= 2 ? m + 1 : m;
    } else {
        if (m < 4) {
            free(base);
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                            "%s: the Runge-Kutta warm-up needs at least 4 steps (got %d); set skip_prk_steps", s->cls->name,
                            n);
        }
        n_prk = 12;
        n_plms = m - 3;
    }
    cdf_status st = sched_alloc_timesteps(s, n_prk + n_plms, 0, err);
    if (st) { free(base); return st; }
    double *ts = s->timesteps;
    if (c->skip_prk_steps) {
        /* concat(_ts[:-1], _ts[-2:-1], _ts[-1:])[::-1] */
        size_t k = 0;
        ts[k++] = base[m - 1];
        if (m >= 2) ts[k++] = base[m - 2];
        for (size_t i = m - 1; i-- > 0;) ts[k++] = base[i];
    } else {
        double h = (double)(T / n / 2), l[4];
        for (int i = 0; i < 4; i++) l[i] = base[m - 4 + i];
        /* (prk[:-1].repeat(2)[1:-1])[::-1] with prk = l.repeat(2) + tile([0, h], 4) */
        const double prk[12] = {l[3], l[2] + h, l[2] + h, l[2], l[2], l[1] + h, l[1] + h, l[1], l[1], l[0] + h,
                                l[0] + h, l[0]};
        memcpy(ts, prk, sizeof prk);
        for (size_t i = 0; i < m - 3; i++) ts[12 + i] = base[m - 4 - i];
    }
    free(base);
    s->ts_dtype = CDF_DTYPE_I64;
    s->num_inference_steps = n;
    p->n_prk = n_prk;
    p->counter = 0;
    p->n_ets = 0;
    p->has_cur_mo = p->has_cur_sample = 0;
    return CDF_OK;
}

static cdf_status ensure(pndm_state *p, size_t n, cdf_err *err) {
    if (p->cap == n) return CDF_OK;
    float **bufs[7] = {&p->ets[0], &p->ets[1], &p->ets[2], &p->ets[3], &p->cur_mo, &p->cur_sample, &p->mo};
    for (int i = 0; i < 7; i++) {
        free(*bufs[i]);
        *bufs[i] = cdf_malloc(n, sizeof(float), err);
        if (!*bufs[i]) { p->cap = 0; return CDF_ERR_OUT_OF_MEMORY; }
    }
    p->cap = n;
    return CDF_OK;
}

static void push_ets(pndm_state *p, const float *mo, size_t n) {
    if (p->n_ets == 4) {
        float *old = p->ets[0];
        memmove(p->ets, p->ets + 1, 3 * sizeof(float *));
        p->ets[3] = old;
        p->n_ets = 3;
    }
    memcpy(p->ets[p->n_ets++], mo, n * sizeof(float));
}

/* _get_prev_sample; x may alias out. */
static void prev_sample(const cdf_scheduler *s, float *out, const float *x, int64_t t, int64_t prev_t,
                        const float *mo, size_t n) {
    const pndm_state *p = s->fam;
    size_t ti = 0, pi = 0;
    sched_pyindex(t, s->n_train, &ti);       /* checked by the caller */
    if (prev_t >= 0) sched_pyindex(prev_t, s->n_train, &pi);
    float at = s->alphas_cumprod[ti];
    float ap = prev_t >= 0 ? s->alphas_cumprod[pi] : p->final_alpha_cumprod;
    float bt = 1.0f - at, bp = 1.0f - ap;
    int vpred = sched_streq(s->cfg.prediction_type, "v_prediction");
    float sqa = sqrtf(at), sqb = sqrtf(bt);
    float sample_coeff = sqrtf(ap / at);
    float denom = at * sqrtf(bp) + sqrtf(at * bt * ap);
    float diff = ap - at;
    for (size_t i = 0; i < n; i++) {
        float m = vpred ? sqa * mo[i] + sqb * x[i] : mo[i];
        out[i] = sample_coeff * x[i] - diff * m / denom;
    }
}

/* t and prev_t index alphas_cumprod the Python way (t = -1 happens). */
static int valid_t(const cdf_scheduler *s, int64_t t, int64_t prev_t) {
    size_t i;
    return !sched_pyindex(t, s->n_train, &i) && (prev_t < 0 || !sched_pyindex(prev_t, s->n_train, &i));
}

static cdf_status pndm_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    pndm_state *p = s->fam;
    size_t n = a->n;
    cdf_status st = ensure(p, n, err);
    if (st) return st;
    int64_t T = s->cfg.num_train_timesteps, ratio = T / s->num_inference_steps;
    int64_t t = (int64_t)a->t;
    const float *mo = a->model_output;
    float *x = a->sample;
    if ((double)t != a->t)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: timestep %g is not an integer", s->cls->name, a->t);
    if (p->counter < (long)p->n_prk && !s->cfg.skip_prk_steps) {
        /* step_prk */
        int64_t diff = p->counter % 2 ? 0 : ratio / 2;
        int64_t prev_t = t - diff;
        t = (int64_t)s->timesteps[p->counter / 4 * 4];
        float *m = p->mo;
        long phase = p->counter % 4;
        if (phase == 0 || phase == 1 || phase == 2) {
            float w = phase == 0 ? (float)(1.0 / 6) : (float)(1.0 / 3);
            for (size_t i = 0; i < n; i++) {
                float term = w * mo[i];
                p->cur_mo[i] = p->has_cur_mo ? p->cur_mo[i] + term : term + 0.0f;
            }
            p->has_cur_mo = 1;
            if (phase == 0) {
                push_ets(p, mo, n);
                memcpy(p->cur_sample, x, n * sizeof(float));
                p->has_cur_sample = 1;
            }
            memcpy(m, mo, n * sizeof(float));
        } else {
            float w = (float)(1.0 / 6);
            for (size_t i = 0; i < n; i++) {
                float term = w * mo[i];
                m[i] = p->has_cur_mo ? p->cur_mo[i] + term : term + 0.0f;
            }
            p->has_cur_mo = 0;
        }
        if (!valid_t(s, t, prev_t))
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: timestep out of range", s->cls->name);
        prev_sample(s, x, p->has_cur_sample ? p->cur_sample : x, t, prev_t, m, n);
        p->counter++;
        sched_report_pred(a, NULL);
        return CDF_OK;
    }
    /* step_plms */
    int64_t prev_t = t - ratio;
    if (p->counter != 1) {
        push_ets(p, mo, n);
    } else {
        prev_t = t;
        t = t + ratio;
    }
    float *m = p->mo;
    const float *src = x;
    int k = p->n_ets;
    float *const *e = p->ets;
    if (k == 1 && p->counter == 0) {
        memcpy(m, mo, n * sizeof(float));
        memcpy(p->cur_sample, x, n * sizeof(float));
        p->has_cur_sample = 1;
    } else if (k == 1 && p->counter == 1) {
        for (size_t i = 0; i < n; i++) m[i] = (mo[i] + e[0][i]) / 2.0f;
        if (!p->has_cur_sample)
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: step order is broken (no stored sample)",
                            s->cls->name);
        src = p->cur_sample;
        p->has_cur_sample = 0;
    } else if (k == 2) {
        for (size_t i = 0; i < n; i++) m[i] = (3.0f * e[1][i] - e[0][i]) / 2.0f;
    } else if (k == 3) {
        for (size_t i = 0; i < n; i++) m[i] = (23.0f * e[2][i] - 16.0f * e[1][i] + 5.0f * e[0][i]) / 12.0f;
    } else if (k == 4) {
        float w = (float)(1.0 / 24);
        for (size_t i = 0; i < n; i++)
            m[i] = w * (55.0f * e[3][i] - 59.0f * e[2][i] + 37.0f * e[1][i] - 9.0f * e[0][i]);
    } else {
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: step order is broken", s->cls->name);
    }
    if (!valid_t(s, t, prev_t))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: timestep %lld out of range", s->cls->name,
                        (long long)t);
    prev_sample(s, x, src, t, prev_t, m, n);
    p->counter++;
    sched_report_pred(a, NULL);
    return CDF_OK;
}

static void pndm_destroy(cdf_scheduler *s) {
    pndm_state *p = s->fam;
    if (!p) return;
    for (int i = 0; i < 4; i++) free(p->ets[i]);
    free(p->cur_mo);
    free(p->cur_sample);
    free(p->mo);
    free(p);
}

const sched_class cdf_sched_pndm = {
    "PNDMScheduler", pndm_params, 1, NK_ALPHAS, pndm_init, pndm_set_timesteps, NULL, pndm_step, pndm_destroy,
};
