/* The memory estimate of a generate call (src/pipeline/memory_estimate.c):
 *   - it is an upper bound of what the tiny-sd1 pipeline really takes
 *     (the run context's arena high-water mark, all passes) and not absurdly
 *     above it (at most 4x: the bound keeps the refusal honest);
 *   - a request that cannot fit is refused before anything is allocated,
 *     with the sizes in the message; the pure check decides by the numbers;
 *   - check the checker: the estimate for half the batch is below the
 *     measured peak, so the "estimate >= measured" comparison can fail. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "models/unet_internal.h"
#include "pipeline/internal.h"
#include "pipeline/memory_estimate.h"
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

static cdf_mem_estimate estimate(const cdf_pipeline *p, size_t prompts, size_t per_prompt, int cfg, int64_t H,
                                 int64_t W) {
    cdf_mem_request r = {cdf_unet_get_config(model->unet), cdf_vae_get_config(model->vae),
                         cdf_clip_text_config(model->te), prompts * per_prompt, prompts, cfg, H, W,
                         cdf_vae_scale_factor(model->vae), 77, cdf_exec_threads(p->ex), 0};
    cdf_mem_estimate e;
    cdf_mem_estimate_generate(&r, &e);
    return e;
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

/* Runs one generation on a fresh pipeline; returns the arena's high-water mark. */
static size_t measured_peak(size_t per_prompt, double guidance, int64_t side, cdf_pipeline **keep) {
    cdf_pipeline_params pp;
    cdf_pipeline_params_default(&pp);
    pp.threads = 1; /* 2 would spin-wait for minutes on a loaded 2-core machine */
    cdf_pipeline *p;
    cdf_error_buf eb;
    if (cdf_pipeline_create(&p, model, &pp, &eb)) fail_msg("%s", eb.message);
    cdf_generate_params g;
    cdf_generate_params_default(&g);
    const char *prompt = "a photo of a cat";
    const uint64_t seed = 0;
    g.prompts = &prompt;
    g.n_prompts = 1;
    g.num_images_per_prompt = per_prompt;
    g.guidance_scale = guidance;
    g.height = g.width = side;
    g.num_inference_steps = 2;
    g.seeds = &seed;
    g.n_seeds = 1;
    cdf_images *im;
    if (cdf_pipeline_generate(p, &g, &im)) fail_msg("%s", cdf_pipeline_last_error(p));
    cdf_images_free(im);
    *keep = p;
    return cdf_exec_arena(p->ex)->high;
}

