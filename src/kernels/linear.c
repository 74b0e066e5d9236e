/* Linear layers through oneDNN's matmul: y[M,N] = x[M,K] @ W^T + b.
 *
 * W is PyTorch's [N, K]; as a oneDNN weights matrix {K, N} that is tag "ba",
 * so the file data is used without transposing. At load the weights are
 * reordered into the layout the matmul implementation prefers (for a
 * representative M); each (layer, M, strides) gets its own cached primitive
 * that uses that layout directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend_internal.h"

enum { REP_M = 256, KIND_LINEAR = 1 };

static dnnl_data_type_t act_dt(cdf_compute c) { return c == CDF_COMPUTE_BF16 ? dnnl_bf16 : dnnl_f32; }

/* Creates a matmul primitive descriptor for M rows; wei may be "any". */
static dnnl_status_t make_pd(dnnl_primitive_desc_t *pd, const cdf_backend *be, cdf_compute c, int64_t M, int64_t K,
                             int64_t N, size_t ldx, size_t ldy, const dnnl_memory_desc_t *wei, int has_bias,
                             dnnl_memory_desc_t *src, dnnl_memory_desc_t *bias, dnnl_memory_desc_t *dst) {
    dnnl_dims_t sd = {M, K}, ss = {(dnnl_dim_t)ldx, 1}, dd = {M, N}, ds = {(dnnl_dim_t)ldy, 1}, bd = {1, N};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(src, 2, sd, act_dt(c), ss))) return s;
    if ((s = dnnl_memory_desc_init_by_strides(dst, 2, dd, dnnl_f32, ds))) return s;
    if ((s = dnnl_memory_desc_init_by_tag(bias, 2, bd, dnnl_f32, dnnl_ab))) return s;
    dnnl_matmul_desc_t md;
    if ((s = dnnl_matmul_desc_init(&md, src, wei, has_bias ? bias : NULL, dst))) return s;
    return dnnl_primitive_desc_create(pd, &md, NULL, be->engine, NULL);
}

cdf_status cdf_linear_load(cdf_linear *l, const cdf_backend *be, const cdf_weight_opts *o, const cdf_st_file *f,
                           const char *const *prefixes, int nprefix, int64_t in, int64_t out_each, int has_bias,
                           cdf_err *err) {
    memset(l, 0, sizeof *l);
    int64_t N = out_each * nprefix, K = in;
    l->in = K;
    l->out = N;
    const int stream = o->stream && nprefix <= 3;
    const cdf_st_tensor *srcs[3] = {NULL, NULL, NULL};
    float *w = stream ? NULL : cdf_malloc((size_t)N * (size_t)K, sizeof(float), err);
    if (!stream && !w) return CDF_ERR_OUT_OF_MEMORY;
    cdf_status st = CDF_OK;
    if (has_bias && !(l->bias = cdf_malloc((size_t)N, sizeof(float), err))) { st = CDF_ERR_OUT_OF_MEMORY; goto fail; }
    for (int i = 0; i < nprefix; i++) {
        char name[512];
        const cdf_st_tensor *t;
        snprintf(name, sizeof name, "%s.weight", prefixes[i]);
        /* [out, in], or [out, in, 1, 1] as 1x1-conv checkpoints store it */
        const int64_t ws[4] = {out_each, in, 1, 1};
        t = cdf_st_find(f, name);
        if (!(t && t->ndim == 4) && (st = cdf_st_expect(f, name, 2, ws, &t, err))) goto fail;
        if (t->ndim == 4 && (st = cdf_st_expect(f, name, 4, ws, &t, err))) goto fail;
        if (stream) {
            srcs[i] = t;
        } else {
            cdf_st_read_f32(t, w + (size_t)i * (size_t)out_each * (size_t)K);
            cdf_st_release_pages(f, t); /* the file's pages leave RSS once copied */
        }
        if (has_bias) {
            snprintf(name, sizeof name, "%s.bias", prefixes[i]);
            const int64_t bs[1] = {out_each};
            if ((st = cdf_st_expect(f, name, 1, bs, &t, err))) goto fail;
            cdf_st_read_f32(t, l->bias + (size_t)i * (size_t)out_each);
            cdf_st_release_pages(f, t);
        }
    }
    {
        dnnl_memory_desc_t plain, any, src, bias, dst;
        dnnl_dims_t wd = {K, N};
        dnnl_primitive_desc_t pd;
        if (dnnl_memory_desc_init_by_tag(&plain, 2, wd, dnnl_f32, dnnl_ba) ||
            dnnl_memory_desc_init_by_tag(&any, 2, wd, act_dt(o->compute), dnnl_format_tag_any) ||
            make_pd(&pd, be, o->compute,
                    o->rep_hw > 0 ? (o->rep_batch > 0 ? o->rep_batch : 1) * o->rep_hw * o->rep_hw : REP_M, K, N,
                    (size_t)K, (size_t)N, &any, has_bias, &src, &bias, &dst)) {
            st = cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: no matmul for %s (%lld x %lld)", prefixes[0],
                          (long long)K, (long long)N);
            goto fail;
        }
        dnnl_memory_desc_t want = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        dnnl_primitive_desc_destroy(pd);
        want.data_type = dnnl_f32;
        st = stream ? cdf_packed_create_streamed(&l->w, be, f, srcs, nprefix, &plain, &want, o->compute, err)
                    : cdf_packed_create(&l->w, be, w, &plain, &want, o->storage, o->compute, err);
    }
fail:
    free(w);
    if (st) cdf_linear_free(l);
    return st;
}

