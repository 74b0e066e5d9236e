/* Scratch memory for forward passes: a stack of large blocks.
 *
 * A forward pass takes buffers with cdf_arena_alloc and gives them back in
 * LIFO order with cdf_arena_reset(mark). Blocks are kept between passes, so
 * after the first pass at a given shape no further system allocation happens:
 * the arena settles at the pass's high-water mark. Every buffer is 64-byte
 * aligned (a cache line, one AVX-512 vector). Not thread-safe: one arena per
 * run context. */
#ifndef CDF_CORE_ARENA_H
#define CDF_CORE_ARENA_H

#include <stddef.h>

#include "core/error.h"

typedef struct cdf_arena_block {
    unsigned char *base;
    size_t cap;
} cdf_arena_block;

typedef struct cdf_arena {
    cdf_arena_block *blocks;
    size_t nblocks, cap_blocks;
    size_t cur;       /* index of the block being filled */
    size_t used;      /* bytes used in blocks[cur] */
    size_t in_use;    /* bytes handed out, all blocks */
    size_t high;      /* high-water mark of in_use */
    size_t reserved;  /* sum of block capacities */
    size_t limit;     /* refuse to reserve more than this (0 = no limit) */
} cdf_arena;

/* A position to return to: encodes block index and offset. */
typedef struct cdf_arena_mark {
    size_t cur, used, in_use;
} cdf_arena_mark;

void cdf_arena_init(cdf_arena *a, size_t limit);
void cdf_arena_free(cdf_arena *a);

/* Returns NULL and fills err when memory (or the limit) runs out. */
void *cdf_arena_alloc(cdf_arena *a, size_t bytes, cdf_err *err);
static inline float *cdf_arena_f32(cdf_arena *a, size_t n, cdf_err *err) {
    size_t b;
    if (!cdf_mul_ok(n, sizeof(float), &b)) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "scratch size overflow");
        return NULL;
    }
    return (float *)cdf_arena_alloc(a, b, err);
}

static inline cdf_arena_mark cdf_arena_save(const cdf_arena *a) {
    cdf_arena_mark m = {a->cur, a->used, a->in_use};
    return m;
}
static inline void cdf_arena_reset(cdf_arena *a, cdf_arena_mark m) {
    a->cur = m.cur;
    a->used = m.used;
    a->in_use = m.in_use;
}

/* Frees everything taken since m except the buffer p (`bytes` long, taken
 * after m), which moves down to the first free position; returns its new
 * address. Lets a chain of layers (x -> y -> z ...) run in the memory of
 * about two activations instead of all of them. Cannot fail. */
void *cdf_arena_keep(cdf_arena *a, cdf_arena_mark m, void *p, size_t bytes);

#endif
