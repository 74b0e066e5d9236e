/* Element types: sizes, names, and scalar conversions between float32 and
 * the two half-precision formats. The conversions round to nearest even,
 * as torch's .half() / .bfloat16() do. */
#ifndef CDF_CORE_DTYPE_H
#define CDF_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cdiffusers.h"

size_t cdf_dtype_size(cdf_dtype dt);
const char *cdf_dtype_name(cdf_dtype dt); /* safetensors spelling: "F32", ... */
/* Parses a safetensors dtype string; returns 0 and sets *out, or -1. */
int cdf_dtype_parse(const char *s, cdf_dtype *out);

static inline float cdf_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t cdf_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float cdf_bf16_to_f32(uint16_t h) { return cdf_f32_from_bits((uint32_t)h << 16); }

static inline uint16_t cdf_f32_to_bf16(float f) {
    uint32_t u = cdf_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float cdf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        if (man == 0) return cdf_f32_from_bits(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (exp == 31) return cdf_f32_from_bits(sign | 0x7f800000u | (man << 13));
    return cdf_f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t cdf_f32_to_f16(float f) {
    uint32_t u = cdf_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;          /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;         /* overflow -> inf (>= 65520) */
    if (a < 0x38800000u) {                               /* subnormal or zero in f16 */
        /* round(a_value / 2^-24) with ties to even, done in float arithmetic */
        float v = cdf_f32_from_bits(a) * 16777216.0f;   /* exact scaling by 2^24 */
        uint32_t m = (uint32_t)__builtin_nearbyintf(v);
        return sign | (uint16_t)m;
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);           /* round mantissa to 10 bits */
    return sign | (uint16_t)(((r >> 13) - (112u << 10)) & 0x7fffu);
}

#endif
