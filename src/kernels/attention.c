/* Memory-efficient attention.
 *
 * For every (batch, head, query tile) the keys are visited in blocks; each
 * block's scores S = (scale*Q) K^T and the partial output P V are oneDNN
 * matrix products (AVX-512, or AMX with bf16 operands), and the softmax is
 * accumulated online between blocks (running max m, running sum l, output
 * rescaled by exp(m_old - m_new)). Per thread only one [QT, KT] score block
 * exists: never the [Nq, Nk] matrix, let alone [heads, Nq, Nk].
 *
 * Phase 1 packs K and V of every (batch, head) into dense [Nk, D] arrays in
 * the compute type; phase 2 runs the tiles in parallel, each thread calling
 * single-threaded oneDNN primitives on its own stream and scratchpad. Work is
 * split over tiles, never over a reduction, so results do not depend on the
 * thread count. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/dtype.h"
#include "kernels/attention_amx.h"
#include "kernels/backend_internal.h"
#include "kernels/simd.h"

enum { KIND_ATTN_QK = 10, KIND_ATTN_PV = 11 };
#define QT 128  /* query rows per tile */
#define KT 1024 /* keys per block */

static dnnl_data_type_t cdt(cdf_compute c) { return c == CDF_COMPUTE_BF16 ? dnnl_bf16 : dnnl_f32; }

/* Matmul [q, k] x [k, n] -> [q, n] f32, single-threaded use, user scratchpad.
 * wtrans: the weights are stored as [n, k] rows (K^T). */
static cdf_status get_prim(cdf_exec *ex, int kind, int64_t q, int64_t k, int64_t n, cdf_compute c, cdf_prim **out,
                           cdf_err *err) {
    cdf_prim_key key = {{kind, q, k, n, c, 0, 0, 0, 0, 0}};
    cdf_prim *e = cdf_exec_lookup(ex, &key, err);
    if (!e) return CDF_ERR_OUT_OF_MEMORY;
    *out = e;
    if (e->prim) return CDF_OK;
    dnnl_dims_t sd = {q, k}, wd = {k, n}, dd = {q, n};
    dnnl_dims_t ws_t = {1, k}, ws_n = {n, 1};
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t pd;
    dnnl_matmul_desc_t md;
    if (dnnl_memory_desc_init_by_tag(&e->src_md, 2, sd, cdt(c), dnnl_ab) ||
        dnnl_memory_desc_init_by_strides(&e->wei_md, 2, wd, cdt(c), kind == KIND_ATTN_QK ? ws_t : ws_n) ||
        dnnl_memory_desc_init_by_tag(&e->dst_md, 2, dd, dnnl_f32, dnnl_ab) ||
        dnnl_matmul_desc_init(&md, &e->src_md, &e->wei_md, NULL, &e->dst_md) || dnnl_primitive_attr_create(&attr))
        return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: attention matmul descriptor");
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &md, attr, ex->be->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: no attention matmul (%d)", (int)s);
    e->bias_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0); /* the scratchpad's md */
    e->wei_bytes = dnnl_memory_desc_get_size(&e->bias_md);
    s = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success) return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: attention matmul creation failed");
    return CDF_OK;
}

typedef struct tile_ws {
    void *qp;        /* [QT, D] scaled queries, compute type */
    float *s;        /* [QT, KT] scores -> probabilities (f32) */
    uint16_t *pb;    /* [QT, KT] probabilities as bf16 (bf16 mode) */
    float *op, *o;   /* [QT, D] partial and running output */
    float *m, *l;
    void *scratch;
    dnnl_stream_t stream;
} tile_ws;

typedef struct attn_plan {
    const cdf_attn_shape *a;
    cdf_compute c;
    size_t esz;               /* bytes per packed element */
    void *kp, *vp;            /* [B*heads, Nk, D] packed */
    int64_t qfull, kfull;     /* rows per full query tile, keys per full block */
    cdf_prim *qk[2][2], *pv[2][2]; /* [last, shorter q tile][last, shorter k block] */
} attn_plan;

