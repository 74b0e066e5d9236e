/* Numerics shared by the scheduler families: the beta schedule, torch's and
 * numpy's linspace/arange, sigma interpolation, Karras spacing, the
 * sigma -> timestep conversion, step-index lookup and dynamic thresholding.
 * Each function names the diffusers/torch/numpy code it reproduces. */
#include "schedulers/sched_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Upper bound on num_train_timesteps (diffusers uses 1000). */
#define MAX_TRAIN_TIMESTEPS 1000000

/* ---- linspace / arange ---- */

/* torch 1.13 linspace_kernel on CPU for float32: step in float; the output
 * is produced 16 values at a time by Vectorized::arange(base, step) whose
 * base is start + step*idx (first half) or end - step*(steps-idx-1) (second
 * half), both fused into an FMA by the compiler, and whose lanes are
 * base + j*step without fusion; the tail (< 16) is scalar, fused. */
void sched_torch_linspace_f32(float *out, double start_d, double end_d, int64_t n) {
    if (n <= 0) return;
    float start = (float)start_d, end = (float)end_d;
    if (n == 1) { out[0] = start; return; }
    float step = (end - start) / (float)(n - 1);
    int64_t halfway = n / 2, i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int64_t c = i; c < i + 16; c += 8) {
            float base = c < halfway ? fmaf(step, (float)c, start) : fmaf(-step, (float)(n - c - 1), end);
            out[c] = base;
            for (int j = 1; j < 8; j++) out[c + j] = base + (float)j * step;
        }
    }
    for (; i < n; i++)
        out[i] = i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
}

/* numpy.linspace (float64, endpoint=True). */
void sched_np_linspace(double *out, double start, double stop, int64_t n) {
    if (n <= 0) return;
    if (n == 1) { out[0] = start; return; }
    double div = (double)(n - 1), delta = stop - start, step = delta / div;
    for (int64_t i = 0; i < n; i++) {
        double y = (double)i;
        y = step == 0 ? y / div * delta : y * step;
        out[i] = y + start;
    }
    out[n - 1] = stop;
}

/* numpy.arange with a float step: ceil((stop-start)/step) values, the third
 * on computed from the first two (DOUBLE_fill). */
size_t sched_np_arange_len(double start, double stop, double step) {
    double len = ceil((stop - start) / step);
    return len > 0 ? (size_t)len : 0;
}

void sched_np_arange(double *out, size_t len, double start, double step) {
    if (len == 0) return;
    out[0] = start;
    if (len == 1) return;
    out[1] = start + step;
    double delta = out[1] - out[0];
    for (size_t i = 2; i < len; i++) out[i] = start + (double)i * delta;
}

/* ---- betas and alphas_cumprod ---- */

/* betas_for_alpha_bar (Python float64), stored as float32. */
static void betas_for_alpha_bar(float *betas, size_t n, int exp_type) {
    for (size_t i = 0; i < n; i++) {
        double t1 = (double)i / (double)n, t2 = (double)(i + 1) / (double)n, a1, a2;
        if (exp_type) {
            a1 = exp(t1 * -12.0);
            a2 = exp(t2 * -12.0);
        } else {
            a1 = pow(cos((t1 + 0.008) / 1.008 * 3.141592653589793 / 2), 2.0);
            a2 = pow(cos((t2 + 0.008) / 1.008 * 3.141592653589793 / 2), 2.0);
        }
        double b = 1 - a2 / a1;
        betas[i] = (float)(b < 0.999 ? b : 0.999);
    }
}

/* torch.cumprod on CPU accumulates float32 input in double. */
static void cumprod_f32(float *out, const float *in, size_t n) {
    double acc = 1.0;
    for (size_t i = 0; i < n; i++) {
        acc *= (double)in[i];
        out[i] = (float)acc;
    }
}

/* rescale_zero_terminal_snr, float32 torch ops. */
static void rescale_zero_snr(float *betas, float *tmp, size_t n) {
    for (size_t i = 0; i < n; i++) tmp[i] = 1.0f - betas[i];
    cumprod_f32(tmp, tmp, n);
    for (size_t i = 0; i < n; i++) tmp[i] = sqrtf(tmp[i]);
    float s0 = tmp[0], sT = tmp[n - 1];
    float scale = s0 / (s0 - sT);
    for (size_t i = 0; i < n; i++) {
        tmp[i] = tmp[i] - sT;
        tmp[i] = tmp[i] * scale;
        tmp[i] = tmp[i] * tmp[i];
    }
    /* alphas = cat(alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]); betas = 1 - alphas */
    for (size_t i = n; i-- > 1;) betas[i] = 1.0f - tmp[i] / tmp[i - 1];
    betas[0] = 1.0f - tmp[0];
}

