/* KDPM2DiscreteScheduler and KDPM2AncestralDiscreteScheduler (diffusers
 * 0.26.3 scheduling_k_dpm_2_discrete.py, scheduling_k_dpm_2_ancestral_discrete.py):
 * DPM-Solver-2 with a midpoint in log-sigma, the midpoint timesteps
 * interleaved with the regular ones. */
#include "schedulers/sched_internal.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

static const char *const kdpm2_predictions[] = {"epsilon", "v_prediction", NULL};

static const sched_param kdpm2_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.00085", NULL},
    {"beta_end", P_NUM, "0.012", NULL},
    {"beta_schedule", P_STR, "\"linear\"", sched_beta_schedules},
    {"trained_betas", P_BETAS, "null", NULL},
    {"use_karras_sigmas", P_BOOL, "false", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", kdpm2_predictions},
    {"timestep_spacing", P_STR, "\"linspace\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct kdpm2_state {
    int ancestral;
    float *interp, *up, *down;   /* [n_sigmas], interleaved like sigmas */
    float *saved, *pred, *noise;
    size_t cap;
    int first_order;             /* self.sample is None */
} kdpm2_state;

static cdf_status kdpm2_init_common(cdf_scheduler *s, int ancestral, cdf_err *err) {
    cdf_status st = sched_make_alphas(s, err);
    if (st) return st;
    kdpm2_state *k = cdf_calloc(1, sizeof *k, err);
    if (!k) return CDF_ERR_OUT_OF_MEMORY;
    k->ancestral = ancestral;
    k->first_order = 1;
    s->fam = k;
    return CDF_OK;
}
static cdf_status kdpm2_init(cdf_scheduler *s, cdf_err *err) { return kdpm2_init_common(s, 0, err); }
static cdf_status kdpm2_a_init(cdf_scheduler *s, cdf_err *err) { return kdpm2_init_common(s, 1, err); }

/* torch: a.log().lerp(b.log(), 0.5).exp() */
static float log_midpoint(float a, float b) {
    float la = cdf_torch_logf(a), lb = cdf_torch_logf(b);
    return cdf_torch_expf(lb - (lb - la) * 0.5f);
}

/* cat([x[:1], x[1:].repeat_interleave(2), x[-1:]]) of m values into 2m. */
static void interleave(float *dst, const float *src, size_t m) {
    dst[0] = src[0];
    for (size_t i = 1; i < m; i++) dst[2 * i - 1] = dst[2 * i] = src[i];
    dst[2 * m - 1] = src[m - 1];
}

static cdf_status kdpm2_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    kdpm2_state *k = s->fam;
    sched_ksched ks;
    cdf_status st = sched_ksched_make(s, n, 0, &ks, err);
    if (st) return st;
    if (s->cfg.use_karras_sigmas) sched_ksched_karras(s, &ks, n, 1);
    size_t m = ks.len, m1 = m + 1;                 /* sigmas with the final 0 */
    float *buf = cdf_malloc(5 * m1, sizeof(float), err);
    double *ti = cdf_malloc(m1, sizeof(double), err);
    if (!buf || !ti) { free(buf); free(ti); sched_ksched_free(&ks); return CDF_ERR_OUT_OF_MEMORY; }
    float *sg = buf, *interp = buf + m1, *up = buf + 2 * m1, *down = buf + 3 * m1;
    for (size_t i = 0; i < m; i++) sg[i] = (float)ks.sig[i];
    sg[m] = 0.0f;
    if (!k->ancestral) {
        for (size_t i = 0; i < m1; i++) interp[i] = log_midpoint(sg[i], sg[(i + m1 - 1) % m1]); /* roll(1) */
    } else {
        for (size_t i = 0; i < m1; i++) {
            float nx = i + 1 < m1 ? sg[i + 1] : 0.0f;
            up[i] = sqrtf(nx * nx * (sg[i] * sg[i] - nx * nx) / (sg[i] * sg[i]));
            down[i] = sqrtf(nx * nx - up[i] * up[i]);
        }
        down[m] = 0.0f;
        for (size_t i = 0; i < m1; i++) interp[i] = log_midpoint(sg[i], down[i]);
        interp[m] = 0.0f;
        if (m >= 1) interp[m - 1] = 0.0f;
    }
    /* timesteps_interpol, cast to the timesteps' dtype */
    int f64 = ks.karras;
    for (size_t i = 0; i < m1; i++) {
        ti[i] = (double)sched_sigma_to_t_f32(interp[i], ks.logs, s->n_train);
    }
    st = sched_alloc_timesteps(s, 2 * m - 1, 2 * m1, err);
    if (!st) {
        free(k->interp);
        free(k->up);
        free(k->down);
        k->interp = cdf_malloc(2 * m1, sizeof(float), err);
        k->up = cdf_malloc(2 * m1, sizeof(float), err);
        k->down = cdf_malloc(2 * m1, sizeof(float), err);
        if (!k->interp || !k->up || !k->down) st = CDF_ERR_OUT_OF_MEMORY;
    }
    if (!st) {
        interleave(s->sigmas, sg, m1);
        interleave(k->interp, interp, m1);
        interleave(k->up, up, m1);
        interleave(k->down, down, m1);
        double *ts = s->timesteps;
        ts[0] = ks.ts[0];
        for (size_t i = 1; i < m; i++) {
            /* stack((timesteps_interpol[1:-1] | [:-2]), timesteps[1:]) */
            ts[2 * i - 1] = k->ancestral ? ti[i - 1] : ti[i];
            ts[2 * i] = ks.ts[i];
        }
        s->ts_dtype = f64 ? CDF_DTYPE_F64 : CDF_DTYPE_F32;
        s->num_inference_steps = n;
        sched_k_init_noise_sigma(s);
        k->first_order = 1;
    }
    free(buf);
    free(ti);
    sched_ksched_free(&ks);
    return st;
}

