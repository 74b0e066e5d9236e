/* torch.Generator('cpu') of torch 1.13 on x86-64, reproduced bit for bit.
 *
 * The float32 randn path (numel >= 16) is torch's AVX2 kernel: Cephes-style
 * log/sincos polynomials (avx_mathfun.h) that GCC 12 compiled with FMA
 * contraction. Which multiply-adds were fused was read off the machine code
 * of that kernel; every fused one is an explicit fmaf() below and every
 * other operation rounds on its own. The compiler must therefore not contract
 * anything else in this file: -std=c11 already means -ffp-contract=off for
 * GCC, and the pragmas below make sure of it whatever the flags. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "rng/torch_rng.h"

#include <math.h>
#include <string.h>

#include "core/dtype.h"

/* ---- MT19937 (torch's at::mt19937, seeded with the low 32 bits) ---- */

enum { MT_N = 624, MT_M = 397 };

void cdf_rng_seed(cdf_rng *g, uint64_t seed) {
    g->kind = CDF_RNG_TORCH_CPU;
    g->seed = seed;
    g->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int i = 1; i < MT_N; i++)
        g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
    g->mti = MT_N;
    g->has_cached_normal = 0;
    g->cached_normal = 0.0;
}

static void mt_twist(cdf_rng *g) {
    uint32_t *mt = g->mt;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % MT_N] & 0x7fffffffu);
        uint32_t v = mt[(i + MT_M) % MT_N] ^ (y >> 1);
        if (y & 1u) v ^= 0x9908b0dfu;
        mt[i] = v;
    }
    g->mti = 0;
}

uint32_t cdf_rng_u32(cdf_rng *g) {
    if (g->mti >= MT_N) mt_twist(g);
    uint32_t y = g->mt[g->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

double cdf_rng_uniform_f64(cdf_rng *g) {
    uint64_t hi = cdf_rng_u32(g);
    uint64_t lo = cdf_rng_u32(g);
    uint64_t v = ((hi << 32) | lo) & ((UINT64_C(1) << 53) - 1);
    return (double)v * (1.0 / 9007199254740992.0);
}

static float uniform_f32(cdf_rng *g) {
    return (float)(cdf_rng_u32(g) & 0xffffffu) * (1.0f / 16777216.0f);
}

void cdf_rng_rand_f32(cdf_rng *g, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = uniform_f32(g);
}

/* ---- serial path (numel < 16): at::normal_distribution<double> ---- */

static double normal_f64(cdf_rng *g) {
    if (g->has_cached_normal) {
        g->has_cached_normal = 0;
        return g->cached_normal * 1.0 + 0.0; /* transformation::normal(x, mean 0, std 1) */
    }
    double u1 = cdf_rng_uniform_f64(g);
    double u2 = cdf_rng_uniform_f64(g);
    double r = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    g->cached_normal = r * sin(theta);
    g->has_cached_normal = 1;
    return r * cos(theta) * 1.0 + 0.0;
}

/* ---- vectorised path (numel >= 16), float32: the AVX2 kernel lane by lane ---- */

static inline float bits_f(uint32_t u) { return cdf_f32_from_bits(u); }
static inline uint32_t f_bits(float f) { return cdf_f32_bits(f); }
/* A lane of _mm256_and_ps(mask, v): v where the mask is set, +0 elsewhere. */
static inline float sel(int mask, float v) { return mask ? v : 0.0f; }

/* log256_ps */
static float cephes_logf(float x) {
    const float one = 1.0f;
    int invalid = x <= 0.0f;
    float min_norm = bits_f(0x00800000u);
    x = x > min_norm ? x : min_norm; /* vmaxps */
    int32_t imm0 = (int32_t)(f_bits(x) >> 23) - 0x7f;
    x = bits_f((f_bits(x) & ~0x7f800000u) | f_bits(0.5f));
    float e = (float)imm0 + one;
    int mask = x < 0.707106781186547524f;
    float tmp = sel(mask, x);
    x = x - one;
    e = e - sel(mask, one);
    x = x + tmp;
    float z = x * x;
    float y = fmaf(7.0376836292E-2f, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, 1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, 2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, 3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, 0.693359375f, x);
    if (invalid) x = bits_f(0xffffffffu);
    return x;
}

/* sincos256_ps */
static void cephes_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = f_bits(x) & 0x80000000u;
    x = bits_f(f_bits(x) & 0x7fffffffu);
    float y = x * 1.27323954473516f;
    int32_t j = (int32_t)y; /* cvttps: truncation; arguments here are < 2*pi */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
    int poly = (j & 2) == 0;
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
    sign_sin ^= swap_sin;

    float z = x * x;
    float half_z = z * 0.5f;
    float yc = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = z * yc;
    yc = fmaf(z, yc, -half_z);
    yc = yc + 1.0f;

    float ys = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = z * ys;
    ys = fmaf(ys, x, x);

    float ysin2 = sel(poly, ys);
    float ysin1 = sel(!poly, yc);
    ys = ys - ysin2;
    yc = yc - ysin1;
    *s = bits_f(f_bits(ysin1 + ysin2) ^ sign_sin);
    *c = bits_f(f_bits(yc + ys) ^ sign_cos);
}

/* normal_fill_16_AVX2 with mean 0, std 1. */
static void normal_fill_16_f32(float *d) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(cephes_logf(u1) * -2.0f);
        float theta = u2 * two_pi;
        float st, ct;
        cephes_sincosf(theta, &st, &ct);
        d[j] = fmaf(radius * ct, 1.0f, 0.0f);
        d[j + 8] = fmaf(radius * st, 1.0f, 0.0f);
    }
}

