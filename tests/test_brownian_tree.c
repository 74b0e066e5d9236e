/* torchsde BrownianTree and numpy SeedSequence.
 *
 * The goldens' brownian_noise tensors were produced by diffusers 0.26.3's
 * BrownianTreeNoiseSampler over torchsde 0.2.6; every value must be
 * reproduced bit for bit: the tree is a chain of float32 tensor ops with
 * fixed operands and order, so anything short of exact means a wrong seed,
 * split point or operation order, not rounding noise. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/json.h"
#include "rng/seed_sequence.h"
#include "schedulers/brownian_tree.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* SeedSequence against numpy 1.24.2 (values from /usr/bin/python3).   */

static void check_state(uint64_t entropy, const uint64_t *key, size_t nkey, size_t pool, const uint32_t *want,
                        size_t n) {
    cdf_seed_sequence ss;
    cdf_err err = {0};
    assert_int_equal(cdf_seedseq_init(&ss, entropy, key, nkey, pool, &err), CDF_OK);
    uint32_t got[16];
    assert_true(n <= 16);
    cdf_seedseq_generate_state(&ss, got, n);
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i])
            fail_msg("SeedSequence(%" PRIu64 ", key of %zu, pool %zu) word %zu: got %" PRIu32 " want %" PRIu32,
                     entropy, nkey, pool, i, got[i], want[i]);
    }
}

static void test_seed_sequence(void **state) {
    (void)state;
    /* SeedSequence(0, pool_size=24).generate_state(3): the tree's root seeds */
    static const uint32_t a[] = {4025752534u, 2687548107u, 2326983537u};
    check_state(0, NULL, 0, 24, a, 3);
    /* spawn_key=(1, 1): the right child of the root */
    static const uint32_t b[] = {712187387u, 1606772624u, 2046284749u, 1855274158u};
    check_state(0, (const uint64_t[]){1, 1}, 2, 24, b, 4);
    /* spawn_key=(0, 0): the root's own split seed */
    static const uint32_t c[] = {245430115u};
    check_state(0, (const uint64_t[]){0, 0}, 2, 24, c, 1);
    /* two-word entropy 2**40+5 */
    static const uint32_t d[] = {1871255777u, 2879413523u, 1352781655u, 4038398907u};
    check_state((1ull << 40) + 5, (const uint64_t[]){3, 2}, 2, 24, d, 4);
    /* SeedSequence(0, pool_size=24).spawn(2): children keys (0,) and (1,) */
    static const uint32_t e0[] = {210786248u, 1185853204u}, e1[] = {3566882829u, 1369699388u};
    check_state(0, (const uint64_t[]){0}, 1, 24, e0, 2);
    check_state(0, (const uint64_t[]){1}, 1, 24, e1, 2);
    /* default pool 4, no key */
    static const uint32_t f[] = {2688385916u, 3048105090u, 4196366895u, 3152189807u};
    check_state(12345, NULL, 0, 4, f, 4);
    /* key element over 32 bits */
    static const uint32_t g[] = {414416152u, 693318041u};
    check_state(0, (const uint64_t[]){(1ull << 33) + 7, 40}, 2, 24, g, 2);
    /* 2**63-1, pool 8, more words than the pool (cycling) */
    static const uint32_t h[] = {1678488149u, 488143391u,  4129359940u, 772920065u,  269781903u,
                                 840006307u,  3869239325u, 1781581084u, 2920164016u, 2983026570u};
    check_state(INT64_MAX, NULL, 0, 8, h, 10);
    /* small entropy padded to pool 4 because of the key */
    static const uint32_t k[] = {3453020843u, 79299018u, 3772646799u};
    check_state(7, (const uint64_t[]){5, 3}, 2, 4, k, 3);

    cdf_seed_sequence ss;
    cdf_err err = {0};
    assert_int_equal(cdf_seedseq_init(&ss, 0, NULL, 0, 3, &err), CDF_ERR_INVALID_ARGUMENT);
    /* check the checker: a different pool size gives other words */
    uint32_t w;
    assert_int_equal(cdf_seedseq_init(&ss, 0, NULL, 0, 23, &err), CDF_OK);
    cdf_seedseq_generate_state(&ss, &w, 1);
    assert_true(w != a[0]);
}