static void pack_rows(void *dst, const float *src, size_t ld, int64_t rows, int64_t D, float scale, cdf_compute c) {
    float tmp[1024];
    for (int64_t r = 0; r < rows; r++) {
        const float *x = src + (size_t)r * ld;
        if (scale != 1.0f && D <= 1024) {
            cdf_row_scale(tmp, x, (size_t)D, scale);
            x = tmp;
        } else if (scale != 1.0f) { /* very wide heads: element by element */
            for (int64_t j = 0; j < D; j++) {
                float v = x[j] * scale;
                if (c == CDF_COMPUTE_BF16) ((uint16_t *)dst)[r * D + j] = cdf_f32_to_bf16(v);
                else ((float *)dst)[r * D + j] = v;
            }
            continue;
        }
        if (c == CDF_COMPUTE_BF16) cdf_row_to_bf16((uint16_t *)dst + r * D, x, (size_t)D);
        else memcpy((float *)dst + r * D, x, (size_t)D * sizeof(float));
    }
}

static cdf_status run_tile(cdf_exec *ex, const attn_plan *pl, tile_ws *w, void *out, const float *q, int64_t b,
                           int64_t h, int64_t i0, cdf_err *err) {
    const cdf_attn_shape *a = pl->a;
    const int64_t D = a->D, qn = i0 + pl->qfull <= a->Nq ? pl->qfull : a->Nq - i0;
    const int bf = pl->c == CDF_COMPUTE_BF16;
    pack_rows(w->qp, q + (size_t)(b * a->Nq + i0) * a->ldq + (size_t)(h * D), a->ldq, qn, D, a->scale, pl->c);
    for (int64_t i = 0; i < qn; i++) {
        w->m[i] = -INFINITY;
        w->l[i] = 0.0f;
    }
    memset(w->o, 0, (size_t)(qn * D) * sizeof(float));
    const size_t head = (size_t)(b * a->heads + h) * (size_t)a->Nk * (size_t)D * pl->esz;
    for (int64_t j0 = 0; j0 < a->Nk; j0 += pl->kfull) {
        const int64_t kn = j0 + pl->kfull <= a->Nk ? pl->kfull : a->Nk - j0;
        const int iq = qn != pl->qfull, ik = kn != pl->kfull;
        const cdf_prim *pqk = pl->qk[iq][ik], *ppv = pl->pv[iq][ik];
        const size_t koff = head + (size_t)j0 * (size_t)D * pl->esz;
        cdf_bind b1[4] = {{DNNL_ARG_SRC, &pqk->src_md, w->qp},
                          {DNNL_ARG_WEIGHTS, &pqk->wei_md, (char *)pl->kp + koff},
                          {DNNL_ARG_DST, &pqk->dst_md, w->s},
                          {DNNL_ARG_SCRATCHPAD, &pqk->bias_md, w->scratch}};
        cdf_status st = cdf_exec_run_on(ex, w->stream, pqk->prim, b1, 4, err);
        if (st) return st;
        for (int64_t i = 0; i < qn; i++) {
            float *s = w->s + i * kn;
            int64_t jn = kn;
            if (a->causal) {
                int64_t lim = i0 + i + 1 - j0;
                jn = lim < kn ? (lim > 0 ? lim : 0) : kn;
            }
            float *o = w->o + i * D;
            uint16_t *pb = w->pb + i * kn;
            if (jn == 0) { /* every key of this block is masked for this row */
                if (bf) memset(pb, 0, (size_t)kn * sizeof(uint16_t));
                else memset(s, 0, (size_t)kn * sizeof(float));
                continue;
            }
            const float bm = cdf_row_max(s, (size_t)jn);
            const float mx = bm > w->m[i] ? bm : w->m[i];
            /* probabilities: in place (float32 products) or straight to bf16 */
            const float sum = bf ? cdf_row_exp_sum_bf16(s, pb, (size_t)jn, mx) : cdf_row_exp_sum(s, (size_t)jn, mx);
            if (jn < kn) {
                if (bf) memset(pb + jn, 0, (size_t)(kn - jn) * sizeof(uint16_t));
                else memset(s + jn, 0, (size_t)(kn - jn) * sizeof(float));
            }
            /* rescale what earlier blocks accumulated (first block: m = -inf, o = l = 0) */
            const float corr = w->m[i] == -INFINITY ? 0.0f : cdf_expf(w->m[i] - mx);
            w->m[i] = mx;
            w->l[i] = w->l[i] * corr + sum;
            cdf_row_scale(o, o, (size_t)D, corr);
        }
        cdf_bind b2[4] = {{DNNL_ARG_SRC, &ppv->src_md, bf ? (void *)w->pb : (void *)w->s},
                          {DNNL_ARG_WEIGHTS, &ppv->wei_md, (char *)pl->vp + koff},
                          {DNNL_ARG_DST, &ppv->dst_md, w->op},
                          {DNNL_ARG_SCRATCHPAD, &ppv->bias_md, w->scratch}};
        if ((st = cdf_exec_run_on(ex, w->stream, ppv->prim, b2, 4, err))) return st;
        cdf_row_scale_add(w->o, w->op, (size_t)(qn * D), 1.0f);
    }
    const size_t ob = (size_t)(b * a->Nq + i0) * a->ldo + (size_t)(h * D);
    for (int64_t i = 0; i < qn; i++) {
        if (a->out_bf16) {
            cdf_row_scale(w->o + i * D, w->o + i * D, (size_t)D, 1.0f / w->l[i]);
            cdf_row_to_bf16((uint16_t *)out + ob + (size_t)i * a->ldo, w->o + i * D, (size_t)D);
        } else {
            cdf_row_scale((float *)out + ob + (size_t)i * a->ldo, w->o + i * D, (size_t)D, 1.0f / w->l[i]);
        }
    }
    return CDF_OK;
}

