/* DPMSolverSinglestepScheduler (diffusers 0.26.3 scheduling_dpmsolver_singlestep.py):
 * DPM-Solver(++) taking orders 1, 2, 3 in turn from one saved sample. */
#include "schedulers/dpm_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char *const algorithms[] = {"dpmsolver++", "dpmsolver", "deis", NULL};
static const char *const solver_types[] = {"midpoint", "heun", "logrho", "bh1", "bh2", NULL};
static const char *const final_types[] = {"zero", "sigma_min", NULL};
static const char *const variance_types[] = {"learned_range", NULL};

static const sched_param single_params[] = {
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
    {"lower_order_final", P_BOOL, "false", NULL},
    {"use_karras_sigmas", P_BOOL, "false", NULL},
    {"final_sigmas_type", P_OPT_STR, "\"zero\"", final_types},
    {"lambda_min_clipped", P_NUM, "-1e999", NULL},
    {"variance_type", P_OPT_STR, "null", variance_types},
    {NULL, 0, NULL, NULL},
};

typedef struct single_state {
    float *outs[3];      /* model_outputs, oldest first */
    int valid[3];        /* not None */
    float *saved;        /* self.sample */
    int has_saved;
    size_t cap;
    int *order_list;
    size_t n_orders;
    int plus, heun;
} single_state;

static cdf_status single_init(cdf_scheduler *s, cdf_err *err) {
    const char *cls = s->cls->name;
    cdf_status st = dpm_check_order(s, err);
    if (st) return st;
    if (s->cfg.variance_type)
        return cdf_errf(err, CDF_ERR_UNSUPPORTED,
                        "%s config: variance_type '%s' needs a model that predicts its variance; use null", cls,
                        s->cfg.variance_type);
    const char *algo_given = s->cfg.algorithm_type;
    if (!sched_streq(algo_given, "dpmsolver++") && sched_streq(s->cfg.final_sigmas_type, "zero"))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                        "%s config: final_sigmas_type 'zero' is not supported for algorithm_type '%s'; "
                        "use final_sigmas_type 'sigma_min' or algorithm_type 'dpmsolver++'", cls, algo_given);
    if (!s->cfg.final_sigmas_type)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: final_sigmas_type must be 'zero' or 'sigma_min'",
                        cls);
    if (sched_streq(algo_given, "deis") && (st = sched_set_config_str(s, "algorithm_type", "dpmsolver++", err)))
        return st;
    const char *sv = s->cfg.solver_type;
    if ((sched_streq(sv, "logrho") || sched_streq(sv, "bh1") || sched_streq(sv, "bh2")) &&
        (st = sched_set_config_str(s, "solver_type", "midpoint", err)))
        return st;
    if ((st = sched_make_alphas(s, err))) return st;
    single_state *m = cdf_calloc(1, sizeof *m, err);
    if (!m) return CDF_ERR_OUT_OF_MEMORY;
    m->plus = sched_streq(s->cfg.algorithm_type, "dpmsolver++");
    m->heun = sched_streq(s->cfg.solver_type, "heun");
    s->fam = m;
    s->init_noise_sigma = 1.0f;
    return CDF_OK;
}

/* get_order_list */
static size_t order_list(int *out, int steps, int order, int lower_final) {
    size_t k = 0;
    if (lower_final) {
        if (order == 3) {
            int reps = steps % 3 == 0 ? steps / 3 - 1 : steps / 3;
            for (int r = 0; r < reps; r++) { out[k++] = 1; out[k++] = 2; out[k++] = 3; }
            if (steps % 3 == 0) { out[k++] = 1; out[k++] = 2; out[k++] = 1; }
            else if (steps % 3 == 1) out[k++] = 1;
            else { out[k++] = 1; out[k++] = 2; }
        } else if (order == 2) {
            int reps = steps % 2 == 0 ? steps / 2 - 1 : steps / 2;
            for (int r = 0; r < reps; r++) { out[k++] = 1; out[k++] = 2; }
            if (steps % 2 == 0) { out[k++] = 1; out[k++] = 1; }
            else out[k++] = 1;
        } else {
            for (int i = 0; i < steps; i++) out[k++] = 1;
        }
    } else {
        for (int r = 0; r < steps / order; r++)
            for (int j = 1; j <= order; j++) out[k++] = j;
    }
    return k;
}

