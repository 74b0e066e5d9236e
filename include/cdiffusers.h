/* cdiffusers — Stable Diffusion inference in C.
 *
 * This header is the whole public API. Conventions:
 *   - every public name starts with cdf_ / CDF_;
 *   - every fallible call returns a cdf_status; CDF_OK is 0;
 *   - handles keep the message of their last error (cdf_*_last_error);
 *     calls that have no handle yet take a cdf_error_buf to write it into;
 *   - whoever creates a handle frees it with the matching *_free function;
 *   - sizes are size_t / int64_t, never int.
 */
#ifndef CDIFFUSERS_H
#define CDIFFUSERS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cdf_status {
    CDF_OK = 0,
    CDF_ERR_INVALID_ARGUMENT = 1, /* a parameter is out of range or inconsistent */
    CDF_ERR_IO = 2,               /* a file could not be opened, read or written */
    CDF_ERR_FORMAT = 3,           /* a file is malformed (JSON, safetensors, tokenizer) */
    CDF_ERR_UNSUPPORTED = 4,      /* valid input that this version does not implement */
    CDF_ERR_OUT_OF_MEMORY = 5,    /* an allocation failed or would exceed a limit */
    CDF_ERR_CANCELLED = 6,        /* the progress callback asked to stop */
    CDF_ERR_INTERNAL = 7          /* a bug or a backend failure */
} cdf_status;

/* Short, static description of a status code ("invalid argument", ...). */
const char *cdf_status_string(cdf_status status);

/* Library version, "MAJOR.MINOR.PATCH". */
const char *cdf_version(void);

/* Element types of tensors in files and in memory. */
typedef enum cdf_dtype {
    CDF_DTYPE_F32 = 0,
    CDF_DTYPE_F16 = 1,
    CDF_DTYPE_BF16 = 2,
    CDF_DTYPE_F64 = 3,
    CDF_DTYPE_I64 = 4,
    CDF_DTYPE_I32 = 5,
    CDF_DTYPE_U8 = 6
} cdf_dtype;

/* Caller-owned buffer for the message of a call that has no handle. */
typedef struct cdf_error_buf {
    char message[1024];
} cdf_error_buf;

#ifdef __cplusplus
}
#endif
#endif
