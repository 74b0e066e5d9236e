/* See tmath.h. Each function follows the operation sequence of the vector
 * kernel lane by lane; the kernels use explicit FMAs only (SLEEF is built
 * with -ffp-contract=off, numpy's loops use intrinsics), so every fmaf()
 * below is one of theirs and nothing else may be contracted. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "schedulers/tmath.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ---- SLEEF double-float helpers (df.h, ENABLE_FMA_SP variants) ---- */

typedef struct { float x, y; } df2;

static inline df2 df(float x, float y) { df2 r = {x, y}; return r; }

static inline df2 dfadd2_f_f(float x, float y) {
    float s = x + y, v = s - x;
    return df(s, (x - (s - v)) + (y - v));
}
static inline df2 dfadd_f2_f(df2 x, float y) {
    float s = x.x + y;
    return df(s, ((x.x - s) + y) + x.y);
}
static inline df2 dfadd_f_f(float x, float y) {
    float s = x + y;
    return df(s, (x - s) + y);
}
static inline df2 dfadd_f_f2(float x, df2 y) {
    float s = x + y.x;
    return df(s, ((x - s) + y.x) + y.y);
}
static inline df2 dfadd_f2_f2(df2 x, df2 y) {
    float s = x.x + y.x;
    return df(s, (((x.x - s) + y.x) + x.y) + y.y);
}
static inline df2 dfadd2_f2_f(df2 x, float y) {
    float s = x.x + y, v = s - x.x;
    float t = (x.x - (s - v)) + (y - v);
    return df(s, t + x.y);
}
static inline df2 dfadd2_f2_f2(df2 x, df2 y) {
    float s = x.x + y.x, v = s - x.x;
    float t = (x.x - (s - v)) + (y.x - v);
    return df(s, t + (x.y + y.y));
}
static inline df2 dfscale(df2 d, float s) { return df(d.x * s, d.y * s); }
static inline df2 dfmul_f2_f(df2 x, float y) {
    float s = x.x * y;
    return df(s, fmaf(x.y, y, fmaf(x.x, y, -s)));
}
static inline df2 dfmul_f2_f2(df2 x, df2 y) {
    float s = x.x * y.x;
    return df(s, fmaf(x.x, y.y, fmaf(x.y, y.x, fmaf(x.x, y.x, -s))));
}
static inline float dfmul_to_f(df2 x, df2 y) {
    return fmaf(x.x, y.x, fmaf(x.y, y.x, x.x * y.y));
}
static inline df2 dfsqu(df2 x) {
    float s = x.x * x.x;
    return df(s, fmaf(x.x + x.x, x.y, fmaf(x.x, x.x, -s)));
}
static inline df2 dfdiv(df2 n, df2 d) {
    float t = 1.0f / d.x;
    float s = n.x * t;
    float u = fmaf(t, n.x, -s);
    float v = fmaf(-d.y, t, fmaf(-d.x, t, 1.0f));
    return df(s, fmaf(s, v, fmaf(n.y, t, u)));
}

static inline float pow2i(int32_t q) { return bitsf((uint32_t)(q + 0x7f) << 23); }
static inline float ldexp2k(float d, int32_t e) { return d * pow2i(e >> 1) * pow2i(e - (e >> 1)); }
/* _mm256_cvtps_epi32 under the default rounding mode: NaN and values beyond
 * int32 give the "integer indefinite" INT32_MIN (a plain cast would be
 * undefined; KDPM2's log-midpoint of sigma 0 feeds NaN here by design). */
static inline int32_t rint_i(float x) {
    const float r = rintf(x);
    return r >= -2147483648.0f && r < 2147483648.0f ? (int32_t)r : INT32_MIN;
}

#define L2Uf 0.693145751953125f
#define L2Lf 1.428606765330187045e-06f
#define R_LN2f 1.442695040888963407359924681001892137426645954152985934135449406931f

float cdf_torch_logf(float d) {
    int o = d < FLT_MIN;
    if (o) d = d * ((float)(INT64_C(1) << 32) * (float)(INT64_C(1) << 32));
    int32_t e = (int32_t)((fbits(d * (1.0f / 0.75f)) >> 23) & 0xff) - 0x7f;
    float m = bitsf(fbits(d) + ((uint32_t)(-e) << 23));
    if (o) e -= 64;
    df2 s = dfmul_f2_f(df(0.69314718246459960938f, -1.904654323148236017e-09f), (float)e);
    df2 x = dfdiv(dfadd2_f_f(-1.0f, m), dfadd2_f_f(1.0f, m));
    float x2 = x.x * x.x;
    float t = 0.3027294874e+0f;
    t = fmaf(t, x2, 0.3996108174e+0f);
    t = fmaf(t, x2, 0.6666694880e+0f);
    s = dfadd_f2_f2(s, dfscale(x, 2.0f));
    s = dfadd_f2_f(s, (x2 * x.x) * t);
    float r = s.x + s.y;
    if (isinf(d) && d > 0) r = INFINITY;
    if (d < 0 || isnan(d)) r = NAN;
    if (d == 0) r = -INFINITY;
    return r;
}

