/* torch CPU generator: every tensor of rng/torch_cpu_randn.safetensors must
 * be reproduced bit for bit (signed zeros included), since a pipeline seeded
 * like diffusers must start from the very same latents. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng/torch_rng.h"
#include "testutil.h"

#define RNG_FILE "rng/torch_cpu_randn.safetensors"

/* Parses "1x4x64x64" or "15" into a element count. */
static size_t parse_numel(const char *s, const char **end) {
    size_t n = 1;
    for (;;) {
        char *e;
        unsigned long long v = strtoull(s, &e, 10);
        assert_true(e != s);
        n *= (size_t)v;
        s = e;
        if (*s != 'x') break;
        s++;
    }
    if (end) *end = s;
    return n;
}

/* Number of positions whose bit patterns differ (elem_size 2 or 4). */
static size_t count_bit_diffs(const void *got, const void *ref, size_t n, size_t elem_size, size_t *first) {
    size_t bad = 0;
    const unsigned char *a = got, *b = ref;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(a + i * elem_size, b + i * elem_size, elem_size) != 0) {
            if (!bad && first) *first = i;
            bad++;
        }
    }
    return bad;
}

/* Generates the tensor `name` describes into out (float32 or f16 bits). */
static void generate(const char *name, void *out, size_t numel) {
    char family[32];
    const char *p = strchr(name, '/');
    assert_non_null(p);
    size_t fl = (size_t)(p - name);
    assert_true(fl < sizeof family);
    memcpy(family, name, fl);
    family[fl] = '\0';
    assert_true(strncmp(p + 1, "seed", 4) == 0);
    char *e;
    uint64_t seed = strtoull(p + 5, &e, 10);
    assert_true(*e == '/');
    const char *shape = e + 1;

    cdf_rng g;
    cdf_rng_seed(&g, seed);
    if (strcmp(family, "randn") == 0) {
        assert_int_equal(parse_numel(shape, NULL), numel);
        cdf_rng_randn_f32(&g, out, numel);
    } else if (strcmp(family, "rand") == 0) {
        assert_int_equal(parse_numel(shape, NULL), numel);
        cdf_rng_rand_f32(&g, out, numel);
    } else if (strcmp(family, "randn_f16") == 0) {
        assert_int_equal(parse_numel(shape, NULL), numel);
        cdf_rng_randn_f16(&g, out, numel);
    } else if (strcmp(family, "randn_successive") == 0) {
        const char *rest;
        size_t a = parse_numel(shape, &rest);
        assert_true(strncmp(rest, "_then_", 6) == 0);
        size_t b = parse_numel(rest + 6, &rest);
        int second = strcmp(rest, "/second") == 0;
        assert_true(second || strcmp(rest, "/first") == 0);
        float *tmp = malloc(a * sizeof(float));
        assert_non_null(tmp);
        cdf_rng_randn_f32(&g, tmp, a);
        if (second) {
            assert_int_equal(b, numel);
            cdf_rng_randn_f32(&g, out, b);
        } else {
            assert_int_equal(a, numel);
            memcpy(out, tmp, a * sizeof(float));
        }
        free(tmp);
    } else {
        fail_msg("unknown tensor family in %s", name);
    }
}

static void test_all_reference_tensors_bit_exact(void **state) {
    (void)state;
    cdf_st_file *f = tu_open_ref(RNG_FILE);
    size_t count = cdf_st_count(f), exact = 0, values = 0;
    assert_true(count >= 150);
    for (size_t i = 0; i < count; i++) {
        const cdf_st_tensor *t = cdf_st_at(f, i);
        size_t es = t->dtype == CDF_DTYPE_F16 ? 2 : 4;
        assert_true(t->dtype == CDF_DTYPE_F16 || t->dtype == CDF_DTYPE_F32);
        void *got = malloc(t->numel * es), *ref = malloc(t->numel * es);
        assert_non_null(got);
        assert_non_null(ref);
        memcpy(ref, t->data, t->numel * es);
        generate(t->name, got, t->numel);
        size_t first = 0, bad = count_bit_diffs(got, ref, t->numel, es, &first);
        if (bad) {
            printf("  %s: %zu of %zu values differ (first at %zu)\n", t->name, bad, t->numel, first);
        } else {
            exact++;
        }
        values += t->numel - bad;
        free(got);
        free(ref);
    }
    printf("  %zu of %zu tensors bit-exact (%zu values)\n", exact, count, values);
    cdf_st_close(f);
    assert_int_equal(exact, count);
}

/* Check the checker: one flipped low bit (an ulp) must be caught, and a
 * signed zero must count as different from +0. */
static void test_checker_catches_one_ulp(void **state) {
    (void)state;
    cdf_rng g;
    cdf_rng_seed(&g, 0);
    float a[64], b[64];
    cdf_rng_randn_f32(&g, a, 64);
    memcpy(b, a, sizeof a);
    assert_int_equal(count_bit_diffs(a, b, 64, 4, NULL), 0);
    uint32_t u;
    memcpy(&u, &b[37], 4);
    u ^= 1u;
    memcpy(&b[37], &u, 4);
    assert_int_equal(count_bit_diffs(a, b, 64, 4, NULL), 1);
    float z[2] = {0.0f, -0.0f};
    assert_int_equal(count_bit_diffs(&z[0], &z[1], 1, 4, NULL), 1);
}

/* Only the low 32 bits of the seed matter; re-seeding clears the cached
 * Box-Muller value of the serial path. */
static void test_seed_semantics(void **state) {
    (void)state;
    cdf_rng g, h;
    float a[15], b[15];
    cdf_rng_seed(&g, (UINT64_C(1) << 40) + 7);
    cdf_rng_seed(&h, 7);
    cdf_rng_randn_f32(&g, a, 15);
    cdf_rng_randn_f32(&h, b, 15);
    assert_memory_equal(a, b, sizeof a);
    assert_true(g.has_cached_normal);
    cdf_rng_seed(&g, 7);
    assert_false(g.has_cached_normal);
    cdf_rng_randn_f32(&g, a, 15);
    assert_memory_equal(a, b, sizeof a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_reference_tensors_bit_exact),
        cmocka_unit_test(test_checker_catches_one_ulp),
        cmocka_unit_test(test_seed_semantics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
