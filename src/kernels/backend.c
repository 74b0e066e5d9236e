/* oneDNN engine, per-run execution context and the primitive cache. */
#include <omp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/dtype.h"
#include "kernels/attention_amx.h"
#include "kernels/backend_internal.h"
#include "kernels/simd.h"

/* Weights are allocated straight from the kernel (page-aligned mmap), not
 * from malloc's heap: freeing a staged component must give its memory back
 * to the system at once, which heap chunks below malloc's (dynamic, up to
 * 32 MiB) mmap threshold would not. */
static size_t mapped_size(size_t bytes) {
    const size_t n = (bytes + 4095) & ~(size_t)4095;
    return n ? n : 4096;
}

void *cdf_aligned_alloc(size_t bytes, cdf_err *err) {
    void *p = mmap(NULL, mapped_size(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    return p;
}

void cdf_aligned_free(void *p, size_t bytes) {
    if (p) munmap(p, mapped_size(bytes));
}

cdf_status cdf_backend_create(cdf_backend **out, cdf_err *err) {
    *out = NULL;
    cdf_backend *be = cdf_calloc(1, sizeof *be, err);
    if (!be) return CDF_ERR_OUT_OF_MEMORY;
    if (dnnl_engine_create(&be->engine, dnnl_cpu, 0) != dnnl_success) {
        free(be);
        return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: cannot create a CPU engine");
    }
    *out = be;
    return CDF_OK;
}

void cdf_backend_free(cdf_backend *be) {
    if (!be) return;
    dnnl_engine_destroy(be->engine);
    free(be);
}

cdf_status cdf_exec_create(cdf_exec **out, cdf_backend *be, int threads, cdf_err *err) {
    *out = NULL;
    cdf_exec *ex = cdf_calloc(1, sizeof *ex, err);
    if (!ex) return CDF_ERR_OUT_OF_MEMORY;
    ex->be = be;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    ex->threads = threads > 0 ? threads : (int)(ncpu > 0 ? ncpu : 1);
    ex->cur_threads = ex->threads;
    cdf_arena_init(&ex->arena, 0);
    ex->amx = cdf_amx_ok();
    if (dnnl_stream_create(&ex->stream, be->engine, dnnl_stream_default_flags) != dnnl_success) {
        free(ex);
        return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: cannot create a stream");
    }
    *out = ex;
    return CDF_OK;
}

void cdf_exec_clear_cache(cdf_exec *ex) {
    for (size_t i = 0; i < ex->cache_cap; i++) {
        cdf_prim *e = ex->cache[i];
        if (!e) continue;
        if (e->prim) dnnl_primitive_destroy(e->prim);
        if (e->wei_reorder) dnnl_primitive_destroy(e->wei_reorder);
        free(e);
    }
    free(ex->cache);
    ex->cache = NULL;
    ex->cache_cap = ex->cache_count = 0;
}

void cdf_exec_free(cdf_exec *ex) {
    if (!ex) return;
    cdf_exec_clear_cache(ex);
    if (ex->tstreams) {
        for (int i = 0; i < ex->threads; i++)
            if (ex->tstreams[i]) dnnl_stream_destroy(ex->tstreams[i]);
        free(ex->tstreams);
    }
    dnnl_stream_destroy(ex->stream);
    cdf_arena_free(&ex->arena);
    free(ex);
}

int cdf_exec_threads(const cdf_exec *ex) { return ex->cur_threads; }
void cdf_exec_set_attention_slice(cdf_exec *ex, int64_t rows) { ex->attn_rows = rows > 0 ? rows : 0; }
int cdf_exec_use_amx(cdf_exec *ex, int enable) {
    ex->amx = enable && cdf_amx_ok();
    return ex->amx;
}
uint64_t cdf_exec_flops(const cdf_exec *ex) { return ex->flops; }

double cdf_prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
void cdf_exec_profile(cdf_exec *ex, int enable) {
    ex->profile = enable;
    memset(ex->prof, 0, sizeof ex->prof);
    memset(ex->prof_flops, 0, sizeof ex->prof_flops);
}
double cdf_exec_profile_seconds(const cdf_exec *ex, cdf_prof_kind k) { return ex->prof[k]; }
uint64_t cdf_exec_profile_flops(const cdf_exec *ex, cdf_prof_kind k) { return ex->prof_flops[k]; }
const char *cdf_prof_name(cdf_prof_kind k) {
    static const char *const n[] = {"conv", "linear", "attention", "norm", "elementwise", "convert"};
    return (unsigned)k < CDF_PROF_COUNT ? n[k] : "?";
}
void cdf_exec_reset_flops(cdf_exec *ex) { ex->flops = 0; }
cdf_arena *cdf_exec_arena(cdf_exec *ex) { return &ex->arena; }
void cdf_exec_begin(cdf_exec *ex) {
    ex->cur_threads = ex->threads;
    omp_set_num_threads(ex->threads);
}
void cdf_exec_begin_sized(cdf_exec *ex, size_t elements) {
    ex->cur_threads = elements < ((size_t)1 << 18) ? 1 : ex->threads;
    omp_set_num_threads(ex->cur_threads);
}

int cdf_pd_is_ref(const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return 0;
    return strncmp(impl, "ref", 3) == 0;
}

static uint64_t key_hash(const cdf_prim_key *k) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 10; i++) h = (h ^ (uint64_t)k->v[i]) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 29);
}