cdf_status sched_make_alphas(cdf_scheduler *s, cdf_err *err) {
    const sched_cfg *c = &s->cfg;
    const char *cls = s->cls->name;
    if (c->num_train_timesteps < 1 || c->num_train_timesteps > MAX_TRAIN_TIMESTEPS)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: num_train_timesteps %lld is out of range (1..%d)",
                        cls, (long long)c->num_train_timesteps, MAX_TRAIN_TIMESTEPS);
    size_t n = (size_t)c->num_train_timesteps;
    if (c->trained_betas && (size_t)cJSON_GetArraySize(c->trained_betas) != n)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                        "%s config: trained_betas has %d entries but num_train_timesteps is %zu", cls,
                        cJSON_GetArraySize(c->trained_betas), n);
    s->n_train = n;
    s->betas = cdf_malloc(n, sizeof(float), err);
    s->alphas_cumprod = cdf_malloc(n, sizeof(float), err);
    if (!s->betas || !s->alphas_cumprod) return CDF_ERR_OUT_OF_MEMORY;
    float *b = s->betas;
    if (c->trained_betas) {
        size_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, c->trained_betas) b[i++] = (float)it->valuedouble;
    } else if (sched_streq(c->beta_schedule, "linear")) {
        sched_torch_linspace_f32(b, c->beta_start, c->beta_end, (int64_t)n);
    } else if (sched_streq(c->beta_schedule, "scaled_linear")) {
        sched_torch_linspace_f32(b, pow(c->beta_start, 0.5), pow(c->beta_end, 0.5), (int64_t)n);
        for (size_t i = 0; i < n; i++) b[i] = b[i] * b[i];
    } else if (sched_streq(c->beta_schedule, "squaredcos_cap_v2")) {
        betas_for_alpha_bar(b, n, 0);
    } else if (sched_streq(c->beta_schedule, "exp")) {
        betas_for_alpha_bar(b, n, 1);
    } else if (sched_streq(c->beta_schedule, "sigmoid")) {
        /* torch.sigmoid(linspace(-6, 6)) * (end - start) + start; torch's
         * sigmoid kernel is vectorised (SLEEF exp) 16 values at a time and
         * scalar (libm exp) for the tail. */
        sched_torch_linspace_f32(b, -6.0, 6.0, (int64_t)n);
        size_t vec_end = n / 16 * 16;
        float range = (float)(c->beta_end - c->beta_start), start = (float)c->beta_start;
        for (size_t i = 0; i < n; i++) {
            float e = i < vec_end ? cdf_torch_expf(0.0f - b[i]) : expf(-b[i]);
            float sg = i < vec_end ? 1.0f / (e + 1.0f) : 1.0f / (1.0f + e);
            b[i] = sg * range + start;
        }
    } else {
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: beta_schedule '%s' is not supported", cls,
                        c->beta_schedule ? c->beta_schedule : "null");
    }
    if (c->rescale_betas_zero_snr) rescale_zero_snr(b, s->alphas_cumprod, n);
    for (size_t i = 0; i < n; i++) s->alphas_cumprod[i] = 1.0f - b[i];
    cumprod_f32(s->alphas_cumprod, s->alphas_cumprod, n);
    return CDF_OK;
}

void sched_train_sigmas(const cdf_scheduler *s, float *out) {
    for (size_t i = 0; i < s->n_train; i++) {
        float a = s->alphas_cumprod[i];
        out[i] = sqrtf((1.0f - a) / a);
    }
}

/* ---- sigma interpolation, Karras spacing, sigma -> t ---- */

double sched_interp(double x, const float *fp, size_t n) {
    if (isnan(x)) return x;
    if (n == 1) return fp[0];
    if (x < 0) return fp[0];
    if (x > (double)(n - 1)) return fp[n - 1];
    size_t j = (size_t)floor(x);
    if (j >= n - 1) return fp[n - 1];
    if ((double)j == x) return fp[j];
    double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    double r = slope * (x - (double)j) + (double)fp[j];
    if (isnan(r)) {
        r = slope * (x - (double)(j + 1)) + (double)fp[j + 1];
        if (isnan(r) && fp[j] == fp[j + 1]) r = fp[j];
    }
    return r;
}

void sched_karras(double *out, int n, double sigma_min, double sigma_max) {
    const double rho = 7.0;
    double min_inv = pow(sigma_min, 1 / rho), max_inv = pow(sigma_max, 1 / rho);
    sched_np_linspace(out, 0.0, 1.0, n);
    for (int i = 0; i < n; i++) out[i] = pow(max_inv + out[i] * (min_inv - max_inv), rho);
}

