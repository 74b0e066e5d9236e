/* Scratch memory for forward passes: one large reservation of address space
 * used as a stack.
 *
 * A forward pass takes buffers with cdf_arena_alloc and gives them back in
 * LIFO order with cdf_arena_reset(mark). The reservation is virtual
 * (MAP_NORESERVE): pages become resident only when first touched, and stay so
 * until cdf_arena_trim, so after the first pass at a given shape no system
 * call happens at all and resident memory equals the pass's high-water mark,
 * with no fragmentation. Every buffer is 64-byte aligned. Not thread-safe:
 * one arena per run context. */
#ifndef CDF_CORE_ARENA_H
#define CDF_CORE_ARENA_H

#include <stddef.h>

#include "core/error.h"

typedef struct cdf_arena {
    unsigned char *base; /* reservation, NULL until first use */
    size_t cap;          /* bytes reserved */
    size_t used;         /* bytes handed out */
    size_t high;         /* high-water mark of used */
    size_t touched;      /* bytes that may be resident (for trim) */
    size_t limit;        /* requested reservation (0: physical memory) */
} cdf_arena;

/* A position to return to. */
typedef struct cdf_arena_mark {
    size_t used;
} cdf_arena_mark;

/* limit: bytes of address space to reserve (0: the machine's physical memory). */
void cdf_arena_init(cdf_arena *a, size_t limit);
void cdf_arena_free(cdf_arena *a);
/* Gives every resident page back to the system (nothing may be in use):
 * between stages, so one stage's high-water mark does not stay resident. */
void cdf_arena_trim(cdf_arena *a);

/* Returns NULL and fills err when the reservation would be exceeded. */
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
    cdf_arena_mark m = {a->used};
    return m;
}
static inline void cdf_arena_reset(cdf_arena *a, cdf_arena_mark m) { a->used = m.used; }

/* Frees everything taken since m except the buffer p (`bytes` long, taken
 * after m), which moves down to position m; returns its new address. Lets a
 * chain of layers (x -> y -> z ...) run in the memory of about two
 * activations instead of all of them. Cannot fail. */
void *cdf_arena_keep(cdf_arena *a, cdf_arena_mark m, void *p, size_t bytes);

#endif
