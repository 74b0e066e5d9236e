/* cdiffusers — Stable Diffusion inference in C.
 *
 * This header is the whole public API. Conventions:
 *   - every public name starts with cdf_ / CDF_;
 *   - every fallible call returns a cdf_status; CDF_OK is 0;
 *   - handles keep the message of their last error (cdf_*_last_error);
 *     calls that have no handle yet take a cdf_error_buf to write it into;
 *   - whoever creates a handle frees it with the matching *_free function;
 *   - sizes are size_t / int64_t, never int.
 */
#ifndef CDIFFUSERS_H
#define CDIFFUSERS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cdf_status {
    CDF_OK = 0,
    CDF_ERR_INVALID_ARGUMENT = 1, /* a parameter is out of range or inconsistent */
    CDF_ERR_IO = 2,               /* a file could not be opened, read or written */
    CDF_ERR_FORMAT = 3,           /* a file is malformed (JSON, safetensors, tokenizer) */
    CDF_ERR_UNSUPPORTED = 4,      /* valid input that this version does not implement */
    CDF_ERR_OUT_OF_MEMORY = 5,    /* an allocation failed or would exceed a limit */
    CDF_ERR_CANCELLED = 6,        /* the progress callback asked to stop */
    CDF_ERR_INTERNAL = 7          /* a bug or a backend failure */
} cdf_status;

/* Short, static description of a status code ("invalid argument", ...). */
const char *cdf_status_string(cdf_status status);

/* Library version, "MAJOR.MINOR.PATCH". */
const char *cdf_version(void);

/* Element types of tensors in files and in memory. */
typedef enum cdf_dtype {
    CDF_DTYPE_F32 = 0,
    CDF_DTYPE_F16 = 1,
    CDF_DTYPE_BF16 = 2,
    CDF_DTYPE_F64 = 3,
    CDF_DTYPE_I64 = 4,
    CDF_DTYPE_I32 = 5,
    CDF_DTYPE_U8 = 6
} cdf_dtype;

/* Caller-owned buffer for the message of a call that has no handle. */
typedef struct cdf_error_buf {
    char message[1024];
} cdf_error_buf;


/* ======================================================================
 * Models and pipelines
 *
 *   cdf_model     a loaded diffusers model folder: tokenizer, text encoder,
 *                 UNet, VAE and the folder's scheduler config. Immutable
 *                 after loading; may be shared by several pipelines/threads.
 *   cdf_pipeline  per-run state on top of a model: scheduler choice, thread
 *                 count, scratch memory, last error. One thread at a time.
 *
 * Usage:
 *   cdf_load_params lp;  cdf_load_params_default(&lp);  lp.model_dir = "sd15";
 *   cdf_model *m;        cdf_model_load(&m, &lp, &ebuf);
 *   cdf_pipeline *p;     cdf_pipeline_create(&p, m, NULL, &ebuf);
 *   cdf_generate_params g; cdf_generate_params_default(&g);
 *   const char *prompt = "a photo of an astronaut";
 *   g.prompts = &prompt; g.n_prompts = 1;
 *   cdf_images *im;      cdf_pipeline_generate(p, &g, &im);
 *   cdf_images_write_png(im, 0, "out.png", &ebuf);  cdf_images_free(im);
 *   cdf_pipeline_free(p); cdf_model_free(m);
 * ====================================================================== */

typedef struct cdf_model cdf_model;
typedef struct cdf_pipeline cdf_pipeline;

/* Arithmetic of the matrix products. */
typedef enum cdf_compute_type {
    CDF_COMPUTE_TYPE_F32 = 0,  /* float32 everywhere (reference parity) */
    CDF_COMPUTE_TYPE_BF16 = 1  /* bfloat16 operands, float32 accumulation, norms and softmax */
} cdf_compute_type;

/* When the components' weights are in memory. */
typedef enum cdf_memory_mode {
    CDF_MEMORY_RESIDENT = 0, /* all loaded by cdf_model_load and kept: fastest for many generations */
    CDF_MEMORY_STAGED = 1,   /* each generation loads the text encoder, the UNet and the VAE in turn
                                and frees each after its stage: peak memory = the largest one */
    CDF_MEMORY_LOW = 2       /* staged, and no packed copy of the weights at all: each layer packs
                                its weights from the (mmapped) file when it runs and drops them
                                after; slower, for machines with little memory */
} cdf_memory_mode;

