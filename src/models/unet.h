/* UNet2DConditionModel (diffusers 0.26.3, SD 1.x / 2.x family), built from
 * unet/config.json. Configs outside that family (class/addition embeddings,
 * SDXL's text_time conditioning, ...) are refused with a message naming the key.
 *
 *   sample [B, C, h, w] (NCHW, as the pipeline holds latents), timesteps (one
 *   or one per sample), encoder_hidden_states [B, L, D] -> noise prediction
 *   [B, out_channels, h, w]. */
#ifndef CDF_MODELS_UNET_H
#define CDF_MODELS_UNET_H

#include "io/json.h"
#include "kernels/kernels.h"

#define CDF_UNET_MAX_BLOCKS 8

typedef struct cdf_unet_config {
    int64_t sample_size, in_channels, out_channels;
    int center_input_sample, flip_sin_to_cos;
    double freq_shift;
    int nblocks;                                   /* len(block_out_channels) */
    int64_t block_out[CDF_UNET_MAX_BLOCKS];
    int down_cross[CDF_UNET_MAX_BLOCKS];           /* CrossAttnDownBlock2D vs DownBlock2D */
    int up_cross[CDF_UNET_MAX_BLOCKS];             /* CrossAttnUpBlock2D vs UpBlock2D */
    int64_t layers_per_block[CDF_UNET_MAX_BLOCKS];
    int64_t heads[CDF_UNET_MAX_BLOCKS];            /* attention heads per down block */
    int64_t tlayers[CDF_UNET_MAX_BLOCKS];          /* transformer_layers_per_block */
    int downsample_padding;
    double mid_block_scale_factor, resnet_out_scale_factor;
    int norm_num_groups;
    double norm_eps;
    int64_t cross_attention_dim;
    int use_linear_projection, upcast_attention, mid_block_cross;
    int64_t time_embed_dim;
    int conv_in_kernel, conv_out_kernel;
} cdf_unet_config;

typedef struct cdf_unet cdf_unet;

/* unet/config.json -> config (diffusers' defaults; other families refused). */
cdf_status cdf_unet_read_config(cdf_unet_config *c, const cdf_json *j, cdf_err *err);

cdf_status cdf_unet_load(cdf_unet **out, const cdf_backend *be, const char *dir, const char *variant,
                         const cdf_weight_opts *o, cdf_err *err);
/* The same from a parsed config.json and an open weights source. */
cdf_status cdf_unet_create(cdf_unet **out, const cdf_backend *be, const cdf_json *config, const cdf_st_file *weights,
                           const cdf_weight_opts *o, cdf_err *err);
void cdf_unet_free(cdf_unet *u);
const cdf_unet_config *cdf_unet_get_config(const cdf_unet *u);

/* Optional taps on inner activations (for parity tests): called with the
 * module name ("time_proj", "conv_in", "down_blocks.0", ...) and the tensor
 * channels-last, [B, H, W, C] (embeddings: H = W = 1). */
typedef void (*cdf_unet_tap)(void *user, const char *name, const float *nhwc, int64_t B, int64_t C, int64_t H,
                             int64_t W);

/* out[B, out_channels, h, w]; timesteps[nt] with nt == 1 (broadcast) or B;
 * ctx [B, L, cross_attention_dim]. */
cdf_status cdf_unet_forward(cdf_exec *ex, const cdf_unet *u, float *out, const float *sample, int64_t B, int64_t h,
                            int64_t w, const float *timesteps, int64_t nt, const float *ctx, int64_t L,
                            cdf_unet_tap tap, void *tap_user, cdf_err *err);

#endif
