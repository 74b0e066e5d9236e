/* LMSDiscreteScheduler (diffusers 0.26.3 scheduling_lms_discrete.py).
 *
 * The multistep coefficients are integrals of Lagrange basis polynomials,
 * which diffusers computes with scipy.integrate.quad(epsrel=1e-4) on an
 * integrand evaluated with float32 torch tensors. For these polynomials
 * QUADPACK's first 21-point Gauss-Kronrod pass already meets the tolerance,
 * so quad returns that pass's sum: reproduced here with QUADPACK's nodes,
 * weights and summation order (dqk21), and the float32 integrand. */
#include "schedulers/sched_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const sched_param lms_params[] = {
    {"num_train_timesteps", P_INT, "1000", NULL},
    {"beta_start", P_NUM, "0.0001", NULL},
    {"beta_end", P_NUM, "0.02", NULL},
    {"beta_schedule", P_STR, "\"linear\"", sched_beta_schedules},
    {"trained_betas", P_BETAS, "null", NULL},
    {"use_karras_sigmas", P_BOOL, "false", NULL},
    {"prediction_type", P_STR, "\"epsilon\"", sched_predictions},
    {"timestep_spacing", P_STR, "\"linspace\"", sched_spacings},
    {"steps_offset", P_INT, "0", NULL},
    {NULL, 0, NULL, NULL},
};

#define LMS_MAX_ORDER 4

typedef struct lms_state {
    float *deriv[LMS_MAX_ORDER];   /* oldest first */
    int n_deriv;
    float *pred;
    size_t cap;
} lms_state;

/* ---- quad ---- */

typedef struct lms_poly {
    const float *sigmas;
    long t;
    int order, current;
} lms_poly;

/* lms_derivative(tau): float32 torch arithmetic (tau is cast to float32). */
static double lms_f(const lms_poly *p, double tau) {
    float prod = 1.0f;
    int any = 0;
    for (int k = 0; k < p->order; k++) {
        if (k == p->current) continue;
        float num = (float)tau - p->sigmas[p->t - k];
        float den = p->sigmas[p->t - p->current] - p->sigmas[p->t - k];
        prod = any ? prod * (num / den) : 1.0f * (num / den);
        any = 1;
    }
    return any ? (double)prod : 1.0;
}

static const double xgk[11] = {
    0.995657163025808080735527280689003, 0.973906528517171720077964012084452, 0.930157491355708226001207180059508,
    0.865063366688984510732096688423493, 0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
    0.562757134668604683339000099272694, 0.433395394129247190799265943165784, 0.294392862701460198131126603103866,
    0.148874338981631210884826001129720, 0.000000000000000000000000000000000};
static const double wgk[11] = {
    0.011694638867371874278064396062192, 0.032558162307964727478818972459390, 0.054755896574351996031381300244580,
    0.075039674810919952767043140916190, 0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
    0.123491976262065851077600525452272, 0.134709217311473325928054001771707, 0.142775938577060080797094273138717,
    0.147739104901338491374841515972068, 0.149445554002916905664936468389821};
static const double wg[5] = {0.066671344308688137593568809893332, 0.149451349150580593145776339657697,
                             0.219086362515982043995534934228163, 0.269266719309996355091226921569469,
                             0.295524224714752870173892994651338};

/* QUADPACK dqk21 (Fortran indices 1..11 are 0..10 here): the 21-point
 * Kronrod sum and its error estimate, in QUADPACK's order of operations. */
static double qk21(const lms_poly *p, double a, double b, double *abserr) {
    double centr = 0.5 * (a + b), hlgth = 0.5 * (b - a), dhlgth = fabs(hlgth);
    double fv1[10], fv2[10];
    double fc = lms_f(p, centr);
    double resg = 0.0, resk = wgk[10] * fc, resabs = fabs(resk);
    for (int j = 1; j <= 5; j++) {
        int jtw = 2 * j - 1; /* Fortran 2*j */
        double absc = hlgth * xgk[jtw];
        double f1 = lms_f(p, centr - absc), f2 = lms_f(p, centr + absc);
        fv1[jtw] = f1;
        fv2[jtw] = f2;
        double fsum = f1 + f2;
        resg = resg + wg[j - 1] * fsum;
        resk = resk + wgk[jtw] * fsum;
        resabs = resabs + wgk[jtw] * (fabs(f1) + fabs(f2));
    }
    for (int j = 1; j <= 5; j++) {
        int jtwm1 = 2 * j - 2; /* Fortran 2*j-1 */
        double absc = hlgth * xgk[jtwm1];
        double f1 = lms_f(p, centr - absc), f2 = lms_f(p, centr + absc);
        fv1[jtwm1] = f1;
        fv2[jtwm1] = f2;
        double fsum = f1 + f2;
        resk = resk + wgk[jtwm1] * fsum;
        resabs = resabs + wgk[jtwm1] * (fabs(f1) + fabs(f2));
    }
    double reskh = resk * 0.5;
    double resasc = wgk[10] * fabs(fc - reskh);
    for (int j = 0; j < 10; j++) resasc = resasc + wgk[j] * (fabs(fv1[j] - reskh) + fabs(fv2[j] - reskh));
    double result = resk * hlgth;
    resabs = resabs * dhlgth;
    resasc = resasc * dhlgth;
    double err = fabs((resk - resg) * hlgth);
    if (resasc != 0.0 && err != 0.0) err = resasc * fmin(1.0, pow(200.0 * err / resasc, 1.5));
    if (resabs > DBL_MIN / (50.0 * DBL_EPSILON)) err = fmax(DBL_EPSILON * 50.0 * resabs, err);
    *abserr = err;
    return result;
}

