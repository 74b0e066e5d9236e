/* Fused attention on Intel AMX (bf16 operands, float32 accumulation and
 * softmax): for each (batch, head) and each tile of 16 query rows, the keys
 * are visited in blocks of 64; S = Q K^T for the block is four 16x16 tiles,
 * the online softmax runs on them with AVX-512, and O += P V accumulates
 * into the tile's float32 output, all in L1. No score matrix exists beyond
 * one 16 x 64 block per thread.
 *
 * K and V of every (batch, head) are first packed into the VNNI layouts the
 * tile multiply wants (pairs of bf16 along the reduced dimension), padded
 * with zeros: head dim to a multiple of 32 for Q K^T and of 16 for P V, keys
 * to a multiple of 64 (padded keys are masked to -inf). Work is split over
 * (batch, head, query tile); reductions never straddle threads, so results
 * do not depend on the thread count. Used for bf16 arithmetic when the CPU
 * has AMX and the kernel grants it (cdf_amx_ok); otherwise attention.c's
 * oneDNN path runs. */
#include "kernels/attention_amx.h"

#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels/backend_internal.h"
#include "kernels/simd.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__)
#include <immintrin.h>

#define ARCH_REQ_XCOMP_PERM_ 0x1023
#define XFEATURE_XTILEDATA_ 18

int cdf_amx_ok(void) {
    /* Linux hands out AMX state per process on request (idempotent). */
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_) == 0;
}

#define KB 128 /* keys per block (the softmax runs once per block and row) */

typedef struct __attribute__((packed)) tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static void config_tiles(void) {
    tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    _tile_loadconfig(&c);
}

typedef struct amx_plan {
    const cdf_attn_shape *a;
    int64_t Dq, Dv, Nkp, nch, ndt, nkb; /* padded dims; chunks of 32, dim tiles of 16, key blocks */
    uint16_t *kp, *vp;                  /* packed K and V of all (batch, head) */
} amx_plan;

/* K of one (batch, head) -> [Nkp/16][Dq/32][16 pairs][16 keys x 2] bf16 */
static void pack_k(const amx_plan *p, uint16_t *dst, const float *k, int64_t b, int64_t h) {
    const cdf_attn_shape *a = p->a;
    memset(dst, 0, (size_t)(p->Nkp * p->Dq) * sizeof(uint16_t));
    for (int64_t key = 0; key < a->Nk; key++) {
        const float *kr = k + (size_t)(b * a->Nk + key) * a->ldk + (size_t)(h * a->D);
        const int64_t kt = key / 16, j = key % 16;
        for (int64_t d = 0; d < a->D; d++) {
            const int64_t c = d / 32, r = (d % 32) / 2, e = d % 2;
            dst[((kt * p->nch + c) * 16 + r) * 32 + j * 2 + e] = cdf_f32_to_bf16(kr[d]);
        }
    }
}

/* V of one (batch, head) -> [Nkp/32][Dv/16][16 key pairs][16 dims x 2] bf16 */
static void pack_v(const amx_plan *p, uint16_t *dst, const float *v, int64_t b, int64_t h) {
    const cdf_attn_shape *a = p->a;
    memset(dst, 0, (size_t)(p->Nkp * p->Dv) * sizeof(uint16_t));
    for (int64_t key = 0; key < a->Nk; key++) {
        const float *vr = v + (size_t)(b * a->Nk + key) * a->ldv + (size_t)(h * a->D);
        const int64_t kb = key / 32, r = (key % 32) / 2, e = key % 2;
        for (int64_t d = 0; d < a->D; d++) {
            const int64_t t = d / 16, dd = d % 16;
            dst[((kb * p->ndt + t) * 16 + r) * 32 + dd * 2 + e] = cdf_f32_to_bf16(vr[d]);
        }
    }
}

