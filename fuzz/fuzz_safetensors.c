/* safetensors: header length, JSON header, tensor table validation; then
 * every tensor is read in every representation and looked up again with
 * cdf_st_expect. After cdf_st_parse succeeds the reader promises that all of
 * this is safe without further checks, which is what ASan verifies. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"

static void read_all(const cdf_st_file *f) {
    const size_t n = cdf_st_count(f);
    for (size_t i = 0; i < n; i++) {
        const cdf_st_tensor *t = cdf_st_at(f, i);
        cdf_err err = {0};
        const cdf_st_tensor *got = NULL;
        /* The exact shape must match, and an open shape, for weights (float
         * dtypes; integer tensors are refused as weights); a wrong rank never. */
        const int is_float = t->dtype == CDF_DTYPE_F32 || t->dtype == CDF_DTYPE_F16 || t->dtype == CDF_DTYPE_BF16 ||
                             t->dtype == CDF_DTYPE_F64;
        if ((cdf_st_expect(f, t->name, t->ndim, t->shape, &got, &err) == CDF_OK) != is_float) abort();
        if (is_float && got != t) abort();
        int64_t open[CDF_ST_MAX_DIMS];
        for (int d = 0; d < CDF_ST_MAX_DIMS; d++) open[d] = -1;
        if ((cdf_st_expect(f, t->name, t->ndim, open, &got, &err) == CDF_OK) != is_float) abort();
        if (t->ndim < CDF_ST_MAX_DIMS && cdf_st_expect(f, t->name, t->ndim + 1, open, &got, &err) == CDF_OK) abort();
        if (cdf_st_find(f, t->name) != t) abort();
        /* A valid table bounds numel by the file size, so these sizes are small. */
        const size_t numel = t->numel ? t->numel : 1;
        float *f32 = malloc(numel * sizeof *f32);
        double *f64 = malloc(numel * sizeof *f64);
        int64_t *i64 = malloc(numel * sizeof *i64);
        if (f32 && f64 && i64) {
            cdf_st_read_f32(t, f32);
            cdf_st_read_f64(t, f64);
            cdf_st_read_i64(t, i64);
        }
        free(f32);
        free(f64);
        free(i64);
    }
    cdf_err err = {0};
    const cdf_st_tensor *got;
    int64_t shape[1] = {1};
    if (cdf_st_expect(f, "\x01no such tensor", 1, shape, &got, &err) == CDF_OK) abort();
}

static int run(const uint8_t *data, size_t size) {
    cdf_st_file *f = NULL;
    cdf_err err = {0};
    if (cdf_st_parse(&f, data, size, "fuzz.safetensors", &err) == CDF_OK) {
        read_all(f);
        cdf_st_close(f);
    } else if (f || !err.msg[0]) {
        abort(); /* a failure must leave no handle and say why */
    }
    return 0;
}

const cdf_fuzz_target cdf_fuzz_safetensors = {"safetensors", NULL, run, NULL};
