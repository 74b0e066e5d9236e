/* HeunDiscreteScheduler (diffusers 0.26.3 scheduling_heun_discrete.py): two
 * model evaluations per step, timesteps/sigmas interleaved. */
#include "schedulers/sched_internal.h"

#include <stdlib.h>

#include "core/error.h"

static const char *const heun_betas[] = {"linear", "scaled_linear", "squaredcos_cap_v2", "exp", NULL};

static const sched_param heun_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.00085", NULL},
    {"beta_end", P_NUM, "0.012", NULL},
    {"beta_schedule", P_STR, "\"linear\"", heun_betas},
    {"trained_betas", P_BETAS, "null", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", sched_predictions},
    {"use_karras_sigmas", P_BOOL, "false", NULL},
    {"clip_sample", P_BOOL, "false", NULL},
    {"clip_sample_range", P_NUM, "1.0", NULL},
    {"timestep_spacing", P_STR, "\"linspace\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct heun_state {
    float *prev_deriv, *saved, *pred;
    size_t cap;
    int first_order;   /* self.dt is None */
    float dt;
} heun_state;

static cdf_status heun_init(cdf_scheduler *s, cdf_err *err) {
    cdf_status st = sched_make_alphas(s, err);
    if (st) return st;
    s->fam = cdf_calloc(1, sizeof(heun_state), err);
    if (!s->fam) return CDF_ERR_OUT_OF_MEMORY;
    ((heun_state *)s->fam)->first_order = 1;
    return CDF_OK;
}

/* cat([x[:1], x[1:m-1].repeat_interleave(2), x[m-1:]]) for m sigmas (2m - 2). */
static cdf_status heun_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    heun_state *h = s->fam;
    sched_ksched k;
    cdf_status st = sched_ksched_make(s, n, 0, &k, err);
    if (st) return st;
    if (s->cfg.use_karras_sigmas) sched_ksched_karras(s, &k, n, 0);
    size_t m = k.len; /* timesteps; sigmas = m + 1 with the final 0 */
    st = sched_alloc_timesteps(s, 2 * m - 1, 2 * m, err);
    if (!st) {
        sched_ksched_sigmas_2stage(s->sigmas, &k);
        s->timesteps[0] = k.ts[0];
        for (size_t i = 1; i < m; i++) s->timesteps[2 * i - 1] = s->timesteps[2 * i] = k.ts[i];
        s->ts_dtype = k.karras ? CDF_DTYPE_F64 : CDF_DTYPE_F32;
        s->num_inference_steps = n;
        sched_k_init_noise_sigma(s);
        h->first_order = 1;
    }
    sched_ksched_free(&k);
    return st;
}

static cdf_status heun_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    heun_state *h = s->fam;
    const sched_cfg *c = &s->cfg;
    size_t n = a->n;
    cdf_status st = sched_k_step_begin(s, a->t, !h->first_order, err);
    if (st) return st;
    if (h->cap != n) {
        free(h->prev_deriv);
        free(h->saved);
        free(h->pred);
        h->prev_deriv = cdf_malloc(n, sizeof(float), err);
        h->saved = cdf_malloc(n, sizeof(float), err);
        h->pred = cdf_malloc(n, sizeof(float), err);
        h->cap = (h->prev_deriv && h->saved && h->pred) ? n : 0;
        if (!h->cap) return CDF_ERR_OUT_OF_MEMORY;
    }
    int first = h->first_order;
    float sigma = first ? s->sigmas[s->step_index] : s->sigmas[s->step_index - 1];
    float sigma_next = first ? s->sigmas[s->step_index + 1] : s->sigmas[s->step_index];
    float sigma_hat = sigma * 1.0f;
    float sigma_input = first ? sigma_hat : sigma_next;
    const float *mo = a->model_output;
    float *x = a->sample, *x0 = h->pred;
    sched_k_pred_x0(c->prediction_type, x0, x, mo, sigma_input, sigma_input, n);
    if (c->clip_sample) sched_clip(x0, n, c->clip_sample_range);
    if (first) {
        float dt = sigma_next - sigma_hat;
        for (size_t i = 0; i < n; i++) {
            float d = (x[i] - x0[i]) / sigma_hat;
            h->prev_deriv[i] = d;
            h->saved[i] = x[i];
            x[i] = x[i] + d * dt;
        }
        h->dt = dt;
        h->first_order = 0;
    } else {
        for (size_t i = 0; i < n; i++) {
            float d = (x[i] - x0[i]) / sigma_next;
            d = (h->prev_deriv[i] + d) / 2.0f;
            x[i] = h->saved[i] + d * h->dt;
        }
        h->first_order = 1;
    }
    s->step_index++;
    sched_report_pred(a, NULL);
    return CDF_OK;
}

static void heun_destroy(cdf_scheduler *s) {
    heun_state *h = s->fam;
    if (!h) return;
    free(h->prev_deriv);
    free(h->saved);
    free(h->pred);
    free(h);
}

const sched_class cdf_sched_heun = {
    "HeunDiscreteScheduler", heun_params, 2, NK_SIGMA, heun_init, heun_set_timesteps, sched_k_scale, heun_step,
    heun_destroy,
};