/* ------------------------------------------------------------------ */
/* Goldens.                                                            */

static uint32_t f32_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}

/* Positions whose float32 bit patterns differ (signed zeros included). */
static size_t bit_diffs(const float *a, const float *b, size_t n, double *max_abs) {
    size_t bad = 0;
    *max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        if (f32_bits(a[i]) != f32_bits(b[i])) bad++;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > *max_abs) *max_abs = d;
    }
    return bad;
}

/* diffusers BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed)(sigma,
 * sigma_next) with BatchedBrownianTree's sorting and sign, all float32:
 * tree(min, max) * sign / |sigma_next - sigma|.sqrt(). */
static void sampler_noise(cdf_brownian_tree *bt, float sigma, float sigma_next, float *out, size_t n) {
    cdf_err err = {0};
    float lo = sigma < sigma_next ? sigma : sigma_next;
    float hi = sigma < sigma_next ? sigma_next : sigma;
    float sign = sigma < sigma_next ? 1.0f : -1.0f;
    if (cdf_brownian_tree_query(bt, (double)lo, (double)hi, out, &err) != CDF_OK) fail_msg("%s", err.msg);
    float d = sqrtf(fabsf(sigma_next - sigma));
    for (size_t i = 0; i < n; i++) out[i] = (out[i] * sign) / d;
}

typedef struct golden {
    const char *file;     /* relative to the reference dir */
    const char *manifest; /* manifest holding its brownian_tree entry */
    const char *group;    /* "cases" or "pipeline_cases" */
    const char *case_name;
} golden;

static const golden GOLDENS[] = {
    {"goldens/schedulers/DPMSolverSDEScheduler_4.safetensors", "goldens/schedulers/manifest.json", "cases",
     "DPMSolverSDEScheduler_4"},
    {"goldens/schedulers/DPMSolverSDEScheduler_20.safetensors", "goldens/schedulers/manifest.json", "cases",
     "DPMSolverSDEScheduler_20"},
    {"goldens/tiny-sd1/pipeline/dpm_sde_4_generator0.safetensors", "goldens/tiny-sd1/manifest.json",
     "pipeline_cases", "dpm_sde_4_generator0"},
};

typedef struct tree_params {
    double sigma_min, sigma_max;
    uint64_t entropy;
    size_t numel;
} tree_params;

static tree_params read_params(const golden *g) {
    cdf_json j;
    cdf_err err = {0};
    char *text;
    size_t len;
    const char *path = tu_ref_path(g->manifest);
    if (cdf_read_file(path, CDF_JSON_MAX_BYTES, &text, &len, &err) != CDF_OK) fail_msg("%s", err.msg);
    /* Python's json writes -Infinity (DPMSolverMultistep's lambda_min_clipped),
     * which is not JSON; an equally long overflowing number parses to -inf. */
    for (char *q = text; (q = strstr(q, "-Infinity")) != NULL; q += 9) memcpy(q, "-1e999999", 9);
    cdf_status rc = cdf_json_parse(&j, text, len, path, &err);
    free(text);
    if (rc != CDF_OK) fail_msg("%s", err.msg);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j.root, g->group);
    c = c ? cJSON_GetObjectItemCaseSensitive(c, g->case_name) : NULL;
    const cJSON *b = c ? cJSON_GetObjectItemCaseSensitive(c, "brownian_tree") : NULL;
    if (!b) fail_msg("%s: no %s.%s.brownian_tree", g->manifest, g->group, g->case_name);
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(b, "sigma_min");
    const cJSON *hi = cJSON_GetObjectItemCaseSensitive(b, "sigma_max");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(b, "entropy");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(b, "w0_shape");
    assert_true(cJSON_IsNumber(lo) && cJSON_IsNumber(hi) && cJSON_IsNumber(en) && cJSON_IsArray(sh));
    tree_params p = {lo->valuedouble, hi->valuedouble, (uint64_t)en->valuedouble, 1};
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) p.numel *= (size_t)d->valuedouble;
    /* the manifest writes the float32 sigmas as doubles: they must be exact */
    assert_true((double)(float)p.sigma_min == p.sigma_min && (double)(float)p.sigma_max == p.sigma_max);
    cdf_json_free(&j);
    return p;
}

