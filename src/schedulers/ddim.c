/* DDIMScheduler (diffusers 0.26.3 scheduling_ddim.py). */
#include "schedulers/sched_internal.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

static const sched_param ddim_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.0001", NULL},
    {"beta_end", P_NUM, "0.02", NULL},
    {"beta_schedule", P_STR, "\"linear\"", sched_beta_schedules},
    {"trained_betas", P_BETAS, "null", NULL},
    {"clip_sample", P_BOOL, "true", NULL},
    {"set_alpha_to_one", P_BOOL, "true", NULL},
    {"steps_offset", P_INT, "0", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", sched_predictions},
    {"thresholding", P_BOOL, "false", NULL},
    {"dynamic_thresholding_ratio", P_NUM, "0.995", NULL},
    {"clip_sample_range", P_NUM, "1.0", NULL},
    {"sample_max_value", P_NUM, "1.0", NULL},
    {"timestep_spacing", P_STR, "\"leading\"", sched_spacings},
    {"rescale_betas_zero_snr", P_BOOL, "false", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct ddim_state {
    float final_alpha_cumprod;
    float *pred, *eps, *noise;
    size_t cap_pred, cap_eps, cap_noise;
} ddim_state;

static cdf_status ddim_init(cdf_scheduler *s, cdf_err *err) {
    cdf_status st = sched_make_alphas(s, err);
    if (st) return st;
    ddim_state *d = cdf_calloc(1, sizeof *d, err);
    if (!d) return CDF_ERR_OUT_OF_MEMORY;
    s->fam = d;
    d->final_alpha_cumprod = s->cfg.set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
    s->init_noise_sigma = 1.0f;
    return CDF_OK;
}

cdf_status cdf_sched_ddim_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    const sched_cfg *c = &s->cfg;
    int64_t T = c->num_train_timesteps;
    size_t len = (size_t)n;
    double ratio_f = (double)T / n;
    if (sched_streq(c->timestep_spacing, "trailing")) len = sched_np_arange_len((double)T, 0.0, -ratio_f);
    cdf_status st = sched_alloc_timesteps(s, len, 0, err);
    if (st) return st;
    double *ts = s->timesteps;
    if (sched_streq(c->timestep_spacing, "linspace")) {
        sched_np_linspace(ts, 0.0, (double)(T - 1), n);
        for (int i = 0; i < n / 2; i++) {
            double t = ts[i];
            ts[i] = ts[n - 1 - i];
            ts[n - 1 - i] = t;
        }
        for (int i = 0; i < n; i++) ts[i] = rint(ts[i]);
    } else if (sched_streq(c->timestep_spacing, "leading")) {
        int64_t ratio = T / n;
        for (int i = 0; i < n; i++) ts[i] = (double)((int64_t)(n - 1 - i) * ratio + c->steps_offset);
    } else {
        sched_np_arange(ts, len, (double)T, -ratio_f);
        for (size_t i = 0; i < len; i++) ts[i] = rint(ts[i]) - 1.0;
    }
    s->ts_dtype = CDF_DTYPE_I64;
    s->num_inference_steps = n;
    return CDF_OK;
}

cdf_status cdf_sched_ddim_alphas(const cdf_scheduler *s, double t, float final, float *at, float *ap, cdf_err *err) {
    int64_t ti64 = (int64_t)t;
    size_t ti, pi;
    if ((double)ti64 != t || sched_pyindex(ti64, s->n_train, &ti))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: timestep %g is not a training timestep", s->cls->name, t);
    int64_t prev_t = ti64 - s->cfg.num_train_timesteps / s->num_inference_steps;
    if (prev_t >= 0 && sched_pyindex(prev_t, s->n_train, &pi))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: timestep %g out of range", s->cls->name, t);
    *at = s->alphas_cumprod[ti];
    *ap = prev_t >= 0 ? s->alphas_cumprod[pi] : final;
    return CDF_OK;
}

void cdf_sched_ddim_pred_x0(const char *pred, float *x0, const float *x, const float *mo, float sqa, float sqb,
                            size_t n) {
    if (sched_streq(pred, "epsilon")) {
        for (size_t i = 0; i < n; i++) x0[i] = (x[i] - sqb * mo[i]) / sqa;
    } else if (sched_streq(pred, "sample")) {
        for (size_t i = 0; i < n; i++) x0[i] = mo[i];
    } else {
        for (size_t i = 0; i < n; i++) x0[i] = sqa * x[i] - sqb * mo[i];
    }
}

cdf_status cdf_sched_ddim_clip(const cdf_scheduler *s, float *x0, size_t n, const int64_t shape[4], cdf_err *err) {
    if (s->cfg.thresholding) return sched_threshold(s, x0, n, shape, err);
    if (s->cfg.clip_sample) sched_clip(x0, n, s->cfg.clip_sample_range);
    return CDF_OK;
}

static cdf_status ddim_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    ddim_state *d = s->fam;
    const sched_cfg *c = &s->cfg;
    float at, ap;
    cdf_status st = cdf_sched_ddim_alphas(s, a->t, d->final_alpha_cumprod, &at, &ap, err);
    if (st) return st;
    float bt = 1.0f - at;
    float sqa = sqrtf(at), sqb = sqrtf(bt);
    size_t n = a->n;
    st = sched_buf(&d->pred, &d->cap_pred, n, err);
    if (st) return st;
    float *x0 = d->pred;
    const float *mo = a->model_output;
    float *x = a->sample;
    cdf_sched_ddim_pred_x0(c->prediction_type, x0, x, mo, sqa, sqb, n);
    /* pred_epsilon: 0 = model output, 1 = from x0 (sample), 2 = v formula */
    int eps_mode = sched_streq(c->prediction_type, "epsilon") ? 0 : sched_streq(c->prediction_type, "sample") ? 1 : 2;
    /* pred_epsilon is computed before thresholding/clipping changes x0 */
    float variance = ((1.0f - ap) / bt) * (1.0f - at / ap);
    float std_dev = (float)s->eta * sqrtf(variance);
    float dir_coef = sqrtf((1.0f - ap) - std_dev * std_dev);
    float sqap = sqrtf(ap);
    float *eps_buf = NULL;
    if (eps_mode != 0) {
        st = sched_buf(&d->eps, &d->cap_eps, n, err);
        if (st) return st;
        eps_buf = d->eps;
        for (size_t i = 0; i < n; i++)
            eps_buf[i] = eps_mode == 1 ? (x[i] - sqa * x0[i]) / sqb : sqa * mo[i] + sqb * x[i];
    }
    if ((st = cdf_sched_ddim_clip(s, x0, n, a->shape, err))) return st;
    for (size_t i = 0; i < n; i++) {
        float pe = eps_buf ? eps_buf[i] : mo[i];
        x[i] = sqap * x0[i] + dir_coef * pe;
    }
    if (s->eta > 0) {
        st = sched_buf(&d->noise, &d->cap_noise, n, err);
        if (st) return st;
        st = sched_noise(a->noise, d->noise, a->shape, s->cls->name, err);
        if (st) return st;
        for (size_t i = 0; i < n; i++) x[i] = x[i] + std_dev * d->noise[i];
    }
    sched_report_pred(a, x0);
    return CDF_OK;
}

static void ddim_destroy(cdf_scheduler *s) {
    ddim_state *d = s->fam;
    if (!d) return;
    free(d->pred);
    free(d->eps);
    free(d->noise);
    free(d);
}

const sched_class cdf_sched_ddim = {
    "DDIMScheduler", ddim_params, 1, NK_ALPHAS, ddim_init, cdf_sched_ddim_timesteps, NULL, ddim_step, ddim_destroy,
};
