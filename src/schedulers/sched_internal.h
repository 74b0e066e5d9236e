/* Internals shared by the scheduler families (not part of the public API).
 *
 * Numerics: diffusers mixes float32 torch tensors (betas, alphas_cumprod,
 * every per-step coefficient, the samples) with float64 numpy arrays (sigma
 * interpolation, Karras spacing, timestep conversion). The families keep each
 * value in the type diffusers keeps it in and round to float32 exactly where
 * diffusers converts, so every C expression on `float` below is one torch
 * float32 operation. The compiler must not fuse or reorder them: the build is
 * ISO C11 (GCC then defaults to -ffp-contract=off) and this header pins it. */
#ifndef CDF_SCHEDULERS_SCHED_INTERNAL_H
#define CDF_SCHEDULERS_SCHED_INTERNAL_H

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "schedulers/scheduler.h"
#include "schedulers/tmath.h"

/* ---- configuration (from_config) ---- */

typedef enum sched_ptype {
    P_INT,       /* integer */
    P_NUM,       /* number */
    P_BOOL,      /* true/false (numbers accepted as Python truthiness) */
    P_STR,       /* string, optionally restricted to `choices` */
    P_OPT_STR,   /* string or null */
    P_OPT_NUM,   /* number or null */
    P_OPT_INT,   /* integer or null */
    P_BETAS,     /* null or an array of numbers (trained_betas) */
    P_INT_LIST,  /* array of integers (disable_corrector) */
    P_NULL       /* only null is supported (solver_p: a Python object) */
} sched_ptype;

typedef struct sched_param {
    const char *key;
    sched_ptype type;
    const char *def;              /* default, as JSON text ("-1e999" is -inf) */
    const char *const *choices;   /* P_STR / P_OPT_STR: NULL-terminated list, or NULL for any */
} sched_param;

/* The union of all keys the SD schedulers accept; a class reads only its own. */
typedef struct sched_cfg {
    int64_t num_train_timesteps;
    double beta_start, beta_end;
    const char *beta_schedule;
    const cJSON *trained_betas;        /* NULL or an array */
    const char *prediction_type;
    const char *timestep_spacing;
    int64_t steps_offset;
    int clip_sample;
    double clip_sample_range;
    int set_alpha_to_one;
    int thresholding;
    double dynamic_thresholding_ratio, sample_max_value;
    int rescale_betas_zero_snr;
    const char *variance_type;         /* may be NULL */
    int skip_prk_steps;
    int use_karras_sigmas;
    const char *interpolation_type;
    int has_sigma_min, has_sigma_max;
    double sigma_min, sigma_max;
    const char *timestep_type;
    int64_t solver_order;
    const char *algorithm_type, *solver_type;
    int lower_order_final, euler_at_final, use_lu_lambdas;
    const char *final_sigmas_type;     /* may be NULL */
    double lambda_min_clipped;
    int predict_x0;
    const cJSON *disable_corrector;    /* array of integers */
    int has_noise_sampler_seed;
    int64_t noise_sampler_seed;
} sched_cfg;

/* ---- the class table ---- */

typedef struct sched_step_args {
    const float *model_output;
    double t;
    float *sample;                     /* in: x_t, out: prev_sample */
    size_t n;
    const int64_t *shape;
    const cdf_noise_source *noise;
    float *pred_original;              /* may be NULL */
    int *has_pred_original;            /* may be NULL */
} sched_step_args;

/* How add_noise finds its coefficients. */
typedef enum sched_noise_kind {
    NK_ALPHAS,       /* sqrt(alphas_cumprod[t]) * x + sqrt(1 - alphas_cumprod[t]) * noise */
    NK_ALPHA_SIGMA,  /* alpha_t * x + sigma_t * noise from sigmas[index(t)] (DPM-Solver family) */
    NK_SIGMA         /* x + noise * sigmas[index(t)] (k-diffusion family) */
} sched_noise_kind;

typedef struct sched_class {
    const char *name;
    const sched_param *params;         /* terminated by a NULL key */
    int order;                         /* the class attribute `order` */
    sched_noise_kind noise_kind;
    cdf_status (*init)(cdf_scheduler *s, cdf_err *err);
    cdf_status (*set_timesteps)(cdf_scheduler *s, int n, cdf_err *err);
    /* NULL means scale_model_input returns the sample unchanged */
    cdf_status (*scale)(cdf_scheduler *s, float *out, const float *in, size_t n, double t, cdf_err *err);
    cdf_status (*step)(cdf_scheduler *s, const sched_step_args *a, cdf_err *err);
    void (*destroy)(cdf_scheduler *s); /* frees s->fam; may be NULL */
} sched_class;

