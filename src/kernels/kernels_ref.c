#include "kernels/kernels_ref.h"

#include <math.h>
#include <stdlib.h>

void cdf_ref_linear(float *y, const float *x, const float *w, const float *b, int64_t M, int64_t K, int64_t N) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = b ? b[j] : 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)x[i * K + k] * w[j * K + k];
            y[i * N + j] = (float)s;
        }
}

void cdf_ref_conv2d(float *y, const float *x, const float *w, const float *b, int64_t B, int64_t H, int64_t W,
                    int64_t Cin, int64_t Cout, int k, int stride, int pt, int pl, int pb, int pr) {
    int64_t Ho = (H + pt + pb - k) / stride + 1, Wo = (W + pl + pr - k) / stride + 1;
    for (int64_t n = 0; n < B; n++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++)
                for (int64_t co = 0; co < Cout; co++) {
                    double s = b[co];
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int64_t iy = oy * stride + ky - pt, ix = ox * stride + kx - pl;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            for (int64_t ci = 0; ci < Cin; ci++)
                                s += (double)x[((n * H + iy) * W + ix) * Cin + ci] * w[((co * Cin + ci) * k + ky) * k + kx];
                        }
                    y[((n * Ho + oy) * Wo + ox) * Cout + co] = (float)s;
                }
}

void cdf_ref_attention(float *out, const float *q, const float *k, const float *v, int64_t B, int64_t Nq,
                       int64_t Nk, int64_t heads, int64_t D, float scale, int causal) {
    const int64_t C = heads * D;
    double *p = malloc((size_t)Nk * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < Nq; i++) {
                double mx = -INFINITY, sum = 0;
                int64_t nk = causal ? (i + 1 < Nk ? i + 1 : Nk) : Nk;
                for (int64_t j = 0; j < nk; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < D; d++)
                        s += (double)q[(b * Nq + i) * C + h * D + d] * k[(b * Nk + j) * C + h * D + d];
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int64_t j = 0; j < nk; j++) sum += (p[j] = exp(p[j] - mx));
                for (int64_t d = 0; d < D; d++) {
                    double o = 0;
                    for (int64_t j = 0; j < nk; j++) o += p[j] * v[(b * Nk + j) * C + h * D + d];
                    out[(b * Nq + i) * C + h * D + d] = (float)(o / sum);
                }
            }
    free(p);
}

void cdf_ref_group_norm(float *y, const float *x, const float *g, const float *b, int64_t B, int64_t HW,
                        int64_t C, int64_t G, float eps, int silu) {
    const int64_t cg = C / G;
    for (int64_t n = 0; n < B; n++)
        for (int64_t gr = 0; gr < G; gr++) {
            double s = 0, ss = 0;
            for (int64_t r = 0; r < HW; r++)
                for (int64_t c = gr * cg; c < (gr + 1) * cg; c++) s += x[(n * HW + r) * C + c];
            double mean = s / (double)(HW * cg);
            for (int64_t r = 0; r < HW; r++)
                for (int64_t c = gr * cg; c < (gr + 1) * cg; c++) {
                    double d = x[(n * HW + r) * C + c] - mean;
                    ss += d * d;
                }
            double rstd = 1.0 / sqrt(ss / (double)(HW * cg) + eps);
            for (int64_t r = 0; r < HW; r++)
                for (int64_t c = gr * cg; c < (gr + 1) * cg; c++) {
                    double v = (x[(n * HW + r) * C + c] - mean) * rstd * g[c] + b[c];
                    if (silu) v = v / (1.0 + exp(-v));
                    y[(n * HW + r) * C + c] = (float)v;
                }
        }
}

void cdf_ref_layer_norm(float *y, const float *x, const float *g, const float *b, int64_t M, int64_t C, float eps) {
    for (int64_t i = 0; i < M; i++) {
        double s = 0, ss = 0;
        for (int64_t c = 0; c < C; c++) s += x[i * C + c];
        double mean = s / (double)C;
        for (int64_t c = 0; c < C; c++) ss += (x[i * C + c] - mean) * (x[i * C + c] - mean);
        double rstd = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t c = 0; c < C; c++) y[i * C + c] = (float)((x[i * C + c] - mean) * rstd * g[c] + b[c]);
    }
}
