#include "io/png.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void on_png_error(png_structp png, png_const_charp msg) {
    char *buf = png_get_error_ptr(png);
    snprintf(buf, 256, "%s", msg);
    png_longjmp(png, 1);
}
static void on_png_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static int is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

/* Everything that touches libpng's longjmp lives here, with no locals that
 * change after setjmp. */
static int write_stream(FILE *fp, const uint8_t *rgb, png_uint_32 w, png_uint_32 h, const cdf_png_text *texts,
                        size_t ntexts, char *msg) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, msg, on_png_error, on_png_warning);
    if (!png) { snprintf(msg, 256, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    png_textp tx = calloc(ntexts ? ntexts : 1, sizeof *tx);
    if (!info || !tx) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(tx);
        snprintf(msg, 256, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(tx);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    for (size_t i = 0; i < ntexts; i++) {
        tx[i].key = (png_charp)texts[i].key;
        tx[i].text = (png_charp)texts[i].value;
        tx[i].text_length = strlen(texts[i].value);
        tx[i].compression = is_ascii(texts[i].value) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
    }
    if (ntexts) png_set_text(png, info, tx, (int)ntexts);
    png_write_info(png, info);
    for (png_uint_32 y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(tx);
    return 0;
}

cdf_status cdf_png_write(const char *path, const uint8_t *rgb, int64_t width, int64_t height,
                         const cdf_png_text *texts, size_t ntexts, cdf_err *err) {
    if (width < 1 || height < 1 || width > 1000000 || height > 1000000)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: image size %lldx%lld is not writable as PNG", path,
                        (long long)width, (long long)height);
    size_t plen = strlen(path);
    char *tmp = cdf_malloc(plen + 16, 1, err);
    if (!tmp) return CDF_ERR_OUT_OF_MEMORY;
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cdf_status st = cdf_errf(err, CDF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    fchmod(fd, 0644);
    FILE *fp = fdopen(fd, "wb");
    char msg[256] = "write error";
    int bad = !fp;
    if (fp) {
        bad = write_stream(fp, rgb, (png_uint_32)width, (png_uint_32)height, texts, ntexts, msg) != 0;
        bad |= fflush(fp) != 0;
        if (fclose(fp) != 0 && !bad) { bad = 1; snprintf(msg, sizeof msg, "%s", strerror(errno)); }
    } else {
        close(fd);
    }
    if (!bad && rename(tmp, path) != 0) { bad = 1; snprintf(msg, sizeof msg, "%s", strerror(errno)); }
    if (bad) {
        unlink(tmp);
        free(tmp);
        return cdf_errf(err, CDF_ERR_IO, "%s: cannot write PNG: %s", path, msg);
    }
    free(tmp);
    return CDF_OK;
}

cdf_status cdf_png_read(const char *path, uint8_t **rgb, int64_t *width, int64_t *height, cdf_err *err) {
    *rgb = NULL;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return cdf_errf(err, CDF_ERR_IO, "%s: cannot read PNG: %s", path, img.message);
    img.format = PNG_FORMAT_RGB;
    if ((uint64_t)img.width * img.height > (uint64_t)1 << 28) {
        png_image_free(&img);
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: image %ux%u is too large", path, img.width, img.height);
    }
    uint8_t *buf = cdf_malloc(PNG_IMAGE_SIZE(img), 1, err);
    if (!buf) { png_image_free(&img); return CDF_ERR_OUT_OF_MEMORY; }
    if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: cannot decode PNG: %s", path, img.message);
    }
    *rgb = buf;
    *width = img.width;
    *height = img.height;
    return CDF_OK;
}
