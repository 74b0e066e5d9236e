/* Helpers shared by the DPM-Solver family (multistep, singlestep, DEIS,
 * UniPC): the sigma <-> (alpha_t, sigma_t, lambda) conversions and the
 * timestep schedule they have in common. Internal. */
#ifndef CDF_SCHEDULERS_DPM_COMMON_H
#define CDF_SCHEDULERS_DPM_COMMON_H

#include <math.h>

#include "schedulers/sched_internal.h"

/* _sigma_to_alpha_sigma_t: alpha_t = 1 / (sigma**2 + 1) ** 0.5 (torch's
 * reciprocal-then-multiply for `1 / tensor`), sigma_t = sigma * alpha_t. */
static inline void dpm_alpha_sigma(float sigma, float *alpha_t, float *sigma_t) {
    float a = (1.0f / sqrtf(sigma * sigma + 1.0f)) * 1.0f;
    *alpha_t = a;
    *sigma_t = sigma * a;
}

/* torch.log(alpha_t) - torch.log(sigma_t) */
static inline float dpm_lambda(float alpha_t, float sigma_t) {
    return cdf_torch_logf(alpha_t) - cdf_torch_logf(sigma_t);
}

/* torch's `scalar / tensor` is reciprocal(tensor) * scalar. */
static inline float dpm_rdiv(float num, float den) { return (1.0f / den) * num; }

/* How the last sigma is chosen. */
typedef enum dpm_final {
    DPM_FINAL_CONFIG,      /* final_sigmas_type: "zero" or "sigma_min" (multistep, singlestep) */
    DPM_FINAL_SIGMA_MIN    /* sigma_min, or the last Karras sigma again (DEIS, UniPC) */
} dpm_final;

typedef struct dpm_sched_opts {
    int has_spacing;       /* timestep_spacing/steps_offset exist (not in singlestep) */
    int clip_lambda;       /* lambda_min_clipped exists */
    int lu_lambdas;        /* use_lu_lambdas exists */
    dpm_final final;
} dpm_sched_opts;

/* set_timesteps of the DPM-Solver family: int64 timesteps, float32 sigmas
 * (len + 1), init_noise_sigma 1. */
cdf_status dpm_set_timesteps(cdf_scheduler *s, int n, const dpm_sched_opts *o, cdf_err *err);

/* The common check of solver_order (1..3). */
cdf_status dpm_check_order(const cdf_scheduler *s, cdf_err *err);

/* The start of a step: the step index on the first call (a timestep not in
 * the schedule counts as the last one), then a check that timesteps remain. */
cdf_status dpm_step_begin(cdf_scheduler *s, double t, cdf_err *err);

/* Frees the three model-output buffers, then allocates the first `count`
 * for n values (NULL where an allocation failed). */
cdf_status dpm_alloc_outs(float *outs[3], int count, size_t n, cdf_err *err);

/* The model_outputs shift of the multistep classes: outs[1..order-1] move
 * down one and the oldest buffer, returned, becomes outs[order - 1] for the
 * new output. */
static inline float *dpm_push_output(float *outs[3], int order) {
    float *oldest = outs[0];
    for (int i = 0; i < order - 1; i++) outs[i] = outs[i + 1];
    outs[order - 1] = oldest;
    return oldest;
}

/* convert_model_output at sigmas[step_index], as all four classes do it:
 * with `x0_pred` the data prediction x0 ("epsilon", "v_prediction", else the
 * output itself), passed through _threshold_sample when thresholding is
 * configured; otherwise the noise prediction epsilon, never thresholded
 * here (multistep's "dpmsolver" adds its own x0 round trip). */
cdf_status dpm_convert(const cdf_scheduler *s, int x0_pred, float *out, const float *mo, const float *x, size_t n,
                       const int64_t *shape, cdf_err *err);

/* epsilon = (sample - alpha_t * x0) / sigma_t at sigmas[step_index], in place. */
void dpm_x0_to_eps(const cdf_scheduler *s, float *x0, const float *x, size_t n);

#endif