static cdf_status kdpm2_scale(cdf_scheduler *s, float *out, const float *in, size_t n, double t, cdf_err *err) {
    kdpm2_state *k = s->fam;
    cdf_status st = sched_ensure_step_index(s, t, 0, err);
    if (st) return st;
    float sigma;
    if (k->first_order) sigma = s->sigmas[s->step_index];
    else sigma = k->ancestral ? k->interp[s->step_index - 1] : k->interp[s->step_index];
    sched_k_scale_by(out, in, n, sigma);
    return CDF_OK;
}

static cdf_status kdpm2_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    kdpm2_state *k = s->fam;
    size_t n = a->n;
    cdf_status st = sched_k_step_begin(s, a->t, !k->first_order, err);
    if (st) return st;
    long si = s->step_index;
    if (k->cap != n) {
        free(k->saved);
        free(k->pred);
        free(k->noise);
        k->saved = cdf_malloc(n, sizeof(float), err);
        k->pred = cdf_malloc(n, sizeof(float), err);
        k->noise = cdf_malloc(n, sizeof(float), err);
        k->cap = (k->saved && k->pred && k->noise) ? n : 0;
        if (!k->cap) return CDF_ERR_OUT_OF_MEMORY;
    }
    int first = k->first_order;
    float sigma, sigma_interpol, sigma_next = 0, sigma_up = 0, sigma_down = 0;
    if (!k->ancestral) {
        sigma = first ? s->sigmas[si] : s->sigmas[si - 1];
        sigma_interpol = first ? k->interp[si + 1] : k->interp[si];
        sigma_next = first ? s->sigmas[si + 1] : s->sigmas[si];
    } else {
        long j = first ? si : si - 1;
        sigma = s->sigmas[j];
        sigma_interpol = k->interp[j];
        sigma_up = k->up[j];
        sigma_down = k->down[si >= 1 ? si - 1 : (long)s->n_sigmas - 1];
        st = sched_noise(a->noise, k->noise, a->shape, s->cls->name, err);
        if (st) return st;
    }
    float sigma_hat = sigma * 1.0f;
    float sigma_input = first ? sigma_hat : sigma_interpol;
    const float *mo = a->model_output;
    float *x = a->sample, *x0 = k->pred;
    sched_k_pred_x0(s->cfg.prediction_type, x0, x, mo, sigma_input, sigma_input, n);
    if (first) {
        float dt = sigma_interpol - sigma_hat;
        for (size_t i = 0; i < n; i++) {
            float d = (x[i] - x0[i]) / sigma_hat;
            k->saved[i] = x[i];
            x[i] = x[i] + d * dt;
        }
        k->first_order = 0;
    } else {
        float dt = (k->ancestral ? sigma_down : sigma_next) - sigma_hat;
        for (size_t i = 0; i < n; i++) {
            float d = (x[i] - x0[i]) / sigma_interpol;
            float p = k->saved[i] + d * dt;
            x[i] = k->ancestral ? p + k->noise[i] * sigma_up : p;
        }
        k->first_order = 1;
    }
    s->step_index++;
    sched_report_pred(a, NULL);
    return CDF_OK;
}

static void kdpm2_destroy(cdf_scheduler *s) {
    kdpm2_state *k = s->fam;
    if (!k) return;
    free(k->interp);
    free(k->up);
    free(k->down);
    free(k->saved);
    free(k->pred);
    free(k->noise);
    free(k);
}

const sched_class cdf_sched_kdpm2 = {
    "KDPM2DiscreteScheduler", kdpm2_params, 2, NK_SIGMA, kdpm2_init, kdpm2_set_timesteps, kdpm2_scale, kdpm2_step,
    kdpm2_destroy,
};

const sched_class cdf_sched_kdpm2_a = {
    "KDPM2AncestralDiscreteScheduler", kdpm2_params, 2, NK_SIGMA, kdpm2_a_init, kdpm2_set_timesteps, kdpm2_scale,
    kdpm2_step, kdpm2_destroy,
};
