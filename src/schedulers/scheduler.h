/* Diffusion schedulers, one family per file, chosen by diffusers class name.
 *
 * A scheduler is created from a model folder's scheduler_config.json (which
 * may belong to another class) with diffusers' from_config semantics: keys the
 * class knows are taken, the class's own defaults fill the rest, unknown keys
 * are ignored; `overrides` (may be NULL) wins over both. It then behaves like
 * the diffusers object: set_timesteps, timesteps, init_noise_sigma,
 * scale_model_input, step. A scheduler holds per-run state (step index, model
 * output history), so each generation uses its own instance.
 *
 * Samples are float32 NCHW tensors of shape [B, C, H, W], flat arrays of
 * n = B*C*H*W values. Arithmetic follows diffusers' order of operations and
 * precision (float32 tensors, float64 where diffusers uses numpy). */
#ifndef CDF_SCHEDULERS_SCHEDULER_H
#define CDF_SCHEDULERS_SCHEDULER_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct cdf_scheduler cdf_scheduler;

/* Where the noise of stochastic steps comes from. `fill` must write standard
 * normal noise of the sample's shape exactly as diffusers' randn_tensor(shape,
 * generator) would (the pipeline implements per-image generators with it;
 * tests replay recorded noise with it). */
typedef struct cdf_noise_source {
    cdf_status (*fill)(void *user, float *out, const int64_t shape[4], cdf_err *err);
    void *user;
} cdf_noise_source;

/* Creates `class_name` (a diffusers class name or an alias from the
 * registry) from `config` (a scheduler_config.json object, may be NULL for
 * pure class defaults) plus `overrides` (a JSON object, may be NULL). An
 * unknown class or an invalid option value is an error listing the valid
 * ones. */
cdf_status cdf_scheduler_create(cdf_scheduler **out, const char *class_name, const cJSON *config,
                                const cJSON *overrides, cdf_err *err);
void cdf_scheduler_free(cdf_scheduler *s);

/* The diffusers class name, e.g. "DPMSolverMultistepScheduler". */
const char *cdf_scheduler_class(const cdf_scheduler *s);
/* The effective configuration after from_config, as a JSON text (caller frees),
 * in the form diffusers' scheduler.config would show it. */
char *cdf_scheduler_config_json(const cdf_scheduler *s);

cdf_status cdf_scheduler_set_timesteps(cdf_scheduler *s, int num_inference_steps, cdf_err *err);
size_t cdf_scheduler_num_timesteps(const cdf_scheduler *s);  /* len(scheduler.timesteps) */
double cdf_scheduler_timestep(const cdf_scheduler *s, size_t i);
/* dtype of scheduler.timesteps in diffusers: CDF_DTYPE_I64, F32 or F64. */
cdf_dtype cdf_scheduler_timestep_dtype(const cdf_scheduler *s);
/* scheduler.sigmas where the class has them (else 0 and *out NULL). */
size_t cdf_scheduler_sigmas(const cdf_scheduler *s, const float **out);
double cdf_scheduler_init_noise_sigma(const cdf_scheduler *s);
int cdf_scheduler_order(const cdf_scheduler *s);

/* scale_model_input: out[n] = scaled sample for timestep t (out may equal in). */
cdf_status cdf_scheduler_scale_model_input(cdf_scheduler *s, float *out, const float *in, const int64_t shape[4],
                                           double t, cdf_err *err);

/* step: sample[n] is replaced by prev_sample. `noise` may be NULL for
 * deterministic schedulers (an error for stochastic ones). If
 * pred_original is not NULL it receives pred_original_sample and
 * *has_pred_original (may be NULL) says whether this step produced one. */
cdf_status cdf_scheduler_step(cdf_scheduler *s, const float *model_output, double t, float *sample,
                              const int64_t shape[4], const cdf_noise_source *noise, float *pred_original,
                              int *has_pred_original, cdf_err *err);

/* add_noise (for img2img): out = noisy version of original at timestep t. */
cdf_status cdf_scheduler_add_noise(const cdf_scheduler *s, float *out, const float *original, const float *noise,
                                   size_t n, double t, cdf_err *err);

/* DDIMScheduler's step(eta=...): 0 unless set (the pipeline's default);
 * eta > 0 makes DDIM draw noise at every step. Other classes ignore it. */
void cdf_scheduler_set_eta(cdf_scheduler *s, double eta);

/* DPMSolverSDEScheduler: replaces the Brownian-tree noise sampler (used by
 * tests to replay recorded noise). fn(user, sigma, sigma_next, out, shape)
 * must fill out[n]. Ignored by other classes. */
typedef cdf_status (*cdf_brownian_fn)(void *user, double sigma, double sigma_next, float *out,
                                      const int64_t shape[4], cdf_err *err);
void cdf_scheduler_set_brownian_override(cdf_scheduler *s, cdf_brownian_fn fn, void *user);
/* Seed of the Brownian tree when the config has no noise_sampler_seed
 * (diffusers would draw it from torch's global RNG; we take it from the caller). */
void cdf_scheduler_set_default_noise_seed(cdf_scheduler *s, uint64_t seed);

/* Registry: class names and aliases. */
typedef struct cdf_scheduler_alias {
    const char *alias;        /* e.g. "dpm++2m_karras" */
    const char *display;      /* the name users know, e.g. "DPM++ 2M Karras" */
    const char *class_name;   /* e.g. "DPMSolverMultistepScheduler" */
    const char *overrides;    /* JSON object text applied on top, or NULL */
} cdf_scheduler_alias;
size_t cdf_scheduler_class_names(const char *const **out);
size_t cdf_scheduler_aliases(const cdf_scheduler_alias **out);
/* Resolves a class name or alias (case-insensitive for aliases). */
const cdf_scheduler_alias *cdf_scheduler_resolve(const char *name);

#endif