static cdf_status single_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    single_state *m = s->fam;
    const dpm_sched_opts o = {0, 1, 0, DPM_FINAL_CONFIG};
    cdf_status st = dpm_set_timesteps(s, n, &o, err);
    if (st) return st;
    s->num_inference_steps = n;
    /* diffusers switches lower_order_final on for uneven step counts and
     * for final_sigmas_type "zero" (register_to_config, so it sticks) */
    if (!s->cfg.lower_order_final &&
        (n % s->cfg.solver_order != 0 || sched_streq(s->cfg.final_sigmas_type, "zero"))) {
        if ((st = sched_set_config_bool(s, "lower_order_final", 1, err))) return st;
    }
    free(m->order_list);
    m->order_list = cdf_malloc((size_t)n + 3, sizeof(int), err);
    if (!m->order_list) return CDF_ERR_OUT_OF_MEMORY;
    m->n_orders = order_list(m->order_list, n, (int)s->cfg.solver_order, s->cfg.lower_order_final);
    for (int i = 0; i < 3; i++) m->valid[i] = 0;
    m->has_saved = 0;
    return CDF_OK;
}

/* The update from sample x0s (saved at the start of the group) into out. */
static void update(const cdf_scheduler *s, const single_state *m, float *out, const float *x, size_t n, int order) {
    const int so = (int)s->cfg.solver_order;
    long si = s->step_index;
    float at, st_;
    dpm_alpha_sigma(s->sigmas[si + 1], &at, &st_);
    if (order == 1) {
        float as, ss;
        dpm_alpha_sigma(s->sigmas[si], &as, &ss);
        float h = dpm_lambda(at, st_) - dpm_lambda(as, ss);
        const float *mo = m->outs[so - 1];
        float a = m->plus ? st_ / ss : at / as;
        float b = m->plus ? at * (cdf_torch_expf(-h) - 1.0f) : st_ * (cdf_torch_expf(h) - 1.0f);
        for (size_t i = 0; i < n; i++) out[i] = a * x[i] - b * mo[i];
        return;
    }
    if (order == 2) {
        float a0, s0, a1, s1;
        dpm_alpha_sigma(s->sigmas[si], &a0, &s0);
        dpm_alpha_sigma(s->sigmas[si - 1], &a1, &s1);
        float lt = dpm_lambda(at, st_), l0 = dpm_lambda(a0, s0), l1 = dpm_lambda(a1, s1);
        const float *m0 = m->outs[so - 1], *m1 = m->outs[so - 2];
        float h = lt - l1, h0 = l0 - l1;
        float r0 = h0 / h, ir0 = dpm_rdiv(1.0f, r0);
        float ca, cd0, cd1;
        int add1 = 0;
        if (m->plus) {
            float e = cdf_torch_expf(-h) - 1.0f;
            ca = st_ / s1;
            cd0 = at * e;
            if (m->heun) { cd1 = at * (e / h + 1.0f); add1 = 1; }
            else cd1 = 0.5f * (at * e);
        } else {
            float e = cdf_torch_expf(h) - 1.0f;
            ca = at / a1;
            cd0 = st_ * e;
            cd1 = m->heun ? st_ * (e / h - 1.0f) : 0.5f * (st_ * e);
        }
        for (size_t i = 0; i < n; i++) {
            float d1 = ir0 * (m0[i] - m1[i]);
            float v = ca * x[i] - cd0 * m1[i];
            out[i] = add1 ? v + cd1 * d1 : v - cd1 * d1;
        }
        return;
    }
    float a0, s0, a1, s1, a2, s2;
    dpm_alpha_sigma(s->sigmas[si], &a0, &s0);
    dpm_alpha_sigma(s->sigmas[si - 1], &a1, &s1);
    dpm_alpha_sigma(s->sigmas[si - 2], &a2, &s2);
    float lt = dpm_lambda(at, st_), l0 = dpm_lambda(a0, s0), l1 = dpm_lambda(a1, s1), l2 = dpm_lambda(a2, s2);
    const float *m0 = m->outs[2], *m1 = m->outs[1], *m2 = m->outs[0];
    float h = lt - l2, h0 = l0 - l2, h1 = l1 - l2;
    float r0 = h0 / h, r1 = h1 / h;
    float ir0 = dpm_rdiv(1.0f, r0), ir1 = dpm_rdiv(1.0f, r1), dr = r0 - r1;
    float ca, c0, c1, c2 = 0;
    if (m->plus) {
        float e = cdf_torch_expf(-h);
        ca = st_ / s2;
        c0 = at * (e - 1.0f);
        c1 = at * ((e - 1.0f) / h + 1.0f);
        if (m->heun) c2 = at * ((e - 1.0f + h) / (h * h) - 0.5f);
    } else {
        float e = cdf_torch_expf(h);
        ca = at / a2;
        c0 = st_ * (e - 1.0f);
        c1 = st_ * ((e - 1.0f) / h - 1.0f);
        if (m->heun) c2 = st_ * ((e - 1.0f - h) / (h * h) - 0.5f);
    }
    for (size_t i = 0; i < n; i++) {
        float d10 = ir1 * (m1[i] - m2[i]), d11 = ir0 * (m0[i] - m2[i]);
        float v = ca * x[i] - c0 * m2[i];
        if (!m->heun) {
            /* midpoint: D1_1 alone */
            out[i] = m->plus ? v + c1 * d11 : v - c1 * d11;
        } else {
            float d1 = (r0 * d10 - r1 * d11) / dr;
            float d2 = 2.0f * (d11 - d10) / dr;
            out[i] = m->plus ? v + c1 * d1 - c2 * d2 : v - c1 * d1 - c2 * d2;
        }
    }
}

