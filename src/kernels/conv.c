/* 2-D convolution through oneDNN on channels-last (NHWC) activations.
 *
 * Weights come as PyTorch's [Cout, Cin, kh, kw] (oneDNN tag oihw) and are
 * reordered once at load into the layout the convolution prefers for a
 * representative input size; per-shape primitives then use that layout
 * directly (or, if an implementation wants another one, reorder per call). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend_internal.h"

enum { KIND_CONV = 2, REP_HW = 32 };

static dnnl_data_type_t act_dt(cdf_compute c) { return c == CDF_COMPUTE_BF16 ? dnnl_bf16 : dnnl_f32; }

void cdf_conv2d_out_size(const cdf_conv2d *c, int64_t h, int64_t w, int64_t *ho, int64_t *wo) {
    *ho = (h + c->pad_t + c->pad_b - c->kh) / c->stride + 1;
    *wo = (w + c->pad_l + c->pad_r - c->kw) / c->stride + 1;
}

static dnnl_status_t make_pd(dnnl_primitive_desc_t *pd, const cdf_backend *be, const cdf_conv2d *c, cdf_compute cp,
                             int64_t B, int64_t H, int64_t W, const dnnl_memory_desc_t *wei, int accumulate,
                             dnnl_memory_desc_t *src, dnnl_memory_desc_t *bias, dnnl_memory_desc_t *dst) {
    int64_t Ho, Wo;
    cdf_conv2d_out_size(c, H, W, &Ho, &Wo);
    dnnl_dims_t sd = {B, c->cin, H, W}, dd = {B, c->cout, Ho, Wo}, bd = {c->cout};
    dnnl_dims_t strides = {c->stride, c->stride}, pl = {c->pad_t, c->pad_l}, pr = {c->pad_b, c->pad_r};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_tag(src, 4, sd, act_dt(cp), dnnl_nhwc))) return s;
    if ((s = dnnl_memory_desc_init_by_tag(dst, 4, dd, dnnl_f32, dnnl_nhwc))) return s;
    if ((s = dnnl_memory_desc_init_by_tag(bias, 1, bd, dnnl_f32, dnnl_a))) return s;
    dnnl_convolution_desc_t cd;
    if ((s = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, src, wei, bias,
                                                dst, strides, pl, pr)))
        return s;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (accumulate) {
        /* y = conv(x) + b + 1.0 * y: the residual add fused into the convolution. */
        if ((s = dnnl_primitive_attr_create(&attr)) || (s = dnnl_post_ops_create(&po)) ||
            (s = dnnl_post_ops_append_sum(po, 1.0f)) || (s = dnnl_primitive_attr_set_post_ops(attr, po))) {
            dnnl_post_ops_destroy(po);
            dnnl_primitive_attr_destroy(attr);
            return s;
        }
    }
    s = dnnl_primitive_desc_create(pd, &cd, attr, be->engine, NULL);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

cdf_status cdf_conv2d_load(cdf_conv2d *c, const cdf_backend *be, const cdf_weight_opts *o, const cdf_st_file *f,
                           const char *prefix, int64_t cin, int64_t cout, int k, int stride, int pad_t, int pad_l,
                           int pad_b, int pad_r, cdf_err *err) {
    memset(c, 0, sizeof *c);
    c->cin = cin;
    c->cout = cout;
    c->kh = c->kw = k;
    c->stride = stride;
    c->pad_t = pad_t;
    c->pad_l = pad_l;
    c->pad_b = pad_b;
    c->pad_r = pad_r;
    char name[512];
    const cdf_st_tensor *t;
    snprintf(name, sizeof name, "%s.weight", prefix);
    const int64_t ws[4] = {cout, cin, k, k};
    cdf_status st = cdf_st_expect(f, name, 4, ws, &t, err);
    if (st) return st;
    const cdf_st_tensor *wt = t;
    float *w = o->stream ? NULL : cdf_malloc(t->numel, sizeof(float), err);
    if (!o->stream) {
        if (!w) return CDF_ERR_OUT_OF_MEMORY;
        cdf_st_read_f32(t, w);
        cdf_st_release_pages(f, t); /* the file's pages leave RSS once copied */
    }
    snprintf(name, sizeof name, "%s.bias", prefix);
    const int64_t bs[1] = {cout};
    if ((st = cdf_st_expect(f, name, 1, bs, &t, err))) goto out;
    if (!(c->bias = cdf_malloc((size_t)cout, sizeof(float), err))) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
    cdf_st_read_f32(t, c->bias);
    cdf_st_release_pages(f, t);
    {
        dnnl_memory_desc_t plain, any, src, bias, dst;
        dnnl_dims_t wd = {cout, cin, k, k};
        dnnl_primitive_desc_t pd;
        if (dnnl_memory_desc_init_by_tag(&plain, 4, wd, dnnl_f32, dnnl_oihw) ||
            dnnl_memory_desc_init_by_tag(&any, 4, wd, act_dt(o->compute), dnnl_format_tag_any) ||
            make_pd(&pd, be, c, o->compute, o->rep_batch > 0 ? o->rep_batch : 1, o->rep_hw > 0 ? o->rep_hw : REP_HW,
                    o->rep_hw > 0 ? o->rep_hw : REP_HW, &any, 0, &src, &bias, &dst)) {
            st = cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: no convolution for %s", prefix);
            goto out;
        }
        dnnl_memory_desc_t want = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        dnnl_primitive_desc_destroy(pd);
        want.data_type = dnnl_f32;
        st = o->stream ? cdf_packed_create_streamed(&c->w, be, f, &wt, 1, &plain, &want, o->compute, err)
                       : cdf_packed_create(&c->w, be, w, &plain, &want, o->storage, o->compute, err);
    }
out:
    free(w);
    if (st) cdf_conv2d_free(c);
    return st;
}

