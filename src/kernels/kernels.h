/* The compute kernels, the only layer that knows about oneDNN and SIMD.
 *
 * Layout: activations are float32, channels-last. An image batch is
 * [B, H, W, C] (NHWC) and a token batch is [B, N, C]; for a UNet feature map
 * the two are the same memory (N = H*W), so Transformer2DModel's reshapes
 * are free. Model code converts NCHW tensors at its boundaries only.
 *
 * Objects:
 *   cdf_backend   immutable, shared by all models and runs (oneDNN engine).
 *   cdf_exec      one per run/thread: stream, thread count, scratch arena,
 *                 cache of shape-specific primitives.
 *   cdf_linear,   prepared weights (packed once at load, in the storage
 *   cdf_conv2d    dtype chosen by the model: f32, f16 or bf16).
 *
 * Every fast kernel has a plain twin in kernels_ref.h used by the tests.
 * Results never depend on the thread count: work is split over independent
 * outputs, never over a reduction. */
#ifndef CDF_KERNELS_KERNELS_H
#define CDF_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "io/safetensors.h"

typedef struct cdf_backend cdf_backend;
typedef struct cdf_exec cdf_exec;

/* Arithmetic of the matrix products: float32, or bfloat16 operands with
 * float32 accumulation (norms, softmax and residuals stay float32). */
typedef enum cdf_compute { CDF_COMPUTE_F32 = 0, CDF_COMPUTE_BF16 = 1 } cdf_compute;

cdf_status cdf_backend_create(cdf_backend **out, cdf_err *err);
void cdf_backend_free(cdf_backend *be);

/* threads <= 0: all cores. */
cdf_status cdf_exec_create(cdf_exec **out, cdf_backend *be, int threads, cdf_err *err);
void cdf_exec_free(cdf_exec *ex);
int cdf_exec_threads(const cdf_exec *ex);
cdf_arena *cdf_exec_arena(cdf_exec *ex);
/* Makes the calling thread use ex's thread count (call before a forward). */
void cdf_exec_begin(cdf_exec *ex);
/* The same for a forward pass whose largest activation has `elements`
 * values: tiny passes (below 2^18) run on one thread, where waking a thread
 * team for every layer costs more than the layers (and, on a loaded
 * machine, far more). Results do not depend on the thread count. */
void cdf_exec_begin_sized(cdf_exec *ex, size_t elements);
/* Attention slicing: query rows per tile (0: the default, 128). Smaller
 * slices need less scratch (rows x 1024 scores per thread), at some speed. */
void cdf_exec_set_attention_slice(cdf_exec *ex, int64_t rows);

/* Whether bf16 attention uses the AMX tile kernel (default: when the CPU has
 * it) or oneDNN matmuls per tile; returns the resulting setting. */
int cdf_exec_use_amx(cdf_exec *ex, int enable);

/* Drops cached primitives (e.g. after a model is freed). */
void cdf_exec_clear_cache(cdf_exec *ex);
/* Floating-point operations of the matrix products (convolutions, linear
 * layers, attention) run on ex since it was created or last reset; for
 * benchmarks. */
uint64_t cdf_exec_flops(const cdf_exec *ex);
void cdf_exec_reset_flops(cdf_exec *ex);
/* Time spent per kernel family (benchmarks): enable, then read seconds. */
typedef enum cdf_prof_kind {
    CDF_PROF_CONV, CDF_PROF_LINEAR, CDF_PROF_ATTENTION, CDF_PROF_NORM, CDF_PROF_ELEMENTWISE, CDF_PROF_CONVERT,
    CDF_PROF_COUNT
} cdf_prof_kind;
void cdf_exec_profile(cdf_exec *ex, int enable);
double cdf_exec_profile_seconds(const cdf_exec *ex, cdf_prof_kind kind);
uint64_t cdf_exec_profile_flops(const cdf_exec *ex, cdf_prof_kind kind);
const char *cdf_prof_name(cdf_prof_kind kind);

/* GFLOP/s of the GEMM library on an N x N x N product with operands already
 * in the compute type (best of `runs`); the yardstick of the benchmarks. */
double cdf_gemm_benchmark(cdf_exec *ex, cdf_compute c, int64_t N, int runs);

