/* PNG files through libpng: 8-bit RGB images with text chunks, written
 * atomically (temporary file in the same folder, then rename), and read back
 * (for tests and for img2img inputs). */
#ifndef CDF_IO_PNG_H
#define CDF_IO_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct cdf_png_text {
    const char *key;    /* Latin-1 keyword, 1-79 bytes */
    const char *value;  /* UTF-8; stored as tEXt if ASCII, else iTXt */
} cdf_png_text;

/* rgb[height][width][3] */
cdf_status cdf_png_write(const char *path, const uint8_t *rgb, int64_t width, int64_t height,
                         const cdf_png_text *texts, size_t ntexts, cdf_err *err);

/* Reads any PNG as 8-bit RGB; *rgb is malloc'd (caller frees). */
cdf_status cdf_png_read(const char *path, uint8_t **rgb, int64_t *width, int64_t *height, cdf_err *err);

#endif
