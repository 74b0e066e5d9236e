/* UniPCMultistepScheduler (diffusers 0.26.3 scheduling_unipc_multistep.py):
 * UniP predictor + UniC corrector, B(h) variants bh1/bh2, orders 1-3. */
#include "schedulers/dpm_common.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char *const solver_types[] = {"bh2", "bh1", "midpoint", "heun", "logrho", NULL};

static const sched_param unipc_params[] = {
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
    {"predict_x0", P_BOOL, "true", NULL},
    {"solver_type", P_STR, "\"bh2\"", solver_types},
    {"lower_order_final", P_BOOL, "true", NULL},
    {"disable_corrector", P_INT_LIST, "[]", NULL},
    {"solver_p", P_NULL, "null", NULL},
    {"use_karras_sigmas", P_BOOL, "false", NULL},
    {"timestep_spacing", P_STR, "\"linspace\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct unipc_state {
    float *outs[3];       /* converted model outputs, oldest first ([2] is model_outputs[-1]) */
    float *conv;          /* this step's converted output, before the shift */
    float *last;          /* self.last_sample */
    int has_last;
    size_t cap;
    int lower_order_nums, this_order;
    int bh1;
} unipc_state;

static cdf_status unipc_init(cdf_scheduler *s, cdf_err *err) {
    cdf_status st = dpm_check_order(s, err);
    if (st) return st;
    const char *sv = s->cfg.solver_type;
    if (!sched_streq(sv, "bh1") && !sched_streq(sv, "bh2") &&
        (st = sched_set_config_str(s, "solver_type", "bh2", err)))
        return st;
    if ((st = sched_make_alphas(s, err))) return st;
    unipc_state *u = cdf_calloc(1, sizeof *u, err);
    if (!u) return CDF_ERR_OUT_OF_MEMORY;
    u->bh1 = sched_streq(s->cfg.solver_type, "bh1");
    s->fam = u;
    s->init_noise_sigma = 1.0f;
    return CDF_OK;
}

static cdf_status unipc_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    unipc_state *u = s->fam;
    const dpm_sched_opts o = {1, 0, 0, DPM_FINAL_SIGMA_MIN};
    u->lower_order_nums = 0;
    u->has_last = 0;
    return dpm_set_timesteps(s, n, &o, err);
}

/* LAPACK getrf (partial pivoting, the first largest pivot, rows scaled by
 * the pivot's reciprocal) in place on M[n][n]. */
static void lu(int n, float M[3][3], int piv[3]) {
    for (int k = 0; k < n; k++) {
        int p = k;
        for (int i = k + 1; i < n; i++)
            if (fabsf(M[i][k]) > fabsf(M[p][k])) p = i;
        piv[k] = p;
        if (p != k)
            for (int j = 0; j < n; j++) { float t = M[k][j]; M[k][j] = M[p][j]; M[p][j] = t; }
        if (M[k][k] != 0.0f) {
            if (fabsf(M[k][k]) >= FLT_MIN) {
                float r = 1.0f / M[k][k];
                for (int i = k + 1; i < n; i++) M[i][k] = M[i][k] * r;
            } else {
                for (int i = k + 1; i < n; i++) M[i][k] = M[i][k] / M[k][k];
            }
        }
        for (int i = k + 1; i < n; i++)
            for (int j = k + 1; j < n; j++) M[i][j] = M[i][j] - M[i][k] * M[k][j];
    }
}

/* torch.linalg.solve(A, b), n <= 3, as torch 1.13 hands it to LAPACK. A
 * contiguous (row-major) A is passed as its transpose and solved with
 * getrs(TRANS='T'); a non-contiguous view (UniP's R[:-1, :-1]) is copied to
 * column-major and solved with getrs(TRANS='N'). */