void cdf_conv2d_free(cdf_conv2d *c) {
    cdf_packed_free(c->w);
    free(c->bias);
    memset(c, 0, sizeof *c);
}

static cdf_status prepare(cdf_exec *ex, const cdf_conv2d *c, cdf_prim *e, int64_t B, int64_t H, int64_t W, int acc,
                          cdf_err *err) {
    const struct cdf_packed *p = c->w;
    const dnnl_memory_desc_t *wmd = p->compute == CDF_COMPUTE_BF16 ? &p->md : &p->md_f32;
    dnnl_primitive_desc_t pd;
    dnnl_status_t s0 = make_pd(&pd, ex->be, c, p->compute, B, H, W, wmd, acc, &e->src_md, &e->bias_md, &e->dst_md);
    if (s0 == dnnl_success && cdf_pd_is_ref(pd)) {
        dnnl_primitive_desc_destroy(pd);
        s0 = dnnl_unimplemented;
    }
    if (s0 != dnnl_success) {
        dnnl_memory_desc_t any;
        dnnl_dims_t wd = {c->cout, c->cin, c->kh, c->kw};
        dnnl_memory_desc_init_by_tag(&any, 4, wd, act_dt(p->compute), dnnl_format_tag_any);
        CDF_DNNL(make_pd(&pd, ex->be, c, p->compute, B, H, W, &any, acc, &e->src_md, &e->bias_md, &e->dst_md), err,
                 "convolution descriptor");
        e->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        e->wei_bytes = dnnl_memory_desc_get_size(&e->wei_md);
        dnnl_primitive_desc_t rpd;
        if (dnnl_reorder_primitive_desc_create(&rpd, wmd, ex->be->engine, &e->wei_md, ex->be->engine, NULL) ||
            dnnl_primitive_create(&e->wei_reorder, rpd)) {
            dnnl_primitive_desc_destroy(pd);
            return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: weight reorder for convolution failed");
        }
        dnnl_primitive_desc_destroy(rpd);
    } else {
        e->wei_md = *wmd;
    }
    dnnl_status_t s = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success) return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: convolution creation failed");
    return CDF_OK;
}

int cdf_conv2d_is_bf16(const cdf_conv2d *c) { return c->w->compute == CDF_COMPUTE_BF16; }

cdf_status cdf_conv2d_forward_x(cdf_exec *ex, const cdf_conv2d *c, float *y, const void *x, int x_bf16, int64_t B,
                                int64_t H, int64_t W, int accumulate, cdf_err *err) {
    const int bf = c->w->compute == CDF_COMPUTE_BF16;
    if (x_bf16 && !bf) return cdf_errf(err, CDF_ERR_INTERNAL, "conv2d: bf16 input for a float32 layer");
    cdf_prim_key key = {{KIND_CONV, B, H, W, c->cin, c->cout, c->kh * 1000 + c->stride,
                         ((int64_t)c->pad_t << 24) | (c->pad_l << 16) | (c->pad_b << 8) | c->pad_r,
                         c->w->compute, accumulate}};
    cdf_prim *e = cdf_exec_lookup(ex, &key, err);
    if (!e) return CDF_ERR_OUT_OF_MEMORY;
    cdf_status st;
    if (!e->prim && (st = prepare(ex, c, e, B, H, W, accumulate, err))) return st;
    cdf_arena_mark mark = cdf_arena_save(&ex->arena);
    const void *src = x;
    if (bf && !x_bf16 && !(src = cdf_to_bf16_scratch(ex, x, B * H * W, c->cin, (size_t)c->cin, err)))
        return CDF_ERR_OUT_OF_MEMORY;
    void *wdata;
    const dnnl_memory_desc_t *wmd;
    if ((st = cdf_packed_use(ex, c->w, &wdata, &wmd, err))) goto out;
    if (e->wei_reorder) {
        void *w2 = cdf_arena_alloc(&ex->arena, e->wei_bytes, err);
        if (!w2) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        cdf_bind rb[2] = {{DNNL_ARG_FROM, wmd, wdata}, {DNNL_ARG_TO, &e->wei_md, w2}};
        if ((st = cdf_exec_run(ex, e->wei_reorder, rb, 2, err))) goto out;
        wdata = w2;
    }
    cdf_bind b[4] = {{DNNL_ARG_SRC, &e->src_md, (void *)src},
                     {DNNL_ARG_WEIGHTS, &e->wei_md, wdata},
                     {DNNL_ARG_BIAS, &e->bias_md, c->bias},
                     {DNNL_ARG_DST, &e->dst_md, y}};
    PROF_BEGIN(ex);
    st = cdf_exec_run(ex, e->prim, b, 4, err);
    PROF_END(ex, CDF_PROF_CONV);
    int64_t Ho, Wo;
    cdf_conv2d_out_size(c, H, W, &Ho, &Wo);
    ex->flops += 2 * (uint64_t)(B * Ho * Wo) * (uint64_t)(c->cout * c->cin * c->kh * c->kw);
    ex->prof_flops[CDF_PROF_CONV] += 2 * (uint64_t)(B * Ho * Wo) * (uint64_t)(c->cout * c->cin * c->kh * c->kw);
out:
    cdf_arena_reset(&ex->arena, mark);
    return st;
}

cdf_status cdf_conv2d_forward(cdf_exec *ex, const cdf_conv2d *c, float *y, const float *x, int64_t B, int64_t H,
                              int64_t W, int accumulate, cdf_err *err) {
    return cdf_conv2d_forward_x(ex, c, y, x, 0, B, H, W, accumulate, err);
}
