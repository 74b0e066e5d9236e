/* AutoencoderKL (diffusers 0.26.3), built from vae/config.json: the decoder
 * (latents -> image) and the encoder (image -> diagonal Gaussian).
 * Works for a pipeline's vae/ folder and for a stand-alone VAE folder such
 * as stabilityai/sd-vae-ft-mse (config.json + diffusion_pytorch_model.safetensors). */
#ifndef CDF_MODELS_VAE_H
#define CDF_MODELS_VAE_H

#include "io/json.h"
#include "kernels/kernels.h"

#define CDF_VAE_MAX_BLOCKS 8

typedef struct cdf_vae_config {
    int64_t in_channels, out_channels, latent_channels, sample_size;
    int nblocks;
    int64_t block_out[CDF_VAE_MAX_BLOCKS];
    int64_t layers_per_block;
    int norm_num_groups;
    double scaling_factor;
    int use_quant_conv, use_post_quant_conv, mid_attention;
} cdf_vae_config;

typedef struct cdf_vae cdf_vae;

cdf_status cdf_vae_load(cdf_vae **out, const cdf_backend *be, const char *dir, const char *variant,
                        const cdf_weight_opts *o, cdf_err *err);
/* The same from a parsed config.json and an open weights source. */
cdf_status cdf_vae_create(cdf_vae **out, const cdf_backend *be, const cdf_json *config, const cdf_st_file *weights,
                          const cdf_weight_opts *o, cdf_err *err);
void cdf_vae_free(cdf_vae *v);
/* config.json -> cdf_vae_config, validated (no weights needed; the fuzzers call it). */
cdf_status cdf_vae_read_config(cdf_vae_config *c, const cdf_json *j, cdf_err *err);
const cdf_vae_config *cdf_vae_get_config(const cdf_vae *v);
/* Spatial factor between image and latents: 2^(len(block_out_channels)-1). */
int64_t cdf_vae_config_scale_factor(const cdf_vae_config *c);
int64_t cdf_vae_scale_factor(const cdf_vae *v);

/* image[B, out_channels, h*f, w*f] = decode(latents[B, latent, h, w] / scaling_factor) */
cdf_status cdf_vae_decode(cdf_exec *ex, const cdf_vae *v, float *image, const float *latents, int64_t B, int64_t h,
                          int64_t w, cdf_err *err);

/* Encoder: image[B, in_channels, H, W] in [-1, 1] -> mean, std, logvar
 * [B, latent, H/f, W/f] (logvar clamped to [-30, 20]); any output may be NULL. */
cdf_status cdf_vae_encode(cdf_exec *ex, const cdf_vae *v, float *mean, float *std, float *logvar, const float *image,
                          int64_t B, int64_t H, int64_t W, cdf_err *err);

/* The encoder's raw output moments [B, 2*latent, H/f, W/f] (after quant_conv),
 * and their split into the diagonal Gaussian (outputs may be NULL). */
cdf_status cdf_vae_encode_moments(cdf_exec *ex, const cdf_vae *v, float *moments, const float *image, int64_t B,
                                  int64_t H, int64_t W, cdf_err *err);
void cdf_vae_moments_to_dist(const float *moments, int64_t B, int64_t L, int64_t h, int64_t w, float *mean,
                             float *stdv, float *logvar);

/* Tiled decode/encode as diffusers' enable_vae_tiling: tiles of the config's
 * sample_size (latent tiles of sample_size / f) with 25% overlap, blended
 * linearly across the seams, so memory is bounded by one tile whatever the
 * image size. Used only when the input exceeds one tile (as diffusers). */
cdf_status cdf_vae_decode_tiled(cdf_exec *ex, const cdf_vae *v, float *image, const float *latents, int64_t B,
                                int64_t h, int64_t w, cdf_err *err);
cdf_status cdf_vae_encode_tiled(cdf_exec *ex, const cdf_vae *v, float *mean, float *stdv, float *logvar,
                                const float *image, int64_t B, int64_t H, int64_t W, cdf_err *err);

#endif
