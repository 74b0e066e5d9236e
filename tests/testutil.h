/* Shared helpers for the test programs (cmocka).
 *
 * Reference data is found through CDF_REFERENCE_DIR (default: ../shared/reference
 * beside the project root). A test that needs it and cannot find it fails. */
#ifndef CDF_TESTUTIL_H
#define CDF_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "io/safetensors.h"

const char *tu_ref_dir(void);
/* Joins the reference dir and `rel`; fails the test if the path is missing. */
const char *tu_ref_path(const char *rel);
/* Opens a reference safetensors file (fails the test on error). */
cdf_st_file *tu_open_ref(const char *rel);
/* Reads a tensor of `f` as float32 into a new buffer (fails if missing). */
float *tu_read_f32(const cdf_st_file *f, const char *name, size_t *numel);

struct cdf_model;
/* A cmocka group setup's body: loads the reference model folder `rel`
 * (defaults otherwise) into *out; prints the error and returns -1 on failure. */
int tu_load_model(const char *rel, struct cdf_model **out);

typedef struct tu_cmp {
    double max_abs;   /* max |got - ref| */
    double max_ref;   /* max |ref| */
    double nmse;      /* sum (got-ref)^2 / sum ref^2 */
    size_t worst;     /* index of max_abs */
} tu_cmp;

tu_cmp tu_compare(const float *got, const float *ref, size_t n);
/* Passes when max_abs <= rel_tol * max_ref (and nmse <= nmse_tol if >= 0).
 * Prints the numbers either way, so test logs record the achieved error. */
int tu_close(const char *what, const float *got, const float *ref, size_t n, double rel_tol, double nmse_tol);
#define TU_ASSERT_CLOSE(what, got, ref, n, rel, nmse) assert_true(tu_close(what, got, ref, n, rel, nmse))

/* Reads a whole file into a new NUL-terminated buffer (caller frees; *len,
 * when len is not NULL, gets its size). Fails the test if it cannot. */
char *tu_read_file(const char *path, size_t *len);

/* Runs a shell command and returns its exit status (or -1). */
int tu_run(const char *cmd);
/* Makes a fresh temporary directory for this test (removed by the OS/tmp). */
const char *tu_tmpdir(void);

#endif
