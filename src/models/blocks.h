/* Building blocks shared by the UNet and the VAE (diffusers' resnet.py,
 * attention_processor.py, attention.py, transformer_2d.py, resampling),
 * on channels-last activations x[B, H, W, C]. Each block has a load function
 * (weights by diffusers' parameter names under a prefix, shapes checked) and
 * a forward function (output pointer first). */
#ifndef CDF_MODELS_BLOCKS_H
#define CDF_MODELS_BLOCKS_H

#include "kernels/kernels.h"

/* Everything a block's load function needs besides its own sizes. */
typedef struct cdf_loader {
    const cdf_backend *be;
    const cdf_weight_opts *wo;
    const cdf_st_file *f;
} cdf_loader;

/* A loader for layers that will see batch x hw x hw activations (the packed
 * weight layouts are chosen for that shape); wo_store holds the options. */
static inline cdf_loader cdf_loader_at(const cdf_loader *ld, cdf_weight_opts *wo_store, int64_t batch, int64_t hw) {
    *wo_store = *ld->wo;
    wo_store->rep_batch = batch;
    wo_store->rep_hw = hw;
    cdf_loader l = {ld->be, wo_store, ld->f};
    return l;
}

/* ResnetBlock2D (time_embedding_norm "default"):
 * y = (shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x))) + proj(silu(temb)))))) / out_scale */
typedef struct cdf_resnet {
    int64_t cin, cout;
    cdf_norm norm1, norm2;
    cdf_conv2d conv1, conv2, shortcut;
    cdf_linear temb_proj;
    int has_temb, has_shortcut;
    float out_scale;
} cdf_resnet;
cdf_status cdf_resnet_load(cdf_resnet *r, const cdf_loader *ld, const char *prefix, int64_t cin, int64_t cout,
                           int64_t temb_dim, int groups, float eps, float out_scale, cdf_err *err);
void cdf_resnet_free(cdf_resnet *r);
/* y[B,H,W,cout] (must not alias x); temb_silu[B, temb_dim] = silu(temb) or NULL. */
cdf_status cdf_resnet_forward(cdf_exec *ex, const cdf_resnet *r, float *y, const float *x, int64_t B, int64_t H,
                              int64_t W, const float *temb_silu, cdf_err *err);

/* diffusers Attention: q from x, k/v from x (self) or from a context. */
typedef struct cdf_attention_layer {
    int64_t dim, ctx_dim, heads, dhead;
    int self;
    cdf_compute compute;
    cdf_linear qkv;   /* self: [dim -> 3*inner]; cross: q only [dim -> inner] */
    cdf_linear kv;    /* cross: [ctx_dim -> 2*inner] */
    cdf_linear out;   /* [inner -> dim] with bias */
} cdf_attention_layer;
/* ctx_dim <= 0: self-attention. qkv_bias: to_q/k/v have biases (VAE) or not (UNet). */
cdf_status cdf_attention_load(cdf_attention_layer *a, const cdf_loader *ld, const char *prefix, int64_t dim,
                              int64_t ctx_dim, int64_t heads, int64_t dhead, int qkv_bias, cdf_err *err);
void cdf_attention_free(cdf_attention_layer *a);
/* y[B, N, dim] += attention(x[B, N, dim], ctx[B, Nc, ctx_dim]) (residual added
 * in place). x and ctx are float32, or bf16 (flags) for bf16 layers. */
cdf_status cdf_attention_forward(cdf_exec *ex, const cdf_attention_layer *a, float *y, const void *x, int x_bf16,
                                 int64_t B, int64_t N, const void *ctx, int ctx_bf16, int64_t Nc, cdf_err *err);

/* Transformer2DModel (continuous input) with BasicTransformerBlocks. */
typedef struct cdf_transformer_block {
    cdf_norm norm1, norm2, norm3;
    cdf_attention_layer attn1, attn2;
    cdf_linear ff_in, ff_out; /* GEGLU projection [dim -> 8*dim], then [4*dim -> dim] */
} cdf_transformer_block;

typedef struct cdf_transformer2d {
    int64_t channels, inner, ff_inner;
    int depth, linear_proj;
    cdf_norm norm;
    cdf_conv2d proj_in_conv, proj_out_conv;
    cdf_linear proj_in_lin, proj_out_lin;
    cdf_transformer_block *blocks;
} cdf_transformer2d;
cdf_status cdf_transformer2d_load(cdf_transformer2d *t, const cdf_loader *ld, const char *prefix, int64_t channels,
                                  int64_t heads, int64_t dhead, int depth, int64_t ctx_dim, int groups,
                                  int linear_proj, cdf_err *err);
void cdf_transformer2d_free(cdf_transformer2d *t);
/* x[B,H,W,C] updated in place; ctx[B, Nc, ctx_dim]. */
cdf_status cdf_transformer2d_forward(cdf_exec *ex, const cdf_transformer2d *t, float *x, int64_t B, int64_t H,
                                     int64_t W, const float *ctx, int64_t Nc, cdf_err *err);

/* VAE mid-block attention: group norm, single-head attention with biases,
 * residual. x[B,H,W,C] updated in place. */
typedef struct cdf_vae_attention {
    cdf_norm norm;
    cdf_attention_layer attn;
} cdf_vae_attention;
cdf_status cdf_vae_attention_load(cdf_vae_attention *v, const cdf_loader *ld, const char *prefix, int64_t channels,
                                  int groups, float eps, cdf_err *err);
void cdf_vae_attention_free(cdf_vae_attention *v);
cdf_status cdf_vae_attention_forward(cdf_exec *ex, const cdf_vae_attention *v, float *x, int64_t B, int64_t H,
                                     int64_t W, cdf_err *err);

#endif
