/* Element-wise activations, residual adds, resampling and layout changes. */
#include <stdlib.h>
#include <string.h>

#include "kernels/backend_internal.h"
#include "kernels/simd.h"

void cdf_silu(cdf_exec *ex, float *y, const float *x, size_t n) {
    PROF_BEGIN(ex);
    const size_t chunk = 4096;
#pragma omp parallel for schedule(static) if(n >= CDF_PAR_MIN)
    for (size_t i = 0; i < n; i += chunk) cdf_row_silu(y + i, x + i, n - i < chunk ? n - i : chunk);
    PROF_END(ex, CDF_PROF_ELEMENTWISE);
}

void cdf_gelu_erf(cdf_exec *ex, float *y, const float *x, size_t n) {
    PROF_BEGIN(ex);
#pragma omp parallel for schedule(static) if(n >= CDF_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + cdf_erff(x[i] * 0.70710678118654752f));
    PROF_END(ex, CDF_PROF_ELEMENTWISE);
}

void cdf_quick_gelu(cdf_exec *ex, float *y, const float *x, size_t n) {
    PROF_BEGIN(ex);
#pragma omp parallel for schedule(static) if(n >= CDF_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * cdf_sigmoidf(1.702f * x[i]);
    PROF_END(ex, CDF_PROF_ELEMENTWISE);
}

void cdf_geglu(cdf_exec *ex, float *y, size_t ldy, const float *h, int64_t M, int64_t F) {
    PROF_BEGIN(ex);
#pragma omp parallel for schedule(static) if((size_t)(M * F) >= CDF_PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        const float *a = h + i * 2 * F;
        cdf_row_geglu(y + (size_t)i * ldy, a, a + F, (size_t)F);
    }
    PROF_END(ex, CDF_PROF_ELEMENTWISE);
}

void cdf_geglu_bf16(cdf_exec *ex, uint16_t *y, size_t ldy, const float *h, int64_t M, int64_t F) {
    PROF_BEGIN(ex);
#pragma omp parallel for schedule(static) if((size_t)(M * F) >= CDF_PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        const float *a = h + i * 2 * F;
        uint16_t *o = y + (size_t)i * ldy;
        float tmp[256];
        /* in chunks: every chunk is read before its (shorter) bf16 result is written */
        for (int64_t j = 0; j < F; j += 256) {
            const int64_t n = F - j < 256 ? F - j : 256;
            cdf_row_geglu(tmp, a + j, a + F + j, (size_t)n);
            cdf_row_to_bf16(o + j, tmp, (size_t)n);
        }
    }
    PROF_END(ex, CDF_PROF_ELEMENTWISE);
}

void cdf_add_scaled(cdf_exec *ex, float *y, const float *a, const float *b, size_t n, float scale) {
    PROF_BEGIN(ex);
    if (scale == 1.0f) {
#pragma omp parallel for schedule(static) if(n >= CDF_PAR_MIN)
        for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    } else {
#pragma omp parallel for schedule(static) if(n >= CDF_PAR_MIN)
        for (size_t i = 0; i < n; i++) y[i] = (a[i] + b[i]) / scale;
    }
    PROF_END(ex, CDF_PROF_ELEMENTWISE);
}

void cdf_add_channel_bias(cdf_exec *ex, float *y, const float *v, int64_t B, int64_t HW, int64_t C) {
    PROF_BEGIN(ex);
#pragma omp parallel for collapse(2) schedule(static) if((size_t)(B * HW * C) >= CDF_PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < HW; r++) {
            float *yr = y + (b * HW + r) * C;
            const float *vb = v + b * C;
            for (int64_t c = 0; c < C; c++) yr[c] += vb[c];
        }
    PROF_END(ex, CDF_PROF_ELEMENTWISE);
}

void cdf_upsample_nearest(cdf_exec *ex, float *y, const float *x, int64_t B, int64_t H, int64_t W, int64_t C,
                          int64_t Ho, int64_t Wo) {
    PROF_BEGIN(ex);
    /* PyTorch (upsample_nearest2d, no scale given): scale = in / out as
     * float, src = min((int)(dst * scale), in - 1). */
    const float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
#pragma omp parallel for collapse(2) schedule(static) if((size_t)(B * Ho * Wo * C) >= CDF_PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t oy = 0; oy < Ho; oy++) {
            int64_t iy = (int64_t)((float)oy * sh);
            if (iy > H - 1) iy = H - 1;
            for (int64_t ox = 0; ox < Wo; ox++) {
                int64_t ix = (int64_t)((float)ox * sw);
                if (ix > W - 1) ix = W - 1;
                memcpy(y + ((b * Ho + oy) * Wo + ox) * C, x + ((b * H + iy) * W + ix) * C, (size_t)C * sizeof(float));
            }
        }
    PROF_END(ex, CDF_PROF_ELEMENTWISE);
}

void cdf_concat_channels(cdf_exec *ex, float *y, const float *a, int64_t Ca, const float *b, int64_t Cb,
                         int64_t rows) {
    PROF_BEGIN(ex);
#pragma omp parallel for schedule(static) if((size_t)(rows * (Ca + Cb)) >= CDF_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        memcpy(y + r * (Ca + Cb), a + r * Ca, (size_t)Ca * sizeof(float));
        memcpy(y + r * (Ca + Cb) + Ca, b + r * Cb, (size_t)Cb * sizeof(float));
    }
    PROF_END(ex, CDF_PROF_ELEMENTWISE);
}

void cdf_nchw_to_nhwc(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < H * W; p++) y[(b * H * W + p) * C + c] = x[(b * C + c) * H * W + p];
}

void cdf_nhwc_to_nchw(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < H * W; p++) y[(b * C + c) * H * W + p] = x[(b * H * W + p) * C + c];
}

cdf_status cdf_load_f32(const cdf_st_file *f, const char *name, int ndim, const int64_t *shape, float **out,
                        cdf_err *err) {
    *out = NULL;
    const cdf_st_tensor *t;
    cdf_status st = cdf_st_expect(f, name, ndim, shape, &t, err);
    if (st) return st;
    float *p = cdf_malloc(t->numel ? t->numel : 1, sizeof(float), err);
    if (!p) return CDF_ERR_OUT_OF_MEMORY;
    cdf_st_read_f32(t, p);
    cdf_st_release_pages(f, t);
    *out = p;
    return CDF_OK;
}