void cdf_rng_randn_f32(cdf_rng *g, float *out, size_t n) {
    if (n < 16) {
        for (size_t i = 0; i < n; i++) out[i] = (float)normal_f64(g);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = uniform_f32(g);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16_f32(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(g);
        normal_fill_16_f32(tail);
    }
}

/* ---- float16: torch's generic normal_fill<c10::Half> ---- */

static inline uint16_t h_from_f(float f) { return cdf_f32_to_f16(f); }
static inline float f_from_h(uint16_t h) { return cdf_f16_to_f32(h); }

static uint16_t uniform_f16(cdf_rng *g) {
    return h_from_f((float)(cdf_rng_u32(g) & 0x7ffu) * (1.0f / 2048.0f));
}

/* normal_fill_16<Half>: u1, radius and theta are Half variables; log, sqrt,
 * cos and sin run in float (glibc); theta is 2*pi (double) times u2, rounded
 * to float and then to half as c10::Half(double) does. */
static void normal_fill_16_f16(uint16_t *d) {
    for (int j = 0; j < 8; j++) {
        uint16_t u1 = h_from_f(1.0f - f_from_h(d[j]));
        float u2 = f_from_h(d[j + 8]);
        uint16_t radius = h_from_f(sqrtf(-2.0f * logf(f_from_h(u1))));
        uint16_t theta = h_from_f((float)(2.0 * 3.14159265358979323846 * (double)u2));
        float r = f_from_h(radius), th = f_from_h(theta);
        d[j] = h_from_f(fmaf(r * cosf(th), 1.0f, 0.0f));
        d[j + 8] = h_from_f(fmaf(r * sinf(th), 1.0f, 0.0f));
    }
}

void cdf_rng_randn_f16(cdf_rng *g, uint16_t *out, size_t n) {
    if (n < 16) {
        for (size_t i = 0; i < n; i++) out[i] = h_from_f((float)normal_f64(g));
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = uniform_f16(g);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16_f16(out + i);
    if (n % 16 != 0) {
        uint16_t *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f16(g);
        normal_fill_16_f16(tail);
    }
}