typedef struct amx_ws {
    uint16_t *q;     /* [16][Dq] */
    float *s;        /* [16][KB] */
    uint16_t *pr[2]; /* [16][KB] probabilities, double-buffered */
    float *o;        /* [16][Dv] running output (AVX-512 side) */
    float *ob;       /* [16][Dv] one block's P V (tile side) */
    float m[16], l[16], corr[2][16];
} amx_ws;

/* S = Q K^T for 16 rows x 128 keys from key j0, in two halves of four tiles. */
static void block_qk(const amx_plan *p, amx_ws *w, const uint16_t *kp, int64_t j0) {
    for (int half = 0; half < 2; half++) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t c = 0; c < p->nch; c++) {
            _tile_loadd(4, w->q + c * 32, (long)(p->Dq * 2));
            const uint16_t *kt = kp + ((j0 / 16 + 4 * half) * p->nch + c) * 512;
            _tile_loadd(5, kt, 64);
            _tile_dpbf16ps(0, 4, 5);
            _tile_loadd(6, kt + p->nch * 512, 64);
            _tile_dpbf16ps(1, 4, 6);
            _tile_loadd(5, kt + 2 * p->nch * 512, 64);
            _tile_dpbf16ps(2, 4, 5);
            _tile_loadd(6, kt + 3 * p->nch * 512, 64);
            _tile_dpbf16ps(3, 4, 6);
        }
        float *sh = w->s + 64 * half;
        _tile_stored(0, sh, KB * 4);
        _tile_stored(1, sh + 16, KB * 4);
        _tile_stored(2, sh + 32, KB * 4);
        _tile_stored(3, sh + 48, KB * 4);
    }
}

/* Online softmax of each row's 128 scores into pr[slot] (bf16) and corr[slot]. */
static void block_softmax(const amx_plan *p, amx_ws *w, int64_t j0, int64_t i0, int64_t qn, int slot) {
    const cdf_attn_shape *a = p->a;
    const int64_t valid = a->Nk - j0 < KB ? a->Nk - j0 : KB;
    for (int64_t i = 0; i < 16; i++) {
        int64_t jn = valid;
        if (a->causal) {
            const int64_t lim = i0 + i + 1 - j0;
            jn = lim < jn ? (lim > 0 ? lim : 0) : jn;
        }
        const float *s = w->s + i * KB;
        uint16_t *pr = w->pr[slot] + i * KB;
        w->corr[slot][i] = 1.0f;
        if (jn == 0 || i >= qn) {
            memset(pr, 0, KB * sizeof(uint16_t));
            continue;
        }
        __m512 v[8];
        __mmask16 live[8];
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int t = 0; t < 8; t++) {
            const int64_t left = jn - 16 * t;
            live[t] = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1u) : 0;
            v[t] = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), live[t], s + 16 * t);
            mx = _mm512_max_ps(mx, v[t]);
        }
        const float bm = _mm512_reduce_max_ps(mx);
        const float mnew = bm > w->m[i] ? bm : w->m[i];
        const __m512 shv = _mm512_set1_ps(mnew);
        __m512 sum = _mm512_setzero_ps();
        for (int t = 0; t < 8; t += 2) {
            const __m512 e0 = _mm512_maskz_mov_ps(live[t], cdf_exp16_bf16(_mm512_sub_ps(v[t], shv)));
            const __m512 e1 = _mm512_maskz_mov_ps(live[t + 1], cdf_exp16_bf16(_mm512_sub_ps(v[t + 1], shv)));
            sum = _mm512_add_ps(sum, _mm512_add_ps(e0, e1));
            _mm512_storeu_si512((void *)(pr + 16 * t), (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
        }
        const float corr = w->m[i] == -INFINITY ? 0.0f : cdf_expf(w->m[i] - mnew);
        w->m[i] = mnew;
        w->l[i] = w->l[i] * corr + _mm512_reduce_add_ps(sum);
        w->corr[slot][i] = corr;
    }
}

/* Ob = P V in fresh tiles (up to three output tiles in 0-2 while the four
 * 32-key chunks of P (tile 4) meet their V tiles (5-7): independent
 * accumulators keep the tile unit busy); then O = O * corr + Ob on the
 * AVX-512 side, so O never goes through a tile load. */
