/* DEISMultistepScheduler (diffusers 0.26.3 scheduling_deis_multistep.py):
 * log-rho DEIS, orders 1-3. Its coefficients take np.log of float32 tensors,
 * i.e. numpy's float32 log, then continue in float32 torch arithmetic. */
#include "schedulers/dpm_common.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

static const char *const algorithms[] = {"deis", "dpmsolver", "dpmsolver++", NULL};
static const char *const solver_types[] = {"logrho", "midpoint", "heun", "bh1", "bh2", NULL};

static const sched_param deis_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.0001", NULL},
    {"beta_end", P_NUM, "0.02", NULL},
    {"beta_schedule", P_STR, "\"linear\"", sched_beta_schedules},
    {"trained_betas", P_BETAS, "null", NULL},
    {"solver_order", P_INT, "2", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", sched_predictions},
    {"thresholding", P_BOOL, "false", NULL},
    {"dynamic_thresholding_ratio", P_NUM, "0.995", NULL},
    {"sample_max_value", P_NUM, "1.0", NULL},
    {"algorithm_type", P_STR, "\"deis\"", algorithms},
    {"solver_type", P_STR, "\"logrho\"", solver_types},
    {"lower_order_final", P_BOOL, "true", NULL},
    {"use_karras_sigmas", P_BOOL, "false", NULL},
    {"timestep_spacing", P_STR, "\"linspace\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct deis_state {
    float *outs[3];
    size_t cap;
    int lower_order_nums;
} deis_state;

static cdf_status deis_init(cdf_scheduler *s, cdf_err *err) {
    cdf_status st = dpm_check_order(s, err);
    if (st) return st;
    if (!sched_streq(s->cfg.algorithm_type, "deis") && (st = sched_set_config_str(s, "algorithm_type", "deis", err)))
        return st;
    if (!sched_streq(s->cfg.solver_type, "logrho") && (st = sched_set_config_str(s, "solver_type", "logrho", err)))
        return st;
    if ((st = sched_make_alphas(s, err))) return st;
    s->fam = cdf_calloc(1, sizeof(deis_state), err);
    if (!s->fam) return CDF_ERR_OUT_OF_MEMORY;
    s->init_noise_sigma = 1.0f;
    return CDF_OK;
}

static cdf_status deis_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    const dpm_sched_opts o = {1, 0, 0, DPM_FINAL_SIGMA_MIN};
    ((deis_state *)s->fam)->lower_order_nums = 0;
    return dpm_set_timesteps(s, n, &o, err);
}

#define LN(v) cdf_numpy_logf(v)

/* ind_fn of the second-order update */
static float ind2(float t, float b, float c) { return t * (-LN(c) + LN(t) - 1.0f) / (LN(b) - LN(c)); }

/* ind_fn of the third-order update */
static float ind3(float t, float b, float c, float d) {
    float lt = LN(t), num = t * (LN(c) * (LN(d) - lt + 1.0f) - LN(d) * lt + LN(d) + lt * lt - 2.0f * lt + 2.0f);
    float den = (LN(b) - LN(c)) * (LN(b) - LN(d));
    return num / den;
}

static cdf_status deis_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    deis_state *d = s->fam;
    const sched_cfg *c = &s->cfg;
    size_t n = a->n;
    int order = (int)c->solver_order;
    cdf_status st = dpm_step_begin(s, a->t, err);
    if (st) return st;
    if (d->cap != n) {
        d->cap = 0;
        if ((st = dpm_alloc_outs(d->outs, order, n, err))) return st;
        d->cap = n;
    }
    long si = s->step_index, len = (long)s->n_ts;
    int low_final = si == len - 1 && c->lower_order_final && len < 15;
    int low_second = si == len - 2 && c->lower_order_final && len < 15;
    float *cur = dpm_push_output(d->outs, order);
    /* convert_model_output: x0, then epsilon = (sample - alpha_t * x0) / sigma_t */
    float *x = a->sample;
    st = dpm_convert(s, 1, cur, a->model_output, x, n, a->shape, err);
    if (st) return st;
    dpm_x0_to_eps(s, cur, x, n);

    float at, sgt, a0, s0;
    dpm_alpha_sigma(s->sigmas[si + 1], &at, &sgt);
    dpm_alpha_sigma(s->sigmas[si], &a0, &s0);
    if (order == 1 || d->lower_order_nums < 1 || low_final) {
        float h = dpm_lambda(at, sgt) - dpm_lambda(a0, s0);
        float ca = at / a0, cb = sgt * (cdf_torch_expf(h) - 1.0f);
        for (size_t i = 0; i < n; i++) x[i] = ca * x[i] - cb * cur[i];
    } else if (order == 2 || d->lower_order_nums < 2 || low_second) {
        float a1, s1;
        dpm_alpha_sigma(s->sigmas[si - 1], &a1, &s1);
        float rt = sgt / at, r0 = s0 / a0, r1 = s1 / a1;
        float c1 = ind2(rt, r0, r1) - ind2(r0, r0, r1);
        float c2 = ind2(rt, r1, r0) - ind2(r0, r1, r0);
        const float *m0 = d->outs[order - 1], *m1 = d->outs[order - 2];
        for (size_t i = 0; i < n; i++) x[i] = at * (x[i] / a0 + c1 * m0[i] + c2 * m1[i]);
    } else {
        float a1, s1, a2, s2;
        dpm_alpha_sigma(s->sigmas[si - 1], &a1, &s1);
        dpm_alpha_sigma(s->sigmas[si - 2], &a2, &s2);
        float rt = sgt / at, r0 = s0 / a0, r1 = s1 / a1, r2 = s2 / a2;
        float c1 = ind3(rt, r0, r1, r2) - ind3(r0, r0, r1, r2);
        float c2 = ind3(rt, r1, r2, r0) - ind3(r0, r1, r2, r0);
        float c3 = ind3(rt, r2, r0, r1) - ind3(r0, r2, r0, r1);
        const float *m0 = d->outs[2], *m1 = d->outs[1], *m2 = d->outs[0];
        for (size_t i = 0; i < n; i++) x[i] = at * (x[i] / a0 + c1 * m0[i] + c2 * m1[i] + c3 * m2[i]);
    }
    if (d->lower_order_nums < order) d->lower_order_nums++;
    s->step_index++;
    sched_report_pred(a, NULL);
    return CDF_OK;
}

static void deis_destroy(cdf_scheduler *s) {
    deis_state *d = s->fam;
    if (!d) return;
    for (int i = 0; i < 3; i++) free(d->outs[i]);
    free(d);
}

const sched_class cdf_sched_deis = {
    "DEISMultistepScheduler", deis_params, 1, NK_ALPHA_SIGMA, deis_init, deis_set_timesteps, NULL, deis_step,
    deis_destroy,
};