/* _sigma_to_t under numpy 1.24's value-based casting: log_sigma is a float64
 * scalar but meets the float32 log_sigmas array, so dists and w are float32;
 * (1 - w) * low_idx promotes to float64 against the int64 index arrays. */
/* With a single training timestep (n == 1) numpy clips the index to
 * n - 2 = -1: low is log_sigmas[-1] (the only entry), high_idx = 0, and the
 * index arithmetic uses -1; `low` is then that -1. */
static ptrdiff_t sigma_to_t_low(float ls, const float *log_sigmas, size_t n) {
    size_t low = 0; /* cumsum(dists >= 0).argmax(): the last index with dists >= 0, else 0 */
    for (size_t i = 0; i < n; i++)
        if (ls - log_sigmas[i] >= 0.0f) low = i;
    if (n < 2) return -1;
    return (ptrdiff_t)(low > n - 2 ? n - 2 : low);
}

static float sigma_to_t_w(float ls, const float *log_sigmas, size_t n, ptrdiff_t low) {
    float lo = log_sigmas[low < 0 ? (ptrdiff_t)n + low : low], hi = log_sigmas[low + 1];
    float w = (lo - ls) / (lo - hi);
    return w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w); /* np.clip keeps NaN */
}

double sched_sigma_to_t(double sigma, const float *log_sigmas, size_t n) {
    float ls = (float)log(sigma > 1e-10 || isnan(sigma) ? sigma : 1e-10);
    ptrdiff_t low = sigma_to_t_low(ls, log_sigmas, n);
    float w = sigma_to_t_w(ls, log_sigmas, n, low);
    return (double)(1.0f - w) * (double)low + (double)w * (double)(low + 1);
}

/* The same for a float32 torch tensor sigma and torch log_sigmas (KDPM2's
 * interpolated timesteps): the arithmetic then stays in float32. */
float sched_sigma_to_t_f32(float sigma, const float *log_sigmas, size_t n) {
    double sd = (double)sigma;
    float ls = (float)log(sd > 1e-10 || isnan(sd) ? sd : 1e-10);
    ptrdiff_t low = sigma_to_t_low(ls, log_sigmas, n);
    float w = sigma_to_t_w(ls, log_sigmas, n, low);
    return (1.0f - w) * (float)low + w * (float)(low + 1);
}

/* ---- timestep spacing of the Euler-like classes ---- */

cdf_status sched_spacing_float(const cdf_scheduler *s, int n, int f64, double *out, size_t *len, cdf_err *err) {
    const sched_cfg *c = &s->cfg;
    int64_t T = c->num_train_timesteps;
    *len = (size_t)n;
    if (sched_streq(c->timestep_spacing, "linspace")) {
        sched_np_linspace(out, 0.0, (double)(T - 1), n);
        for (int i = 0; i < n / 2; i++) {
            double t = out[i];
            out[i] = out[n - 1 - i];
            out[n - 1 - i] = t;
        }
        if (!f64)
            for (int i = 0; i < n; i++) out[i] = (float)out[i];
    } else if (sched_streq(c->timestep_spacing, "leading")) {
        int64_t ratio = T / n;
        for (int i = 0; i < n; i++) {
            double v = (double)((int64_t)(n - 1 - i) * ratio);
            out[i] = f64 ? v + (double)c->steps_offset : (double)((float)v + (float)c->steps_offset);
        }
    } else if (sched_streq(c->timestep_spacing, "trailing")) {
        /* np.arange(T, 0, -T/n) has n + 1 entries for some n (61, 103, ...
         * with T = 1000); diffusers then runs n + 1 steps, and so do we */
        double ratio = (double)T / n;
        *len = sched_np_arange_len((double)T, 0.0, -ratio);
        if (*len > (size_t)n + 1) *len = (size_t)n + 1;
        sched_np_arange(out, *len, (double)T, -ratio);
        for (size_t i = 0; i < *len; i++)
            out[i] = f64 ? rint(out[i]) - 1.0 : (double)((float)rint(out[i]) - 1.0f);
    } else {
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: timestep_spacing '%s' is not supported",
                        s->cls->name, c->timestep_spacing ? c->timestep_spacing : "null");
    }
    return CDF_OK;
}

/* ---- step index ---- */

