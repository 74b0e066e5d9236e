/* GroupNorm (+SiLU) and LayerNorm on channels-last float32 data.
 *
 * Statistics are accumulated in double over fixed-size row chunks and the
 * chunks are combined in a fixed order, so the result does not depend on the
 * number of threads. Two passes (mean, then centred variance), as the
 * biased-variance definition asks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend_internal.h"
#include <omp.h>

#include "kernels/simd.h"

#define GN_CHUNK 64 /* rows per partial sum */

cdf_status cdf_norm_load(cdf_norm *n, const cdf_st_file *f, const char *prefix, int64_t c, int groups, float eps,
                         cdf_err *err) {
    memset(n, 0, sizeof *n);
    n->c = c;
    n->groups = groups;
    n->eps = eps;
    if (groups > 0 && c % groups != 0)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: %lld channels are not divisible into %d groups", prefix,
                        (long long)c, groups);
    char name[512];
    const int64_t shape[1] = {c};
    snprintf(name, sizeof name, "%s.weight", prefix);
    cdf_status st = cdf_load_f32(f, name, 1, shape, &n->gamma, err);
    if (st) return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if ((st = cdf_load_f32(f, name, 1, shape, &n->beta, err))) cdf_norm_free(n);
    return st;
}

void cdf_norm_free(cdf_norm *n) {
    free(n->gamma);
    free(n->beta);
    memset(n, 0, sizeof *n);
}

cdf_status cdf_group_norm(cdf_exec *ex, const cdf_norm *n, float *y, const float *x, int64_t B, int64_t HW,
                          int silu, cdf_err *err) {
    return cdf_group_norm_x(ex, n, y, 0, x, B, HW, silu, err);
}

cdf_status cdf_group_norm_x(cdf_exec *ex, const cdf_norm *n, void *y, int y_bf16, const float *x, int64_t B,
                            int64_t HW, int silu, cdf_err *err) {
    PROF_BEGIN(ex);
    const int64_t C = n->c, G = n->groups, cg = C / G;
    const int64_t nchunks = (HW + GN_CHUNK - 1) / GN_CHUNK;
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    /* Per (b, chunk, channel) partial sums, float within a chunk of at most
     * 64 rows, double across chunks. */
    double *part = cdf_arena_alloc(ar, (size_t)(B * nchunks * C) * sizeof(double), err);
    float *scale = cdf_arena_f32(ar, (size_t)(B * C), err);
    float *shift = cdf_arena_f32(ar, (size_t)(B * C), err);
    float *meanc = cdf_arena_f32(ar, (size_t)(B * C), err);
    float *acc = cdf_arena_f32(ar, (size_t)(cdf_exec_threads(ex) * C), err);
    double *mean = cdf_arena_alloc(ar, (size_t)(B * G) * sizeof(double), err);
    if (!part || !scale || !shift || !meanc || !acc || !mean) {
        cdf_arena_reset(ar, mark);
        return CDF_ERR_OUT_OF_MEMORY;
    }
    const double cnt = (double)(HW * cg);
    const int nt = cdf_exec_threads(ex); /* acc has one row per thread */
    for (int pass = 0; pass < 2; pass++) {
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if((size_t)(B * HW * C) >= CDF_PAR_MIN)
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = 0; k < nchunks; k++) {
                float *a = acc + (int64_t)omp_get_thread_num() * C;
                for (int64_t c = 0; c < C; c++) a[c] = 0.0f;
                const int64_t r1 = (k + 1) * GN_CHUNK < HW ? (k + 1) * GN_CHUNK : HW;
                const float *mc = meanc + b * C;
                for (int64_t r = k * GN_CHUNK; r < r1; r++) {
                    const float *xr = x + (b * HW + r) * C;
                    if (pass == 0) {
                        for (int64_t c = 0; c < C; c++) a[c] += xr[c];
                    } else {
                        for (int64_t c = 0; c < C; c++) {
                            const float d = xr[c] - mc[c];
                            a[c] += d * d;
                        }
                    }
                }
                double *pp = part + (b * nchunks + k) * C;
                for (int64_t c = 0; c < C; c++) pp[c] = a[c];
            }
        for (int64_t b = 0; b < B; b++)
            for (int64_t g = 0; g < G; g++) {
                double s = 0;
                for (int64_t k = 0; k < nchunks; k++)
                    for (int64_t c = g * cg; c < (g + 1) * cg; c++) s += part[(b * nchunks + k) * C + c];
                if (pass == 0) {
                    mean[b * G + g] = s / cnt;
                    for (int64_t c = g * cg; c < (g + 1) * cg; c++) meanc[b * C + c] = (float)(s / cnt);
                } else {
                    float rstd = (float)(1.0 / sqrt(s / cnt + (double)n->eps));
                    for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
                        scale[b * C + c] = rstd * n->gamma[c];
                        shift[b * C + c] = n->beta[c] - (float)mean[b * G + g] * scale[b * C + c];
                    }
                }
            }
    }
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if((size_t)(B * HW * C) >= CDF_PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < HW; r++) {
            const size_t o = (size_t)((b * HW + r) * C);
            if (y_bf16) {
                float *t = acc + (int64_t)omp_get_thread_num() * C; /* one row of float32, then narrowed */
                cdf_row_affine(t, x + o, scale + b * C, shift + b * C, (size_t)C, silu);
                cdf_row_to_bf16((uint16_t *)y + o, t, (size_t)C);
            } else {
                cdf_row_affine((float *)y + o, x + o, scale + b * C, shift + b * C, (size_t)C, silu);
            }
        }
    cdf_arena_reset(ar, mark);
    PROF_END(ex, CDF_PROF_NORM);
    return CDF_OK;
}

void cdf_layer_norm(cdf_exec *ex, const cdf_norm *n, float *y, const float *x, int64_t M) {
    cdf_layer_norm_x(ex, n, y, 0, x, M);
}

void cdf_layer_norm_x(cdf_exec *ex, const cdf_norm *n, void *y, int y_bf16, const float *x, int64_t M) {
    PROF_BEGIN(ex);
    const int64_t C = n->c;
#pragma omp parallel for schedule(static) if((size_t)(M * C) >= CDF_PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        float tmp[4096];
        const float *xr = x + i * C;
        float *yr = (y_bf16 && C <= 4096) ? tmp : (float *)y + i * C;
        const float mean = cdf_row_sum(xr, (size_t)C) / (float)C;
        const float var = cdf_row_sqdev(xr, (size_t)C, mean) / (float)C;
        const float rstd = 1.0f / sqrtf(var + n->eps);
        for (int64_t c = 0; c < C; c++) {
            const float v = (xr[c] - mean) * rstd * n->gamma[c] + n->beta[c];
            if (y_bf16 && C > 4096) ((uint16_t *)y)[i * C + c] = cdf_f32_to_bf16(v);
            else yr[c] = v;
        }
        if (y_bf16 && C <= 4096) cdf_row_to_bf16((uint16_t *)y + i * C, tmp, (size_t)C);
    }
    PROF_END(ex, CDF_PROF_NORM);
}
