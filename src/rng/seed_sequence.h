/* numpy.random.SeedSequence (numpy >= 1.19, unchanged through 1.24+):
 * the entropy pool hash that torchsde uses to derive one seed per node of
 * its Brownian tree.
 *
 * Only integer entropy and integer spawn keys are supported (what torchsde
 * passes); each integer is split into 32-bit words, lowest first, 0 giving
 * one word, as numpy's _coerce_to_uint32_array does for Python ints. */
#ifndef CDF_RNG_SEED_SEQUENCE_H
#define CDF_RNG_SEED_SEQUENCE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* The largest pool this implementation holds (numpy allows any size >= 4;
 * torchsde uses 8 or 24). */
#define CDF_SEEDSEQ_MAX_POOL 64
/* At most this many spawn-key integers. */
#define CDF_SEEDSEQ_MAX_SPAWN_KEY 8

typedef struct cdf_seed_sequence {
    size_t pool_size;
    uint32_t pool[CDF_SEEDSEQ_MAX_POOL];
} cdf_seed_sequence;

/* SeedSequence(entropy, spawn_key=tuple(spawn_key[0..n_spawn_key)),
 * pool_size=pool_size). Fails for pool_size outside [4, CDF_SEEDSEQ_MAX_POOL]
 * or too long a spawn key. */
cdf_status cdf_seedseq_init(cdf_seed_sequence *ss, uint64_t entropy, const uint64_t *spawn_key,
                            size_t n_spawn_key, size_t pool_size, cdf_err *err);

/* generate_state(n_words) with dtype uint32. The first k words do not depend
 * on n_words, so generating fewer words than Python asks for is exact. */
void cdf_seedseq_generate_state(const cdf_seed_sequence *ss, uint32_t *out, size_t n_words);

/* spawn(n) needs no function: child i of a fresh sequence is
 * cdf_seedseq_init with the parent's spawn key extended by i. */
#endif
