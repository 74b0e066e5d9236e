/* DPMSolverMultistepScheduler (diffusers 0.26.3 scheduling_dpmsolver_multistep.py):
 * DPM-Solver / DPM-Solver++ (and their SDE variants), orders 1-3. */
#include "schedulers/dpm_common.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

static const char *const algorithms[] = {"dpmsolver++", "dpmsolver", "sde-dpmsolver++", "sde-dpmsolver", "deis",
                                         NULL};
static const char *const solver_types[] = {"midpoint", "heun", "logrho", "bh1", "bh2", NULL};
static const char *const final_types[] = {"zero", "sigma_min", NULL};
static const char *const variance_types[] = {"learned", "learned_range", NULL};

static const sched_param multi_params[] = {
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
    {"algorithm_type", P_STR, "\"dpmsolver++\"", algorithms},
    {"solver_type", P_STR, "\"midpoint\"", solver_types},
    {"lower_order_final", P_BOOL, "true", NULL},
    {"euler_at_final", P_BOOL, "false", NULL},
    {"use_karras_sigmas", P_BOOL, "false", NULL},
    {"use_lu_lambdas", P_BOOL, "false", NULL},
    {"final_sigmas_type", P_OPT_STR, "\"zero\"", final_types},
    {"lambda_min_clipped", P_NUM, "-1e999", NULL},
    {"variance_type", P_OPT_STR, "null", variance_types},
    {"timestep_spacing", P_STR, "\"linspace\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct multi_state {
    float *outs[3];     /* model_outputs, oldest first ([order - 1] is the newest) */
    float *noise;
    size_t cap;
    int lower_order_nums;
    int plus, sde;      /* algorithm: ++ (data prediction), SDE */
    int heun;           /* solver_type */
} multi_state;

static cdf_status multi_init(cdf_scheduler *s, cdf_err *err) {
    const char *cls = s->cls->name;
    cdf_status st = dpm_check_order(s, err);
    if (st) return st;
    if (s->cfg.variance_type)
        return cdf_errf(err, CDF_ERR_UNSUPPORTED,
                        "%s config: variance_type '%s' needs a model that predicts its variance; use null", cls,
                        s->cfg.variance_type);
    /* diffusers checks final_sigmas_type against the algorithm as given */
    const char *algo_given = s->cfg.algorithm_type;
    int plus_given = sched_streq(algo_given, "dpmsolver++") || sched_streq(algo_given, "sde-dpmsolver++");
    if (!plus_given && sched_streq(s->cfg.final_sigmas_type, "zero"))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                        "%s config: final_sigmas_type 'zero' is not supported for algorithm_type '%s'; "
                        "use final_sigmas_type 'sigma_min' or algorithm_type 'dpmsolver++'/'sde-dpmsolver++'",
                        cls, algo_given);
    if (!s->cfg.final_sigmas_type)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                        "%s config: final_sigmas_type must be 'zero' or 'sigma_min'", cls);
    if (sched_streq(algo_given, "deis") && (st = sched_set_config_str(s, "algorithm_type", "dpmsolver++", err)))
        return st;
    const char *sv = s->cfg.solver_type;
    if ((sched_streq(sv, "logrho") || sched_streq(sv, "bh1") || sched_streq(sv, "bh2")) &&
        (st = sched_set_config_str(s, "solver_type", "midpoint", err)))
        return st;
    const char *algo = s->cfg.algorithm_type;
    int sde = sched_streq(algo, "sde-dpmsolver++") || sched_streq(algo, "sde-dpmsolver");
    if (sde && s->cfg.solver_order == 3)
        return cdf_errf(err, CDF_ERR_UNSUPPORTED,
                        "%s config: solver_order 3 is not implemented for algorithm_type '%s' (diffusers 0.26.3 "
                        "has no third-order SDE update); use solver_order 1 or 2", cls, algo);
    if ((st = sched_make_alphas(s, err))) return st;
    multi_state *m = cdf_calloc(1, sizeof *m, err);
    if (!m) return CDF_ERR_OUT_OF_MEMORY;
    m->plus = sched_streq(algo, "dpmsolver++") || sched_streq(algo, "sde-dpmsolver++");
    m->sde = sde;
    m->heun = sched_streq(s->cfg.solver_type, "heun");
    s->fam = m;
    s->init_noise_sigma = 1.0f;
    return CDF_OK;
}

static cdf_status multi_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    multi_state *m = s->fam;
    const dpm_sched_opts o = {1, 1, 1, DPM_FINAL_CONFIG};
    cdf_status st = dpm_set_timesteps(s, n, &o, err);
    m->lower_order_nums = 0;
    return st;
}