cdf_status cdf_attention(cdf_exec *ex, const cdf_attn_shape *a, void *out, const float *q, const float *k,
                         const float *v, cdf_err *err) {
    PROF_BEGIN(ex);
    if (a->compute == CDF_COMPUTE_BF16 && ex->amx) {
        cdf_status st = cdf_attention_amx(ex, a, out, q, k, v, err);
        ex->flops += 4 * (uint64_t)(a->B * a->heads) * (uint64_t)(a->Nq * a->Nk) * (uint64_t)a->D;
        ex->prof_flops[CDF_PROF_ATTENTION] += 4 * (uint64_t)(a->B * a->heads) * (uint64_t)(a->Nq * a->Nk) * (uint64_t)a->D;
        PROF_END(ex, CDF_PROF_ATTENTION);
        return st;
    }
    const int nt = cdf_exec_threads(ex);
    const int64_t D = a->D, BH = a->B * a->heads;
    attn_plan pl;
    memset(&pl, 0, sizeof pl);
    pl.a = a;
    pl.c = a->compute;
    pl.esz = pl.c == CDF_COMPUTE_BF16 ? 2 : 4;
    cdf_status st = cdf_exec_thread_streams(ex, err);
    if (st) return st;
    /* Primitives for the full and the shorter last tile/block, made before the parallel loop. */
    const int64_t qt = ex->attn_rows > 0 ? ex->attn_rows : QT;
    pl.qfull = a->Nq < qt ? a->Nq : qt;
    pl.kfull = a->Nk < KT ? a->Nk : KT;
    const int64_t qsz[2] = {pl.qfull, a->Nq - (a->Nq - 1) / pl.qfull * pl.qfull};
    const int64_t ksz[2] = {pl.kfull, a->Nk - (a->Nk - 1) / pl.kfull * pl.kfull};
    size_t scratch = 0;
    for (int iq = 0; iq < 2; iq++)
        for (int ik = 0; ik < 2; ik++) {
            if ((iq && qsz[1] == qsz[0]) || (ik && ksz[1] == ksz[0])) continue;
            if ((st = get_prim(ex, KIND_ATTN_QK, qsz[iq], D, ksz[ik], pl.c, &pl.qk[iq][ik], err)) ||
                (st = get_prim(ex, KIND_ATTN_PV, qsz[iq], ksz[ik], D, pl.c, &pl.pv[iq][ik], err)))
                return st;
            if (pl.qk[iq][ik]->wei_bytes > scratch) scratch = pl.qk[iq][ik]->wei_bytes;
            if (pl.pv[iq][ik]->wei_bytes > scratch) scratch = pl.pv[iq][ik]->wei_bytes;
        }
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    const size_t nkv = (size_t)BH * (size_t)a->Nk * (size_t)D * pl.esz;
    pl.kp = cdf_arena_alloc(ar, nkv, err);
    pl.vp = cdf_arena_alloc(ar, nkv, err);
    const size_t QTr = (size_t)pl.qfull;
    const size_t per = QTr * D * pl.esz + QTr * KT * 4 + QTr * KT * 2 + QTr * D * 8 + QTr * 8 + scratch + 8 * 64;
    unsigned char *ws = cdf_arena_alloc(ar, per * (size_t)nt, err);
    if (!pl.kp || !pl.vp || !ws) { cdf_arena_reset(ar, mark); return CDF_ERR_OUT_OF_MEMORY; }
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if((size_t)(BH * a->Nk * D) >= CDF_PAR_MIN)
    for (int64_t bh = 0; bh < BH; bh++)
        for (int64_t j = 0; j < a->Nk; j += 64) {
            const int64_t b = bh / a->heads, h = bh % a->heads, rows = j + 64 <= a->Nk ? 64 : a->Nk - j;
            const size_t off = ((size_t)bh * (size_t)a->Nk + (size_t)j) * (size_t)D * pl.esz;
            pack_rows((char *)pl.kp + off, k + (size_t)(b * a->Nk + j) * a->ldk + (size_t)(h * D), a->ldk, rows, D,
                      1.0f, pl.c);
            pack_rows((char *)pl.vp + off, v + (size_t)(b * a->Nk + j) * a->ldv + (size_t)(h * D), a->ldv, rows, D,
                      1.0f, pl.c);
        }
    const int64_t ntiles = (a->Nq + pl.qfull - 1) / pl.qfull;
    cdf_status tst[256] = {0};
    cdf_err terr;
    const int par = (size_t)(BH * a->Nq * a->Nk * D) >= 64 * CDF_PAR_MIN;
#pragma omp parallel num_threads(nt) if(par)
    {
        const int t = omp_get_thread_num();
        unsigned char *p = ws + per * (size_t)t;
#define TAKE(n) (p += (((size_t)(n)) + 63) & ~(size_t)63, p - ((((size_t)(n)) + 63) & ~(size_t)63))
        tile_ws w;
        w.qp = TAKE(QTr * D * pl.esz);
        w.s = (float *)TAKE(QTr * KT * 4);
        w.pb = (uint16_t *)TAKE(QTr * KT * 2);
        w.op = (float *)TAKE(QTr * D * 4);
        w.o = (float *)TAKE(QTr * D * 4);
        w.m = (float *)TAKE(QTr * 4);
        w.l = (float *)TAKE(QTr * 4);
        w.scratch = TAKE(scratch);
#undef TAKE
        w.stream = ex->tstreams[t];
        cdf_err my = {0};
        cdf_status ms = CDF_OK;
#pragma omp for collapse(2) schedule(static)
        for (int64_t bh = 0; bh < BH; bh++)
            for (int64_t ti = 0; ti < ntiles; ti++)
                if (!ms) ms = run_tile(ex, &pl, &w, out, q, bh / a->heads, bh % a->heads, ti * pl.qfull, &my);
        if (ms && t < 256) {
            tst[t] = ms;
#pragma omp critical
            terr = my;
        }
    }
    cdf_arena_reset(ar, mark);
    for (int t = 0; t < nt && t < 256; t++)
        if (tst[t]) {
            if (err) *err = terr;
            return tst[t];
        }
    /* QK^T and PV, counted in full even for causal masks (as FLOP bounds do) */
    ex->flops += 4 * (uint64_t)(a->B * a->heads) * (uint64_t)(a->Nq * a->Nk) * (uint64_t)a->D;
    ex->prof_flops[CDF_PROF_ATTENTION] += 4 * (uint64_t)(a->B * a->heads) * (uint64_t)(a->Nq * a->Nk) * (uint64_t)a->D;
    PROF_END(ex, CDF_PROF_ATTENTION);
    return CDF_OK;
}