/* How a model's weights are kept in memory and used. */
typedef struct cdf_weight_opts {
    cdf_dtype storage;   /* CDF_DTYPE_F32, F16 or BF16 */
    cdf_compute compute;
    int stream;          /* low memory: keep no packed copy; pack from the
                            (mmapped) file at every use and drop the file's
                            pages afterwards. The file must stay open. */
    /* The activations the layer will mostly see (batch, square side): the
     * packed layout is chosen for them (0: batch 1, side 32). oneDNN's best
     * weight layout depends on the shape; a layout chosen for another one
     * can halve its speed. */
    int64_t rep_batch, rep_hw;
} cdf_weight_opts;

/* ---- linear: y[M, out] = x[M, in] @ W^T + b (W as PyTorch stores it: [out, in]) ---- */
typedef struct cdf_linear {
    int64_t in, out;
    struct cdf_packed *w;  /* owned */
    float *bias;           /* [out] or NULL, owned */
} cdf_linear;

/* Loads "<prefix>.weight" ([out, in]) and, if has_bias, "<prefix>.bias".
 * Several prefixes are concatenated along `out` (fused q/k/v projections). */
cdf_status cdf_linear_load(cdf_linear *l, const cdf_backend *be, const cdf_weight_opts *o, const cdf_st_file *f,
                           const char *const *prefixes, int nprefix, int64_t in, int64_t out_each, int has_bias,
                           cdf_err *err);
void cdf_linear_free(cdf_linear *l);
/* Row strides ldx >= in, ldy >= out (elements). */
cdf_status cdf_linear_forward(cdf_exec *ex, const cdf_linear *l, float *y, size_t ldy, const float *x, size_t ldx,
                              int64_t M, cdf_err *err);
/* The same with x either float32 or, when the layer computes in bf16,
 * already bf16 (x_bf16 = 1): producers that write bf16 save a conversion. */
cdf_status cdf_linear_forward_x(cdf_exec *ex, const cdf_linear *l, float *y, size_t ldy, const void *x, int x_bf16,
                                size_t ldx, int64_t M, cdf_err *err);
/* 1 when the layer's products take bf16 operands. */
int cdf_linear_is_bf16(const cdf_linear *l);

/* ---- conv2d on NHWC: y[B, Ho, Wo, Cout] = conv(x[B, H, W, Cin]) + b ----
 * Padding is given per side (top, left, bottom, right) so Downsample2D's
 * asymmetric (0, 1, 0, 1) pad needs no copy. */
typedef struct cdf_conv2d {
    int64_t cin, cout, kh, kw;
    int stride;
    int pad_t, pad_l, pad_b, pad_r;
    struct cdf_packed *w;  /* owned */
    float *bias;           /* [cout], owned */
} cdf_conv2d;

cdf_status cdf_conv2d_load(cdf_conv2d *c, const cdf_backend *be, const cdf_weight_opts *o, const cdf_st_file *f,
                           const char *prefix, int64_t cin, int64_t cout, int k, int stride, int pad_t, int pad_l,
                           int pad_b, int pad_r, cdf_err *err);
void cdf_conv2d_free(cdf_conv2d *c);
void cdf_conv2d_out_size(const cdf_conv2d *c, int64_t h, int64_t w, int64_t *ho, int64_t *wo);
/* If accumulate, y += conv(x) (y holds e.g. the residual), else y = conv(x). */
cdf_status cdf_conv2d_forward(cdf_exec *ex, const cdf_conv2d *c, float *y, const float *x, int64_t B, int64_t H,
                              int64_t W, int accumulate, cdf_err *err);
cdf_status cdf_conv2d_forward_x(cdf_exec *ex, const cdf_conv2d *c, float *y, const void *x, int x_bf16, int64_t B,
                                int64_t H, int64_t W, int accumulate, cdf_err *err);
int cdf_conv2d_is_bf16(const cdf_conv2d *c);

/* ---- normalisation ---- */
/* Per-channel affine parameters loaded from "<prefix>.weight/.bias" ([C]). */
typedef struct cdf_norm {
    int64_t c;
    float eps;
    int groups;      /* group norm only */
    float *gamma, *beta;
} cdf_norm;
cdf_status cdf_norm_load(cdf_norm *n, const cdf_st_file *f, const char *prefix, int64_t c, int groups, float eps,
                         cdf_err *err);
void cdf_norm_free(cdf_norm *n);

