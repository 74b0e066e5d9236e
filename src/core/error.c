#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cdf_status cdf_errf(cdf_err *err, cdf_status code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

cdf_status cdf_err_prefix(cdf_err *err, const char *fmt, ...) {
    if (!err) return CDF_ERR_INTERNAL;
    char prefix[CDF_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the old message right and put "prefix: " in front, truncating at the end. */
    size_t pl = strlen(prefix), ol = strlen(err->msg), cap = sizeof err->msg - 1;
    if (pl + 2 > cap) pl = cap - 2;
    size_t keep = ol + pl + 2 > cap ? cap - pl - 2 : ol;
    memmove(err->msg + pl + 2, err->msg, keep);
    memcpy(err->msg, prefix, pl);
    err->msg[pl] = ':';
    err->msg[pl + 1] = ' ';
    err->msg[pl + 2 + keep] = '\0';
    return err->code;
}

void *cdf_malloc(size_t count, size_t size, cdf_err *err) {
    size_t total;
    if (!cdf_mul_ok(count, size, &total)) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "allocation size overflow (%zu x %zu bytes)", count, size);
        return NULL;
    }
    void *p = malloc(total ? total : 1);
    if (!p) cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory allocating %zu bytes", total);
    return p;
}

void *cdf_calloc(size_t count, size_t size, cdf_err *err) {
    size_t total;
    if (!cdf_mul_ok(count, size, &total)) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "allocation size overflow (%zu x %zu bytes)", count, size);
        return NULL;
    }
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory allocating %zu bytes", total);
    return p;
}
