/* Plain reference twins of the fast kernels: obviously correct loops in
 * PyTorch's layouts, used only by the tests to check the fast kernels. */
#ifndef CDF_KERNELS_KERNELS_REF_H
#define CDF_KERNELS_KERNELS_REF_H

#include <stdint.h>

/* y[M,N] = x[M,K] @ w[N,K]^T + b (b may be NULL); double accumulation. */
void cdf_ref_linear(float *y, const float *x, const float *w, const float *b, int64_t M, int64_t K, int64_t N);
/* NHWC conv with weights [Cout, Cin, k, k], per-side padding. */
void cdf_ref_conv2d(float *y, const float *x, const float *w, const float *b, int64_t B, int64_t H, int64_t W,
                    int64_t Cin, int64_t Cout, int k, int stride, int pt, int pl, int pb, int pr);
/* Full softmax attention with the score matrix, dense [B, N, heads*D]. */
void cdf_ref_attention(float *out, const float *q, const float *k, const float *v, int64_t B, int64_t Nq,
                       int64_t Nk, int64_t heads, int64_t D, float scale, int causal);
void cdf_ref_group_norm(float *y, const float *x, const float *g, const float *b, int64_t B, int64_t HW,
                        int64_t C, int64_t G, float eps, int silu);
void cdf_ref_layer_norm(float *y, const float *x, const float *g, const float *b, int64_t M, int64_t C, float eps);

#endif
