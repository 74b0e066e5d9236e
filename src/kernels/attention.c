/* Memory-efficient attention (float32): for each (batch, head, query tile)
 * the keys are visited in blocks and the softmax is accumulated online
 * (running max m, running sum l, rescaled output acc), so neither the
 * [Nq, Nk] score matrix nor a [heads, Nq, Nk] tensor is ever allocated.
 * Scratch per thread: one query tile's scores against one key block, a
 * transposed key block and the output accumulator. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/backend_internal.h"
#include "kernels/simd_math.h"

#define QT 32   /* query rows per tile */
#define KT 256  /* keys per block */

typedef struct attn_scratch {
    float *s;    /* [QT, KT] scores, then probabilities */
    float *kt;   /* [D, KT] transposed key block */
    float *acc;  /* [QT, D] */
    float *m, *l;
} attn_scratch;

static void tile(const cdf_attn_shape *a, attn_scratch *w, float *out, const float *q, const float *k,
                 const float *v, int64_t b, int64_t h, int64_t i0) {
    const int64_t D = a->D, qn = (i0 + QT <= a->Nq) ? QT : a->Nq - i0;
    const float *qb = q + (size_t)(b * a->Nq) * a->ldq + (size_t)(h * D);
    const float *kb = k + (size_t)(b * a->Nk) * a->ldk + (size_t)(h * D);
    const float *vb = v + (size_t)(b * a->Nk) * a->ldv + (size_t)(h * D);
    for (int64_t i = 0; i < qn; i++) {
        w->m[i] = -INFINITY;
        w->l[i] = 0.0f;
        memset(w->acc + i * D, 0, (size_t)D * sizeof(float));
    }
    int64_t kend = a->causal ? (i0 + qn < a->Nk ? i0 + qn : a->Nk) : a->Nk;
    for (int64_t j0 = 0; j0 < kend; j0 += KT) {
        const int64_t kn = (j0 + KT <= kend) ? KT : kend - j0;
        for (int64_t j = 0; j < kn; j++) {
            const float *kr = kb + (size_t)(j0 + j) * a->ldk;
            for (int64_t d = 0; d < D; d++) w->kt[d * KT + j] = kr[d];
        }
        for (int64_t i = 0; i < qn; i++) {
            float *s = w->s + i * KT;
            const float *qr = qb + (size_t)(i0 + i) * a->ldq;
            for (int64_t j = 0; j < kn; j++) s[j] = 0.0f;
            for (int64_t d = 0; d < D; d++) {
                const float qd = qr[d];
                const float *kt = w->kt + d * KT;
                for (int64_t j = 0; j < kn; j++) s[j] += qd * kt[j];
            }
            /* keys allowed for this row */
            int64_t jn = kn;
            if (a->causal) {
                int64_t lim = i0 + i + 1 - j0;
                jn = lim < kn ? (lim > 0 ? lim : 0) : kn;
            }
            if (jn == 0) continue;
            float mx = w->m[i];
            for (int64_t j = 0; j < jn; j++) {
                s[j] *= a->scale;
                mx = s[j] > mx ? s[j] : mx;
            }
            const float corr = cdf_expf(w->m[i] - mx); /* exp(-inf) -> 0 via clamp; acc and l are 0 then */
            float sum = 0.0f;
            for (int64_t j = 0; j < jn; j++) {
                s[j] = cdf_expf(s[j] - mx);
                sum += s[j];
            }
            w->m[i] = mx;
            w->l[i] = w->l[i] * corr + sum;
            float *acc = w->acc + i * D;
            for (int64_t d = 0; d < D; d++) acc[d] *= corr;
            for (int64_t j = 0; j < jn; j++) {
                const float p = s[j];
                const float *vr = vb + (size_t)(j0 + j) * a->ldv;
                for (int64_t d = 0; d < D; d++) acc[d] += p * vr[d];
            }
        }
    }
    float *ob = out + (size_t)(b * a->Nq) * a->ldo + (size_t)(h * D);
    for (int64_t i = 0; i < qn; i++) {
        const float inv = 1.0f / w->l[i];
        float *o = ob + (size_t)(i0 + i) * a->ldo;
        for (int64_t d = 0; d < D; d++) o[d] = w->acc[i * D + d] * inv;
    }
}

cdf_status cdf_attention(cdf_exec *ex, const cdf_attn_shape *a, float *out, const float *q, const float *k,
                         const float *v, cdf_err *err) {
    const int nt = cdf_exec_threads(ex);
    const int64_t D = a->D;
    const size_t per = (size_t)(QT * KT + D * KT + QT * D + 2 * QT) + 64;
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    float *scratch = cdf_arena_f32(ar, per * (size_t)nt, err);
    if (!scratch) return CDF_ERR_OUT_OF_MEMORY;
    const int64_t ntiles = (a->Nq + QT - 1) / QT;
#pragma omp parallel num_threads(nt)
    {
        float *base = scratch + per * (size_t)omp_get_thread_num();
        attn_scratch w = {base, base + QT * KT, base + QT * KT + D * KT, base + QT * KT + D * KT + QT * D,
                          base + QT * KT + D * KT + QT * D + QT};
#pragma omp for collapse(3) schedule(static)
        for (int64_t b = 0; b < a->B; b++)
            for (int64_t h = 0; h < a->heads; h++)
                for (int64_t t = 0; t < ntiles; t++) tile(a, &w, out, q, k, v, b, h, t * QT);
    }
    cdf_arena_reset(ar, mark);
    /* QK^T and PV, counted in full even for causal masks (as FLOP bounds do) */
    ex->flops += 4 * (uint64_t)(a->B * a->heads) * (uint64_t)(a->Nq * a->Nk) * (uint64_t)a->D;
    return CDF_OK;
}
