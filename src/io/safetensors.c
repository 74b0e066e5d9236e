#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"

struct cdf_st_file {
    char *path;
    const uint8_t *base; /* whole file image */
    size_t size;
    int mapped;          /* base was mmapped by us */
    cdf_st_tensor *tensors;
    char *names;         /* one block with all names */
    size_t count;
    /* synthetic source: the last fabricated tensor */
    int synthetic;
    uint64_t seed;
    cdf_st_tensor fake;
    char *fake_name;
    float *fake_data;
    cdf_st_tensor *made;   /* every fabricated tensor (name owned, no data) */
    size_t nmade, capmade;
};

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const cdf_st_tensor *)a)->name, ((const cdf_st_tensor *)b)->name);
}

static int cmp_offset(const void *a, const void *b) {
    const cdf_st_tensor *x = *(const cdf_st_tensor *const *)a, *y = *(const cdf_st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 : 0;
}

/* A JSON number that is an exact non-negative integer not above 2^53. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static cdf_status parse_entry(cdf_st_file *f, const cJSON *e, cdf_st_tensor *t,
                              size_t data_start, size_t data_len, cdf_err *err) {
    const char *lbl = f->path;
    if (!cJSON_IsObject(e))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s': entry is not an object", lbl, t->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", lbl, t->name);
    if (cdf_dtype_parse(dt->valuestring, &t->dtype) != 0)
        return cdf_errf(err, CDF_ERR_UNSUPPORTED,
                        "%s: tensor '%s': unsupported dtype \"%s\" (supported: F32, F16, BF16, F64, I64, I32, U8)",
                        lbl, t->name, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", lbl, t->name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > CDF_ST_MAX_DIMS)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s': rank %d exceeds the limit of %d", lbl, t->name, nd,
                        CDF_ST_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (json_uint(d, &v) != 0)
            return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", lbl,
                            t->name, i);
        t->shape[i++] = (int64_t)v;
        if (!cdf_mul_ok(numel, (size_t)v, &numel))
            return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s': element count overflows", lbl, t->name);
    }
    t->numel = numel;
    size_t nbytes;
    if (!cdf_mul_ok(numel, cdf_dtype_size(t->dtype), &nbytes))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s': byte size overflows", lbl, t->name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end]", lbl,
                        t->name);
    uint64_t b, en;
    if (json_uint(cJSON_GetArrayItem(off, 0), &b) != 0 || json_uint(cJSON_GetArrayItem(off, 1), &en) != 0)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s': data_offsets are not non-negative integers", lbl,
                        t->name);
    if (b > en || en > data_len)
        return cdf_errf(err, CDF_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] out of range (data section is %zu bytes)", lbl,
                        t->name, (unsigned long long)b, (unsigned long long)en, data_len);
    if (en - b != nbytes)
        return cdf_errf(err, CDF_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets span %llu bytes but shape and dtype %s need %zu", lbl,
                        t->name, (unsigned long long)(en - b), cdf_dtype_name(t->dtype), nbytes);
    t->nbytes = nbytes;
    t->offset = data_start + (size_t)b;
    t->data = f->base + t->offset;
    return CDF_OK;
}

static cdf_status parse_image(cdf_st_file *f, cdf_err *err) {
    const char *lbl = f->path;
    if (f->size < 8)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header", lbl,
                        f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->base[i];
    if (hlen > CDF_ST_MAX_HEADER)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: header length %llu exceeds the limit of %u bytes", lbl,
                        (unsigned long long)hlen, CDF_ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return cdf_errf(err, CDF_ERR_FORMAT,
                        "%s: header length %llu runs past the end of the file (%zu bytes); truncated file?", lbl,
                        (unsigned long long)hlen, f->size);
    size_t data_start = 8 + (size_t)hlen, data_len = f->size - data_start;
    cJSON *root = cJSON_ParseWithLength((const char *)f->base + 8, (size_t)hlen);
    if (!root) return cdf_errf(err, CDF_ERR_FORMAT, "%s: header is not valid JSON", lbl);
    cdf_status st = CDF_OK;
    if (!cJSON_IsObject(root)) {
        st = cdf_errf(err, CDF_ERR_FORMAT, "%s: header is not a JSON object", lbl);
        goto done;
    }
    size_t count = 0, name_bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        count++;
        name_bytes += strlen(e->string) + 1;
    }
    if (count > CDF_ST_MAX_TENSORS) {
        st = cdf_errf(err, CDF_ERR_FORMAT, "%s: %zu tensors exceed the limit of %u", lbl, count, CDF_ST_MAX_TENSORS);
        goto done;
    }
    f->tensors = cdf_calloc(count ? count : 1, sizeof *f->tensors, err);
    f->names = cdf_malloc(name_bytes ? name_bytes : 1, 1, err);
    if (!f->tensors || !f->names) { st = CDF_ERR_OUT_OF_MEMORY; goto done; }
    char *np = f->names;
    size_t i = 0;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        size_t l = strlen(e->string) + 1;
        memcpy(np, e->string, l);
        f->tensors[i].name = np;
        np += l;
        st = parse_entry(f, e, &f->tensors[i], data_start, data_len, err);
        if (st) goto done;
        i++;
    }
    f->count = count;
    qsort(f->tensors, count, sizeof *f->tensors, cmp_name);
    for (i = 1; i < count; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            st = cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", lbl, f->tensors[i].name);
            goto done;
        }
    /* Overlap check: sort pointers by offset; each tensor must end before the next begins. */
    if (count > 1) {
        const cdf_st_tensor **by = cdf_malloc(count, sizeof *by, err);
        if (!by) { st = CDF_ERR_OUT_OF_MEMORY; goto done; }
        for (i = 0; i < count; i++) by[i] = &f->tensors[i];
        qsort(by, count, sizeof *by, cmp_offset);
        for (i = 1; i < count; i++) {
            if (by[i - 1]->nbytes && by[i]->nbytes && by[i - 1]->offset + by[i - 1]->nbytes > by[i]->offset) {
                st = cdf_errf(err, CDF_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section", lbl,
                              by[i - 1]->name, by[i]->name);
                break;
            }
        }
        free(by);
    }
done:
    cJSON_Delete(root);
    return st;
}

