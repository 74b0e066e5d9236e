/* Vectorised row primitives for the non-GEMM parts of the kernels (softmax,
 * norms, activations, conversions). AVX-512 intrinsics when the build targets
 * it (-march=native on AVX-512 machines), plain loops otherwise. The two
 * paths may differ in the last bits (summation order); each is deterministic
 * and independent of the thread count. */
#ifndef CDF_KERNELS_SIMD_H
#define CDF_KERNELS_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "kernels/simd_math.h"

#if defined(__AVX512F__)
#include <immintrin.h>

/* exp for 16 lanes: the same Cephes polynomial as cdf_expf. */
static inline __m512 cdf_exp16(__m512 x) {
    x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3365447504019f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n); /* p * 2^n in one instruction */
}

/* exp for probabilities that are rounded to bf16 next (8 significant bits):
 * 2^f on [-0.5, 0.5] by a degree-4 polynomial (relative error < 3e-6, far
 * below bf16's 2^-9), about half the instructions of cdf_exp16. */
static inline __m512 cdf_exp16_bf16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    /* near-minimax fit of 2^f (Lawson iteration), max relative error 2.7e-6 */
    __m512 p = _mm512_set1_ps(9.57010128e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.59178591e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.40247443e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.93121791e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.99999285e-1f));
    return _mm512_scalef_ps(p, n);
}

static inline __mmask16 cdf_tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}
#endif

/* sum of x[0..n), and sum of (x - c)^2 (16 partial sums, then combined) */
static inline float cdf_row_sum(const float *x, size_t n) {
#if defined(__AVX512F__)
    __m512 s = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(cdf_tail_mask(n - i), x + i));
    return _mm512_reduce_add_ps(s);
#else
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
#endif
}

static inline float cdf_row_sqdev(const float *x, size_t n, float c) {
#if defined(__AVX512F__)
    __m512 s = _mm512_setzero_ps(), vc = _mm512_set1_ps(c);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = cdf_tail_mask(n - i);
        __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), vc);
        s = _mm512_fmadd_ps(d, d, s);
    }
    return _mm512_reduce_add_ps(s);
#else
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += (x[i] - c) * (x[i] - c);
    return s;
#endif
}

/* y[i] = x[i] / (1 + exp(-x[i])) */
static inline void cdf_row_silu(float *y, const float *x, size_t n) {
#if defined(__AVX512F__)
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = cdf_tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        __m512 e = cdf_exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
        _mm512_mask_storeu_ps(y + i, k, _mm512_div_ps(v, _mm512_add_ps(one, e)));
    }
#else
    for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + cdf_expf(-x[i]));
#endif
}

/* y[i] = a[i] * gelu(g[i]), gelu with the A&S erf (as PyTorch's CPU kernel) */
static inline void cdf_row_geglu(float *y, const float *a, const float *g, size_t n) {
#if defined(__AVX512F__)
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), rs2 = _mm512_set1_ps(0.70710678118654752f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = cdf_tail_mask(n - i);
        __m512 gv = _mm512_maskz_loadu_ps(k, g + i), av = _mm512_maskz_loadu_ps(k, a + i);
        __m512 z = _mm512_mul_ps(gv, rs2);
        __m512 az = _mm512_abs_ps(z);
        __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), az, one));
        __m512 p = _mm512_set1_ps(1.061405429f);
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
        __m512 e = cdf_exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(az, az)));
        __m512 erf = _mm512_fnmadd_ps(_mm512_mul_ps(p, t), e, one);
        /* sign of z */
        erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf),
                                                  _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(INT32_MIN))));
        __m512 gel = _mm512_mul_ps(_mm512_mul_ps(half, gv), _mm512_add_ps(one, erf));
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(av, gel));
    }
#else
    for (size_t i = 0; i < n; i++) y[i] = a[i] * (0.5f * g[i] * (1.0f + cdf_erff(g[i] * 0.70710678118654752f)));
#endif
}

