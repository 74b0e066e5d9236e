/* DPMSolverSDEScheduler (diffusers 0.26.3 scheduling_dpmsolver_sde.py):
 * DPM-Solver++(2S) SDE of k-diffusion, a midpoint stage per step with
 * float64 midpoint timesteps interleaved, noise from a Brownian tree.
 *
 * The noise is diffusers' BrownianTreeNoiseSampler over one
 * BatchedBrownianTree (torchsde BrownianTree between the smallest positive
 * and the largest sigma): for a call (sigma, sigma_next) it returns
 * sign * (W(hi) - W(lo)) / sqrt(|sigma_next - sigma|), with lo/hi the sorted
 * pair and sign -1 when sigma > sigma_next. */
#include "schedulers/sched_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "schedulers/brownian_tree.h"

static const char *const sde_predictions[] = {"epsilon", "v_prediction", NULL};

static const sched_param sde_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.00085", NULL},
    {"beta_end", P_NUM, "0.012", NULL},
    {"beta_schedule", P_STR, "\"linear\"", sched_beta_schedules},
    {"trained_betas", P_BETAS, "null", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", sde_predictions},
    {"use_karras_sigmas", P_BOOL, "false", NULL},
    {"noise_sampler_seed", P_OPT_INT, "null", NULL},
    {"timestep_spacing", P_STR, "\"linspace\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct sde_state {
    cdf_brownian_tree *tree;      /* created at the first step (diffusers: noise_sampler) */
    float *saved, *pred, *noise;
    size_t cap;
    int first_order;              /* self.sample is None */
    float mid_point_sigma;
} sde_state;

static cdf_status sde_init(cdf_scheduler *s, cdf_err *err) {
    if (s->cfg.has_noise_sampler_seed && s->cfg.noise_sampler_seed < 0)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: noise_sampler_seed must not be negative",
                        s->cls->name);
    cdf_status st = sched_make_alphas(s, err);
    if (st) return st;
    sde_state *d = cdf_calloc(1, sizeof *d, err);
    if (!d) return CDF_ERR_OUT_OF_MEMORY;
    d->first_order = 1;
    s->fam = d;
    return CDF_OK;
}

static cdf_status sde_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    sde_state *d = s->fam;
    sched_ksched k;
    cdf_status st = sched_ksched_make(s, n, 1, &k, err);
    if (st) return st;
    if (s->cfg.use_karras_sigmas) sched_ksched_karras(s, &k, n, 0);
    size_t m = k.len;
    /* _second_order_timesteps: t = -log(sigma), midpoints in t, back to sigma, to timesteps */
    double *second = cdf_malloc(m ? m : 1, sizeof(double), err);
    if (!second) { sched_ksched_free(&k); return CDF_ERR_OUT_OF_MEMORY; }
    for (size_t i = 0; i + 1 < m; i++) {
        double t0 = -log(k.sig[i]), t1 = -log(k.sig[i + 1]);
        double tp = t0 + (t1 - t0) * 0.5;
        second[i] = sched_sigma_to_t(exp(-tp), k.logs, s->n_train);
    }
    st = sched_alloc_timesteps(s, 2 * m - 1, 2 * m, err);
    if (!st) {
        sched_ksched_sigmas_2stage(s->sigmas, &k);
        double *ts = s->timesteps;
        ts[0] = k.ts[0];
        for (size_t i = 1; i < m; i++) {
            ts[2 * i - 1] = second[i - 1];
            ts[2 * i] = k.ts[i];
        }
        s->ts_dtype = CDF_DTYPE_F64;
        s->num_inference_steps = n;
        sched_k_init_noise_sigma(s);
        d->first_order = 1;
        cdf_brownian_tree_free(d->tree);
        d->tree = NULL;
    }
    free(second);
    sched_ksched_free(&k);
    return st;
}

static cdf_status sde_scale(cdf_scheduler *s, float *out, const float *in, size_t n, double t, cdf_err *err) {
    sde_state *d = s->fam;
    cdf_status st = sched_ensure_step_index(s, t, 0, err);
    if (st) return st;
    sched_k_scale_by(out, in, n, d->first_order ? s->sigmas[s->step_index] : d->mid_point_sigma);
    return CDF_OK;
}

static float sigma_fn(float t) { return cdf_torch_expf(-t); }
static float t_fn(float sigma) { return -cdf_torch_logf(sigma); }