static cdf_st_file *new_file(const char *label, cdf_err *err) {
    cdf_st_file *f = cdf_calloc(1, sizeof *f, err);
    if (!f) return NULL;
    f->path = strdup(label ? label : "<memory>");
    if (!f->path) {
        free(f);
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    return f;
}

cdf_status cdf_st_parse(cdf_st_file **out, const uint8_t *buf, size_t len, const char *label, cdf_err *err) {
    *out = NULL;
    cdf_st_file *f = new_file(label, err);
    if (!f) return CDF_ERR_OUT_OF_MEMORY;
    f->base = buf;
    f->size = len;
    cdf_status st = parse_image(f, err);
    if (st) { cdf_st_close(f); return st; }
    *out = f;
    return CDF_OK;
}

cdf_status cdf_st_open(cdf_st_file **out, const char *path, cdf_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cdf_errf(err, CDF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return cdf_errf(err, CDF_ERR_IO, "%s: not a regular file", path);
    }
    cdf_st_file *f = new_file(path, err);
    if (!f) { close(fd); return CDF_ERR_OUT_OF_MEMORY; }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            cdf_st_close(f);
            return cdf_errf(err, CDF_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        }
        f->base = p;
        f->mapped = 1;
    }
    close(fd);
    cdf_status st = parse_image(f, err);
    if (st) { cdf_st_close(f); return st; }
    *out = f;
    return CDF_OK;
}

cdf_status cdf_st_synthetic(cdf_st_file **out, uint64_t seed, cdf_err *err) {
    *out = new_file("<synthetic weights>", err);
    if (!*out) return CDF_ERR_OUT_OF_MEMORY;
    (*out)->synthetic = 1;
    (*out)->seed = seed;
    return CDF_OK;
}

static uint64_t hash_name(const char *s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h | 1;
}

/* Deterministic values of a fabricated tensor: uniform, weights with
 * variance 1/fan_in, 1-D ".weight" (norms) around 1, biases around 0. */
