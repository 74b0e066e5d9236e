/* Results must not depend on the thread count (src/kernels/kernels.h: work
 * is split over independent outputs, never over a reduction). The tiny-sd1
 * pipeline with 1 and with 2 threads must give bit-identical float images:
 * memcmp, no tolerance. Cases: PNDM (the model's scheduler) and Euler
 * ancestral (stochastic steps), both with classifier-free guidance and two
 * prompts; and two images per prompt at a size whose latent side (5) is not
 * a multiple of the UNet's 2^levels. Check the checker: a different seed
 * changes the image, so equal buffers are not equal by accident. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdiffusers.h"
#include "testutil.h"

static cdf_model *model;

static int setup(void **s) {
    (void)s;
    return tu_load_model("tiny-sd1", &model);
}

static int teardown(void **s) {
    (void)s;
    cdf_model_free(model);
    return 0;
}

typedef struct run_case {
    const char *scheduler;
    int64_t side;
    size_t per_prompt;
} run_case;

static cdf_images *generate(const run_case *c, int threads, uint64_t seed) {
    cdf_pipeline_params pp;
    cdf_pipeline_params_default(&pp);
    pp.threads = threads;
    pp.scheduler = c->scheduler;
    cdf_pipeline *p;
    cdf_error_buf eb;
    if (cdf_pipeline_create(&p, model, &pp, &eb)) fail_msg("%s", eb.message);
    cdf_generate_params g;
    cdf_generate_params_default(&g);
    const char *prompts[2] = {"portrait photo of a old warrior chief", "a red bicycle leaning on a wall"};
    const char *neg = "blurry";
    g.prompts = prompts;
    g.n_prompts = 2;
    g.negative_prompts = &neg;
    g.n_negative_prompts = 1;
    g.num_images_per_prompt = c->per_prompt;
    g.height = g.width = c->side;
    g.num_inference_steps = 3;
    g.guidance_scale = 7.5;
    g.seeds = &seed;
    g.n_seeds = 1;
    cdf_images *im;
    if (cdf_pipeline_generate(p, &g, &im)) fail_msg("%s", cdf_pipeline_last_error(p));
    cdf_pipeline_free(p);
    return im;
}

static size_t n_values(const cdf_images *im) { return im->count * (size_t)(im->height * im->width * 3); }

/* Prints where two images first differ and by how much at most. */
static void describe(const char *what, const cdf_images *a, const cdf_images *b) {
    size_t n = n_values(a), first = n, ndiff = 0;
    float maxd = 0;
    for (size_t i = 0; i < n; i++) {
        float d = a->pixels[i] - b->pixels[i];
        if (d < 0) d = -d;
        if (a->pixels[i] != b->pixels[i]) {
            if (first == n) first = i;
            ndiff++;
        }
        if (d > maxd) maxd = d;
    }
    printf("  %s: %zu of %zu float values differ (first at %zu), max |diff| %.3g\n", what, ndiff, n, first,
           (double)maxd);
}

static const run_case cases[] = {
    {"PNDMScheduler", 32, 1},
    {"EulerAncestralDiscreteScheduler", 32, 1},
    {"EulerAncestralDiscreteScheduler", 40, 2}, /* latent side 5: uneven skips */
};

static void check_case(const run_case *c) {
    cdf_images *one = generate(c, 1, 0), *two = generate(c, 2, 0);
    assert_int_equal(one->count, two->count);
    const size_t n = n_values(one);
    const int same = memcmp(one->pixels, two->pixels, n * sizeof(float)) == 0 &&
                     memcmp(one->rgb8, two->rgb8, n) == 0;
    char what[160];
    snprintf(what, sizeof what, "%s %lldx%lld, %zu images, 1 vs 2 threads", c->scheduler, (long long)c->side,
             (long long)c->side, one->count);
    if (same) printf("  %s: bit-identical (%zu float values)\n", what, n);
    else describe(what, one, two);
    assert_true(same);
    if (c == &cases[0]) {
        /* check the checker: another seed gives another image */
        cdf_images *other = generate(c, 2, 1);
        const int differs = memcmp(one->pixels, other->pixels, n * sizeof(float)) != 0;
        printf("  check the checker: seed 1 vs seed 0 %s\n", differs ? "differ" : "are EQUAL");
        assert_true(differs);
        cdf_images_free(other);
    }
    cdf_images_free(one);
    cdf_images_free(two);
}

static void test_pndm(void **s) { (void)s; check_case(&cases[0]); }
static void test_euler_ancestral(void **s) { (void)s; check_case(&cases[1]); }
static void test_odd_latent_batch(void **s) { (void)s; check_case(&cases[2]); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pndm),
        cmocka_unit_test(test_euler_ancestral),
        cmocka_unit_test(test_odd_latent_batch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