/* max of x[0..n) (n >= 1) */
static inline float cdf_row_max(const float *x, size_t n) {
#if defined(__AVX512F__)
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (size_t i = 0; i < n; i += 16)
        m = _mm512_max_ps(m, _mm512_mask_loadu_ps(m, cdf_tail_mask(n - i), x + i));
    return _mm512_reduce_max_ps(m);
#else
    float m = x[0];
    for (size_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
#endif
}

/* x[i] = exp(x[i] - shift); returns the sum. */
static inline float cdf_row_exp_sum(float *x, size_t n, float shift) {
#if defined(__AVX512F__)
    __m512 s = _mm512_setzero_ps(), sh = _mm512_set1_ps(shift);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = cdf_tail_mask(n - i);
        __m512 v = cdf_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), sh));
        _mm512_mask_storeu_ps(x + i, k, v);
        s = _mm512_mask_add_ps(s, k, s, v);
    }
    return _mm512_reduce_add_ps(s);
#else
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += (x[i] = cdf_expf(x[i] - shift));
    return s;
#endif
}

/* p[i] = bf16(exp(x[i] - shift)) for a bf16 probability row; returns the
 * float32 sum (of the unrounded values, as the float path sums them). */
static inline float cdf_row_exp_sum_bf16(const float *x, uint16_t *p, size_t n, float shift) {
#if defined(__AVX512BF16__)
    __m512 s = _mm512_setzero_ps(), sh = _mm512_set1_ps(shift);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = cdf_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh));
        __m512 b = cdf_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), sh));
        s = _mm512_add_ps(s, _mm512_add_ps(a, b));
        _mm512_storeu_si512((void *)(p + i), (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
    float t = _mm512_reduce_add_ps(s);
    for (; i < n; i++) {
        const float e = cdf_expf(x[i] - shift);
        t += e;
        p[i] = cdf_f32_to_bf16(e);
    }
    return t;
#else
    float t = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float e = cdf_expf(x[i] - shift);
        t += e;
        p[i] = cdf_f32_to_bf16(e);
    }
    return t;
#endif
}

/* y[i] = float(h[i]) for IEEE half h (exact). */
static inline void cdf_row_f16_to_f32(float *y, const uint16_t *h, size_t n) {
#if defined(__AVX512F__)
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
    for (; i < n; i++) y[i] = cdf_f16_to_f32(h[i]);
#else
    for (size_t i = 0; i < n; i++) y[i] = cdf_f16_to_f32(h[i]);
#endif
}

/* y[i] = bf16(x[i]), round to nearest even. */
static inline void cdf_row_to_bf16(uint16_t *y, const float *x, size_t n) {
#if defined(__AVX512BF16__)
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512((void *)(y + i), (__m512i)v);
    }
    for (; i < n; i++) y[i] = cdf_f32_to_bf16(x[i]);
#else
    for (size_t i = 0; i < n; i++) y[i] = cdf_f32_to_bf16(x[i]);
#endif
}

/* y[i] = x[i] * s */
static inline void cdf_row_scale(float *y, const float *x, size_t n, float s) {
#if defined(__AVX512F__)
    __m512 vs = _mm512_set1_ps(s);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = cdf_tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs));
    }
#else
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s;
#endif
}

/* y[i] = y[i] * s + x[i] */
static inline void cdf_row_scale_add(float *y, const float *x, size_t n, float s) {
#if defined(__AVX512F__)
    __m512 vs = _mm512_set1_ps(s);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = cdf_tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, y + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_add_ps(_mm512_mul_ps(v, vs), _mm512_maskz_loadu_ps(k, x + i)));
    }
#else
    for (size_t i = 0; i < n; i++) y[i] = y[i] * s + x[i];
#endif
}

/* y[i] = x[i] * sc[i] + sh[i], optionally followed by SiLU (group norm's affine step). */
static inline void cdf_row_affine(float *y, const float *x, const float *sc, const float *sh, size_t n, int silu) {
#if defined(__AVX512F__)
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = cdf_tail_mask(n - i);
        __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, sc + i)),
                                 _mm512_maskz_loadu_ps(k, sh + i));
        if (silu) {
            __m512 e = cdf_exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
            v = _mm512_div_ps(v, _mm512_add_ps(one, e));
        }
        _mm512_mask_storeu_ps(y + i, k, v);
    }
#else
    for (size_t i = 0; i < n; i++) {
        float v = x[i] * sc[i] + sh[i];
        y[i] = silu ? v / (1.0f + cdf_expf(-v)) : v;
    }
#endif
}

#endif
