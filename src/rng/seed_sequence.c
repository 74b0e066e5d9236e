/* numpy.random.SeedSequence, after numpy/random/bit_generator.pyx (v1.24.2):
 * the same constants and the same order of the pool-mixing loops. All
 * arithmetic is uint32 with wrap-around, as in the Cython source. */
#include "rng/seed_sequence.h"

enum {
    SS_INIT_A = 0x43b0d7e5u,
    SS_MULT_A = 0x931e8875u,
    SS_INIT_B = 0x8b51f9ddu,
    SS_MULT_B = 0x58f38dedu,
    SS_MIX_MULT_L = 0xca01f9ddu,
    SS_MIX_MULT_R = 0x4973f715u,
};
#define SS_XSHIFT 16

static uint32_t hashmix(uint32_t value, uint32_t *hash_const) {
    value ^= *hash_const;
    *hash_const *= (uint32_t)SS_MULT_A;
    value *= *hash_const;
    value ^= value >> SS_XSHIFT;
    return value;
}

static uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t result = (uint32_t)SS_MIX_MULT_L * x - (uint32_t)SS_MIX_MULT_R * y;
    result ^= result >> SS_XSHIFT;
    return result;
}

/* A Python int as numpy's _int_to_uint32_array splits it: 0 is one word. */
static size_t int_to_words(uint64_t n, uint32_t *out) {
    size_t k = 0;
    if (n == 0) out[k++] = 0;
    while (n > 0) {
        out[k++] = (uint32_t)(n & 0xffffffffu);
        n >>= 32;
    }
    return k;
}

cdf_status cdf_seedseq_init(cdf_seed_sequence *ss, uint64_t entropy, const uint64_t *spawn_key,
                            size_t n_spawn_key, size_t pool_size, cdf_err *err) {
    if (pool_size < 4 || pool_size > CDF_SEEDSEQ_MAX_POOL)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "SeedSequence: pool_size %zu outside [4, %d]", pool_size,
                        CDF_SEEDSEQ_MAX_POOL);
    if (n_spawn_key > CDF_SEEDSEQ_MAX_SPAWN_KEY)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "SeedSequence: spawn key of %zu integers (at most %d)",
                        n_spawn_key, CDF_SEEDSEQ_MAX_SPAWN_KEY);

    /* get_assembled_entropy: run entropy, zero-padded to the pool size only
     * when there is a spawn key (numpy 1.19 fix for gh-16539), then the key. */
    uint32_t words[CDF_SEEDSEQ_MAX_POOL + 2 * CDF_SEEDSEQ_MAX_SPAWN_KEY];
    size_t n = int_to_words(entropy, words);
    if (n_spawn_key > 0) {
        while (n < pool_size) words[n++] = 0;
        for (size_t i = 0; i < n_spawn_key; i++) n += int_to_words(spawn_key[i], words + n);
    }

    /* mix_entropy */
    uint32_t hc = SS_INIT_A;
    uint32_t *pool = ss->pool;
    ss->pool_size = pool_size;
    for (size_t i = 0; i < pool_size; i++) pool[i] = hashmix(i < n ? words[i] : 0u, &hc);
    for (size_t src = 0; src < pool_size; src++)
        for (size_t dst = 0; dst < pool_size; dst++)
            if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], &hc));
    for (size_t src = pool_size; src < n; src++)
        for (size_t dst = 0; dst < pool_size; dst++) pool[dst] = mix(pool[dst], hashmix(words[src], &hc));
    return CDF_OK;
}

void cdf_seedseq_generate_state(const cdf_seed_sequence *ss, uint32_t *out, size_t n_words) {
    uint32_t hc = SS_INIT_B;
    for (size_t i = 0; i < n_words; i++) {
        uint32_t v = ss->pool[i % ss->pool_size];
        v ^= hc;
        hc *= (uint32_t)SS_MULT_B;
        v *= hc;
        v ^= v >> SS_XSHIFT;
        out[i] = v;
    }
}