static void solve(int n, const float A[3][3], const float *b, float *x, int contiguous) {
    float M[3][3];
    int piv[3];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) M[i][j] = contiguous ? A[j][i] : A[i][j];
    lu(n, M, piv);
    for (int i = 0; i < n; i++) x[i] = b[i];
    if (contiguous) {
        /* U^T y = b, then L^T z = y, then undo the interchanges in reverse */
        for (int i = 0; i < n; i++) {
            float t = x[i];
            for (int k = 0; k < i; k++) t = t - M[k][i] * x[k];
            x[i] = t / M[i][i];
        }
        for (int i = n - 1; i >= 0; i--) {
            float t = x[i];
            for (int k = i + 1; k < n; k++) t = t - M[k][i] * x[k];
            x[i] = t;
        }
        for (int k = n - 1; k >= 0; k--)
            if (piv[k] != k) { float t = x[k]; x[k] = x[piv[k]]; x[piv[k]] = t; }
    } else {
        /* P b, then L y = P b, then U x = y (column sweeps, as strsm) */
        for (int k = 0; k < n; k++)
            if (piv[k] != k) { float t = x[k]; x[k] = x[piv[k]]; x[piv[k]] = t; }
        for (int i = 0; i < n; i++)
            for (int k = 0; k < i; k++) x[i] = x[i] - M[i][k] * x[k];
        for (int k = n - 1; k >= 0; k--) {
            x[k] = x[k] / M[k][k];
            for (int i = 0; i < k; i++) x[i] = x[i] - x[k] * M[i][k];
        }
    }
}

/* The shared part of UniP/UniC: rks, h_phi_1, B_h, R and b. */
typedef struct uni_coefs {
    float rks[3], h_phi_1, B_h, R[3][3], b[3];
} uni_coefs;

static void coefs(const cdf_scheduler *s, const unipc_state *u, uni_coefs *c, float h, float lambda_s0, long base,
                  int order) {
    for (int i = 1; i < order; i++) {
        float a, sg;
        dpm_alpha_sigma(s->sigmas[base - i], &a, &sg);
        c->rks[i - 1] = (dpm_lambda(a, sg) - lambda_s0) / h;
    }
    c->rks[order - 1] = 1.0f;
    int x0 = s->cfg.predict_x0;
    float hh = x0 ? -h : h;
    c->h_phi_1 = cdf_torch_expm1f(hh);
    float h_phi_k = c->h_phi_1 / hh - 1.0f;
    int64_t fact = 1;
    c->B_h = u->bh1 ? hh : cdf_torch_expm1f(hh);
    for (int i = 1; i <= order; i++) {
        for (int j = 0; j < order; j++) {
            float r = c->rks[j];
            c->R[i - 1][j] = i == 1 ? 1.0f : (i == 2 ? r : r * r);
        }
        c->b[i - 1] = h_phi_k * (float)fact / c->B_h;
        fact *= i + 1;
        h_phi_k = h_phi_k / hh - (float)(1.0 / (double)fact);
    }
}

/* multistep_uni_p_bh_update into x (in place) */
static void uni_p(const cdf_scheduler *s, const unipc_state *u, float *x, size_t n, int order) {
    long si = s->step_index;
    float at, st_, a0, s0;
    dpm_alpha_sigma(s->sigmas[si + 1], &at, &st_);
    dpm_alpha_sigma(s->sigmas[si], &a0, &s0);
    float l0 = dpm_lambda(a0, s0), h = dpm_lambda(at, st_) - l0;
    uni_coefs c;
    coefs(s, u, &c, h, l0, si, order);
    float rhos[3] = {0.5f, 0, 0};
    if (order == 3) solve(2, (const float(*)[3])c.R, c.b, rhos, 0);
    const float *m0 = u->outs[2];
    int x0 = s->cfg.predict_x0;
    float k0 = x0 ? st_ / s0 : at / a0;
    float k1 = x0 ? at * c.h_phi_1 : st_ * c.h_phi_1;
    float k2 = x0 ? at * c.B_h : st_ * c.B_h;
    for (size_t i = 0; i < n; i++) {
        float xt = k0 * x[i] - k1 * m0[i];
        if (order >= 2) {
            /* einsum over D1s = (m_i - m0) / rk */
            float res = rhos[0] * ((u->outs[1][i] - m0[i]) / c.rks[0]);
            if (order == 3) res = res + rhos[1] * ((u->outs[0][i] - m0[i]) / c.rks[1]);
            xt = xt - k2 * res;
        } else {
            xt = xt - k2 * 0.0f;
        }
        x[i] = xt;
    }
}

/* multistep_uni_c_bh_update: corrects this_sample (x, in place) with the
 * converted output model_t, before the model outputs shift. */