struct cdf_scheduler {
    const sched_class *cls;
    cJSON *config;                     /* effective config (owned) */
    sched_cfg cfg;                     /* typed view into `config` */
    size_t n_train;
    float *betas, *alphas_cumprod;     /* [n_train] */
    /* set by set_timesteps */
    int num_inference_steps;
    size_t n_ts;
    double *timesteps;                 /* values exactly as diffusers holds them */
    cdf_dtype ts_dtype;
    size_t n_sigmas;
    float *sigmas;
    float init_noise_sigma;
    long step_index;                   /* -1: not yet known (diffusers' None) */
    double eta;                        /* DDIM's step(eta=...) */
    cdf_brownian_fn brownian_fn;
    void *brownian_user;
    int has_default_seed;
    uint64_t default_seed;
    void *fam;                         /* family state */
};

/* Families (one file each). */
extern const sched_class cdf_sched_ddim, cdf_sched_ddpm, cdf_sched_pndm, cdf_sched_lms, cdf_sched_euler,
    cdf_sched_euler_a, cdf_sched_heun, cdf_sched_kdpm2, cdf_sched_kdpm2_a, cdf_sched_dpm_multi,
    cdf_sched_dpm_single, cdf_sched_deis, cdf_sched_unipc, cdf_sched_dpm_sde;

/* registry.c: the class named `name` (exact diffusers class name), or NULL. */
const sched_class *cdf_sched_find_class(const char *name);

/* ddim.c: what DDIM and DDPM share. The int64 timesteps (linspace/leading/trailing). */
cdf_status cdf_sched_ddim_timesteps(cdf_scheduler *s, int n, cdf_err *err);
/* step(): alphas_cumprod at the training timestep t (an integer; Python
 * indexing, trailing spacing reaches t = -1) into *at, and at
 * prev_t = t - T // num_inference_steps into *ap (`final` where prev_t < 0). */
cdf_status cdf_sched_ddim_alphas(const cdf_scheduler *s, double t, float final, float *at, float *ap, cdf_err *err);
/* pred_original_sample from sqa = alpha_prod_t ** 0.5, sqb = beta_prod_t ** 0.5:
 * "epsilon", "sample", else "v_prediction". */
void cdf_sched_ddim_pred_x0(const char *pred, float *x0, const float *x, const float *mo, float sqa, float sqb,
                            size_t n);
/* Then _threshold_sample when thresholding, else the clip_sample clamp. */
cdf_status cdf_sched_ddim_clip(const cdf_scheduler *s, float *x0, size_t n, const int64_t shape[4], cdf_err *err);

/* Shared value lists. */
extern const char *const sched_spacings[];      /* linspace, leading, trailing */
extern const char *const sched_predictions[];   /* epsilon, v_prediction, sample */
extern const char *const sched_beta_schedules[]; /* linear, scaled_linear, squaredcos_cap_v2 */

/* ---- sched_common.c ---- */

/* from_config: builds s->config and s->cfg for s->cls from `config` and
 * `overrides` (either may be NULL). */
cdf_status sched_configure(cdf_scheduler *s, const cJSON *config, const cJSON *overrides, cdf_err *err);
/* register_to_config(key=value) after __init__ (class-specific remaps). */
cdf_status sched_set_config_str(cdf_scheduler *s, const char *key, const char *value, cdf_err *err);
cdf_status sched_set_config_bool(cdf_scheduler *s, const char *key, int value, cdf_err *err);

/* betas/alphas_cumprod in float32 as diffusers' __init__ computes them
 * (extra schedules: DDPM "sigmoid", Heun "exp"). */
cdf_status sched_make_alphas(cdf_scheduler *s, cdf_err *err);

/* torch.linspace(start, end, n, dtype=float32) on x86-64 CPU. */
void sched_torch_linspace_f32(float *out, double start, double end, int64_t n);
/* np.linspace(start, stop, n) (float64). */
void sched_np_linspace(double *out, double start, double stop, int64_t n);
/* np.arange(start, stop, step) with a float step: length and values. */
size_t sched_np_arange_len(double start, double stop, double step);
void sched_np_arange(double *out, size_t len, double start, double step);

/* ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 in float32, [n_train]. */
void sched_train_sigmas(const cdf_scheduler *s, float *out);
/* np.interp(x, arange(n), fp) with fp float32. */
double sched_interp(double x, const float *fp, size_t n);
/* Karras et al. spacing from sigma_max to sigma_min (rho 7), float64 [n]. */
void sched_karras(double *out, int n, double sigma_min, double sigma_max);
/* _sigma_to_t with log_sigmas = np.log(float32 train sigmas). */
double sched_sigma_to_t(double sigma, const float *log_sigmas, size_t n);
/* _sigma_to_t fed float32 torch tensors (KDPM2's interpolated sigmas). */
float sched_sigma_to_t_f32(float sigma, const float *log_sigmas, size_t n);

/* The float32 timesteps of the Euler-like classes for `timestep_spacing`
 * (descending); as float64 when `f64` (DPMSolverSDE). `out` holds n + 1;
 * *len is n, or n + 1 where numpy's trailing arange gives one more. */
cdf_status sched_spacing_float(const cdf_scheduler *s, int n, int f64, double *out, size_t *len, cdf_err *err);

