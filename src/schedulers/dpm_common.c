/* The timestep schedule shared by DPMSolverMultistep/Singlestep, DEIS and
 * UniPC (diffusers 0.26.3 set_timesteps of those classes). */
#include "schedulers/dpm_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

cdf_status dpm_check_order(const cdf_scheduler *s, cdf_err *err) {
    if (s->cfg.solver_order < 1 || s->cfg.solver_order > 3)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: solver_order %lld is not supported; valid: 1, 2, 3",
                        s->cls->name, (long long)s->cfg.solver_order);
    return CDF_OK;
}

/* searchsorted(flip(lambda_t), lambda_min_clipped): lambda_t in float32
 * (torch: log(sqrt(ac)) - log(sqrt(1 - ac))). */
static int64_t clipped_index(const cdf_scheduler *s) {
    double lim = s->cfg.lambda_min_clipped;
    if (isinf(lim) && lim < 0) return 0;
    size_t T = s->n_train;
    for (size_t k = 0; k < T; k++) {
        float ac = s->alphas_cumprod[T - 1 - k];
        float lam = cdf_torch_logf(sqrtf(ac)) - cdf_torch_logf(sqrtf(1.0f - ac));
        if (!((double)lam < lim)) return (int64_t)k;
    }
    return (int64_t)T;
}

cdf_status dpm_set_timesteps(cdf_scheduler *s, int n, const dpm_sched_opts *o, cdf_err *err) {
    const sched_cfg *c = &s->cfg;
    int64_t T = c->num_train_timesteps;
    int64_t last = T - (o->clip_lambda ? clipped_index(s) : 0);
    const char *spacing = o->has_spacing ? c->timestep_spacing : "linspace";
    size_t len = (size_t)n, Tn = s->n_train;
    double *ts = cdf_malloc((size_t)n + 2, sizeof(double), err);
    double *sig = cdf_malloc((size_t)n + 2, sizeof(double), err);
    float *train = cdf_malloc(Tn, sizeof(float), err);
    float *logs = cdf_malloc(Tn, sizeof(float), err);
    cdf_status st = (!ts || !sig || !train || !logs) ? CDF_ERR_OUT_OF_MEMORY : CDF_OK;
    if (st) goto done;
    if (sched_streq(spacing, "linspace")) {
        double *tmp = cdf_malloc((size_t)n + 1, sizeof(double), err);
        if (!tmp) { st = CDF_ERR_OUT_OF_MEMORY; goto done; }
        sched_np_linspace(tmp, 0.0, (double)(last - 1), n + 1);
        for (int i = 0; i < n; i++) ts[i] = rint(tmp[n - i]);
        free(tmp);
    } else if (sched_streq(spacing, "leading")) {
        int64_t ratio = last / (n + 1);
        for (int i = 0; i < n; i++) ts[i] = (double)((int64_t)(n - i) * ratio + c->steps_offset);
    } else {
        double ratio = (double)T / n;
        len = sched_np_arange_len((double)last, 0.0, -ratio);
        if (len > (size_t)n + 1) len = (size_t)n + 1;
        sched_np_arange(ts, len, (double)last, -ratio);
        for (size_t i = 0; i < len; i++) ts[i] = rint(ts[i]) - 1.0;
    }
    sched_train_sigmas(s, train);
    for (size_t i = 0; i < Tn; i++) logs[i] = cdf_numpy_logf(train[i]);
    int karras = c->use_karras_sigmas, lu = o->lu_lambdas && c->use_lu_lambdas;
    if (karras) {
        /* np.flip(sigmas): in_sigmas[-1] = train[0], in_sigmas[0] = train[-1] */
        sched_karras(sig, n, (double)train[0], (double)train[Tn - 1]);
        len = (size_t)n;
        for (int i = 0; i < n; i++) ts[i] = rint(sched_sigma_to_t(sig[i], logs, Tn));
    } else if (lu) {
        /* _convert_to_lu(flip(log_sigmas)), rho = 1, then np.exp */
        double lmin = logs[0], lmax = logs[Tn - 1];
        sched_np_linspace(sig, 0.0, 1.0, n);
        for (int i = 0; i < n; i++) sig[i] = exp(lmax + sig[i] * (lmin - lmax));
        len = (size_t)n;
        for (int i = 0; i < n; i++) ts[i] = rint(sched_sigma_to_t(sig[i], logs, Tn));
    } else {
        for (size_t i = 0; i < len; i++) sig[i] = sched_interp(ts[i], train, Tn);
    }
    float a0 = s->alphas_cumprod[0];
    float sigma_min = sqrtf((1.0f - a0) / a0), last_sigma;
    if (o->final == DPM_FINAL_SIGMA_MIN) last_sigma = karras ? (float)sig[len - 1] : sigma_min;
    else last_sigma = sched_streq(c->final_sigmas_type, "sigma_min") ? sigma_min : 0.0f;
    st = sched_alloc_timesteps(s, len, len + 1, err);
    if (st) goto done;
    for (size_t i = 0; i < len; i++) {
        s->timesteps[i] = ts[i];
        s->sigmas[i] = (float)sig[i];
    }
    s->sigmas[len] = last_sigma;
    s->ts_dtype = CDF_DTYPE_I64;
    s->num_inference_steps = (int)len;
    s->init_noise_sigma = 1.0f;
done:
    free(ts);
    free(sig);
    free(train);
    free(logs);
    return st;
}

cdf_status dpm_step_begin(cdf_scheduler *s, double t, cdf_err *err) {
    cdf_status st = sched_ensure_step_index(s, t, 1, err);
    if (st) return st;
    if ((size_t)s->step_index >= s->n_ts)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: step called after the last timestep", s->cls->name);
    return CDF_OK;
}

cdf_status dpm_alloc_outs(float *outs[3], int count, size_t n, cdf_err *err) {
    for (int i = 0; i < 3; i++) { free(outs[i]); outs[i] = NULL; }
    for (int i = 0; i < count; i++)
        if (!(outs[i] = cdf_malloc(n, sizeof(float), err))) return CDF_ERR_OUT_OF_MEMORY;
    return CDF_OK;
}

cdf_status dpm_convert(const cdf_scheduler *s, int x0_pred, float *out, const float *mo, const float *x, size_t n,
                       const int64_t *shape, cdf_err *err) {
    const sched_cfg *c = &s->cfg;
    float at, st_;
    dpm_alpha_sigma(s->sigmas[s->step_index], &at, &st_);
    int eps = sched_streq(c->prediction_type, "epsilon"), vp = sched_streq(c->prediction_type, "v_prediction");
    if (x0_pred) {
        if (eps) for (size_t i = 0; i < n; i++) out[i] = (x[i] - st_ * mo[i]) / at;
        else if (vp) for (size_t i = 0; i < n; i++) out[i] = at * x[i] - st_ * mo[i];
        else memcpy(out, mo, n * sizeof(float));
        if (c->thresholding) return sched_threshold(s, out, n, shape, err);
        return CDF_OK;
    }
    if (eps) memcpy(out, mo, n * sizeof(float));
    else if (vp) for (size_t i = 0; i < n; i++) out[i] = at * mo[i] + st_ * x[i];
    else for (size_t i = 0; i < n; i++) out[i] = (x[i] - at * mo[i]) / st_;
    return CDF_OK;
}

void dpm_x0_to_eps(const cdf_scheduler *s, float *x0, const float *x, size_t n) {
    float at, st_;
    dpm_alpha_sigma(s->sigmas[s->step_index], &at, &st_);
    for (size_t i = 0; i < n; i++) x0[i] = (x[i] - at * x0[i]) / st_;
}