cdf_status sched_init_step_index(cdf_scheduler *s, double t, int missing_last, cdf_err *err) {
    long first = -1, second = -1;
    for (size_t i = 0; i < s->n_ts; i++) {
        if (s->timesteps[i] == t) {
            if (first < 0) first = (long)i;
            else if (second < 0) second = (long)i;
        }
    }
    if (second >= 0) s->step_index = second;
    else if (first >= 0) s->step_index = first;
    else if (missing_last && s->n_ts > 0) s->step_index = (long)s->n_ts - 1;
    else return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: timestep %g is not in the schedule", s->cls->name, t);
    return CDF_OK;
}

cdf_status sched_ensure_step_index(cdf_scheduler *s, double t, int missing_last, cdf_err *err) {
    return s->step_index < 0 ? sched_init_step_index(s, t, missing_last, err) : CDF_OK;
}

/* ---- the k-diffusion classes ---- */

void sched_k_scale_by(float *out, const float *in, size_t n, float sigma) {
    float d = sqrtf(sigma * sigma + 1.0f);
    for (size_t i = 0; i < n; i++) out[i] = in[i] / d;
}

cdf_status sched_k_scale(cdf_scheduler *s, float *out, const float *in, size_t n, double t, cdf_err *err) {
    cdf_status st = sched_ensure_step_index(s, t, 0, err);
    if (st) return st;
    sched_k_scale_by(out, in, n, s->sigmas[s->step_index]);
    return CDF_OK;
}

cdf_status sched_k_step_begin(cdf_scheduler *s, double t, int second_stage, cdf_err *err) {
    cdf_status st = sched_ensure_step_index(s, t, 0, err);
    if (st) return st;
    if ((size_t)s->step_index + 1 >= s->n_sigmas || (second_stage && s->step_index < 1))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: step called after the last timestep", s->cls->name);
    return CDF_OK;
}

void sched_k_pred_x0(const char *pred, float *x0, const float *x, const float *mo, float sigma, float sigma_eps,
                     size_t n) {
    if (sched_streq(pred, "epsilon")) {
        for (size_t i = 0; i < n; i++) x0[i] = x[i] - sigma_eps * mo[i];
    } else if (sched_streq(pred, "v_prediction")) {
        float s2 = sigma * sigma + 1.0f;
        float k = -sigma / sqrtf(s2);
        for (size_t i = 0; i < n; i++) x0[i] = mo[i] * k + x[i] / s2;
    } else {
        memcpy(x0, mo, n * sizeof(float));
    }
}

void sched_k_init_noise_sigma(cdf_scheduler *s) {
    float mx = 0;
    for (size_t i = 0; i < s->n_sigmas; i++) mx = s->sigmas[i] > mx ? s->sigmas[i] : mx;
    s->init_noise_sigma = sched_streq(s->cfg.timestep_spacing, "leading") ? sqrtf(mx * mx + 1.0f) : mx;
}

/* ---- buffers, noise, predictions ---- */

cdf_status sched_buf(float **buf, size_t *cap, size_t n, cdf_err *err) {
    if (*buf && *cap == n) return CDF_OK;
    free(*buf);
    *buf = cdf_malloc(n, sizeof(float), err);
    *cap = *buf ? n : 0;
    return *buf ? CDF_OK : CDF_ERR_OUT_OF_MEMORY;
}

cdf_status sched_alloc_timesteps(cdf_scheduler *s, size_t n_ts, size_t n_sigmas, cdf_err *err) {
    free(s->timesteps);
    free(s->sigmas);
    s->timesteps = NULL;
    s->sigmas = NULL;
    s->n_ts = s->n_sigmas = 0;
    s->timesteps = cdf_calloc(n_ts ? n_ts : 1, sizeof(double), err);
    if (!s->timesteps) return CDF_ERR_OUT_OF_MEMORY;
    if (n_sigmas) {
        s->sigmas = cdf_calloc(n_sigmas, sizeof(float), err);
        if (!s->sigmas) return CDF_ERR_OUT_OF_MEMORY;
    }
    s->n_ts = n_ts;
    s->n_sigmas = n_sigmas;
    return CDF_OK;
}

cdf_status sched_noise(const cdf_noise_source *ns, float *out, const int64_t shape[4], const char *cls,
                       cdf_err *err) {
    if (!ns || !ns->fill)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: step() draws noise but no noise source was given", cls);
    return ns->fill(ns->user, out, shape, err);
}

void sched_report_pred(const sched_step_args *a, const float *pred) {
    if (a->has_pred_original) *a->has_pred_original = pred != NULL;
    if (a->pred_original && pred) memcpy(a->pred_original, pred, a->n * sizeof(float));
}