/* The k-diffusion style schedule (Euler, Heun, KDPM2, LMS, DPMSolverSDE):
 * timesteps from timestep_spacing (float32, or float64 when `f64`) and
 * sigmas np.interp'ed from the training sigmas. sched_ksched_karras then
 * respaces them (_convert_to_karras over n steps; timesteps from
 * _sigma_to_t, rounded when `round_ts`). ts/sig hold `len` values; sig_len,
 * when not 0, is the sigma count of a class that keeps a different one. */
typedef struct sched_ksched {
    size_t len, sig_len;
    double *ts, *sig;       /* [n + 2] */
    float *train, *logs;    /* training sigmas and np.log of them, [n_train] */
    int karras;             /* timesteps came from _sigma_to_t (float64 in numpy) */
} sched_ksched;
cdf_status sched_ksched_make(const cdf_scheduler *s, int n, int f64, sched_ksched *k, cdf_err *err);
void sched_ksched_karras(const cdf_scheduler *s, sched_ksched *k, int n, int round_ts);
void sched_ksched_free(sched_ksched *k);
/* Stores the schedule in s as Euler Ancestral and LMS keep it: the timesteps
 * (float64 after Karras), the sigmas and a final 0, init_noise_sigma. */
cdf_status sched_ksched_store(cdf_scheduler *s, const sched_ksched *k, int n, cdf_err *err);
/* The sigmas of the two-stage classes (Heun, DPMSolverSDE) into dst[2 * len]:
 * cat([sigmas[:1], sigmas[1:].repeat_interleave(2), [0]]). */
void sched_ksched_sigmas_2stage(float *dst, const sched_ksched *k);

/* _init_step_index: index of t in timesteps, the second one if t occurs
 * more than once; `missing_last`: not found -> last index (DPM-like
 * classes), else an error. */
cdf_status sched_init_step_index(cdf_scheduler *s, double t, int missing_last, cdf_err *err);
/* The same on a run's first call only (step_index still None). */
cdf_status sched_ensure_step_index(cdf_scheduler *s, double t, int missing_last, cdf_err *err);

/* ---- the k-diffusion classes (Euler, Heun, KDPM2, LMS, DPMSolverSDE) ---- */

/* scale_model_input by `sigma`: sample / (sigma**2 + 1) ** 0.5. */
void sched_k_scale_by(float *out, const float *in, size_t n, float sigma);
/* scale_model_input by sigmas[step_index] (Euler, Heun, LMS): a class's `scale`. */
cdf_status sched_k_scale(cdf_scheduler *s, float *out, const float *in, size_t n, double t, cdf_err *err);
/* The start of a step: the step index on the first call, then a check that a
 * next sigma exists and, in the second stage of a two-stage class
 * (`second_stage`), a previous one. */
cdf_status sched_k_step_begin(cdf_scheduler *s, double t, int second_stage, cdf_err *err);
/* pred_original_sample: "epsilon" x - sigma_eps * out; "v_prediction"
 * out * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1); otherwise the
 * output itself. sigma_eps is sigma but for Euler's sigma_hat. */
void sched_k_pred_x0(const char *pred, float *x0, const float *x, const float *mo, float sigma, float sigma_eps,
                     size_t n);
/* init_noise_sigma: the largest sigma, or (max**2 + 1) ** 0.5 for "leading" spacing. */
void sched_k_init_noise_sigma(cdf_scheduler *s);

/* Allocation helpers: a float buffer of n (replaced if the size changes). */
cdf_status sched_buf(float **buf, size_t *cap, size_t n, cdf_err *err);
cdf_status sched_alloc_timesteps(cdf_scheduler *s, size_t n_ts, size_t n_sigmas, cdf_err *err);

/* Noise for a stochastic step: one randn_tensor(shape) call. */
cdf_status sched_noise(const cdf_noise_source *ns, float *out, const int64_t shape[4], const char *cls, cdf_err *err);

/* _threshold_sample (dynamic thresholding, in place, per batch item). */
cdf_status sched_threshold(const cdf_scheduler *s, float *x, size_t n, const int64_t shape[4], cdf_err *err);

int sched_streq(const char *a, const char *b);
/* Python's seq[i] for i in [-n, n): 0 and *out set, else -1 (an error for the caller). */
static inline int sched_pyindex(int64_t i, size_t n, size_t *out) {
    if (i < 0) i += (int64_t)n;
    if (i < 0 || i >= (int64_t)n) return -1;
    *out = (size_t)i;
    return 0;
}
/* clip_sample: x.clamp(-range, range) in float32, in place. */
static inline void sched_clip(float *x, size_t n, double range) {
    float r = (float)range;
    for (size_t i = 0; i < n; i++) x[i] = x[i] < -r ? -r : (x[i] > r ? r : x[i]);
}
/* Sets pred_original / has_pred_original of a step. */
void sched_report_pred(const sched_step_args *a, const float *pred);

#endif
