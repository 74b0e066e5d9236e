/* Reading config files (config.json, model_index.json, tokenizer configs).
 *
 * A cdf_json holds a parsed file and its path, so every accessor can name
 * both the file and the key when something is wrong:
 *   "unet/config.json: key 'block_out_channels': expected an array of integers".
 * Accessors take the value to use when the key is absent (diffusers'
 * defaults); a key that is present with JSON null also takes the default,
 * as diffusers' from_config does for Optional arguments. */
#ifndef CDF_IO_JSON_H
#define CDF_IO_JSON_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/error.h"

/* Largest config file accepted. */
#define CDF_JSON_MAX_BYTES (16u * 1024u * 1024u)

typedef struct cdf_json {
    cJSON *root;      /* owned */
    char label[512];  /* path shown in messages */
} cdf_json;

/* Reads and parses `path`; the root must be an object. */
cdf_status cdf_json_load(cdf_json *j, const char *path, cdf_err *err);
/* Parses a JSON text held in memory (label names it in messages). */
cdf_status cdf_json_parse(cdf_json *j, const char *text, size_t len, const char *label, cdf_err *err);
void cdf_json_free(cdf_json *j);

/* Reads a whole small file into a NUL-terminated buffer (caller frees). */
cdf_status cdf_read_file(const char *path, size_t max_bytes, char **out, size_t *len, cdf_err *err);

int cdf_json_has(const cdf_json *j, const char *key); /* present and not null */

cdf_status cdf_json_int(const cdf_json *j, const char *key, int64_t def, int64_t *out, cdf_err *err);
cdf_status cdf_json_num(const cdf_json *j, const char *key, double def, double *out, cdf_err *err);
cdf_status cdf_json_bool(const cdf_json *j, const char *key, int def, int *out, cdf_err *err);
/* *out points into the document (valid until cdf_json_free) or is `def`. */
cdf_status cdf_json_str(const cdf_json *j, const char *key, const char *def, const char **out, cdf_err *err);
/* Required variants: absence is an error naming the key. */
cdf_status cdf_json_req_int(const cdf_json *j, const char *key, int64_t *out, cdf_err *err);
cdf_status cdf_json_req_str(const cdf_json *j, const char *key, const char **out, cdf_err *err);

/* An integer or an array of integers. A scalar is broadcast to `n` entries;
 * an array must have exactly `n` entries unless n == 0, in which case its
 * length is returned in *count. Absent key: error if required, else *count=0. */
cdf_status cdf_json_int_list(const cdf_json *j, const char *key, int64_t *out, int cap, int n, int *count,
                             int required, cdf_err *err);
/* An array of strings; pointers into the document. */
cdf_status cdf_json_str_list(const cdf_json *j, const char *key, const char **out, int cap, int *count,
                             cdf_err *err);

#endif
