/* EulerDiscreteScheduler and EulerAncestralDiscreteScheduler (diffusers
 * 0.26.3 scheduling_euler_discrete.py, scheduling_euler_ancestral_discrete.py). */
#include "schedulers/sched_internal.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

static const char *const euler_predictions[] = {"epsilon", "v_prediction", "sample", "original_sample", NULL};
static const char *const euler_a_predictions[] = {"epsilon", "v_prediction", NULL};
static const char *const interpolations[] = {"linear", "log_linear", NULL};
static const char *const timestep_types[] = {"discrete", "continuous", NULL};

static const sched_param euler_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.0001", NULL},
    {"beta_end", P_NUM, "0.02", NULL},
    {"beta_schedule", P_STR, "\"linear\"", sched_beta_schedules},
    {"trained_betas", P_BETAS, "null", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", euler_predictions},
    {"interpolation_type", P_STR, "\"linear\"", interpolations},
    {"use_karras_sigmas", P_BOOL, "false", NULL},
    {"sigma_min", P_OPT_NUM, "null", NULL},
    {"sigma_max", P_OPT_NUM, "null", NULL},
    {"timestep_spacing", P_STR, "\"linspace\"", sched_spacings},
    {"timestep_type", P_STR, "\"discrete\"", timestep_types},
    {"steps_offset", P_INT, "0", NULL},
    {"rescale_betas_zero_snr", P_BOOL, "false", NULL},
    {NULL, 0, NULL, NULL},
};

static const sched_param euler_a_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.0001", NULL},
    {"beta_end", P_NUM, "0.02", NULL},
    {"beta_schedule", P_STR, "\"linear\"", sched_beta_schedules},
    {"trained_betas", P_BETAS, "null", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", euler_a_predictions},
    {"timestep_spacing", P_STR, "\"linspace\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {"rescale_betas_zero_snr", P_BOOL, "false", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct euler_state {
    float *pred, *noise;
    size_t cap_pred, cap_noise;
} euler_state;

static cdf_status euler_init(cdf_scheduler *s, cdf_err *err) {
    cdf_status st = sched_make_alphas(s, err);
    if (st) return st;
    if (s->cfg.rescale_betas_zero_snr) s->alphas_cumprod[s->n_train - 1] = 0x1p-24f;
    s->fam = cdf_calloc(1, sizeof(euler_state), err);
    return s->fam ? CDF_OK : CDF_ERR_OUT_OF_MEMORY;
}

static cdf_status euler_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    const sched_cfg *c = &s->cfg;
    sched_ksched k;
    cdf_status st = sched_ksched_make(s, n, 0, &k, err);
    if (st) return st;
    size_t n_sig = k.len;
    if (sched_streq(c->interpolation_type, "log_linear")) {
        /* torch.linspace(log(sigmas[-1]), log(sigmas[0]), n + 1).exp(): n + 1
         * sigmas for n timesteps, ascending, exactly as diffusers 0.26.3 does */
        float *tmp = cdf_malloc((size_t)n + 1, sizeof(float), err);
        if (!tmp) { sched_ksched_free(&k); return CDF_ERR_OUT_OF_MEMORY; }
        sched_torch_linspace_f32(tmp, k.logs[s->n_train - 1], k.logs[0], n + 1);
        for (int i = 0; i <= n; i++) k.sig[i] = cdf_torch_expf(tmp[i]);
        free(tmp);
        n_sig = (size_t)n + 1;
        k.sig_len = n_sig;
    }
    if (c->use_karras_sigmas) {
        sched_ksched_karras(s, &k, n, 0);
        n_sig = k.len;
    }
    st = sched_alloc_timesteps(s, k.len, n_sig + 1, err);
    if (!st) {
        for (size_t i = 0; i < n_sig; i++) s->sigmas[i] = (float)k.sig[i];
        s->sigmas[n_sig] = 0.0f;
        int continuous = sched_streq(c->timestep_type, "continuous") && sched_streq(c->prediction_type, "v_prediction");
        for (size_t i = 0; i < k.len; i++)
            s->timesteps[i] = continuous ? (double)(0.25f * cdf_torch_logf(s->sigmas[i])) : (double)(float)k.ts[i];
        s->ts_dtype = CDF_DTYPE_F32;
        s->num_inference_steps = n;
        sched_k_init_noise_sigma(s);
    }
    sched_ksched_free(&k);
    return st;
}

static cdf_status euler_a_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    sched_ksched k;
    cdf_status st = sched_ksched_make(s, n, 0, &k, err);
    if (st) return st;
    st = sched_ksched_store(s, &k, n, err);
    sched_ksched_free(&k);
    return st;
}

static cdf_status prepare(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    euler_state *e = s->fam;
    cdf_status st = sched_k_step_begin(s, a->t, 0, err);
    if (!st) st = sched_buf(&e->pred, &e->cap_pred, a->n, err);
    if (!st) st = sched_buf(&e->noise, &e->cap_noise, a->n, err);
    return st;
}

static cdf_status euler_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    euler_state *e = s->fam;
    cdf_status st = prepare(s, a, err);
    if (st) return st;
    size_t n = a->n;
    float sigma = s->sigmas[s->step_index];
    /* s_churn = 0: gamma = 0, but the noise is drawn regardless (it advances the generator) */
    st = sched_noise(a->noise, e->noise, a->shape, s->cls->name, err);
    if (st) return st;
    float sigma_hat = sigma * (0.0f + 1.0f);
    float *x = a->sample, *x0 = e->pred;
    sched_k_pred_x0(s->cfg.prediction_type, x0, x, a->model_output, sigma, sigma_hat, n);
    float dt = s->sigmas[s->step_index + 1] - sigma_hat;
    for (size_t i = 0; i < n; i++) {
        float d = (x[i] - x0[i]) / sigma_hat;
        x[i] = x[i] + d * dt;
    }
    s->step_index++;
    sched_report_pred(a, x0);
    return CDF_OK;
}

static cdf_status euler_a_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    euler_state *e = s->fam;
    cdf_status st = prepare(s, a, err);
    if (st) return st;
    size_t n = a->n;
    float sigma = s->sigmas[s->step_index];
    float *x = a->sample, *x0 = e->pred;
    sched_k_pred_x0(s->cfg.prediction_type, x0, x, a->model_output, sigma, sigma, n);
    float from = s->sigmas[s->step_index], to = s->sigmas[s->step_index + 1];
    float up = sqrtf(to * to * (from * from - to * to) / (from * from));
    float down = sqrtf(to * to - up * up);
    float dt = down - sigma;
    st = sched_noise(a->noise, e->noise, a->shape, s->cls->name, err);
    if (st) return st;
    for (size_t i = 0; i < n; i++) {
        float d = (x[i] - x0[i]) / sigma;
        float p = x[i] + d * dt;
        x[i] = p + e->noise[i] * up;
    }
    s->step_index++;
    sched_report_pred(a, x0);
    return CDF_OK;
}

static void euler_destroy(cdf_scheduler *s) {
    euler_state *e = s->fam;
    if (!e) return;
    free(e->pred);
    free(e->noise);
    free(e);
}

const sched_class cdf_sched_euler = {
    "EulerDiscreteScheduler", euler_params, 1, NK_SIGMA, euler_init, euler_set_timesteps, sched_k_scale, euler_step,
    euler_destroy,
};

const sched_class cdf_sched_euler_a = {
    "EulerAncestralDiscreteScheduler", euler_a_params, 1, NK_SIGMA, euler_init, euler_a_set_timesteps, sched_k_scale,
    euler_a_step, euler_destroy,
};
