/* safetensors reader and writer.
 *
 * A file is mapped read-only; its JSON header is parsed with cJSON and every
 * entry is validated against the file before anything else sees it: known
 * dtype, rank <= CDF_ST_MAX_DIMS, non-negative integer dims, offsets inside
 * the data section, shape product x dtype size == byte length (overflow-safe),
 * no two tensors overlapping, no duplicate names. After cdf_st_open succeeds
 * every cdf_st_tensor can be read without further checks.
 *
 * Tensor data pointers point into the mapping and may be unaligned: read them
 * with cdf_st_read_f32 / memcpy, never by casting. */
#ifndef CDF_IO_SAFETENSORS_H
#define CDF_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define CDF_ST_MAX_DIMS 8
/* Largest header accepted (the reference implementation's limit). */
#define CDF_ST_MAX_HEADER (100u * 1024u * 1024u)
/* Largest number of tensors in one file (SD checkpoints have ~1,200). */
#define CDF_ST_MAX_TENSORS 1000000u

typedef struct cdf_st_tensor {
    const char *name;
    cdf_dtype dtype;
    int ndim;
    int64_t shape[CDF_ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    size_t offset;      /* from the start of the file */
    const void *data;   /* inside the mapping; possibly unaligned */
} cdf_st_tensor;

typedef struct cdf_st_file cdf_st_file;

/* Maps and validates `path`. On failure *out is NULL and err names the file. */
cdf_status cdf_st_open(cdf_st_file **out, const char *path, cdf_err *err);

/* Validates a safetensors image held in memory (borrowed: buf must outlive
 * the handle). `label` names it in error messages. Used by the fuzzers. */
cdf_status cdf_st_parse(cdf_st_file **out, const uint8_t *buf, size_t len,
                        const char *label, cdf_err *err);

/* A weights source with no stored tensors that fabricates every tensor a
 * loader asks for through cdf_st_expect: uniform random values of the
 * expected shape (weights with variance 1/fan_in, norm weights ~1, biases
 * ~0), deterministic in the tensor name and the seed; cdf_st_find finds
 * nothing. A fabricated tensor stays valid until the next cdf_st_expect.
 * Benchmarks build full-size models from real config files with it (speed
 * does not depend on the weights' values). */
cdf_status cdf_st_synthetic(cdf_st_file **out, uint64_t seed, cdf_err *err);
/* The tensors a synthetic source has fabricated so far, in request order
 * (name and shape; data NULL), and the values it gives a tensor. Used to
 * write a synthetic model to disk (bench/make_synthetic_model). */
size_t cdf_st_synthetic_count(const cdf_st_file *f);
const cdf_st_tensor *cdf_st_synthetic_at(const cdf_st_file *f, size_t i);
void cdf_st_synthetic_values(const cdf_st_file *f, const cdf_st_tensor *t, float *out);

void cdf_st_close(cdf_st_file *f);

const char *cdf_st_path(const cdf_st_file *f);
size_t cdf_st_count(const cdf_st_file *f);
const cdf_st_tensor *cdf_st_at(const cdf_st_file *f, size_t i); /* sorted by name */
const cdf_st_tensor *cdf_st_find(const cdf_st_file *f, const char *name);

/* Finds `name` and checks its rank and dims (a -1 in `shape` matches any
 * size). Errors name the file, the tensor and both shapes. */
cdf_status cdf_st_expect(const cdf_st_file *f, const char *name, int ndim,
                         const int64_t *shape, const cdf_st_tensor **out, cdf_err *err);

/* Converts any floating tensor (F32/F16/BF16/F64) or integer tensor to
 * float32 into dst[numel]. */
void cdf_st_read_f32(const cdf_st_tensor *t, float *dst);
/* Converts an integer or floating tensor to int64 into dst[numel] (floats
 * truncate toward zero; NaN gives 0, values beyond int64 saturate). */
void cdf_st_read_i64(const cdf_st_tensor *t, int64_t *dst);
/* Converts to float64 into dst[numel]. */
void cdf_st_read_f64(const cdf_st_tensor *t, double *dst);

/* Advises the kernel that the pages of this tensor are no longer needed
 * (they stay in the page cache, but leave this process's resident set). */
void cdf_st_release_pages(const cdf_st_file *f, const cdf_st_tensor *t);

/* One tensor to write. */
typedef struct cdf_st_out {
    const char *name;
    cdf_dtype dtype;
    int ndim;
    int64_t shape[CDF_ST_MAX_DIMS];
    const void *data;
} cdf_st_out;

/* Writes a safetensors file atomically: to "path.tmp-XXXXXX" then rename(),
 * so a failure never leaves a partial file at `path`. */
cdf_status cdf_st_write(const char *path, const cdf_st_out *tensors, size_t n, cdf_err *err);

#endif