/* GroupNorm over x[B, HW, C] (channels-last), optionally followed by SiLU. */
cdf_status cdf_group_norm(cdf_exec *ex, const cdf_norm *n, float *y, const float *x, int64_t B, int64_t HW,
                          int silu, cdf_err *err);
/* The same writing bf16 when y_bf16 (input of a bf16 product). */
cdf_status cdf_group_norm_x(cdf_exec *ex, const cdf_norm *n, void *y, int y_bf16, const float *x, int64_t B,
                            int64_t HW, int silu, cdf_err *err);
/* LayerNorm over the last dim of x[M, C]; y float32, or bf16 when y_bf16. */
void cdf_layer_norm(cdf_exec *ex, const cdf_norm *n, float *y, const float *x, int64_t M);
void cdf_layer_norm_x(cdf_exec *ex, const cdf_norm *n, void *y, int y_bf16, const float *x, int64_t M);

/* ---- attention ----
 * out[b, i, h*D + d] = sum_j softmax_j(scale * q[b,i,h,:] . k[b,j,h,:]) v[b,j,h,d]
 * q, k, v, out are row-major with row strides ldq, ldk, ldv, ldo (elements);
 * head h occupies columns [h*D, (h+1)*D). causal: keys j > i are masked.
 * Computed tile by tile with an online softmax: no [Nq, Nk] matrix exists.
 * slice_q > 0 limits how many query rows are processed at once per head
 * (attention slicing); 0 lets the kernel choose. */
typedef struct cdf_attn_shape {
    int64_t B, Nq, Nk, heads, D;
    size_t ldq, ldk, ldv, ldo;
    float scale;
    int causal;
    cdf_compute compute; /* operand type of the two products (softmax stays float32) */
    int out_bf16;        /* out is bf16 (ldo in bf16 elements), e.g. for a bf16 projection */
} cdf_attn_shape;
cdf_status cdf_attention(cdf_exec *ex, const cdf_attn_shape *s, void *out, const float *q, const float *k,
                         const float *v, cdf_err *err);

/* ---- element-wise and data movement (all in place allowed where y == x) ---- */
void cdf_silu(cdf_exec *ex, float *y, const float *x, size_t n);
void cdf_gelu_erf(cdf_exec *ex, float *y, const float *x, size_t n);
void cdf_quick_gelu(cdf_exec *ex, float *y, const float *x, size_t n);
/* GEGLU: h[M, 2F] -> y[M, F] (row stride ldy) = h[:, :F] * gelu(h[:, F:]).
 * y == h with ldy == 2F is allowed (each row overwrites its own first half). */
void cdf_geglu(cdf_exec *ex, float *y, size_t ldy, const float *h, int64_t M, int64_t F);
/* The same writing bf16 (ldy in bf16 elements); y == h allowed (row i's result
 * overwrites the start of row i). */
void cdf_geglu_bf16(cdf_exec *ex, uint16_t *y, size_t ldy, const float *h, int64_t M, int64_t F);
/* y = (a + b) * scale */
void cdf_add_scaled(cdf_exec *ex, float *y, const float *a, const float *b, size_t n, float scale);
/* y[b, hw, c] += v[b, c] (per-sample channel bias, e.g. the time embedding) */
void cdf_add_channel_bias(cdf_exec *ex, float *y, const float *v, int64_t B, int64_t HW, int64_t C);
/* Nearest-neighbour resize of x[B, H, W, C] to y[B, Ho, Wo, C], PyTorch's
 * 'nearest' index rule (src = floor(dst * (in / out)) in float). */
void cdf_upsample_nearest(cdf_exec *ex, float *y, const float *x, int64_t B, int64_t H, int64_t W, int64_t C,
                          int64_t Ho, int64_t Wo);
/* y[b, p, :] = cat(a[b, p, :Ca], b[b, p, :Cb]) */
void cdf_concat_channels(cdf_exec *ex, float *y, const float *a, int64_t Ca, const float *b, int64_t Cb,
                         int64_t rows);
/* NCHW <-> NHWC */
void cdf_nchw_to_nhwc(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W);
void cdf_nhwc_to_nchw(float *y, const float *x, int64_t B, int64_t C, int64_t H, int64_t W);

/* Loads a float tensor of any float dtype into a new float32 buffer after
 * checking its shape (helper for small parameters). */
cdf_status cdf_load_f32(const cdf_st_file *f, const char *name, int ndim, const int64_t *shape, float **out,
                        cdf_err *err);

#endif