static int key_eq(const cdf_prim_key *x, const cdf_prim_key *y) {
    return memcmp(x->v, y->v, sizeof x->v) == 0;
}

static cdf_prim **probe(cdf_prim **tab, size_t cap, const cdf_prim_key *key) {
    size_t i = key_hash(key) & (cap - 1);
    while (tab[i] && !key_eq(&tab[i]->key, key)) i = (i + 1) & (cap - 1);
    return &tab[i];
}

cdf_prim *cdf_exec_lookup(cdf_exec *ex, const cdf_prim_key *key, cdf_err *err) {
    if (ex->cache_count * 2 >= ex->cache_cap) {
        size_t nc = ex->cache_cap ? ex->cache_cap * 2 : 256;
        cdf_prim **nt = cdf_calloc(nc, sizeof *nt, err);
        if (!nt) return NULL;
        for (size_t i = 0; i < ex->cache_cap; i++)
            if (ex->cache[i]) *probe(nt, nc, &ex->cache[i]->key) = ex->cache[i];
        free(ex->cache);
        ex->cache = nt;
        ex->cache_cap = nc;
    }
    cdf_prim **slot = probe(ex->cache, ex->cache_cap, key);
    if (!*slot) {
        cdf_prim *e = cdf_calloc(1, sizeof *e, err);
        if (!e) return NULL;
        e->key = *key;
        *slot = e;
        ex->cache_count++;
    }
    return *slot;
}

cdf_status cdf_exec_run(cdf_exec *ex, dnnl_primitive_t p, const cdf_bind *b, int n, cdf_err *err) {
    return cdf_exec_run_on(ex, ex->stream, p, b, n, err);
}

cdf_status cdf_exec_thread_streams(cdf_exec *ex, cdf_err *err) {
    if (ex->tstreams) return CDF_OK;
    ex->tstreams = cdf_calloc((size_t)ex->threads, sizeof *ex->tstreams, err); /* for the largest count */
    if (!ex->tstreams) return CDF_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < ex->threads; i++)
        if (dnnl_stream_create(&ex->tstreams[i], ex->be->engine, dnnl_stream_default_flags) != dnnl_success)
            return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: cannot create a stream");
    return CDF_OK;
}

cdf_status cdf_exec_run_on(cdf_exec *ex, dnnl_stream_t stream, dnnl_primitive_t p, const cdf_bind *b, int n,
                           cdf_err *err) {
    dnnl_exec_arg_t args[6];
    dnnl_memory_t mem[6] = {0};
    cdf_status st = CDF_OK;
    for (int i = 0; i < n; i++) {
        if (dnnl_memory_create(&mem[i], b[i].md, ex->be->engine, b[i].ptr) != dnnl_success) {
            st = cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: cannot wrap a buffer");
            goto out;
        }
        args[i].arg = b[i].arg;
        args[i].memory = mem[i];
    }
    if (dnnl_primitive_execute(p, stream, n, args) != dnnl_success || dnnl_stream_wait(stream) != dnnl_success)
        st = cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: primitive execution failed");
out:
    for (int i = 0; i < n; i++)
        if (mem[i]) dnnl_memory_destroy(mem[i]);
    return st;
}

