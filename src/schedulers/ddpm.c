/* DDPMScheduler (diffusers 0.26.3 scheduling_ddpm.py). */
#include "schedulers/sched_internal.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

static const char *const ddpm_betas[] = {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", NULL};
static const char *const ddpm_variances[] = {"fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log",
                                             "learned", "learned_range", NULL};

static const sched_param ddpm_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.0001", NULL},
    {"beta_end", P_NUM, "0.02", NULL},
    {"beta_schedule", P_STR, "\"linear\"", ddpm_betas},
    {"trained_betas", P_BETAS, "null", NULL},
    {"variance_type", P_STR, "\"fixed_small\"", ddpm_variances},
    {"clip_sample", P_BOOL, "true", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", sched_predictions},
    {"thresholding", P_BOOL, "false", NULL},
    {"dynamic_thresholding_ratio", P_NUM, "0.995", NULL},
    {"clip_sample_range", P_NUM, "1.0", NULL},
    {"sample_max_value", P_NUM, "1.0", NULL},
    {"timestep_spacing", P_STR, "\"leading\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {"rescale_betas_zero_snr", P_BOOL, "false", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct ddpm_state {
    float *pred, *noise;
    size_t cap_pred, cap_noise;
} ddpm_state;

static cdf_status ddpm_init(cdf_scheduler *s, cdf_err *err) {
    if (sched_streq(s->cfg.variance_type, "learned") || sched_streq(s->cfg.variance_type, "learned_range"))
        return cdf_errf(err, CDF_ERR_UNSUPPORTED,
                        "%s config: variance_type '%s' needs a model that predicts its variance (2x channels); "
                        "supported: 'fixed_small', 'fixed_small_log', 'fixed_large', 'fixed_large_log'",
                        s->cls->name, s->cfg.variance_type);
    cdf_status st = sched_make_alphas(s, err);
    if (st) return st;
    s->fam = cdf_calloc(1, sizeof(ddpm_state), err);
    if (!s->fam) return CDF_ERR_OUT_OF_MEMORY;
    s->init_noise_sigma = 1.0f;
    return CDF_OK;
}

static cdf_status ddpm_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    ddpm_state *d = s->fam;
    const sched_cfg *c = &s->cfg;
    float at, ap;
    cdf_status st = cdf_sched_ddim_alphas(s, a->t, 1.0f, &at, &ap, err);
    if (st) return st;
    int64_t t = (int64_t)a->t; /* an integer: checked above */
    float bt = 1.0f - at, bp = 1.0f - ap;
    float cur_alpha = at / ap, cur_beta = 1.0f - cur_alpha;
    size_t n = a->n;
    st = sched_buf(&d->pred, &d->cap_pred, n, err);
    if (st) return st;
    float *x0 = d->pred, *x = a->sample;
    const float *mo = a->model_output;
    float sqa = sqrtf(at), sqb = sqrtf(bt);
    cdf_sched_ddim_pred_x0(c->prediction_type, x0, x, mo, sqa, sqb, n);
    if ((st = cdf_sched_ddim_clip(s, x0, n, a->shape, err))) return st;
    float c0 = (sqrtf(ap) * cur_beta) / bt;
    float c1 = sqrtf(cur_alpha) * bp / bt;
    for (size_t i = 0; i < n; i++) x[i] = c0 * x0[i] + c1 * x[i];
    if (t > 0) {
        st = sched_buf(&d->noise, &d->cap_noise, n, err);
        if (st) return st;
        st = sched_noise(a->noise, d->noise, a->shape, s->cls->name, err);
        if (st) return st;
        /* _get_variance(t) */
        float var = (1.0f - ap) / (1.0f - at) * cur_beta;
        var = var < 1e-20f ? 1e-20f : var;
        float coef;
        if (sched_streq(c->variance_type, "fixed_small_log")) {
            coef = cdf_torch_expf(0.5f * cdf_torch_logf(var));
        } else if (sched_streq(c->variance_type, "fixed_large")) {
            coef = sqrtf(cur_beta);
        } else if (sched_streq(c->variance_type, "fixed_large_log")) {
            coef = sqrtf(cdf_torch_logf(cur_beta)); /* NaN, as in diffusers */
        } else {
            coef = sqrtf(var);
        }
        for (size_t i = 0; i < n; i++) x[i] = x[i] + coef * d->noise[i];
    }
    sched_report_pred(a, x0);
    return CDF_OK;
}

static void ddpm_destroy(cdf_scheduler *s) {
    ddpm_state *d = s->fam;
    if (!d) return;
    free(d->pred);
    free(d->noise);
    free(d);
}

const sched_class cdf_sched_ddpm = {
    "DDPMScheduler", ddpm_params, 1, NK_ALPHAS, ddpm_init, cdf_sched_ddim_timesteps, NULL, ddpm_step, ddpm_destroy,
};