static void synth_values(const char *name, uint64_t seed, int ndim, const int64_t *shape, float *out) {
    size_t numel = 1, fan_in = 1;
    for (int i = 0; i < ndim; i++) {
        numel *= (size_t)shape[i];
        if (i > 0) fan_in *= (size_t)shape[i];
    }
    const size_t nl = strlen(name);
    const int is_bias = nl >= 5 && strcmp(name + nl - 5, ".bias") == 0;
    const int is_norm = ndim == 1 && !is_bias;
    const float a = is_bias ? 0.02f : is_norm ? 0.05f : sqrtf(3.0f / (float)fan_in);
    const float c = is_norm ? 1.0f : 0.0f;
    uint64_t x = hash_name(name, seed);
    for (size_t i = 0; i < numel; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = c + a * ((float)(x >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
}

static cdf_status fabricate(cdf_st_file *f, const char *name, int ndim, const int64_t *shape,
                            const cdf_st_tensor **out, cdf_err *err) {
    free(f->fake_data);
    free(f->fake_name);
    f->fake_data = NULL;
    f->fake_name = strdup(name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return cdf_errf(err, CDF_ERR_INTERNAL, "synthetic tensor '%s' has an open dimension", name);
        numel *= (size_t)shape[i];
    }
    if (!f->fake_name || !(f->fake_data = cdf_malloc(numel ? numel : 1, sizeof(float), err)))
        return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory fabricating '%s'", name);
    synth_values(name, f->seed, ndim, shape, f->fake_data);
    memset(&f->fake, 0, sizeof f->fake);
    f->fake.name = f->fake_name;
    f->fake.dtype = CDF_DTYPE_F32;
    f->fake.ndim = ndim;
    for (int i = 0; i < ndim; i++) f->fake.shape[i] = shape[i];
    f->fake.numel = numel;
    f->fake.nbytes = numel * sizeof(float);
    f->fake.data = f->fake_data;
    /* remember it (once per name) for cdf_st_synthetic_at */
    for (size_t i = 0; i < f->nmade; i++)
        if (strcmp(f->made[i].name, name) == 0) goto done;
    if (f->nmade == f->capmade) {
        size_t nc = f->capmade ? 2 * f->capmade : 256;
        cdf_st_tensor *nm = realloc(f->made, nc * sizeof *nm);
        if (!nm) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory");
        f->made = nm;
        f->capmade = nc;
    }
    f->made[f->nmade] = f->fake;
    f->made[f->nmade].data = NULL;
    if (!(f->made[f->nmade].name = strdup(name))) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory");
    f->nmade++;
done:
    *out = &f->fake;
    return CDF_OK;
}

size_t cdf_st_synthetic_count(const cdf_st_file *f) { return f->nmade; }
const cdf_st_tensor *cdf_st_synthetic_at(const cdf_st_file *f, size_t i) { return i < f->nmade ? &f->made[i] : NULL; }
void cdf_st_synthetic_values(const cdf_st_file *f, const cdf_st_tensor *t, float *out) {
    synth_values(t->name, f->seed, t->ndim, t->shape, out);
}

void cdf_st_close(cdf_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->nmade; i++) free((char *)f->made[i].name);
    free(f->made);
    free(f->fake_data);
    free(f->fake_name);
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->tensors);
    free(f->names);
    free(f->path);
    free(f);
}

const char *cdf_st_path(const cdf_st_file *f) { return f->path; }
size_t cdf_st_count(const cdf_st_file *f) { return f->count; }
const cdf_st_tensor *cdf_st_at(const cdf_st_file *f, size_t i) { return i < f->count ? &f->tensors[i] : NULL; }

const cdf_st_tensor *cdf_st_find(const cdf_st_file *f, const char *name) {
    if (f->count == 0) return NULL;
    cdf_st_tensor key = {.name = name};
    return bsearch(&key, f->tensors, f->count, sizeof key, cmp_name);
}

static void fmt_shape(char *buf, size_t cap, int nd, const int64_t *s) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < nd && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)s[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

cdf_status cdf_st_expect(const cdf_st_file *f, const char *name, int ndim, const int64_t *shape,
                         const cdf_st_tensor **out, cdf_err *err) {
    if (f->synthetic) return fabricate((cdf_st_file *)f, name, ndim, shape, out, err);
    const cdf_st_tensor *t = cdf_st_find(f, name);
    if (!t) return cdf_errf(err, CDF_ERR_FORMAT, "%s: missing tensor '%s'", f->path, name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || shape[i] == t->shape[i];
    if (!ok) {
        char want[160], got[160];
        fmt_shape(want, sizeof want, ndim, shape);
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s (config mismatch?)",
                        f->path, name, got, want);
    }
    if (t->dtype == CDF_DTYPE_U8 || t->dtype == CDF_DTYPE_I32 || t->dtype == CDF_DTYPE_I64) {
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: tensor '%s' has integer dtype %s, expected a float type",
                        f->path, name, cdf_dtype_name(t->dtype));
    }
    *out = t;
    return CDF_OK;
}

void cdf_st_read_f32(const cdf_st_tensor *t, float *dst) {
    const uint8_t *p = t->data;
    size_t n = t->numel;
    switch (t->dtype) {
    case CDF_DTYPE_F32: memcpy(dst, p, n * 4); break;
    case CDF_DTYPE_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = cdf_f16_to_f32(h); }
        break;
    case CDF_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = cdf_bf16_to_f32(h); }
        break;
    case CDF_DTYPE_F64:
        for (size_t i = 0; i < n; i++) { double d; memcpy(&d, p + 8 * i, 8); dst[i] = (float)d; }
        break;
    case CDF_DTYPE_I64:
        for (size_t i = 0; i < n; i++) { int64_t v; memcpy(&v, p + 8 * i, 8); dst[i] = (float)v; }
        break;
    case CDF_DTYPE_I32:
        for (size_t i = 0; i < n; i++) { int32_t v; memcpy(&v, p + 4 * i, 4); dst[i] = (float)v; }
        break;
    case CDF_DTYPE_U8:
        for (size_t i = 0; i < n; i++) dst[i] = p[i];
        break;
    }
}