void cdf_linear_free(cdf_linear *l) {
    cdf_packed_free(l->w);
    free(l->bias);
    memset(l, 0, sizeof *l);
}

static cdf_status prepare(cdf_exec *ex, const cdf_linear *l, cdf_prim *c, int64_t M, size_t ldx, size_t ldy,
                          cdf_err *err) {
    const struct cdf_packed *p = l->w;
    const dnnl_memory_desc_t *wmd = p->compute == CDF_COMPUTE_BF16 ? &p->md : &p->md_f32;
    dnnl_primitive_desc_t pd;
    dnnl_status_t s0 = make_pd(&pd, ex->be, p->compute, M, l->in, l->out, ldx, ldy, wmd, l->bias != NULL, &c->src_md,
                               &c->bias_md, &c->dst_md);
    if (s0 == dnnl_success && cdf_pd_is_ref(pd)) {
        dnnl_primitive_desc_destroy(pd);
        s0 = dnnl_unimplemented;
    }
    if (s0 != dnnl_success) {
        /* The packed layout does not suit this M: let oneDNN choose and
         * reorder the packed weights on every call (small M only). */
        dnnl_memory_desc_t any = *wmd;
        dnnl_dims_t wd = {l->in, l->out};
        dnnl_memory_desc_init_by_tag(&any, 2, wd, act_dt(p->compute), dnnl_format_tag_any);
        CDF_DNNL(make_pd(&pd, ex->be, p->compute, M, l->in, l->out, ldx, ldy, &any, l->bias != NULL, &c->src_md,
                         &c->bias_md, &c->dst_md),
                 err, "matmul descriptor");
        c->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        c->wei_bytes = dnnl_memory_desc_get_size(&c->wei_md);
        dnnl_primitive_desc_t rpd;
        if (dnnl_reorder_primitive_desc_create(&rpd, wmd, ex->be->engine, &c->wei_md, ex->be->engine, NULL) ||
            dnnl_primitive_create(&c->wei_reorder, rpd)) {
            dnnl_primitive_desc_destroy(pd);
            return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: weight reorder for matmul failed");
        }
        dnnl_primitive_desc_destroy(rpd);
    } else {
        c->wei_md = *wmd;
    }
    dnnl_status_t s = dnnl_primitive_create(&c->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success) return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: matmul creation failed");
    return CDF_OK;
}

int cdf_linear_is_bf16(const cdf_linear *l) { return l->w->compute == CDF_COMPUTE_BF16; }

cdf_status cdf_linear_forward_x(cdf_exec *ex, const cdf_linear *l, float *y, size_t ldy, const void *x, int x_bf16,
                                size_t ldx, int64_t M, cdf_err *err) {
    if (M == 0) return CDF_OK;
    const int bf = l->w->compute == CDF_COMPUTE_BF16;
    if (x_bf16 && !bf) return cdf_errf(err, CDF_ERR_INTERNAL, "linear: bf16 input for a float32 layer");
    cdf_arena_mark mark = cdf_arena_save(&ex->arena);
    cdf_status st;
    const void *src = x;
    if (bf && !x_bf16) { /* convert into a dense bf16 copy */
        if (!(src = cdf_to_bf16_scratch(ex, x, M, l->in, ldx, err))) return CDF_ERR_OUT_OF_MEMORY;
        ldx = (size_t)l->in;
    }
    cdf_prim_key key = {{KIND_LINEAR, M, l->in, l->out, (int64_t)ldx, (int64_t)ldy, l->w->compute, l->bias != NULL}};
    cdf_prim *c = cdf_exec_lookup(ex, &key, err);
    if (!c) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
    if (!c->prim && (st = prepare(ex, l, c, M, ldx, ldy, err))) goto out;
    void *wdata;
    const dnnl_memory_desc_t *wmd;
    if ((st = cdf_packed_use(ex, l->w, &wdata, &wmd, err))) goto out;
    if (c->wei_reorder) {
        void *w2 = cdf_arena_alloc(&ex->arena, c->wei_bytes, err);
        if (!w2) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        cdf_bind rb[2] = {{DNNL_ARG_FROM, wmd, wdata}, {DNNL_ARG_TO, &c->wei_md, w2}};
        if ((st = cdf_exec_run(ex, c->wei_reorder, rb, 2, err))) goto out;
        wdata = w2;
    }
    cdf_bind b[4] = {{DNNL_ARG_SRC, &c->src_md, (void *)src},
                     {DNNL_ARG_WEIGHTS, &c->wei_md, wdata},
                     {DNNL_ARG_DST, &c->dst_md, y},
                     {DNNL_ARG_BIAS, &c->bias_md, l->bias}};
    PROF_BEGIN(ex);
    st = cdf_exec_run(ex, c->prim, b, l->bias ? 4 : 3, err);
    PROF_END(ex, CDF_PROF_LINEAR);
    ex->flops += 2 * (uint64_t)M * (uint64_t)l->in * (uint64_t)l->out;
    ex->prof_flops[CDF_PROF_LINEAR] += 2 * (uint64_t)M * (uint64_t)l->in * (uint64_t)l->out;
out:
    cdf_arena_reset(&ex->arena, mark);
    return st;
}

cdf_status cdf_linear_forward(cdf_exec *ex, const cdf_linear *l, float *y, size_t ldy, const float *x, size_t ldx,
                              int64_t M, cdf_err *err) {
    return cdf_linear_forward_x(ex, l, y, ldy, x, 0, ldx, M, err);
}