static void block_pv(const amx_plan *p, amx_ws *w, const uint16_t *vp, int64_t j0, int64_t qn, int slot) {
    const int64_t Dv = p->Dv;
    const uint16_t *vb = vp + (size_t)((j0 / 32) * p->ndt) * 512;
    for (int64_t t0 = 0; t0 < p->ndt; t0 += 3) {
        const int64_t nt = p->ndt - t0 < 3 ? p->ndt - t0 : 3;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        for (int kc = 0; kc < KB / 32; kc++) {
            _tile_loadd(4, w->pr[slot] + kc * 32, KB * 2);
            const uint16_t *vt = vb + (size_t)(kc * p->ndt + t0) * 512;
            _tile_loadd(5, vt, 64);
            _tile_dpbf16ps(0, 4, 5);
            if (nt > 1) {
                _tile_loadd(6, vt + 512, 64);
                _tile_dpbf16ps(1, 4, 6);
            }
            if (nt > 2) {
                _tile_loadd(7, vt + 1024, 64);
                _tile_dpbf16ps(2, 4, 7);
            }
        }
        _tile_stored(0, w->ob + t0 * 16, (long)(Dv * 4));
        if (nt > 1) _tile_stored(1, w->ob + (t0 + 1) * 16, (long)(Dv * 4));
        if (nt > 2) _tile_stored(2, w->ob + (t0 + 2) * 16, (long)(Dv * 4));
    }
    for (int64_t i = 0; i < qn; i++) cdf_row_scale_add(w->o + i * Dv, w->ob + i * Dv, (size_t)Dv, w->corr[slot][i]);
}

static void tile_rows(const amx_plan *p, amx_ws *w, void *out, const float *q, int64_t b, int64_t h, int64_t i0) {
    const cdf_attn_shape *a = p->a;
    const int64_t D = a->D, Dq = p->Dq, Dv = p->Dv, qn = a->Nq - i0 < 16 ? a->Nq - i0 : 16;
    /* Q rows, scaled, as bf16 with zero padding */
    memset(w->q, 0, (size_t)(16 * Dq) * sizeof(uint16_t));
    float tmp[1024];
    for (int64_t i = 0; i < qn; i++) {
        const float *qr = q + (size_t)(b * a->Nq + i0 + i) * a->ldq + (size_t)(h * D);
        if (D <= 1024) {
            cdf_row_scale(tmp, qr, (size_t)D, a->scale);
            cdf_row_to_bf16(w->q + i * Dq, tmp, (size_t)D);
        } else {
            for (int64_t d = 0; d < D; d++) w->q[i * Dq + d] = cdf_f32_to_bf16(qr[d] * a->scale);
        }
    }
    memset(w->o, 0, (size_t)(16 * Dv) * sizeof(float));
    for (int i = 0; i < 16; i++) {
        w->m[i] = -INFINITY;
        w->l[i] = 0.0f;
    }
    const size_t bh = (size_t)(b * a->heads + h);
    const uint16_t *kp = p->kp + bh * (size_t)(p->Nkp * Dq), *vp = p->vp + bh * (size_t)(p->Nkp * Dv);
    /* Software-pipelined: block k's P V runs after block k+1's Q K^T, so the
     * vector stores of P have drained before the tile unit loads them. */
    block_qk(p, w, kp, 0);
    block_softmax(p, w, 0, i0, qn, 0);
    for (int64_t kb = 1; kb < p->nkb; kb++) {
        block_qk(p, w, kp, kb * KB);
        block_pv(p, w, vp, (kb - 1) * KB, qn, (int)((kb - 1) & 1));
        block_softmax(p, w, kb * KB, i0, qn, (int)(kb & 1));
    }
    block_pv(p, w, vp, (p->nkb - 1) * KB, qn, (int)((p->nkb - 1) & 1));
    const size_t ob = (size_t)(b * a->Nq + i0) * a->ldo + (size_t)(h * D);
    for (int64_t i = 0; i < qn; i++) {
        float *orow = w->o + i * Dv;
        cdf_row_scale(orow, orow, (size_t)D, 1.0f / w->l[i]);
        if (a->out_bf16) cdf_row_to_bf16((uint16_t *)out + ob + (size_t)i * a->ldo, orow, (size_t)D);
        else memcpy((float *)out + ob + (size_t)i * a->ldo, orow, (size_t)D * sizeof(float));
    }
}

