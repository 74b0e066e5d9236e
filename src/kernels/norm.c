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

#include "kernels/kernels.h"
#include "kernels/simd_math.h"

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
    const int64_t C = n->c, G = n->groups, cg = C / G;
    const int64_t nchunks = (HW + GN_CHUNK - 1) / GN_CHUNK;
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    /* Partial sums per (b, chunk, channel) then folded per group. */
    double *part = cdf_arena_alloc(ar, (size_t)(B * nchunks * C) * sizeof(double), err);
    float *scale = cdf_arena_f32(ar, (size_t)(B * C), err);
    float *shift = cdf_arena_f32(ar, (size_t)(B * C), err);
    double *mean = cdf_arena_alloc(ar, (size_t)(B * G) * sizeof(double), err);
    if (!part || !scale || !shift || !mean) {
        cdf_arena_reset(ar, mark);
        return CDF_ERR_OUT_OF_MEMORY;
    }
    const double cnt = (double)(HW * cg);
    for (int pass = 0; pass < 2; pass++) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = 0; k < nchunks; k++) {
                double *acc = part + (b * nchunks + k) * C;
                for (int64_t c = 0; c < C; c++) acc[c] = 0;
                int64_t r1 = (k + 1) * GN_CHUNK < HW ? (k + 1) * GN_CHUNK : HW;
                for (int64_t r = k * GN_CHUNK; r < r1; r++) {
                    const float *xr = x + (b * HW + r) * C;
                    if (pass == 0) {
                        for (int64_t c = 0; c < C; c++) acc[c] += xr[c];
                    } else {
                        const double *mb = mean + b * G;
                        for (int64_t c = 0; c < C; c++) {
                            double d = xr[c] - mb[c / cg];
                            acc[c] += d * d;
                        }
                    }
                }
            }
        for (int64_t b = 0; b < B; b++)
            for (int64_t g = 0; g < G; g++) {
                double s = 0;
                for (int64_t k = 0; k < nchunks; k++)
                    for (int64_t c = g * cg; c < (g + 1) * cg; c++) s += part[(b * nchunks + k) * C + c];
                if (pass == 0) {
                    mean[b * G + g] = s / cnt;
                } else {
                    float rstd = (float)(1.0 / sqrt(s / cnt + (double)n->eps));
                    for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
                        scale[b * C + c] = rstd * n->gamma[c];
                        shift[b * C + c] = n->beta[c] - (float)mean[b * G + g] * scale[b * C + c];
                    }
                }
            }
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < HW; r++) {
            const float *xr = x + (b * HW + r) * C;
            float *yr = y + (b * HW + r) * C;
            const float *sc = scale + b * C, *sh = shift + b * C;
            if (silu) {
                for (int64_t c = 0; c < C; c++) {
                    float v = xr[c] * sc[c] + sh[c];
                    yr[c] = v / (1.0f + cdf_expf(-v));
                }
            } else {
                for (int64_t c = 0; c < C; c++) yr[c] = xr[c] * sc[c] + sh[c];
            }
        }
    cdf_arena_reset(ar, mark);
    return CDF_OK;
}

void cdf_layer_norm(cdf_exec *ex, const cdf_norm *n, float *y, const float *x, int64_t M) {
    (void)ex;
    const int64_t C = n->c;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; i++) {
        const float *xr = x + i * C;
        float *yr = y + i * C;
        double s = 0, ss = 0;
        for (int64_t c = 0; c < C; c++) s += xr[c];
        double mean = s / (double)C;
        for (int64_t c = 0; c < C; c++) {
            double d = xr[c] - mean;
            ss += d * d;
        }
        float rstd = (float)(1.0 / sqrt(ss / (double)C + (double)n->eps));
        float m = (float)mean;
        for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - m) * rstd * n->gamma[c] + n->beta[c];
    }
}