typedef struct cdf_load_params {
    const char *model_dir;      /* diffusers folder with model_index.json (required) */
    const char *variant;        /* NULL, or e.g. "fp16": read *.fp16.safetensors */
    cdf_dtype weight_dtype;     /* in-memory weights: CDF_DTYPE_F32 (default), F16 or BF16 */
    cdf_compute_type compute;   /* default CDF_COMPUTE_TYPE_F32 */
    const char *vae_dir;        /* NULL, or a VAE folder that replaces the model's vae/ */
    cdf_memory_mode memory;     /* default CDF_MEMORY_RESIDENT */
} cdf_load_params;
void cdf_load_params_default(cdf_load_params *p);

/* Loads every component the model folder names. On failure *out is NULL and
 * err (may be NULL) receives a message naming the file and the field. */
cdf_status cdf_model_load(cdf_model **out, const cdf_load_params *p, cdf_error_buf *err);
void cdf_model_free(cdf_model *m);

/* Facts about a loaded model. */
typedef struct cdf_model_info {
    int64_t default_height, default_width; /* unet sample_size x VAE scale factor */
    int64_t vae_scale_factor;              /* 8 for SD */
    int64_t latent_channels;
    int64_t max_tokens;                    /* 77 */
    const char *scheduler_class;           /* the folder's scheduler class */
    const char *name;                      /* folder name, for image metadata */
} cdf_model_info;
void cdf_model_get_info(const cdf_model *m, cdf_model_info *info);

typedef struct cdf_pipeline_params {
    int threads;                /* <= 0: all cores */
    const char *scheduler;      /* NULL: the model's; else a class name or alias */
    const char *scheduler_config; /* NULL, or a JSON object of overrides ({"use_karras_sigmas": true}) */
} cdf_pipeline_params;
void cdf_pipeline_params_default(cdf_pipeline_params *p);

/* params may be NULL (defaults). */
cdf_status cdf_pipeline_create(cdf_pipeline **out, const cdf_model *m, const cdf_pipeline_params *params,
                               cdf_error_buf *err);
void cdf_pipeline_free(cdf_pipeline *p);
/* Message of the last failed call on p ("" if none). Valid until the next call. */
const char *cdf_pipeline_last_error(const cdf_pipeline *p);

/* Swaps the scheduler with diffusers' from_config semantics: the new class
 * reads the keys it knows from the model's scheduler config, its own defaults
 * fill the rest, then `config_json` (may be NULL) overrides. */
cdf_status cdf_pipeline_set_scheduler(cdf_pipeline *p, const char *name, const char *config_json);
/* Class name and effective config (JSON) of the current scheduler. */
const char *cdf_pipeline_scheduler_class(const cdf_pipeline *p);
const char *cdf_pipeline_scheduler_config(const cdf_pipeline *p);

/* Progress report; return non-zero from the callback to cancel the run
 * (cdf_pipeline_generate then returns CDF_ERR_CANCELLED). */
typedef struct cdf_progress {
    const char *stage;    /* "text_encoder", "denoise", "vae_decode" */
    int step, total;      /* denoise: 1..total after each step */
    double elapsed;       /* seconds since the stage began */
} cdf_progress;
typedef int (*cdf_progress_fn)(void *user_data, const cdf_progress *progress);

typedef struct cdf_generate_params {
    const char *const *prompts;          /* n_prompts UTF-8 strings (required, >= 1) */
    size_t n_prompts;
    const char *const *negative_prompts; /* NULL, or 1 (for all), or n_prompts strings */
    size_t n_negative_prompts;
    size_t num_images_per_prompt;        /* default 1 */
    int64_t height, width;               /* 0: the model's default; multiples of vae_scale_factor */
    int num_inference_steps;             /* default 50 */
    double guidance_scale;               /* default 7.5; <= 1 disables classifier-free guidance */
    int clip_skip;                       /* 0 (default): last layer; k: k layers before the last */
    /* Seeds: n_seeds == 1: one torch.Generator('cpu').manual_seed(seed) for
     * the whole batch; n_seeds == batch: one generator per image;
     * n_seeds == 0: a random seed is chosen (see cdf_images.seeds). */
    const uint64_t *seeds;
    size_t n_seeds;
    const float *latents;                /* NULL, or [batch, C, h, w] initial latents */
    int vae_tiling;                      /* decode tile by tile with blended seams (diffusers' enable_vae_tiling):
                                            memory bounded by one tile, for large images */
    int vae_slicing;                     /* decode the batch one image at a time */
    int64_t attention_slice;             /* query rows per attention tile; 0: automatic (128) */
    cdf_progress_fn progress;
    void *progress_user_data;
} cdf_generate_params;
void cdf_generate_params_default(cdf_generate_params *p);