static void check_golden(const golden *g, int reverse_order, size_t cache_slots, int perturb) {
    tree_params p = read_params(g);
    cdf_st_file *f = tu_open_ref(g->file);
    size_t total, k, k2;
    float *ref = tu_read_f32(f, "brownian_noise", &total);
    float *sig = tu_read_f32(f, "brownian_sigma", &k);
    float *sig_next = tu_read_f32(f, "brownian_sigma_next", &k2);
    assert_true(k == k2 && k > 0 && total == k * p.numel);

    cdf_brownian_tree *bt = NULL;
    cdf_err err = {0};
    if (cdf_brownian_tree_create_cached(&bt, p.numel, p.sigma_min, p.sigma_max, p.entropy, cache_slots, &err) !=
        CDF_OK)
        fail_msg("%s", err.msg);
    float *got = malloc(total * sizeof *got);
    assert_non_null(got);
    for (size_t q = 0; q < k; q++) {
        size_t i = reverse_order ? k - 1 - q : q;
        sampler_noise(bt, sig[i], sig_next[i], got + i * p.numel, p.numel);
    }
    if (perturb) got[total / 2] = nextafterf(got[total / 2], INFINITY);

    double max_abs;
    size_t bad = bit_diffs(got, ref, total, &max_abs);
    printf("  %s%s%s: %zu draws x %zu, tree t=[%.9g, %.9g] seed %" PRIu64 ": %zu intervals, %" PRIu64
           " normal draws; differing values %zu, max abs error %.3g\n",
           g->case_name, reverse_order ? " (queries reversed)" : "", cache_slots ? " (4-slot cache)" : "", k,
           p.numel, p.sigma_min, p.sigma_max,
           p.entropy, cdf_brownian_tree_num_nodes(bt), cdf_brownian_tree_num_draws(bt), bad, max_abs);
    if (perturb) assert_int_equal(bad, 1); /* one ulp must be seen */
    else assert_int_equal(bad, 0);
    cdf_brownian_tree_free(bt);
    free(got);
    free(ref);
    free(sig);
    free(sig_next);
    cdf_st_close(f);
}

static void test_goldens(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof GOLDENS / sizeof GOLDENS[0]; i++) check_golden(&GOLDENS[i], 0, 0, 0);
}

/* The values may not depend on which intervals exist or are cached: the
 * queries in reverse order (other splits first, other cache misses) and with
 * the smallest cache (almost every increment recomputed) give the same bits. */
static void test_query_order_and_cache(void **state) {
    (void)state;
    check_golden(&GOLDENS[1], 1, 0, 0);
    check_golden(&GOLDENS[2], 1, 0, 0);
    check_golden(&GOLDENS[1], 0, 4, 0);
    check_golden(&GOLDENS[2], 1, 4, 0);
}

static void test_check_the_checker(void **state) {
    (void)state;
    check_golden(&GOLDENS[0], 0, 0, 1);
}

/* ------------------------------------------------------------------ */
/* Other seeds and sizes, from torchsde 0.2.6 on torch 1.13 (numel 5 takes
 * torch's scalar randn path, 20 its vectorised one; first values only). */

typedef struct direct_case {
    uint64_t seed;
    size_t numel;
    double t0, t1, ta, tb;
    uint32_t want[6];
} direct_case;