/* convert_model_output into out (x0 for ++, epsilon otherwise). */
static cdf_status convert(cdf_scheduler *s, const multi_state *m, float *out, const float *mo, const float *x,
                          size_t n, const int64_t *shape, cdf_err *err) {
    cdf_status r = dpm_convert(s, m->plus, out, mo, x, n, shape, err);
    if (r || m->plus || !s->cfg.thresholding) return r;
    /* "dpmsolver" thresholds the x0 of its epsilon, then converts back */
    float at, st_;
    dpm_alpha_sigma(s->sigmas[s->step_index], &at, &st_);
    for (size_t i = 0; i < n; i++) out[i] = (x[i] - st_ * out[i]) / at;
    if ((r = sched_threshold(s, out, n, shape, err))) return r;
    dpm_x0_to_eps(s, out, x, n);
    return CDF_OK;
}

static void first_order(const cdf_scheduler *s, const multi_state *m, float *x, const float *mo, const float *noise,
                        size_t n) {
    long si = s->step_index;
    float at, st_, as, ss;
    dpm_alpha_sigma(s->sigmas[si + 1], &at, &st_);
    dpm_alpha_sigma(s->sigmas[si], &as, &ss);
    float h = dpm_lambda(at, st_) - dpm_lambda(as, ss);
    if (m->plus && !m->sde) {
        float a = st_ / ss, b = at * (cdf_torch_expf(-h) - 1.0f);
        for (size_t i = 0; i < n; i++) x[i] = a * x[i] - b * mo[i];
    } else if (!m->plus && !m->sde) {
        float a = at / as, b = st_ * (cdf_torch_expf(h) - 1.0f);
        for (size_t i = 0; i < n; i++) x[i] = a * x[i] - b * mo[i];
    } else if (m->plus) {
        float e = cdf_torch_expf(-h);
        float a = st_ / ss * e, b = at * (1.0f - cdf_torch_expf(-2.0f * h));
        float c = st_ * sqrtf(1.0f - cdf_torch_expf(-2.0f * h));
        for (size_t i = 0; i < n; i++) x[i] = a * x[i] + b * mo[i] + c * noise[i];
    } else {
        float a = at / as, b = 2.0f * (st_ * (cdf_torch_expf(h) - 1.0f));
        float c = st_ * sqrtf(cdf_torch_expf(2.0f * h) - 1.0f);
        for (size_t i = 0; i < n; i++) x[i] = a * x[i] - b * mo[i] + c * noise[i];
    }
}

static void second_order(const cdf_scheduler *s, const multi_state *m, float *x, const float *noise, size_t n,
                         int order) {
    long si = s->step_index;
    float at, st_, a0, s0, a1, s1;
    dpm_alpha_sigma(s->sigmas[si + 1], &at, &st_);
    dpm_alpha_sigma(s->sigmas[si], &a0, &s0);
    dpm_alpha_sigma(s->sigmas[si - 1], &a1, &s1);
    float lt = dpm_lambda(at, st_), l0 = dpm_lambda(a0, s0), l1 = dpm_lambda(a1, s1);
    const float *m0 = m->outs[order - 1], *m1 = m->outs[order - 2];
    float h = lt - l0, h0 = l0 - l1;
    float r0 = h0 / h, inv_r0 = dpm_rdiv(1.0f, r0);
    float ca, cd0, cd1, cn = 0; /* x = ca*x (+/-) cd0*D0 (+/-) cd1*D1 (+ cn*noise) */
    int sub0 = 1, sub1 = 1;
    if (m->plus && !m->sde) {
        ca = st_ / s0;
        float e = cdf_torch_expf(-h) - 1.0f;
        cd0 = at * e;
        if (!m->heun) cd1 = 0.5f * (at * e);
        else { cd1 = at * (e / h + 1.0f); sub1 = 0; }
    } else if (!m->plus && !m->sde) {
        ca = at / a0;
        float e = cdf_torch_expf(h) - 1.0f;
        cd0 = st_ * e;
        cd1 = m->heun ? st_ * (e / h - 1.0f) : 0.5f * (st_ * e);
    } else if (m->plus) {
        ca = st_ / s0 * cdf_torch_expf(-h);
        float e = 1.0f - cdf_torch_expf(-2.0f * h);
        cd0 = at * e;
        sub0 = sub1 = 0;
        cd1 = m->heun ? at * (e / (-2.0f * h) + 1.0f) : 0.5f * (at * e);
        cn = st_ * sqrtf(1.0f - cdf_torch_expf(-2.0f * h));
    } else {
        ca = at / a0;
        float e = cdf_torch_expf(h) - 1.0f;
        cd0 = 2.0f * (st_ * e);
        cd1 = m->heun ? 2.0f * (st_ * (e / h - 1.0f)) : st_ * e;
        cn = st_ * sqrtf(cdf_torch_expf(2.0f * h) - 1.0f);
    }
    for (size_t i = 0; i < n; i++) {
        float d1 = inv_r0 * (m0[i] - m1[i]);
        float v = ca * x[i];
        v = sub0 ? v - cd0 * m0[i] : v + cd0 * m0[i];
        v = sub1 ? v - cd1 * d1 : v + cd1 * d1;
        if (m->sde) v = v + cn * noise[i];
        x[i] = v;
    }
}

