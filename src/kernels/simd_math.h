/* Branch-free float math that the compiler can vectorise (no libm calls in
 * hot loops; -ffast-math is never used, so libm would stay scalar). */
#ifndef CDF_KERNELS_SIMD_MATH_H
#define CDF_KERNELS_SIMD_MATH_H

#include <stdint.h>
#include <string.h>

/* exp(x), Cephes expf polynomial after range reduction; about 1 ulp.
 * Inputs below -87.3 return a tiny positive number, not 0. */
static inline float cdf_expf(float x) {
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365447504019f ? -87.3365447504019f : x;
    float n = __builtin_rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, 4);
    return p * s;
}

/* erf(x) by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), the same formula
 * PyTorch's vectorised CPU erf uses. */
static inline float cdf_erff(float x) {
    float a = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t + -1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t + -0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * cdf_expf(-a * a);
    return x < 0 ? -y : y;
}

static inline float cdf_sigmoidf(float x) { return 1.0f / (1.0f + cdf_expf(-x)); }

#endif