void cdf_st_read_f64(const cdf_st_tensor *t, double *dst) {
    const uint8_t *p = t->data;
    size_t n = t->numel;
    if (t->dtype == CDF_DTYPE_F64) { memcpy(dst, p, n * 8); return; }
    if (t->dtype == CDF_DTYPE_I64) {
        for (size_t i = 0; i < n; i++) { int64_t v; memcpy(&v, p + 8 * i, 8); dst[i] = (double)v; }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cdf_st_tensor one = *t;
        one.numel = 1;
        one.data = p + i * cdf_dtype_size(t->dtype);
        float f;
        cdf_st_read_f32(&one, &f);
        dst[i] = f;
    }
}

void cdf_st_read_i64(const cdf_st_tensor *t, int64_t *dst) {
    const uint8_t *p = t->data;
    size_t n = t->numel;
    if (t->dtype == CDF_DTYPE_I64) { memcpy(dst, p, n * 8); return; }
    if (t->dtype == CDF_DTYPE_I32) {
        for (size_t i = 0; i < n; i++) { int32_t v; memcpy(&v, p + 4 * i, 4); dst[i] = v; }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cdf_st_tensor one = *t;
        one.numel = 1;
        one.data = p + i * cdf_dtype_size(t->dtype);
        double d;
        cdf_st_read_f64(&one, &d);
        /* Saturate: converting NaN, inf or a value beyond int64 is undefined in C. */
        dst[i] = d != d ? 0 : d >= 9223372036854775807.0 ? INT64_MAX : d <= -9223372036854775808.0 ? INT64_MIN
                                                                                                  : (int64_t)d;
    }
}

void cdf_st_release_pages(const cdf_st_file *f, const cdf_st_tensor *t) {
    if (!f->mapped || t->nbytes == 0) return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t b = ((uintptr_t)t->data + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
    uintptr_t e = ((uintptr_t)t->data + t->nbytes) & ~(uintptr_t)(pg - 1);
    if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
}

/* ---- writer ---- */

static int write_all(FILE *fp, const void *p, size_t n) { return fwrite(p, 1, n, fp) == n ? 0 : -1; }

cdf_status cdf_st_write(const char *path, const cdf_st_out *tensors, size_t n, cdf_err *err) {
    /* Header: tensors in the given order, offsets packed back to back. */
    cJSON *root = cJSON_CreateObject();
    if (!root) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory");
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const cdf_st_out *t = &tensors[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        if (!e || !shape || !cJSON_AddStringToObject(e, "dtype", cdf_dtype_name(t->dtype))) goto oom;
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            cJSON *v = cJSON_CreateNumber((double)t->shape[d]);
            if (!v) goto oom;
            cJSON_AddItemToArray(shape, v);
            numel *= (size_t)t->shape[d];
        }
        size_t nb = numel * cdf_dtype_size(t->dtype);
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        if (!offs) goto oom;
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    root = NULL;
    if (!hdr) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory");
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;

    size_t plen = strlen(path);
    char *tmp = cdf_malloc(plen + 16, 1, err);
    if (!tmp) { free(hdr); return CDF_ERR_OUT_OF_MEMORY; }
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cdf_status st = cdf_errf(err, CDF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(hdr);
        free(tmp);
        return st;
    }
    fchmod(fd, 0644); /* mkstemp creates 0600; outputs are ordinary files */
    FILE *fp = fdopen(fd, "wb");
    int bad = fp == NULL;
    if (!bad) {
        uint8_t len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
        bad |= write_all(fp, len8, 8) | write_all(fp, hdr, hl);
        for (size_t i = hl; i < padded && !bad; i++) bad |= write_all(fp, " ", 1);
        for (size_t i = 0; i < n && !bad; i++) {
            size_t numel = 1;
            for (int d = 0; d < tensors[i].ndim; d++) numel *= (size_t)tensors[i].shape[d];
            bad |= write_all(fp, tensors[i].data, numel * cdf_dtype_size(tensors[i].dtype));
        }
        bad |= fflush(fp) != 0;
        bad |= fclose(fp) != 0;
    } else {
        close(fd);
    }
    free(hdr);
    if (bad || rename(tmp, path) != 0) {
        cdf_status st = cdf_errf(err, CDF_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return CDF_OK;
oom:
    cJSON_Delete(root);
    return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory");
}
