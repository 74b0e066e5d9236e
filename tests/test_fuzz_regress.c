/* Replays the fuzzing corpora through the libFuzzer harnesses' own entry
 * points (fuzz/fuzz_*.c), compiled without libFuzzer: every file of
 * fuzz/corpus/<harness>/ (seeds) and fuzz/crashers/<harness>/ (inputs that
 * once crashed, kept after the fix). Pass rule: no crash, no sanitizer report
 * under scripts/test-sanitize.sh. Each harness must find its folders and
 * replay at least one seed; the fixes behind the crashers are also checked
 * by value (that test fails if a fix is undone). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/json.h"
#include "schedulers/scheduler.h"
#include "testutil.h"

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs every regular file of `dir` through t, in name order; returns the count. */
static size_t replay_dir(const cdf_fuzz_target *t, const char *dir, int required) {
    DIR *d = opendir(dir);
    if (!d) {
        if (required) fail_msg("missing corpus folder %s", dir);
        return 0;
    }
    char *names[4096];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        uint8_t *data = (uint8_t *)tu_read_file(path, &len);
        /* An exact-size copy, so ASan sees reads one past the input. */
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, data, len);
        free(data);
        assert_int_equal(t->run(exact, len), 0);
        free(exact);
        free(names[i]);
    }
    return n;
}

static void replay(const cdf_fuzz_target *t) {
    if (t->init) assert_int_equal(t->init(tu_ref_dir()), 0);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", CDF_SOURCE_DIR, t->name);
    const size_t seeds = replay_dir(t, dir, 1);
    snprintf(dir, sizeof dir, "%s/fuzz/crashers/%s", CDF_SOURCE_DIR, t->name);
    const size_t crashers = replay_dir(t, dir, 1);
    if (t->fini) t->fini();
    printf("  %-16s %3zu seeds, %3zu crashers replayed\n", t->name, seeds, crashers);
    assert_true(seeds > 0);
}

static void test_safetensors(void **s) { (void)s; replay(&cdf_fuzz_safetensors); }
static void test_config(void **s) { (void)s; replay(&cdf_fuzz_config); }
static void test_tokenizer_load(void **s) { (void)s; replay(&cdf_fuzz_tokenizer_load); }
static void test_tokenizer(void **s) { (void)s; replay(&cdf_fuzz_tokenizer); }
static void test_cli(void **s) { (void)s; replay(&cdf_fuzz_cli); }

/* The fixes behind the crashers, checked by value (these fail if a fix is
 * undone, also in builds where the sanitizer would not have trapped). */
static void test_fixed_behaviour(void **s) {
    (void)s;
    /* safetensors/read_i64_inf_nan: float -> int64 saturates, NaN -> 0. */
    size_t len;
    char path[4096];
    snprintf(path, sizeof path, "%s/fuzz/crashers/safetensors/read_i64_inf_nan", CDF_SOURCE_DIR);
    uint8_t *data = (uint8_t *)tu_read_file(path, &len);
    cdf_st_file *f;
    cdf_err err = {0};
    if (cdf_st_parse(&f, data, len, "read_i64_inf_nan", &err)) fail_msg("%s", err.msg);
    const cdf_st_tensor *x = cdf_st_find(f, "x");
    assert_non_null(x);
    int64_t v[4];
    cdf_st_read_i64(x, v);
    printf("  F32 [nan, inf, -inf, -0] as int64: %lld %lld %lld %lld\n", (long long)v[0], (long long)v[1],
           (long long)v[2], (long long)v[3]);
    assert_true(v[0] == 0 && v[1] == INT64_MAX && v[2] == INT64_MIN && v[3] == 0);
    cdf_st_close(f);
    free(data);
    /* config/kdpm2_log_midpoint_nan: KDPM2 schedules stay finite (the NaN of
     * log(0) is computed and dropped, as in diffusers). */
    snprintf(path, sizeof path, "%s/fuzz/crashers/config/kdpm2_log_midpoint_nan", CDF_SOURCE_DIR);
    data = (uint8_t *)tu_read_file(path, &len);
    cdf_json j;
    if (cdf_json_parse(&j, (const char *)data, len, "kdpm2_log_midpoint_nan", &err)) fail_msg("%s", err.msg);
    cdf_scheduler *sc;
    if (cdf_scheduler_create(&sc, "KDPM2DiscreteScheduler", j.root, NULL, &err)) fail_msg("%s", err.msg);
    if (cdf_scheduler_set_timesteps(sc, 3, &err)) fail_msg("%s", err.msg);
    const size_t nt = cdf_scheduler_num_timesteps(sc);
    for (size_t i = 0; i < nt; i++) assert_true(isfinite(cdf_scheduler_timestep(sc, i)));
    printf("  KDPM2 on the crasher config: %zu finite timesteps\n", nt);
    cdf_scheduler_free(sc);
    cdf_json_free(&j);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors), cmocka_unit_test(test_config), cmocka_unit_test(test_tokenizer_load),
        cmocka_unit_test(test_tokenizer),   cmocka_unit_test(test_cli),    cmocka_unit_test(test_fixed_behaviour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