static cdf_status single_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    single_state *m = s->fam;
    size_t n = a->n;
    int so = (int)s->cfg.solver_order;
    cdf_status st = dpm_step_begin(s, a->t, err);
    if (st) return st;
    if ((size_t)s->step_index >= m->n_orders)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: step called after the last timestep", s->cls->name);
    if (m->cap != n) {
        for (int i = 0; i < 3; i++) m->valid[i] = 0;
        free(m->saved);
        m->saved = NULL;
        m->cap = 0;
        if ((st = dpm_alloc_outs(m->outs, so, n, err))) return st;
        if (!(m->saved = cdf_malloc(n, sizeof(float), err))) return CDF_ERR_OUT_OF_MEMORY;
        m->cap = n;
        m->has_saved = 0;
    }
    float *oldest = dpm_push_output(m->outs, so);
    for (int i = 0; i < so - 1; i++) m->valid[i] = m->valid[i + 1];
    m->valid[so - 1] = 1;
    st = dpm_convert(s, m->plus, oldest, a->model_output, a->sample, n, a->shape, err);
    if (st) return st;
    int order = m->order_list[s->step_index];
    while (order > 1 && !m->valid[so - order]) order--;
    if (order == 1) {
        memcpy(m->saved, a->sample, n * sizeof(float));
        m->has_saved = 1;
    }
    if (!m->has_saved)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: step order is broken (no saved sample)", s->cls->name);
    update(s, m, a->sample, m->saved, n, order);
    s->step_index++;
    sched_report_pred(a, NULL);
    return CDF_OK;
}

static void single_destroy(cdf_scheduler *s) {
    single_state *m = s->fam;
    if (!m) return;
    for (int i = 0; i < 3; i++) free(m->outs[i]);
    free(m->saved);
    free(m->order_list);
    free(m);
}

const sched_class cdf_sched_dpm_single = {
    "DPMSolverSinglestepScheduler", single_params, 1, NK_ALPHA_SIGMA, single_init, single_set_timesteps, NULL,
    single_step, single_destroy,
};