static void uni_c(const cdf_scheduler *s, const unipc_state *u, float *x, const float *model_t, size_t n, int order) {
    long si = s->step_index;
    float at, st_, a0, s0;
    dpm_alpha_sigma(s->sigmas[si], &at, &st_);
    dpm_alpha_sigma(s->sigmas[si - 1], &a0, &s0);
    float l0 = dpm_lambda(a0, s0), h = dpm_lambda(at, st_) - l0;
    uni_coefs c;
    coefs(s, u, &c, h, l0, si - 1, order);
    float rhos[3] = {0.5f, 0, 0};
    if (order > 1) solve(order, (const float(*)[3])c.R, c.b, rhos, 1);
    const float *m0 = u->outs[2], *last = u->last;
    int x0 = s->cfg.predict_x0;
    float k0 = x0 ? st_ / s0 : at / a0;
    float k1 = x0 ? at * c.h_phi_1 : st_ * c.h_phi_1;
    float k2 = x0 ? at * c.B_h : st_ * c.B_h;
    float rho_last = rhos[order - 1];
    for (size_t i = 0; i < n; i++) {
        float xt = k0 * last[i] - k1 * m0[i];
        float corr = 0.0f;
        int any = 0;
        for (int k = 0; k < order - 1; k++) {
            float d = (u->outs[1 - k][i] - m0[i]) / c.rks[k];
            corr = any ? corr + rhos[k] * d : rhos[k] * d;
            any = 1;
        }
        float d1t = model_t[i] - m0[i];
        float tot = any ? corr + rho_last * d1t : rho_last * d1t + 0.0f;
        x[i] = xt - k2 * tot;
    }
}

static int corrector_disabled(const cdf_scheduler *s, long idx) {
    const cJSON *it;
    if (!s->cfg.disable_corrector) return 0;
    cJSON_ArrayForEach(it, s->cfg.disable_corrector) if ((long)it->valuedouble == idx) return 1;
    return 0;
}

static cdf_status unipc_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    unipc_state *u = s->fam;
    const sched_cfg *c = &s->cfg;
    size_t n = a->n;
    int order = (int)c->solver_order;
    cdf_status st = dpm_step_begin(s, a->t, err);
    if (st) return st;
    if (u->cap != n) {
        free(u->conv);
        free(u->last);
        u->conv = u->last = NULL;
        u->cap = 0;
        if ((st = dpm_alloc_outs(u->outs, 3, n, err))) return st;
        if (!(u->conv = cdf_malloc(n, sizeof(float), err))) return CDF_ERR_OUT_OF_MEMORY;
        if (!(u->last = cdf_malloc(n, sizeof(float), err))) return CDF_ERR_OUT_OF_MEMORY;
        u->cap = n;
        u->has_last = 0;
    }
    long si = s->step_index;
    /* convert_model_output */
    float *cur = u->conv, *x = a->sample;
    st = dpm_convert(s, c->predict_x0, cur, a->model_output, x, n, a->shape, err);
    if (st) return st;
    if (si > 0 && !corrector_disabled(s, si - 1) && u->has_last) uni_c(s, u, x, cur, n, u->this_order);
    /* shift: the oldest buffer becomes the next scratch */
    u->conv = u->outs[0];
    u->outs[0] = u->outs[1];
    u->outs[1] = u->outs[2];
    u->outs[2] = cur;
    int this_order = c->lower_order_final ? (int)((long)s->n_ts - si < order ? (long)s->n_ts - si : order) : order;
    u->this_order = this_order < u->lower_order_nums + 1 ? this_order : u->lower_order_nums + 1;
    memcpy(u->last, x, n * sizeof(float));
    u->has_last = 1;
    uni_p(s, u, x, n, u->this_order);
    if (u->lower_order_nums < order) u->lower_order_nums++;
    s->step_index++;
    sched_report_pred(a, NULL);
    return CDF_OK;
}

static void unipc_destroy(cdf_scheduler *s) {
    unipc_state *u = s->fam;
    if (!u) return;
    for (int i = 0; i < 3; i++) free(u->outs[i]);
    free(u->conv);
    free(u->last);
    free(u);
}

const sched_class cdf_sched_unipc = {
    "UniPCMultistepScheduler", unipc_params, 1, NK_ALPHA_SIGMA, unipc_init, unipc_set_timesteps, NULL, unipc_step,
    unipc_destroy,
};
