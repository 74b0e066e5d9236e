/* Internals of the UNet (shared by unet.c and unet_config.c). */
#ifndef CDF_MODELS_UNET_INTERNAL_H
#define CDF_MODELS_UNET_INTERNAL_H

#include "io/json.h"
#include "models/blocks.h"
#include "models/unet.h"

#define CDF_UNET_MAX_LAYERS 16

typedef struct unet_down {
    int nres;
    cdf_resnet res[CDF_UNET_MAX_LAYERS];
    cdf_transformer2d attn[CDF_UNET_MAX_LAYERS];
    int has_attn, has_down;
    cdf_conv2d down;
} unet_down;

typedef struct unet_up {
    int nres;
    cdf_resnet res[CDF_UNET_MAX_LAYERS];
    int64_t skip_ch[CDF_UNET_MAX_LAYERS];
    cdf_transformer2d attn[CDF_UNET_MAX_LAYERS];
    int has_attn, has_up;
    cdf_conv2d up;
} unet_up;

struct cdf_unet {
    cdf_unet_config cfg;
    cdf_linear t_lin1, t_lin2;
    cdf_conv2d conv_in, conv_out;
    unet_down down[CDF_UNET_MAX_BLOCKS];
    cdf_resnet mid_res[2];
    cdf_transformer2d mid_attn;
    unet_up up[CDF_UNET_MAX_BLOCKS];
    cdf_norm norm_out;
    cdf_st_file *stream_src; /* streamed weights read from here (open while the model lives) */
};


#endif