cdf_status cdf_attention_amx(cdf_exec *ex, const cdf_attn_shape *a, void *out, const float *q, const float *k,
                             const float *v, cdf_err *err) {
    const int nt = cdf_exec_threads(ex);
    amx_plan p;
    p.a = a;
    p.Dq = (a->D + 31) / 32 * 32;
    p.Dv = (a->D + 15) / 16 * 16;
    p.Nkp = (a->Nk + KB - 1) / KB * KB;
    p.nch = p.Dq / 32;
    p.ndt = p.Dv / 16;
    p.nkb = p.Nkp / KB;
    const int64_t BH = a->B * a->heads;
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    p.kp = cdf_arena_alloc(ar, (size_t)(BH * p.Nkp * p.Dq) * 2, err);
    p.vp = cdf_arena_alloc(ar, (size_t)(BH * p.Nkp * p.Dv) * 2, err);
    const size_t per = (size_t)(16 * p.Dq) * 2 + 16 * KB * 4 + 2 * 16 * KB * 2 + (size_t)(16 * p.Dv) * 8 + 4 * 64;
    unsigned char *wsb = cdf_arena_alloc(ar, per * (size_t)nt, err);
    if (!p.kp || !p.vp || !wsb) {
        cdf_arena_reset(ar, mark);
        return CDF_ERR_OUT_OF_MEMORY;
    }
    const int par = (size_t)(BH * a->Nq * a->Nk * a->D) >= 64 * CDF_PAR_MIN;
#pragma omp parallel for schedule(static) num_threads(nt) if(par)
    for (int64_t bh = 0; bh < BH; bh++) {
        pack_k(&p, p.kp + (size_t)bh * (size_t)(p.Nkp * p.Dq), k, bh / a->heads, bh % a->heads);
        pack_v(&p, p.vp + (size_t)bh * (size_t)(p.Nkp * p.Dv), v, bh / a->heads, bh % a->heads);
    }
    const int64_t ntiles = (a->Nq + 15) / 16;
#pragma omp parallel num_threads(nt) if(par)
    {
        unsigned char *base = wsb + per * (size_t)omp_get_thread_num();
        amx_ws w;
        w.q = (uint16_t *)base;
        w.s = (float *)(base + ((size_t)(16 * p.Dq) * 2 + 63) / 64 * 64);
        w.pr[0] = (uint16_t *)((unsigned char *)w.s + 16 * KB * 4);
        w.pr[1] = w.pr[0] + 16 * KB;
        w.o = (float *)(w.pr[1] + 16 * KB);
        w.ob = w.o + 16 * p.Dv;
        config_tiles();
#pragma omp for collapse(2) schedule(static)
        for (int64_t bh = 0; bh < BH; bh++)
            for (int64_t t = 0; t < ntiles; t++) tile_rows(&p, &w, out, q, bh / a->heads, bh % a->heads, t * 16);
        _tile_release();
    }
    cdf_arena_reset(ar, mark);
    return CDF_OK;
}

#else /* no AMX in this build */

int cdf_amx_ok(void) { return 0; }

cdf_status cdf_attention_amx(cdf_exec *ex, const cdf_attn_shape *a, void *out, const float *q, const float *k,
                             const float *v, cdf_err *err) {
    (void)ex; (void)a; (void)out; (void)q; (void)k; (void)v;
    return cdf_errf(err, CDF_ERR_UNSUPPORTED, "this build has no AMX attention");
}

#endif