float cdf_torch_expf(float d) {
    int32_t q = rint_i(d * R_LN2f);
    float s = fmaf((float)q, -L2Uf, d);
    s = fmaf((float)q, -L2Lf, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    u = ldexp2k(u, q);
    if (d < -104) u = 0.0f;
    if (100 < d) u = INFINITY;
    return u;
}

static df2 expk2f(df2 d) {
    float u = (d.x + d.y) * R_LN2f;
    int32_t q = rint_i(u);
    df2 s = dfadd2_f2_f(d, (float)q * -L2Uf);
    s = dfadd2_f2_f(s, (float)q * -L2Lf);
    u = 0.1980960224e-3f;
    u = fmaf(u, s.x, 0.1394256484e-2f);
    u = fmaf(u, s.x, 0.8333456703e-2f);
    u = fmaf(u, s.x, 0.4166637361e-1f);
    df2 t = dfadd2_f2_f(dfmul_f2_f(s, u), 0.166666659414234244790680580464e+0f);
    t = dfadd2_f2_f(dfmul_f2_f2(s, t), 0.5f);
    t = dfadd2_f2_f2(s, dfmul_f2_f2(dfsqu(s), t));
    t = dfadd_f_f2(1.0f, t);
    t.x = ldexp2k(t.x, q);
    t.y = ldexp2k(t.y, q);
    if (d.x < -104) t = df(0.0f, 0.0f);
    return t;
}

float cdf_torch_expm1f(float a) {
    df2 d = dfadd2_f2_f(expk2f(df(a, 0.0f)), -1.0f);
    float x = d.x + d.y;
    if (a > 88.72283172607421875f) x = INFINITY;
    if (a < -16.635532333438687426013570f) x = -1.0f;
    if (a == 0.0f && signbit(a)) x = -0.0f;
    return x;
}

#define PI_A2f 3.1414794921875f
#define PI_B2f 0.00011315941810607910156f
#define PI_C2f 1.9841872589410058936e-09f

float cdf_torch_sinf(float d) {
    if (!(fabsf(d) < 125.0f)) return sinf(d); /* SLEEF's slow path (Payne-Hanek) is not reproduced */
    float u = rintf(d * (float)0.318309886183790671537767526745028724);
    int32_t q = rint_i(u);
    float v = fmaf(u, -PI_A2f, d);
    df2 s = dfadd2_f_f(v, u * -PI_B2f);
    s = dfadd_f2_f(s, u * -PI_C2f);
    df2 t = s;
    s = dfsqu(s);
    u = 2.6083159809786593541503e-06f;
    u = fmaf(u, s.x, -0.0001981069071916863322258f);
    u = fmaf(u, s.x, 0.00833307858556509017944336f);
    df2 x = dfadd_f_f2(1.0f, dfmul_f2_f2(dfadd_f_f(-0.166666597127914428710938f, u * s.x), s));
    u = dfmul_to_f(t, x);
    if (q & 1) u = bitsf(fbits(u) ^ 0x80000000u);
    if (d == 0.0f && signbit(d)) u = d;
    return u;
}

float cdf_numpy_logf(float x) {
    if (isnan(x)) return x;
    if (x < 0.0f) return -NAN;
    if (x == 0.0f) return -INFINITY;
    if (isinf(x)) return INFINITY;
    float expo;
    uint32_t b;
    if (x < FLT_MIN) { /* denormal: scale by 2^100 first */
        b = fbits(x * bitsf(0x71800000u));
        expo = (float)((int32_t)(b >> 23) - 0x7e) - 100.0f;
    } else {
        b = fbits(x);
        expo = (float)((int32_t)(b >> 23) - 0x7e);
    }
    float m = bitsf((b & 0x7fffffu) | (126u << 23));
    if (m <= 0.707106781186547524400844362104849039f) {
        m = m + m;
        expo = expo - 1.0f;
    }
    m = m - 1.0f;
    float num = fmaf(2.589979117907922693523e-02f, m, 3.808837741388407920751e-01f);
    num = fmaf(num, m, 1.480000633576506585156e+00f);
    num = fmaf(num, m, 2.112677543073053063722e+00f);
    num = fmaf(num, m, 9.999999999999998702752e-01f);
    num = fmaf(num, m, 0.0f);
    float den = fmaf(5.875095403124574342950e-03f, m, 1.546476374983906719538e-01f);
    den = fmaf(den, m, 9.864942958519418960339e-01f);
    den = fmaf(den, m, 2.453006071784736363091e+00f);
    den = fmaf(den, m, 2.612677543073109236779e+00f);
    den = fmaf(den, m, 1.000000000000000000000e+00f);
    return fmaf(expo, 0.693147180559945309417232121458176568f, num / den);
}