/* scipy.integrate.quad(f, a, b, epsrel=1e-4): dqagse returns the first
 * dqk21 pass when its error estimate meets the tolerance, which it does for
 * these low-degree polynomials. Should it not, the interval is bisected
 * until the pieces do (dqagse would also extrapolate; the value agrees to
 * the tolerance either way). */
static double quad(const lms_poly *p, double a, double b, int depth) {
    double err, r = qk21(p, a, b, &err);
    double bound = fmax(1.49e-8, 1e-4 * fabs(r));
    if (err <= bound || depth >= 30) return r;
    double m = 0.5 * (a + b);
    return quad(p, a, m, depth + 1) + quad(p, m, b, depth + 1);
}

/* ---- scheduler ---- */

static cdf_status lms_init(cdf_scheduler *s, cdf_err *err) {
    cdf_status st = sched_make_alphas(s, err);
    if (st) return st;
    s->fam = cdf_calloc(1, sizeof(lms_state), err);
    if (!s->fam) return CDF_ERR_OUT_OF_MEMORY;
    return CDF_OK;
}

static cdf_status lms_set_timesteps(cdf_scheduler *s, int n, cdf_err *err) {
    lms_state *l = s->fam;
    sched_ksched k;
    cdf_status st = sched_ksched_make(s, n, 0, &k, err);
    if (st) return st;
    if (s->cfg.use_karras_sigmas) sched_ksched_karras(s, &k, n, 0);
    st = sched_ksched_store(s, &k, n, err);
    if (!st) l->n_deriv = 0;
    sched_ksched_free(&k);
    return st;
}

static cdf_status lms_step(cdf_scheduler *s, const sched_step_args *a, cdf_err *err) {
    lms_state *l = s->fam;
    size_t n = a->n;
    cdf_status st = sched_k_step_begin(s, a->t, 0, err);
    if (st) return st;
    if (l->cap != n) {
        for (int i = 0; i < LMS_MAX_ORDER; i++) {
            free(l->deriv[i]);
            l->deriv[i] = NULL;
        }
        free(l->pred);
        l->cap = 0;
        l->n_deriv = 0;
        for (int i = 0; i < LMS_MAX_ORDER; i++)
            if (!(l->deriv[i] = cdf_malloc(n, sizeof(float), err))) return CDF_ERR_OUT_OF_MEMORY;
        if (!(l->pred = cdf_malloc(n, sizeof(float), err))) return CDF_ERR_OUT_OF_MEMORY;
        l->cap = n;
    }
    const sched_cfg *c = &s->cfg;
    float sigma = s->sigmas[s->step_index];
    const float *mo = a->model_output;
    float *x = a->sample, *x0 = l->pred;
    sched_k_pred_x0(c->prediction_type, x0, x, mo, sigma, sigma, n);
    /* derivatives.append(...); keep the last `order` (4) */
    if (l->n_deriv == LMS_MAX_ORDER) {
        float *old = l->deriv[0];
        memmove(l->deriv, l->deriv + 1, (LMS_MAX_ORDER - 1) * sizeof(float *));
        l->deriv[LMS_MAX_ORDER - 1] = old;
        l->n_deriv--;
    }
    float *d = l->deriv[l->n_deriv++];
    for (size_t i = 0; i < n; i++) d[i] = (x[i] - x0[i]) / sigma;
    int order = (int)s->step_index + 1 < LMS_MAX_ORDER ? (int)s->step_index + 1 : LMS_MAX_ORDER;
    float coeff[LMS_MAX_ORDER];
    for (int k = 0; k < order; k++) {
        lms_poly p = {s->sigmas, s->step_index, order, k};
        coeff[k] = (float)quad(&p, (double)s->sigmas[s->step_index], (double)s->sigmas[s->step_index + 1], 0);
    }
    /* sample + sum(coeff * derivative for coeff, derivative in zip(coeffs, reversed(derivatives))) */
    for (size_t i = 0; i < n; i++) {
        float acc = coeff[0] * l->deriv[l->n_deriv - 1][i] + 0.0f;
        for (int k = 1; k < order && k < l->n_deriv; k++) acc = acc + coeff[k] * l->deriv[l->n_deriv - 1 - k][i];
        x[i] = x[i] + acc;
    }
    s->step_index++;
    sched_report_pred(a, x0);
    return CDF_OK;
}

static void lms_destroy(cdf_scheduler *s) {
    lms_state *l = s->fam;
    if (!l) return;
    for (int i = 0; i < LMS_MAX_ORDER; i++) free(l->deriv[i]);
    free(l->pred);
    free(l);
}

const sched_class cdf_sched_lms = {
    "LMSDiscreteScheduler", lms_params, 1, NK_SIGMA, lms_init, lms_set_timesteps, sched_k_scale, lms_step, lms_destroy,
};
