/* Internals shared by the oneDNN-backed kernels (not for model code). */
#ifndef CDF_KERNELS_BACKEND_INTERNAL_H
#define CDF_KERNELS_BACKEND_INTERNAL_H

#include <dnnl.h>

#include "kernels/kernels.h"

struct cdf_backend {
    dnnl_engine_t engine;
};

/* Weights in a layout chosen by oneDNN for the layer, in the storage dtype. */
struct cdf_packed {
    dnnl_memory_desc_t md;      /* layout and dtype of `data` */
    dnnl_memory_desc_t md_f32;  /* same layout as float32 (storage f16 + compute f32) */
    void *data;                 /* owned, 64-byte aligned */
    size_t bytes;
    cdf_compute compute;
    cdf_dtype storage;
    /* streamed weights (cdf_weight_opts.stream): no data; packed on use */
    int streamed;
    const cdf_st_file *file;
    cdf_st_tensor src[3];
    int nsrc;
    dnnl_memory_desc_t plain;
    const cdf_backend *be;
};

/* A cached primitive, keyed by everything it depends on (kind, shapes,
 * strides, dtypes) but never by a layer's address: layers of equal shape
 * share one primitive, and a freed layer cannot leave a stale entry. */
typedef struct cdf_prim_key {
    int64_t v[10];
} cdf_prim_key;

typedef struct cdf_prim {
    cdf_prim_key key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
    dnnl_primitive_t wei_reorder; /* packed -> wei_md when the layout differs (rare) */
    size_t wei_bytes;             /* size of wei_md when wei_reorder is set */
} cdf_prim;

struct cdf_exec {
    cdf_backend *be;
    dnnl_stream_t stream;
    dnnl_stream_t *tstreams;   /* one per worker thread, for primitives run inside parallel loops */
    int threads;               /* the configured thread count */
    int cur_threads;           /* the current pass's (cdf_exec_begin_sized), <= threads */
    cdf_arena arena;
    cdf_prim **cache; /* open addressing over separately allocated entries: a
                       * returned cdf_prim* stays valid when the table grows */
    size_t cache_cap, cache_count;
    uint64_t flops; /* multiply-adds x 2 of matrix products run so far */
    int64_t attn_rows;  /* query rows per attention tile, 0 = default */
    int amx;            /* AMX tiles usable (bf16 attention kernel) */
    int profile;
    double prof[CDF_PROF_COUNT];
    uint64_t prof_flops[CDF_PROF_COUNT];
};

/* Below this many elements an element-wise loop runs on the calling thread:
 * waking the OpenMP team costs more than the work (and under CPU contention
 * its spin-waiting costs far more). */
#define CDF_PAR_MIN ((size_t)1 << 15)

/* Profiling: PROF_BEGIN(ex) ... PROF_END(ex, kind) around a kernel body. */
double cdf_prof_now(void);
#define PROF_BEGIN(ex) const double prof_t0_ = (ex)->profile ? cdf_prof_now() : 0.0
#define PROF_END(ex, kind) \
    do { if ((ex)->profile) (ex)->prof[kind] += cdf_prof_now() - prof_t0_; } while (0)

#define CDF_DNNL(call, err, what)                                                                        \
    do {                                                                                                 \
        dnnl_status_t s_ = (call);                                                                       \
        if (s_ != dnnl_success)                                                                          \
            return cdf_errf(err, s_ == dnnl_out_of_memory ? CDF_ERR_OUT_OF_MEMORY : CDF_ERR_INTERNAL,   \
                            "oneDNN: %s failed (status %d)", what, (int)s_);                            \
    } while (0)

/* Looks up key; returns the slot (prim == NULL when new). */
cdf_prim *cdf_exec_lookup(cdf_exec *ex, const cdf_prim_key *key, cdf_err *err);

/* Packs plain float32 weights (dims/tag in `plain`) into the layout `want`,
 * stored as `storage`. */
cdf_status cdf_packed_create(struct cdf_packed **out, const cdf_backend *be, const float *src,
                             const dnnl_memory_desc_t *plain_f32, const dnnl_memory_desc_t *want_f32,
                             cdf_dtype storage, cdf_compute compute, cdf_err *err);
void cdf_packed_free(struct cdf_packed *p);
/* Streamed weights: remembers the source tensors (concatenated in order) and
 * the layouts; cdf_packed_use packs them into scratch at every call. */
cdf_status cdf_packed_create_streamed(struct cdf_packed **out, const cdf_backend *be, const cdf_st_file *f,
                                      const cdf_st_tensor *const *src, int nsrc, const dnnl_memory_desc_t *plain_f32,
                                      const dnnl_memory_desc_t *want_f32, cdf_compute compute, cdf_err *err);
/* The weights as the compute dtype wants them: the packed buffer itself, or
 * (f16 storage, f32 compute) a widened copy in the arena. */
cdf_status cdf_packed_use(cdf_exec *ex, const struct cdf_packed *p, void **data, const dnnl_memory_desc_t **md,
                          cdf_err *err);

/* Whether pd uses one of oneDNN's reference (slow, loop-based)
 * implementations: forcing the packed weight layout can make only those
 * accept a shape, and then a reorder to the layout a fast one wants is
 * cheaper. */
int cdf_pd_is_ref(const_dnnl_primitive_desc_t pd);

/* Runs a primitive with up to 5 (arg, md, ptr) bindings. */
typedef struct cdf_bind {
    int arg;
    const dnnl_memory_desc_t *md;
    void *ptr;
} cdf_bind;
cdf_status cdf_exec_run(cdf_exec *ex, dnnl_primitive_t p, const cdf_bind *b, int n, cdf_err *err);
/* The same on a given stream (worker threads use their own). */
cdf_status cdf_exec_run_on(cdf_exec *ex, dnnl_stream_t stream, dnnl_primitive_t p, const cdf_bind *b, int n,
                           cdf_err *err);
/* Per-thread streams, created on first use (call outside parallel regions). */
cdf_status cdf_exec_thread_streams(cdf_exec *ex, cdf_err *err);

/* float32 -> bf16 copy of x[M, K] (row stride ld) into dense scratch. */
uint16_t *cdf_to_bf16_scratch(cdf_exec *ex, const float *x, int64_t M, int64_t K, size_t ld, cdf_err *err);

void *cdf_aligned_alloc(size_t bytes, cdf_err *err);
void cdf_aligned_free(void *p, size_t bytes);

#endif