static void test_upper_bound(void **s) {
    (void)s;
    static const struct { size_t per_prompt; double guidance; int64_t side; } cases[] = {
        {1, 7.5, 32}, {2, 7.5, 64}, {3, 1.0, 48}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cdf_pipeline *p;
        const size_t got = measured_peak(cases[i].per_prompt, cases[i].guidance, cases[i].side, &p);
        const cdf_mem_estimate e = estimate(p, 1, cases[i].per_prompt, cases[i].guidance > 1, cases[i].side,
                                            cases[i].side);
        uint64_t arena = e.unet_arena > e.vae_arena ? e.unet_arena : e.vae_arena;
        if (e.text_arena > arena) arena = e.text_arena;
        printf("  %3lldx%-3lld batch %zu cfg %d: arena peak %.3f MiB, estimate %.3f MiB (text %.3f unet %.3f vae "
               "%.3f; ratio %.2f); total with buffers and backend allowance %.1f MiB\n",
               (long long)cases[i].side, (long long)cases[i].side, cases[i].per_prompt, cases[i].guidance > 1,
               mib(got), mib(arena), mib(e.text_arena), mib(e.unet_arena), mib(e.vae_arena),
               (double)arena / (double)got, mib(e.total));
        assert_true(arena >= got);
        assert_true(arena <= 4 * got);
        assert_true(e.total > arena + e.buffers);
        if (i == 1) {
            /* check the checker: half the batch must fall below the measured peak */
            const cdf_mem_estimate half = estimate(p, 1, 1, 1, 64, 64);
            const uint64_t ha = half.unet_arena > half.vae_arena ? half.unet_arena : half.vae_arena;
            printf("  check the checker: batch 1 estimate %.3f MiB < measured batch 2 peak %.3f MiB\n", mib(ha),
                   mib(got));
            assert_true(ha < got);
        }
        cdf_pipeline_free(p);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_refuses_what_cannot_fit(void **s) {
    (void)s;
    cdf_pipeline *p;
    cdf_error_buf eb;
    if (cdf_pipeline_create(&p, model, NULL, &eb)) fail_msg("%s", eb.message);
    cdf_generate_params g;
    cdf_generate_params_default(&g);
    const char *prompt = "a photo of a cat";
    g.prompts = &prompt;
    g.n_prompts = 1;
    g.num_images_per_prompt = 64;
    g.height = g.width = 8192;
    g.num_inference_steps = 1;
    cdf_images *im = NULL;
    const uint64_t rss0 = cdf_mem_resident();
    const double t0 = now_s();
    const cdf_status st = cdf_pipeline_generate(p, &g, &im);
    const double dt = now_s() - t0;
    const char *msg = cdf_pipeline_last_error(p);
    printf("  8192x8192 batch 64: status %d after %.3f s, resident +%.1f MiB: %s\n", (int)st, dt,
           mib(cdf_mem_resident() - rss0), msg);
    assert_int_equal(st, CDF_ERR_OUT_OF_MEMORY);
    assert_null(im);
    assert_non_null(strstr(msg, "a 8192x8192 image with batch 64"));
    assert_non_null(strstr(msg, "GiB available"));
    assert_true(dt < 1.0); /* refused up front, not after allocating */
    const cdf_mem_estimate e = estimate(p, 1, 64, 1, 8192, 8192);
    printf("  its estimate: %.0f GiB (unet %.0f, vae %.0f); this machine has %.1f GiB available\n",
           mib(e.total) / 1024, mib(e.unet_arena) / 1024, mib(e.vae_arena) / 1024, mib(cdf_mem_available()) / 1024);
    cdf_pipeline_free(p);
}

static void test_check_by_numbers(void **s) {
    (void)s;
    const uint64_t G = UINT64_C(1) << 30;
    cdf_err err = {0};
    assert_int_equal(cdf_mem_check(10 * G, 0, 4 * G, 2 * G, "a 4096x4096 image with batch 8", &err),
                     CDF_ERR_OUT_OF_MEMORY);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "a 4096x4096 image with batch 8 needs about 10.0 GiB"));
    assert_non_null(strstr(err.msg, "this machine has 4.0 GiB available"));
    assert_int_equal(cdf_mem_check(4 * G, 0, 4 * G, 0, "x", &err), CDF_OK);     /* exactly fits */
    assert_int_equal(cdf_mem_check(10 * G, 7 * G, 4 * G, 0, "x", &err), CDF_OK); /* scratch already held is reused */
    assert_int_equal(cdf_mem_check(10 * G, 0, 0, 0, "x", &err), CDF_OK);         /* unknown machine: no verdict */
    assert_true(cdf_mem_available() > 0);
    assert_true(cdf_mem_resident() > 0);
}

/* Full-size SD 1.5 from its published configs: the numbers a user sees. */
static void test_sd15_sizes(void **s) {
    (void)s;
    cdf_json ju, jv, jt;
    cdf_err err = {0};
    cdf_unet_config u;
    cdf_vae_config v;
    cdf_clip_config c;
    if (cdf_json_load(&ju, tu_ref_path("configs/stable-diffusion-v1-5/unet/config.json"), &err) ||
        cdf_json_load(&jv, tu_ref_path("configs/stable-diffusion-v1-5/vae/config.json"), &err) ||
        cdf_json_load(&jt, tu_ref_path("configs/stable-diffusion-v1-5/text_encoder/config.json"), &err) ||
        cdf_unet_read_config(&u, &ju, &err) || cdf_vae_read_config(&v, &jv, &err) ||
        cdf_clip_read_config(&c, &jt, &err))
        fail_msg("%s", err.msg);
    static const int64_t sides[] = {512, 768, 1024, 2048, 4096};
    static const size_t batches[] = {1, 4, 8};
    for (size_t i = 0; i < 5; i++)
        for (size_t b = 0; b < 3; b++) {
            cdf_mem_request r = {&u, &v, &c, batches[b], 1, 1, sides[i], sides[i], 8, 77, 2, 0};
            cdf_mem_estimate e;
            cdf_mem_estimate_generate(&r, &e);
            printf("  SD1.5 %4lldx%-4lld batch %zu (cfg): %8.2f GiB (unet %.2f, vae %.2f)\n", (long long)sides[i],
                   (long long)sides[i], batches[b], mib(e.total) / 1024, mib(e.unet_arena) / 1024,
                   mib(e.vae_arena) / 1024);
            if (i == 0 && b == 0) assert_true(e.total > (UINT64_C(1) << 30) && e.total < (UINT64_C(8) << 30));
        }
    cdf_json_free(&ju);
    cdf_json_free(&jv);
    cdf_json_free(&jt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upper_bound),
        cmocka_unit_test(test_refuses_what_cannot_fit),
        cmocka_unit_test(test_check_by_numbers),
        cmocka_unit_test(test_sd15_sizes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
