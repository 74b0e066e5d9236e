#include "core/arena.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Blocks are mmapped (page-aligned, returned to the OS on free) and at least
 * this large, so a forward pass needs only a handful of them. */
#define ARENA_MIN_BLOCK ((size_t)64 << 20)
#define ARENA_ALIGN ((size_t)64)

void cdf_arena_init(cdf_arena *a, size_t limit) {
    memset(a, 0, sizeof *a);
    a->limit = limit;
}

void cdf_arena_free(cdf_arena *a) {
    for (size_t i = 0; i < a->nblocks; i++) munmap(a->blocks[i].base, a->blocks[i].cap);
    free(a->blocks);
    memset(a, 0, sizeof *a);
}

static int add_block(cdf_arena *a, size_t need, cdf_err *err) {
    size_t cap = need > ARENA_MIN_BLOCK ? need : ARENA_MIN_BLOCK;
    cap = (cap + 4095) & ~(size_t)4095;
    if (a->limit && a->reserved + cap > a->limit) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY,
                 "scratch memory would exceed the limit of %zu MiB (%zu MiB reserved, %zu MiB more needed)",
                 a->limit >> 20, a->reserved >> 20, cap >> 20);
        return -1;
    }
    if (a->nblocks == a->cap_blocks) {
        size_t nc = a->cap_blocks ? 2 * a->cap_blocks : 8;
        cdf_arena_block *nb = realloc(a->blocks, nc * sizeof *nb);
        if (!nb) { cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory"); return -1; }
        a->blocks = nb;
        a->cap_blocks = nc;
    }
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory reserving %zu MiB of scratch memory", cap >> 20);
        return -1;
    }
    a->blocks[a->nblocks].base = p;
    a->blocks[a->nblocks].cap = cap;
    a->nblocks++;
    a->reserved += cap;
    return 0;
}

void *cdf_arena_alloc(cdf_arena *a, size_t bytes, cdf_err *err) {
    if (bytes > ((size_t)1 << 46)) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "scratch request of %zu bytes is absurd", bytes);
        return NULL;
    }
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (need == 0) need = ARENA_ALIGN;
    /* Try the current block, then later (already reserved) blocks, then a new one. */
    while (a->cur < a->nblocks) {
        cdf_arena_block *b = &a->blocks[a->cur];
        if (b->cap - a->used >= need) {
            void *p = b->base + a->used;
            a->used += need;
            a->in_use += need;
            if (a->in_use > a->high) a->high = a->in_use;
            return p;
        }
        /* The tail of this block stays unused until the mark is released. */
        a->in_use += b->cap - a->used;
        a->cur++;
        a->used = 0;
    }
    if (add_block(a, need, err) != 0) return NULL;
    a->cur = a->nblocks - 1;
    a->used = need;
    a->in_use += need;
    if (a->in_use > a->high) a->high = a->in_use;
    return a->blocks[a->cur].base;
}

void *cdf_arena_keep(cdf_arena *a, cdf_arena_mark m, void *p, size_t bytes) {
    cdf_arena_reset(a, m);
    /* Walking from m finds room at or before p (p's own block has it), so
     * this never reserves a new block. */
    void *q = cdf_arena_alloc(a, bytes, NULL);
    if (q && q != p) memmove(q, p, bytes);
    return q ? q : p;
}
