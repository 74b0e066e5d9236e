#include "models/component.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const char *cdf_join(char *buf, size_t cap, const char *prefix, const char *name) {
    if (prefix && *prefix) snprintf(buf, cap, "%s.%s", prefix, name);
    else snprintf(buf, cap, "%s", name);
    return buf;
}

/* Lists "<base>*.safetensors" / "*.bin" files in dir for the error message. */
static void list_candidates(char *out, size_t cap, const char *dir, const char *base) {
    out[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        int st = l > 12 && strcmp(e->d_name + l - 12, ".safetensors") == 0;
        int bin = l > 4 && strcmp(e->d_name + l - 4, ".bin") == 0;
        if ((st || bin) && strncmp(e->d_name, base, strlen(base)) == 0 && n + l + 3 < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", e->d_name);
    }
    closedir(d);
}

cdf_status cdf_component_open_weights(cdf_st_file **out, const char *dir, const char *base, const char *variant,
                                      cdf_err *err) {
    char path[4096];
    if (variant && *variant) snprintf(path, sizeof path, "%s/%s.%s.safetensors", dir, base, variant);
    else snprintf(path, sizeof path, "%s/%s.safetensors", dir, base);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        struct stat db;
        if (stat(dir, &db) != 0 || !S_ISDIR(db.st_mode))
            return cdf_errf(err, CDF_ERR_IO, "%s: component folder not found", dir);
        char have[1024];
        list_candidates(have, sizeof have, dir, base);
        if (variant && *variant)
            return cdf_errf(err, CDF_ERR_IO, "%s: not found: variant \"%s\" is missing (folder has: %s)", path,
                            variant, have[0] ? have : "no weight files");
        return cdf_errf(err, CDF_ERR_IO, "%s: not found (folder has: %s%s)", path, have[0] ? have : "no weight files",
                        strstr(have, ".bin") ? "; only .safetensors weights are supported" : "");
    }
    return cdf_st_open(out, path, err);
}

cdf_status cdf_component_config(cdf_json *j, const char *dir, cdf_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    return cdf_json_load(j, path, err);
}

cdf_status cdf_component_open(cdf_json *j, cdf_st_file **f, const char *dir, const char *base, const char *variant,
                              cdf_err *err) {
    *f = NULL;
    cdf_status st = cdf_component_config(j, dir, err);
    if (st) return st;
    if ((st = cdf_component_open_weights(f, dir, base, variant, err))) cdf_json_free(j);
    return st;
}

void cdf_component_close(cdf_json *j, cdf_st_file *f, cdf_st_file **keep) {
    if (keep) *keep = f;
    else cdf_st_close(f);
    cdf_json_free(j);
}
