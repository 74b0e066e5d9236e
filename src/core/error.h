/* Error reporting inside the library.
 *
 * Every fallible internal function takes a `cdf_err *` and returns a
 * cdf_status. The message is written once, at the place that knows the
 * context (file name, key, shape), and travels up unchanged; a handle copies
 * it into its own "last error" buffer. There is no global error state. */
#ifndef CDF_CORE_ERROR_H
#define CDF_CORE_ERROR_H

#include "cdiffusers.h"

#define CDF_ERR_MSG_MAX 1024

typedef struct cdf_err {
    cdf_status code;
    char msg[CDF_ERR_MSG_MAX];
} cdf_err;

/* Records code and a printf-style message in err (which may be NULL) and
 * returns code, so callers can write `return cdf_errf(err, ...)`. */
cdf_status cdf_errf(cdf_err *err, cdf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (adds context on the way up). */
cdf_status cdf_err_prefix(cdf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void cdf_err_clear(cdf_err *err) {
    if (err) { err->code = CDF_OK; err->msg[0] = '\0'; }
}

/* Allocation helpers that report out-of-memory through err. Sizes are
 * checked for overflow (count * size). */
void *cdf_malloc(size_t count, size_t size, cdf_err *err);
void *cdf_calloc(size_t count, size_t size, cdf_err *err);

/* Overflow-checked size arithmetic: return 0 on overflow. */
static inline int cdf_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline int cdf_add_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#endif
