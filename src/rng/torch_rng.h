/* Random number generators that reproduce PyTorch's streams.
 *
 * CDF_RNG_TORCH_CPU is torch.Generator('cpu') of torch 1.13 on x86-64 (AVX2
 * kernels): MT19937 seeded with the low 32 bits of the seed; see
 * ../shared/reference/README.md section 5 for the exact algorithm. A generator
 * is a plain value type: embed it, copy it, no allocation.
 *
 * CDF_RNG_TORCH_CUDA_PHILOX is reserved for torch's CUDA Philox stream
 * (stable-diffusion.cpp's "cuda" rng); not implemented yet. */
#ifndef CDF_RNG_TORCH_RNG_H
#define CDF_RNG_TORCH_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef enum cdf_rng_kind {
    CDF_RNG_TORCH_CPU = 0,
    CDF_RNG_TORCH_CUDA_PHILOX = 1 /* reserved */
} cdf_rng_kind;

typedef struct cdf_rng {
    cdf_rng_kind kind;
    uint64_t seed;            /* as given to cdf_rng_seed (all 64 bits) */
    uint32_t mt[624];
    int mti;
    /* torch's normal_distribution<double> caches the second Box-Muller value
     * across calls (numel < 16 path); manual_seed clears it. */
    int has_cached_normal;
    double cached_normal;
} cdf_rng;

/* torch.Generator('cpu').manual_seed(seed). */
void cdf_rng_seed(cdf_rng *g, uint64_t seed);

uint32_t cdf_rng_u32(cdf_rng *g);          /* one MT19937 output */
double cdf_rng_uniform_f64(cdf_rng *g);    /* [0,1) from two outputs, 53 bits */

/* torch.rand(n, generator=g) (float32). */
void cdf_rng_rand_f32(cdf_rng *g, float *out, size_t n);
/* torch.randn(n, generator=g) (float32), both of torch's paths (n < 16, n >= 16). */
void cdf_rng_randn_f32(cdf_rng *g, float *out, size_t n);
/* torch.randn(n, generator=g, dtype=torch.float16), as IEEE half bits. */
void cdf_rng_randn_f16(cdf_rng *g, uint16_t *out, size_t n);

#endif