static const direct_case DIRECT[] = {
    {(1ull << 40) + 5, 5, 0.10000000149011612, 10.0, 0.5, 2.0,
     {0xbe129d74, 0x3f958e54, 0x3f797620, 0xbeb84650, 0x3ff7f6f6}},
    {(1ull << 40) + 5, 5, 0.10000000149011612, 10.0, 3.299999952316284, 3.309999942779541,
     {0xbd84e036, 0xbdf85464, 0xbc6cf725, 0xbe00dee4, 0xbd6fed41}},
    {(1ull << 40) + 5, 5, 0.10000000149011612, 10.0, 0.10000000149011612, 10.0,
     {0xc0cdf22c, 0x40479f79, 0x3fe77aee, 0xc0acbcc6, 0xbf9613aa}},
    {(1ull << 40) + 5, 5, 0.10000000149011612, 10.0, 9.999999046325684, 10.0,
     {0xbb061062, 0xbb36bde4, 0x395eb2b0, 0xba4cbdf0, 0xba5dd258}},
    {987654321, 20, 0.029200000688433647, 14.61460018157959, 1.0, 1.000001311302185,
     {0xba86046b, 0xba7f2cac, 0xb98d90f1, 0x388b2760, 0x38c16698, 0x3abd8b8c}},
    {987654321, 20, 0.029200000688433647, 14.61460018157959, 0.029200000688433647, 0.699999988079071,
     {0xbe94d3c2, 0x3ed12a08, 0x3e766e1d, 0x3f4f39b3, 0x3f9172a6, 0x3faf9dd5}},
    {987654321, 20, 0.029200000688433647, 14.61460018157959, 7.300000190734863, 14.61460018157959,
     {0x3f28f1bd, 0x40119e61, 0x3f2ca1f0, 0xbfdbb708, 0x408eaa58, 0xc0538ce2}},
};

static void test_other_seeds(void **state) {
    (void)state;
    size_t checked = 0;
    for (size_t c = 0; c < sizeof DIRECT / sizeof DIRECT[0]; c++) {
        const direct_case *d = &DIRECT[c];
        cdf_brownian_tree *bt = NULL;
        cdf_err err = {0};
        float out[20];
        /* a fresh tree per query, so each one is found from scratch */
        assert_int_equal(cdf_brownian_tree_create(&bt, d->numel, d->t0, d->t1, d->seed, &err), CDF_OK);
        if (cdf_brownian_tree_query(bt, d->ta, d->tb, out, &err) != CDF_OK) fail_msg("%s", err.msg);
        size_t n = d->numel < 6 ? d->numel : 6;
        for (size_t i = 0; i < n; i++) {
            if (f32_bits(out[i]) != d->want[i])
                fail_msg("seed %" PRIu64 " [%.9g, %.9g] value %zu: got 0x%08" PRIx32 " want 0x%08" PRIx32, d->seed,
                         d->ta, d->tb, i, f32_bits(out[i]), d->want[i]);
            checked++;
        }
        cdf_brownian_tree_free(bt);
    }
    printf("  %zu values of 7 queries (2 seeds, numel 5 and 20) bit-exact\n", checked);
}

/* ------------------------------------------------------------------ */
/* Edge cases and argument checks.                                     */

