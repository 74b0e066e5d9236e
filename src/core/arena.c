#include "core/arena.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ARENA_ALIGN ((size_t)64)

void cdf_arena_init(cdf_arena *a, size_t limit) {
    memset(a, 0, sizeof *a);
    a->limit = limit;
}

void cdf_arena_free(cdf_arena *a) {
    if (a->base) munmap(a->base, a->cap);
    size_t limit = a->limit;
    memset(a, 0, sizeof *a);
    a->limit = limit;
}

void cdf_arena_trim(cdf_arena *a) {
    a->used = 0;
    if (a->base && a->touched) madvise(a->base, (a->touched + 4095) & ~(size_t)4095, MADV_DONTNEED);
    a->touched = 0;
}

static int reserve(cdf_arena *a, cdf_err *err) {
    size_t cap = a->limit;
    if (!cap) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        cap = (pages > 0 && psz > 0) ? (size_t)pages * (size_t)psz : ((size_t)8 << 30);
    }
    cap = (cap + 4095) & ~(size_t)4095;
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "cannot reserve %zu MiB of address space for scratch memory", cap >> 20);
        return -1;
    }
    a->base = p;
    a->cap = cap;
    return 0;
}

void *cdf_arena_alloc(cdf_arena *a, size_t bytes, cdf_err *err) {
    if (!a->base && reserve(a, err) != 0) return NULL;
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (need == 0) need = ARENA_ALIGN;
    if (bytes > a->cap || need > a->cap - a->used) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY,
                 "scratch memory exhausted: %zu MiB more needed, %zu of %zu MiB in use (image or batch too large "
                 "for this machine)",
                 bytes >> 20, a->used >> 20, a->cap >> 20);
        return NULL;
    }
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->high) a->high = a->used;
    if (a->used > a->touched) a->touched = a->used;
    return p;
}

void *cdf_arena_keep(cdf_arena *a, cdf_arena_mark m, void *p, size_t bytes) {
    void *q = a->base + m.used;
    if (q != p) memmove(q, p, bytes);
    a->used = m.used + ((bytes + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1));
    if (a->used == m.used) a->used += ARENA_ALIGN;
    return q;
}