/* noise_sampler(sigma, sigma_next) into d->noise */
static cdf_status brownian_noise(cdf_scheduler *s, sde_state *d, float sigma, float sigma_next,
                                 const int64_t *shape, size_t n, cdf_err *err) {
    if (s->brownian_fn) return s->brownian_fn(s->brownian_user, sigma, sigma_next, d->noise, shape, err);
    if (!d->tree) {
        uint64_t seed;
        if (s->cfg.has_noise_sampler_seed) seed = (uint64_t)s->cfg.noise_sampler_seed;
        else if (s->has_default_seed) seed = s->default_seed;
        else
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                            "%s: no noise_sampler_seed in the config and no default seed set "
                            "(diffusers would draw one from torch's global RNG)", s->cls->name);
        float smin = INFINITY, smax = 0;
        for (size_t i = 0; i < s->n_sigmas; i++) {
            float v = s->sigmas[i];
            if (v > 0 && v < smin) smin = v;
            if (v > smax) smax = v;
        }
        float lo = smin < smax ? smin : smax, hi = smin < smax ? smax : smin;
        cdf_status st = cdf_brownian_tree_create(&d->tree, n, (double)lo, (double)hi, seed, err);
        if (st) return st;
    }
    int flip = !(sigma < sigma_next);
    float lo = flip ? sigma_next : sigma, hi = flip ? sigma : sigma_next;
    cdf_status st = cdf_brownian_tree_query(d->tree, (double)lo, (double)hi, d->noise, err);
    if (st) return st;
    float den = sqrtf(fabsf(sigma_next - sigma));
    for (size_t i = 0; i < n; i++) {
        float w = flip ? d->noise[i] * -1.0f : d->noise[i];
        d->noise[i] = w / den;
    }
    return CDF_OK;
}

static cdf_status sde_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    sde_state *d = s->fam;
    size_t n = a->n;
    cdf_status st = sched_k_step_begin(s, a->t, !d->first_order, err);
    if (st) return st;
    long si = s->step_index;
    if (d->cap != n) {
        free(d->saved);
        free(d->pred);
        free(d->noise);
        d->saved = cdf_malloc(n, sizeof(float), err);
        d->pred = cdf_malloc(n, sizeof(float), err);
        d->noise = cdf_malloc(n, sizeof(float), err);
        d->cap = (d->saved && d->pred && d->noise) ? n : 0;
        if (!d->cap) return CDF_ERR_OUT_OF_MEMORY;
        if (d->tree) { cdf_brownian_tree_free(d->tree); d->tree = NULL; }
    }
    int first = d->first_order;
    float sigma = first ? s->sigmas[si] : s->sigmas[si - 1];
    float sigma_next = first ? s->sigmas[si + 1] : s->sigmas[si];
    float t = t_fn(sigma), t_next = t_fn(sigma_next);
    float t_proposed = t + (t_next - t) * 0.5f;
    float sigma_input = first ? sigma : sigma_fn(t_proposed);
    const float *mo = a->model_output;
    float *x = a->sample, *x0 = d->pred;
    sched_k_pred_x0(s->cfg.prediction_type, x0, x, mo, sigma_input, sigma_input, n);
    if (sigma_next == 0.0f) {
        float dt = sigma_next - sigma;
        for (size_t i = 0; i < n; i++) {
            float deriv = (x[i] - x0[i]) / sigma;
            x[i] = x[i] + deriv * dt;
        }
    } else {
        if (first) t_next = t_proposed;
        const float *src = first ? x : d->saved;
        float sigma_from = sigma_fn(t), sigma_to = sigma_fn(t_next);
        float up = sqrtf(sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to) /
                         (sigma_from * sigma_from));
        float sigma_up = up < sigma_to ? up : sigma_to; /* Python min(sigma_to, up) */
        float sigma_down = sqrtf(sigma_to * sigma_to - sigma_up * sigma_up);
        float ancestral_t = t_fn(sigma_down);
        float c0 = sigma_fn(ancestral_t) / sigma_fn(t), c1 = cdf_torch_expm1f(t - ancestral_t);
        st = brownian_noise(s, d, sigma_fn(t), sigma_fn(t_next), a->shape, n, err);
        if (st) return st;
        if (first) memcpy(d->saved, x, n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            float p = c0 * src[i] - c1 * x0[i];
            x[i] = p + d->noise[i] * 1.0f * sigma_up;
        }
        if (first) {
            d->first_order = 0;
            d->mid_point_sigma = sigma_fn(t_next);
        } else {
            d->first_order = 1;
        }
    }
    s->step_index++;
    sched_report_pred(a, NULL);
    return CDF_OK;
}

static void sde_destroy(cdf_scheduler *s) {
    sde_state *d = s->fam;
    if (!d) return;
    cdf_brownian_tree_free(d->tree);
    free(d->saved);
    free(d->pred);
    free(d->noise);
    free(d);
}

const sched_class cdf_sched_dpm_sde = {
    "DPMSolverSDEScheduler", sde_params, 2, NK_SIGMA, sde_init, sde_set_timesteps, sde_scale, sde_step, sde_destroy,
};