static void test_edges(void **state) {
    (void)state;
    cdf_brownian_tree *bt = NULL;
    cdf_err err = {0};
    const size_t n = 16;
    float a[16], b[16], c[16];
    assert_int_equal(cdf_brownian_tree_create(&bt, 0, 0.0, 1.0, 0, &err), CDF_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdf_brownian_tree_create(&bt, n, 2.0, 1.0, 0, &err), CDF_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdf_brownian_tree_create(&bt, n, 0.0, NAN, 0, &err), CDF_ERR_INVALID_ARGUMENT);
    assert_null(bt);
    assert_int_equal(cdf_brownian_tree_create(&bt, n, 0.0291675, 14.6146, 0, &err), CDF_OK);

    assert_int_equal(cdf_brownian_tree_query(bt, 2.0, 1.0, a, &err), CDF_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdf_brownian_tree_query(bt, 1.0, INFINITY, a, &err), CDF_ERR_INVALID_ARGUMENT);
    /* ta == tb, and times equal after round(., 6): zeros */
    assert_int_equal(cdf_brownian_tree_query(bt, 1.5, 1.5, a, &err), CDF_OK);
    for (size_t i = 0; i < n; i++) assert_true(a[i] == 0.0f);
    assert_int_equal(cdf_brownian_tree_query(bt, 1.5, 1.5000001, a, &err), CDF_OK);
    for (size_t i = 0; i < n; i++) assert_true(a[i] == 0.0f);
    /* outside [t0, t1] is clamped, like torchsde */
    assert_int_equal(cdf_brownian_tree_query(bt, 0.0, 100.0, a, &err), CDF_OK);
    assert_int_equal(cdf_brownian_tree_query(bt, 0.0291675, 14.6146, b, &err), CDF_OK);
    assert_memory_equal(a, b, sizeof a);
    /* W(s,u) + W(u,t) = W(s,t) up to float32 sums of a few pieces */
    assert_int_equal(cdf_brownian_tree_query(bt, 0.3, 0.9, a, &err), CDF_OK);
    assert_int_equal(cdf_brownian_tree_query(bt, 0.9, 2.7, b, &err), CDF_OK);
    assert_int_equal(cdf_brownian_tree_query(bt, 0.3, 2.7, c, &err), CDF_OK);
    for (size_t i = 0; i < n; i++) a[i] += b[i];
    TU_ASSERT_CLOSE("W(0.3,0.9)+W(0.9,2.7) vs W(0.3,2.7)", a, c, n, 1e-5, -1);
    cdf_brownian_tree_free(bt);
    cdf_brownian_tree_free(NULL);
}

/* A 512x512 generation (numel 4*64*64) with 20 steps: 38 queries must stay
 * within a few normal draws per tree level, not grow with the history. */
static void test_cost(void **state) {
    (void)state;
    const golden *g = &GOLDENS[1];
    tree_params p = read_params(g);
    cdf_st_file *f = tu_open_ref(g->file);
    size_t k;
    float *sig = tu_read_f32(f, "brownian_sigma", &k);
    float *sig_next = tu_read_f32(f, "brownian_sigma_next", NULL);
    const size_t numel = 4 * 64 * 64;
    float *out = malloc(numel * sizeof *out);
    assert_non_null(out);
    cdf_brownian_tree *bt = NULL;
    cdf_err err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(cdf_brownian_tree_create(&bt, numel, p.sigma_min, p.sigma_max, p.entropy, &err), CDF_OK);
    for (size_t i = 0; i < k; i++) sampler_noise(bt, sig[i], sig_next[i], out, numel);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    uint64_t draws = cdf_brownian_tree_num_draws(bt);
    printf("  numel %zu, %zu queries: %zu intervals, %" PRIu64 " normal draws (%.1f per query), %.3f s\n", numel, k,
           cdf_brownian_tree_num_nodes(bt), draws, (double)draws / (double)k, secs);
    /* log2(14.6 / 1e-6) = 24 levels below the root; with the cache most
     * queries only walk down to their one new endpoint */
    assert_true(draws <= 1 + 25 * k);
    cdf_brownian_tree_free(bt);
    free(out);
    free(sig);
    free(sig_next);
    cdf_st_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_sequence), cmocka_unit_test(test_goldens),
        cmocka_unit_test(test_query_order_and_cache),cmocka_unit_test(test_check_the_checker),
        cmocka_unit_test(test_other_seeds),   cmocka_unit_test(test_edges),
        cmocka_unit_test(test_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