/* ---- dynamic thresholding (Imagen), torch.quantile with linear interpolation ---- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

cdf_status sched_threshold(const cdf_scheduler *s, float *x, size_t n, const int64_t shape[4], cdf_err *err) {
    size_t batch = shape[0] > 0 ? (size_t)shape[0] : 1, row = n / batch;
    if (row == 0) return CDF_OK;
    float *tmp = cdf_malloc(row, sizeof(float), err);
    if (!tmp) return CDF_ERR_OUT_OF_MEMORY;
    float q = (float)s->cfg.dynamic_thresholding_ratio;
    for (size_t b = 0; b < batch; b++) {
        float *v = x + b * row;
        for (size_t i = 0; i < row; i++) tmp[i] = fabsf(v[i]);
        qsort(tmp, row, sizeof(float), cmp_float);
        float rank = q * (float)(row - 1);
        size_t lo = (size_t)rank, hi = (size_t)ceilf(rank);
        if (hi > row - 1) hi = row - 1;
        float w = rank - (float)lo, a = tmp[lo], c = tmp[hi];
        float thr = w < 0.5f ? a + w * (c - a) : c - (c - a) * (1.0f - w);
        float smax = (float)s->cfg.sample_max_value;
        if (thr < 1.0f) thr = 1.0f;
        if (thr > smax) thr = smax;
        for (size_t i = 0; i < row; i++) {
            float y = v[i] < -thr ? -thr : v[i];
            y = y > thr ? thr : y;
            v[i] = y / thr;
        }
    }
    free(tmp);
    return CDF_OK;
}

/* ---- the k-diffusion style schedule (Euler, Heun, KDPM2, LMS, DPMSolverSDE) ---- */

void sched_ksched_free(sched_ksched *k) {
    free(k->ts);
    free(k->sig);
    free(k->train);
    free(k->logs);
    memset(k, 0, sizeof *k);
}

cdf_status sched_ksched_make(const cdf_scheduler *s, int n, int f64, sched_ksched *k, cdf_err *err) {
    memset(k, 0, sizeof *k);
    size_t T = s->n_train;
    k->ts = cdf_malloc((size_t)n + 2, sizeof(double), err);
    k->sig = cdf_malloc((size_t)n + 2, sizeof(double), err);
    k->train = cdf_malloc(T, sizeof(float), err);
    k->logs = cdf_malloc(T, sizeof(float), err);
    if (!k->ts || !k->sig || !k->train || !k->logs) { sched_ksched_free(k); return CDF_ERR_OUT_OF_MEMORY; }
    cdf_status st = sched_spacing_float(s, n, f64, k->ts, &k->len, err);
    if (st) { sched_ksched_free(k); return st; }
    sched_train_sigmas(s, k->train);
    for (size_t i = 0; i < T; i++) k->logs[i] = cdf_numpy_logf(k->train[i]);
    for (size_t i = 0; i < k->len; i++) k->sig[i] = sched_interp(k->ts[i], k->train, T);
    return CDF_OK;
}

void sched_ksched_karras(const cdf_scheduler *s, sched_ksched *k, int n, int round_ts) {
    double smin = s->cfg.has_sigma_min ? s->cfg.sigma_min : k->sig[k->sig_len ? k->sig_len - 1 : k->len - 1];
    double smax = s->cfg.has_sigma_max ? s->cfg.sigma_max : k->sig[0];
    sched_karras(k->sig, n, smin, smax);
    k->len = (size_t)n;
    k->sig_len = 0;
    for (int i = 0; i < n; i++) {
        double t = sched_sigma_to_t(k->sig[i], k->logs, s->n_train);
        k->ts[i] = round_ts ? rint(t) : t;
    }
    k->karras = 1;
}

cdf_status sched_ksched_store(cdf_scheduler *s, const sched_ksched *k, int n, cdf_err *err) {
    cdf_status st = sched_alloc_timesteps(s, k->len, k->len + 1, err);
    if (st) return st;
    for (size_t i = 0; i < k->len; i++) {
        s->timesteps[i] = k->ts[i];
        s->sigmas[i] = (float)k->sig[i];
    }
    s->sigmas[k->len] = 0.0f;
    s->ts_dtype = k->karras ? CDF_DTYPE_F64 : CDF_DTYPE_F32;
    s->num_inference_steps = n;
    sched_k_init_noise_sigma(s);
    return CDF_OK;
}

void sched_ksched_sigmas_2stage(float *dst, const sched_ksched *k) {
    size_t m = k->len;
    dst[0] = (float)k->sig[0];
    for (size_t i = 1; i < m; i++) dst[2 * i - 1] = dst[2 * i] = (float)k->sig[i];
    dst[2 * m - 1] = 0.0f;
}