static dnnl_data_type_t dnnl_dt(cdf_dtype d) {
    return d == CDF_DTYPE_BF16 ? dnnl_bf16 : d == CDF_DTYPE_F16 ? dnnl_f16 : dnnl_f32;
}

/* Reorders src (src_md) into dst (dst_md) on the backend's engine. */
static cdf_status reorder(const cdf_backend *be, const dnnl_memory_desc_t *src_md, const void *src,
                          const dnnl_memory_desc_t *dst_md, void *dst, cdf_err *err) {
    dnnl_primitive_desc_t pd;
    CDF_DNNL(dnnl_reorder_primitive_desc_create(&pd, src_md, be->engine, dst_md, be->engine, NULL), err,
             "reorder descriptor");
    dnnl_primitive_t p;
    dnnl_status_t s = dnnl_primitive_create(&p, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success) return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: reorder creation failed");
    dnnl_stream_t stream;
    if (dnnl_stream_create(&stream, be->engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_primitive_destroy(p);
        return cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: cannot create a stream");
    }
    dnnl_memory_t ms, md;
    cdf_status st = CDF_OK;
    if (dnnl_memory_create(&ms, src_md, be->engine, (void *)src) != dnnl_success) {
        st = cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: cannot wrap a buffer");
    } else {
        if (dnnl_memory_create(&md, dst_md, be->engine, dst) != dnnl_success) {
            st = cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: cannot wrap a buffer");
        } else {
            dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
            if (dnnl_primitive_execute(p, stream, 2, args) != dnnl_success || dnnl_stream_wait(stream) != dnnl_success)
                st = cdf_errf(err, CDF_ERR_INTERNAL, "oneDNN: reorder failed");
            dnnl_memory_destroy(md);
        }
        dnnl_memory_destroy(ms);
    }
    dnnl_stream_destroy(stream);
    dnnl_primitive_destroy(p);
    return st;
}

/* The packed layout `want_f32` in the storage type: bf16 arithmetic always
 * stores bf16; otherwise `storage`. */
static void packed_layout(struct cdf_packed *p, const dnnl_memory_desc_t *want_f32, cdf_dtype storage,
                          cdf_compute compute) {
    p->compute = compute;
    p->storage = compute == CDF_COMPUTE_BF16 ? CDF_DTYPE_BF16 : storage;
    p->md_f32 = *want_f32;
    p->md = *want_f32;
    p->md.data_type = dnnl_dt(p->storage);
    p->bytes = dnnl_memory_desc_get_size(&p->md);
}

cdf_status cdf_packed_create(struct cdf_packed **out, const cdf_backend *be, const float *src,
                             const dnnl_memory_desc_t *plain_f32, const dnnl_memory_desc_t *want_f32,
                             cdf_dtype storage, cdf_compute compute, cdf_err *err) {
    *out = NULL;
    struct cdf_packed *p = cdf_calloc(1, sizeof *p, err);
    if (!p) return CDF_ERR_OUT_OF_MEMORY;
    packed_layout(p, want_f32, storage, compute);
    p->data = cdf_aligned_alloc(p->bytes, err);
    if (!p->data) { free(p); return CDF_ERR_OUT_OF_MEMORY; }
    cdf_status st;
    if (p->compute == CDF_COMPUTE_F32 && p->storage != CDF_DTYPE_F32) {
        /* Half storage of a float32 layout: pack in float32 (oneDNN's fast
         * reorder), then narrow element by element (its f16 reorders are slow). */
        size_t n = p->bytes / 2;
        float *tmp = cdf_aligned_alloc(n * sizeof(float), err);
        if (!tmp) { cdf_packed_free(p); return CDF_ERR_OUT_OF_MEMORY; }
        st = reorder(be, plain_f32, src, &p->md_f32, tmp, err);
        uint16_t *h = p->data;
        if (!st && p->storage == CDF_DTYPE_F16)
            for (size_t i = 0; i < n; i++) h[i] = cdf_f32_to_f16(tmp[i]);
        else if (!st)
            for (size_t i = 0; i < n; i++) h[i] = cdf_f32_to_bf16(tmp[i]);
        cdf_aligned_free(tmp, n * sizeof(float));
    } else {
        st = reorder(be, plain_f32, src, &p->md, p->data, err);
    }
    if (st) { cdf_packed_free(p); return st; }
    *out = p;
    return CDF_OK;
}

void cdf_packed_free(struct cdf_packed *p) {
    if (!p) return;
    if (!p->streamed) cdf_aligned_free(p->data, p->bytes);
    free(p);
}

cdf_status cdf_packed_create_streamed(struct cdf_packed **out, const cdf_backend *be, const cdf_st_file *f,
                                      const cdf_st_tensor *const *src, int nsrc, const dnnl_memory_desc_t *plain_f32,
                                      const dnnl_memory_desc_t *want_f32, cdf_compute compute, cdf_err *err) {
    *out = NULL;
    if (nsrc < 1 || nsrc > 3) return cdf_errf(err, CDF_ERR_INTERNAL, "streamed weights: %d sources", nsrc);
    struct cdf_packed *p = cdf_calloc(1, sizeof *p, err);
    if (!p) return CDF_ERR_OUT_OF_MEMORY;
    p->streamed = 1;
    p->be = be;
    p->file = f;
    p->nsrc = nsrc;
    for (int i = 0; i < nsrc; i++) p->src[i] = *src[i];
    p->plain = *plain_f32;
    packed_layout(p, want_f32, CDF_DTYPE_F32, compute); /* widened from the file at each use */
    *out = p;
    return CDF_OK;
}

/* Streamed weights: file -> float32 plain (pages dropped after reading) ->
 * packed, all in the arena (the caller resets it after the product). */
static cdf_status use_streamed(cdf_exec *ex, const struct cdf_packed *p, void **data, const dnnl_memory_desc_t **md,
                               cdf_err *err) {
    size_t n = 0;
    for (int i = 0; i < p->nsrc; i++) n += p->src[i].numel;
    float *plain = cdf_arena_f32(&ex->arena, n, err);
    void *packed = cdf_arena_alloc(&ex->arena, p->bytes, err);
    if (!plain || !packed) return CDF_ERR_OUT_OF_MEMORY;
    PROF_BEGIN(ex);
    size_t off = 0;
    for (int i = 0; i < p->nsrc; i++) {
        cdf_st_read_f32(&p->src[i], plain + off);
        cdf_st_release_pages(p->file, &p->src[i]);
        off += p->src[i].numel;
    }
    cdf_status st = reorder(p->be, &p->plain, plain, &p->md, packed, err);
    PROF_END(ex, CDF_PROF_CONVERT);
    if (st) return st;
    *data = packed;
    *md = &p->md;
    return CDF_OK;
}

cdf_status cdf_packed_use(cdf_exec *ex, const struct cdf_packed *p, void **data, const dnnl_memory_desc_t **md,
                          cdf_err *err) {
    if (p->streamed) return use_streamed(ex, p, data, md, err);
    if (p->compute == CDF_COMPUTE_BF16 || p->storage == CDF_DTYPE_F32) {
        *data = p->data;
        *md = &p->md;
        return CDF_OK;
    }
    /* Half-precision storage, float32 arithmetic: widen into scratch. The
     * layouts are identical, so this is a flat element-wise conversion. */
    size_t n = p->bytes / 2;
    float *w = cdf_arena_f32(&ex->arena, n, err);
    if (!w) return CDF_ERR_OUT_OF_MEMORY;
    const uint16_t *h = p->data;
    PROF_BEGIN(ex);
    if (p->storage == CDF_DTYPE_F16) {
        const size_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i += chunk) cdf_row_f16_to_f32(w + i, h + i, n - i < chunk ? n - i : chunk);
    } else {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) w[i] = cdf_bf16_to_f32(h[i]);
    }
    PROF_END(ex, CDF_PROF_CONVERT);
    *data = w;
    *md = &p->md_f32;
    return CDF_OK;
}

uint16_t *cdf_to_bf16_scratch(cdf_exec *ex, const float *x, int64_t M, int64_t K, size_t ld, cdf_err *err) {
    uint16_t *y = cdf_arena_alloc(&ex->arena, (size_t)M * (size_t)K * 2, err);
    if (!y) return NULL;
    PROF_BEGIN(ex);
#pragma omp parallel for schedule(static) if((size_t)(M * K) >= CDF_PAR_MIN)
    for (int64_t i = 0; i < M; i++) cdf_row_to_bf16(y + i * K, x + (size_t)i * ld, (size_t)K);
    PROF_END(ex, CDF_PROF_CONVERT);
    return y;
}
