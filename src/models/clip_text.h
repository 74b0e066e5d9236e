/* CLIP text transformer (transformers' CLIPTextModel), built from
 * text_encoder/config.json.
 *
 *   ids [B, L] -> token + position embeddings -> layers x (LN, causal MHA,
 *   residual, LN, MLP, residual) -> final LayerNorm -> last_hidden_state
 *
 * The model is immutable after loading and can be shared between runs. */
#ifndef CDF_MODELS_CLIP_TEXT_H
#define CDF_MODELS_CLIP_TEXT_H

#include "io/json.h"
#include "kernels/kernels.h"

typedef struct cdf_clip_config {
    int64_t hidden, intermediate, heads, layers, max_positions, vocab;
    int act_gelu;        /* 0: quick_gelu (SD1), 1: gelu with erf (SD2) */
    float eps;
    int64_t eos_token_id; /* 2 means legacy argmax pooling (all SD checkpoints) */
} cdf_clip_config;

typedef struct cdf_clip_text cdf_clip_text;

/* dir is the component folder (config.json + model[.variant].safetensors). */
cdf_status cdf_clip_text_load(cdf_clip_text **out, const cdf_backend *be, const char *dir, const char *variant,
                              const cdf_weight_opts *o, cdf_err *err);
/* The same from a parsed config.json and an open weights source. */
cdf_status cdf_clip_text_create(cdf_clip_text **out, const cdf_backend *be, const cdf_json *config,
                                const cdf_st_file *weights, const cdf_weight_opts *o, cdf_err *err);
void cdf_clip_text_free(cdf_clip_text *m);
const cdf_clip_config *cdf_clip_text_config(const cdf_clip_text *m);
/* config.json -> cdf_clip_config, validated (no weights needed; the fuzzers call it). */
cdf_status cdf_clip_read_config(cdf_clip_config *c, const cdf_json *j, cdf_err *err);

/* Outputs; any pointer may be NULL.
 *   last_hidden   [B, L, D] final_layer_norm(hidden_states[-(skip+1)])
 *                 (skip = 0: the model's last_hidden_state; skip = k: the
 *                 prompt embeddings of diffusers' clip_skip=k)
 *   pooled        [B, D]    last_hidden at the pooling position of each row
 *   penultimate   [B, L, D] hidden_states[-2], before the final norm
 */
typedef struct cdf_clip_outputs {
    float *last_hidden;
    float *pooled;
    float *penultimate;
} cdf_clip_outputs;

cdf_status cdf_clip_text_forward(cdf_exec *ex, const cdf_clip_text *m, const int64_t *ids, int64_t B, int64_t L,
                                 int skip, const cdf_clip_outputs *out, cdf_err *err);

#endif
