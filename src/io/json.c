#include "io/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

cdf_status cdf_read_file(const char *path, size_t max_bytes, char **out, size_t *len, cdf_err *err) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return cdf_errf(err, CDF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return cdf_errf(err, CDF_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        fclose(fp);
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: file is %lld bytes, more than the limit of %zu", path,
                        (long long)sb.st_size, max_bytes);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = cdf_malloc(n + 1, 1, err);
    if (!buf) { fclose(fp); return CDF_ERR_OUT_OF_MEMORY; }
    if (fread(buf, 1, n, fp) != n) {
        free(buf);
        fclose(fp);
        return cdf_errf(err, CDF_ERR_IO, "%s: read error", path);
    }
    fclose(fp);
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return CDF_OK;
}

/* Python's json module writes the non-standard tokens Infinity, -Infinity
 * and NaN (diffusers configs carry "lambda_min_clipped": -Infinity). cJSON
 * does not know them, so outside strings they become 1e999 / -1e999 (which
 * strtod reads as +-inf) and null. Returns a new NUL-terminated text. */
static char *python_json_compat(const char *text, size_t len, size_t *out_len) {
    char *o = malloc(len * 2 + 16);
    if (!o) return NULL;
    size_t n = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            o[n++] = c;
            if (c == '\\' && i + 1 < len) o[n++] = text[++i];
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        if (c == 'I' && len - i >= 8 && memcmp(text + i, "Infinity", 8) == 0) {
            memcpy(o + n, "1e999", 5);
            n += 5;
            i += 7;
            continue;
        }
        if (c == 'N' && len - i >= 3 && memcmp(text + i, "NaN", 3) == 0) {
            memcpy(o + n, "null", 4);
            n += 4;
            i += 2;
            continue;
        }
        o[n++] = c;
    }
    o[n] = '\0';
    *out_len = n;
    return o;
}

cdf_status cdf_json_parse(cdf_json *j, const char *text0, size_t len0, const char *label, cdf_err *err) {
    snprintf(j->label, sizeof j->label, "%s", label);
    j->root = NULL;
    /* The file limit holds for texts from memory too, checked before the copy. */
    if (len0 > CDF_JSON_MAX_BYTES)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: %zu bytes of JSON, more than the limit of %u", label, len0,
                        CDF_JSON_MAX_BYTES);
    size_t len;
    char *text = python_json_compat(text0, len0, &len);
    if (!text) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    const char *end = NULL;
    j->root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j->root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        free(text);
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: malformed JSON near byte %zu", label, at);
    }
    free(text);
    if (!cJSON_IsObject(j->root)) {
        cdf_json_free(j);
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: expected a JSON object at the top level", label);
    }
    return CDF_OK;
}

cdf_status cdf_json_load(cdf_json *j, const char *path, cdf_err *err) {
    j->root = NULL;
    char *text;
    size_t len;
    cdf_status st = cdf_read_file(path, CDF_JSON_MAX_BYTES, &text, &len, err);
    if (st) return st;
    st = cdf_json_parse(j, text, len, path, err);
    free(text);
    return st;
}

void cdf_json_free(cdf_json *j) {
    cJSON_Delete(j->root);
    j->root = NULL;
}

static const cJSON *get(const cdf_json *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

int cdf_json_has(const cdf_json *j, const char *key) { return get(j, key) != NULL; }

static int as_int(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(fabs(d) <= 9007199254740992.0) || floor(d) != d) return -1;
    *out = (int64_t)d;
    return 0;
}

cdf_status cdf_json_int(const cdf_json *j, const char *key, int64_t def, int64_t *out, cdf_err *err) {
    const cJSON *v = get(j, key);
    if (!v) { *out = def; return CDF_OK; }
    if (as_int(v, out) != 0)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': expected an integer", j->label, key);
    return CDF_OK;
}

cdf_status cdf_json_req_int(const cdf_json *j, const char *key, int64_t *out, cdf_err *err) {
    if (!get(j, key)) return cdf_errf(err, CDF_ERR_FORMAT, "%s: missing required key '%s'", j->label, key);
    return cdf_json_int(j, key, 0, out, err);
}

cdf_status cdf_json_num(const cdf_json *j, const char *key, double def, double *out, cdf_err *err) {
    const cJSON *v = get(j, key);
    if (!v) { *out = def; return CDF_OK; }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': expected a number", j->label, key);
    *out = v->valuedouble;
    return CDF_OK;
}

cdf_status cdf_json_bool(const cdf_json *j, const char *key, int def, int *out, cdf_err *err) {
    const cJSON *v = get(j, key);
    if (!v) { *out = def; return CDF_OK; }
    if (!cJSON_IsBool(v))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': expected true or false", j->label, key);
    *out = cJSON_IsTrue(v);
    return CDF_OK;
}

cdf_status cdf_json_str(const cdf_json *j, const char *key, const char *def, const char **out, cdf_err *err) {
    const cJSON *v = get(j, key);
    if (!v) { *out = def; return CDF_OK; }
    if (!cJSON_IsString(v))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': expected a string", j->label, key);
    *out = v->valuestring;
    return CDF_OK;
}

cdf_status cdf_json_req_str(const cdf_json *j, const char *key, const char **out, cdf_err *err) {
    if (!get(j, key)) return cdf_errf(err, CDF_ERR_FORMAT, "%s: missing required key '%s'", j->label, key);
    return cdf_json_str(j, key, NULL, out, err);
}

cdf_status cdf_json_int_list(const cdf_json *j, const char *key, int64_t *out, int cap, int n, int *count,
                             int required, cdf_err *err) {
    const cJSON *v = get(j, key);
    if (count) *count = 0;
    if (!v) {
        if (required) return cdf_errf(err, CDF_ERR_FORMAT, "%s: missing required key '%s'", j->label, key);
        return CDF_OK;
    }
    if (cJSON_IsNumber(v)) {
        int64_t x;
        if (as_int(v, &x) != 0)
            return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': expected an integer", j->label, key);
        int m = n > 0 ? n : 1;
        if (m > cap) return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': too many entries", j->label, key);
        for (int i = 0; i < m; i++) out[i] = x;
        if (count) *count = m;
        return CDF_OK;
    }
    if (!cJSON_IsArray(v))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': expected an integer or an array of integers",
                        j->label, key);
    int len = cJSON_GetArraySize(v);
    if (len > cap)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': %d entries, at most %d supported", j->label, key, len,
                        cap);
    if (n > 0 && len != n)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s' has %d entries but %d are needed", j->label, key, len,
                        n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (as_int(e, &out[i]) != 0)
            return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': entry %d is not an integer", j->label, key, i);
        i++;
    }
    if (count) *count = len;
    return CDF_OK;
}

cdf_status cdf_json_str_list(const cdf_json *j, const char *key, const char **out, int cap, int *count,
                             cdf_err *err) {
    const cJSON *v = get(j, key);
    *count = 0;
    if (!v) return cdf_errf(err, CDF_ERR_FORMAT, "%s: missing required key '%s'", j->label, key);
    if (!cJSON_IsArray(v))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': expected an array of strings", j->label, key);
    int len = cJSON_GetArraySize(v);
    if (len > cap)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': %d entries, at most %d supported", j->label, key, len,
                        cap);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e))
            return cdf_errf(err, CDF_ERR_FORMAT, "%s: key '%s': entry %d is not a string", j->label, key, i);
        out[i++] = e->valuestring;
    }
    *count = len;
    return CDF_OK;
}