static void third_order(const cdf_scheduler *s, const multi_state *m, float *x, size_t n) {
    long si = s->step_index;
    float at, st_, a0, s0, a1, s1, a2, s2;
    dpm_alpha_sigma(s->sigmas[si + 1], &at, &st_);
    dpm_alpha_sigma(s->sigmas[si], &a0, &s0);
    dpm_alpha_sigma(s->sigmas[si - 1], &a1, &s1);
    dpm_alpha_sigma(s->sigmas[si - 2], &a2, &s2);
    float lt = dpm_lambda(at, st_), l0 = dpm_lambda(a0, s0), l1 = dpm_lambda(a1, s1), l2 = dpm_lambda(a2, s2);
    const float *m0 = m->outs[2], *m1 = m->outs[1], *m2 = m->outs[0];
    float h = lt - l0, h0 = l0 - l1, h1 = l1 - l2;
    float r0 = h0 / h, r1 = h1 / h;
    float ir0 = dpm_rdiv(1.0f, r0), ir1 = dpm_rdiv(1.0f, r1);
    float w1 = r0 / (r0 + r1), w2 = dpm_rdiv(1.0f, r0 + r1);
    float ca, c0, c1, c2;
    if (m->plus) {
        float e = cdf_torch_expf(-h);
        ca = st_ / s0;
        c0 = at * (e - 1.0f);
        c1 = at * ((e - 1.0f) / h + 1.0f);
        c2 = at * ((e - 1.0f + h) / (h * h) - 0.5f);
        for (size_t i = 0; i < n; i++) {
            float d10 = ir0 * (m0[i] - m1[i]), d11 = ir1 * (m1[i] - m2[i]);
            float d1 = d10 + w1 * (d10 - d11), d2 = w2 * (d10 - d11);
            x[i] = ca * x[i] - c0 * m0[i] + c1 * d1 - c2 * d2;
        }
    } else {
        float e = cdf_torch_expf(h);
        ca = at / a0;
        c0 = st_ * (e - 1.0f);
        c1 = st_ * ((e - 1.0f) / h - 1.0f);
        c2 = st_ * ((e - 1.0f - h) / (h * h) - 0.5f);
        for (size_t i = 0; i < n; i++) {
            float d10 = ir0 * (m0[i] - m1[i]), d11 = ir1 * (m1[i] - m2[i]);
            float d1 = d10 + w1 * (d10 - d11), d2 = w2 * (d10 - d11);
            x[i] = ca * x[i] - c0 * m0[i] - c1 * d1 - c2 * d2;
        }
    }
}

static cdf_status multi_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    multi_state *m = s->fam;
    const sched_cfg *c = &s->cfg;
    size_t n = a->n;
    int order = (int)c->solver_order;
    cdf_status st = dpm_step_begin(s, a->t, err);
    if (st) return st;
    if (m->cap != n) {
        free(m->noise);
        m->noise = NULL;
        m->cap = 0;
        if ((st = dpm_alloc_outs(m->outs, order, n, err))) return st;
        if (!(m->noise = cdf_malloc(n, sizeof(float), err))) return CDF_ERR_OUT_OF_MEMORY;
        m->cap = n;
    }
    long si = s->step_index, len = (long)s->n_ts;
    int low_final = si == len - 1 && (c->euler_at_final || (c->lower_order_final && len < 15) ||
                                      sched_streq(c->final_sigmas_type, "zero"));
    int low_second = si == len - 2 && c->lower_order_final && len < 15;
    float *oldest = dpm_push_output(m->outs, order);
    st = convert(s, m, oldest, a->model_output, a->sample, n, a->shape, err);
    if (st) return st;
    if (m->sde && (st = sched_noise(a->noise, m->noise, a->shape, s->cls->name, err))) return st;
    if (order == 1 || m->lower_order_nums < 1 || low_final) first_order(s, m, a->sample, oldest, m->noise, n);
    else if (order == 2 || m->lower_order_nums < 2 || low_second) second_order(s, m, a->sample, m->noise, n, order);
    else third_order(s, m, a->sample, n);
    if (m->lower_order_nums < order) m->lower_order_nums++;
    s->step_index++;
    sched_report_pred(a, NULL);
    return CDF_OK;
}

static void multi_destroy(cdf_scheduler *s) {
    multi_state *m = s->fam;
    if (!m) return;
    for (int i = 0; i < 3; i++) free(m->outs[i]);
    free(m->noise);
    free(m);
}

const sched_class cdf_sched_dpm_multi = {
    "DPMSolverMultistepScheduler", multi_params, 1, NK_ALPHA_SIGMA, multi_init, multi_set_timesteps, NULL,
    multi_step, multi_destroy,
};
