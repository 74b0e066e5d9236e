#include "testutil.h"

#include "cdiffusers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_ref_dir(void) {
    const char *e = getenv("CDF_REFERENCE_DIR");
    return (e && *e) ? e : CDF_DEFAULT_REFERENCE_DIR;
}

const char *tu_ref_path(const char *rel) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", tu_ref_dir(), rel);
    struct stat sb;
    if (stat(b, &sb) != 0) {
        fail_msg("reference data not found: %s (set CDF_REFERENCE_DIR to the reference folder)", b);
    }
    return b;
}

cdf_st_file *tu_open_ref(const char *rel) {
    cdf_err err = {0};
    cdf_st_file *f = NULL;
    if (cdf_st_open(&f, tu_ref_path(rel), &err) != CDF_OK) fail_msg("%s", err.msg);
    return f;
}

float *tu_read_f32(const cdf_st_file *f, const char *name, size_t *numel) {
    const cdf_st_tensor *t = cdf_st_find(f, name);
    if (!t) fail_msg("%s: missing tensor %s", cdf_st_path(f), name);
    float *p = malloc(t->numel * sizeof(float) + 1);
    assert_non_null(p);
    cdf_st_read_f32(t, p);
    if (numel) *numel = t->numel;
    return p;
}

tu_cmp tu_compare(const float *got, const float *ref, size_t n) {
    tu_cmp c = {0, 0, 0, 0};
    double se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= c.max_abs)) { c.max_abs = d; c.worst = i; } /* NaN counts as worst */
        if (fabs(ref[i]) > c.max_ref) c.max_ref = fabs(ref[i]);
        se += d * d;
        sr += (double)ref[i] * ref[i];
    }
    c.nmse = sr > 0 ? se / sr : se;
    return c;
}

int tu_close(const char *what, const float *got, const float *ref, size_t n, double rel_tol, double nmse_tol) {
    tu_cmp c = tu_compare(got, ref, n);
    int ok = c.max_abs <= rel_tol * c.max_ref && (nmse_tol < 0 || c.nmse <= nmse_tol);
    printf("  %-48s max_abs %.3e  max|ref| %.3e  rel %.3e  nmse %.3e  (tol rel %.0e%s) %s\n", what, c.max_abs,
           c.max_ref, c.max_ref > 0 ? c.max_abs / c.max_ref : c.max_abs, c.nmse, rel_tol,
           nmse_tol >= 0 ? ", nmse" : "", ok ? "ok" : "FAIL");
    if (!ok)
        printf("    worst at %zu: got %.9g ref %.9g\n", c.worst, (double)got[c.worst], (double)ref[c.worst]);
    fflush(stdout);
    return ok;
}

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) fail_msg("cannot read %s", path);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

int tu_run(const char *cmd) {
    fflush(stdout);
    int st = system(cmd);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *tu_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/cdf-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
    }
    return dir;
}

int tu_load_model(const char *rel, cdf_model **out) {
    cdf_load_params lp;
    cdf_load_params_default(&lp);
    lp.model_dir = tu_ref_path(rel);
    cdf_error_buf eb;
    if (cdf_model_load(out, &lp, &eb)) {
        printf("%s: %s\n", lp.model_dir, eb.message);
        return -1;
    }
    return 0;
}