/* Generated images, owned by the caller (cdf_images_free). */
typedef struct cdf_images {
    size_t count;
    int64_t height, width;      /* channels: 3 (RGB) */
    float *pixels;              /* [count, height, width, 3] in [0, 1] (output_type="np") */
    uint8_t *rgb8;              /* [count, height, width, 3]: round(255 * pixels) */
    uint64_t *seeds;            /* [count] seed of each image's generator (shared seed: all equal) */
    size_t *prompt_index;       /* [count] which prompt each image belongs to */
    char **parameters;          /* [count] A1111-style generation parameters (PNG "parameters" text) */
    char *metadata_json;        /* all settings incl. the exact scheduler class and config */
} cdf_images;
void cdf_images_free(cdf_images *im);

cdf_status cdf_pipeline_generate(cdf_pipeline *p, const cdf_generate_params *params, cdf_images **out);

/* Writes image i as PNG with its generation parameters (A1111 "parameters"
 * text chunk plus a "cdiffusers" chunk with metadata_json), atomically: on
 * failure no file is left at path. */
cdf_status cdf_images_write_png(const cdf_images *im, size_t i, const char *path, cdf_error_buf *err);
/* Writes all images as one rows x cols grid (as diffusers' make_image_grid:
 * image i at row i / cols, column i % cols); rows * cols must equal count. */
cdf_status cdf_images_write_grid(const cdf_images *im, size_t rows, size_t cols, const char *path,
                                 cdf_error_buf *err);

/* ---- single components (for tools, tests and custom loops) ---- */

/* ids[max_tokens] for one prompt (padded, truncated, as CLIPTokenizer). */
cdf_status cdf_pipeline_tokenize(cdf_pipeline *p, const char *prompt, int64_t *ids, size_t max_len);
/* Text encoder on ids[B, L]; outputs (any may be NULL): last_hidden [B,L,D]
 * (clip_skip applied), pooled [B,D], penultimate [B,L,D] (before final norm). */
cdf_status cdf_pipeline_encode_tokens(cdf_pipeline *p, const int64_t *ids, int64_t B, int64_t L, int clip_skip,
                                      float *last_hidden, float *pooled, float *penultimate);
int64_t cdf_model_text_hidden_size(const cdf_model *m);
/* UNet: out[B,C,h,w] = unet(sample[B,C,h,w], timesteps[nt] (nt 1 or B), ctx[B,L,D]). */
cdf_status cdf_pipeline_unet(cdf_pipeline *p, const float *sample, int64_t B, int64_t h, int64_t w,
                             const float *timesteps, int64_t nt, const float *ctx, int64_t L, float *out);
/* VAE: image[B,3,h*f,w*f] = decode(latents / scaling_factor). */
cdf_status cdf_pipeline_vae_decode(cdf_pipeline *p, const float *latents, int64_t B, int64_t h, int64_t w,
                                   float *image);
/* VAE encoder: mean and std [B, C, H/f, W/f] of image[B,3,H,W] in [-1,1]. */
cdf_status cdf_pipeline_vae_encode(cdf_pipeline *p, const float *image, int64_t B, int64_t H, int64_t W,
                                   float *mean, float *std);

/* Scheduler names: diffusers class names and the aliases users know. */
size_t cdf_scheduler_count(void);
/* i-th entry: alias (or class name), display name, class name. */
void cdf_scheduler_entry(size_t i, const char **alias, const char **display, const char **class_name);

#ifdef __cplusplus
}
#endif
#endif
