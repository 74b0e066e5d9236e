/* Building cdf_images from decoded VAE output (post-processing + metadata). */
#ifndef CDF_PIPELINE_IMAGES_INTERNAL_H
#define CDF_PIPELINE_IMAGES_INTERNAL_H

#include "cdiffusers.h"
#include "core/error.h"

typedef struct cdf_images_meta {
    const cdf_generate_params *g;
    const cdf_pipeline *p;
    int64_t height, width;
    const uint64_t *seeds; /* [count] */
} cdf_images_meta;

/* img[B, 3, H, W] in model space -> *out (pixels, uint8, parameters). */
cdf_status cdf_images_build(cdf_images **out, const float *img, size_t B, const cdf_images_meta *meta, cdf_err *err);

#endif
