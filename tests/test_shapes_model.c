/* The bundled model, models/shapes-tiny (trained by tools/shapes/train.py).
 *
 * 1. Agreement: the training side's own torch pipeline (tools/shapes/sample.py,
 *    DPM-Solver++ 2M, CFG 7.5, 20 steps, from fixed latents) wrote
 *    agreement.safetensors; the library must reproduce its token ids exactly
 *    and its float images to max abs <= 1e-3 (the pipeline goldens' rule;
 *    images are in [0, 1]). Both sides compute in float32 from the same fp16
 *    weights widened to float32, so the only differences are summation order
 *    (the pipeline goldens reach ~1e-5 this way).
 * 2. Colours: a few held-out prompts (colour/shape/background triples the
 *    model never saw together), fixed seeds 0..7, the CLI's defaults
 *    (DPM-Solver++ 2M, 20 steps, guidance 7.5): the background and the shape
 *    must come out in the colours asked for, measured from the pixels as
 *    tools/shapes/evaluate.py does (nearest palette colour of the border
 *    median and of the shape's core). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdiffusers.h"
#include "io/json.h"
#include "testutil.h"

#define SHAPES_DIR CDF_SOURCE_DIR "/models/shapes-tiny"

/* tools/shapes/make_data.py's palette (the training images' exact colours). */
static const struct {
    const char *name;
    float rgb[3];
} palette[] = {{"red", {220, 40, 40}},   {"orange", {245, 140, 30}}, {"yellow", {240, 220, 50}},
               {"green", {40, 170, 60}}, {"blue", {40, 80, 220}},    {"purple", {140, 60, 190}},
               {"white", {240, 240, 240}}, {"black", {25, 25, 25}}};
#define NPAL (sizeof palette / sizeof palette[0])

static cdf_model *load_model(void) {
    cdf_load_params lp;
    cdf_load_params_default(&lp);
    lp.model_dir = SHAPES_DIR;
    cdf_model *m;
    cdf_error_buf eb;
    if (cdf_model_load(&m, &lp, &eb)) fail_msg("%s", eb.message);
    return m;
}

static void test_agreement(void **state) {
    (void)state;
    cdf_model *m = load_model();
    cdf_model_info info;
    cdf_model_get_info(m, &info);
    assert_int_equal(info.max_tokens, 16); /* a model_max_length other than 77 */
    cdf_json man;
    cdf_err err = {0};
    if (cdf_json_load(&man, SHAPES_DIR "/agreement.json", &err)) fail_msg("%s", err.msg);
    cdf_st_file *f = NULL;
    if (cdf_st_open(&f, SHAPES_DIR "/agreement.safetensors", &err)) fail_msg("%s", err.msg);

    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(man.root, "prompts"), *e;
    const char *prompts[16];
    size_t np = 0;
    cJSON_ArrayForEach(e, pr) if (np < 16) prompts[np++] = e->valuestring;
    assert_true(np >= 2);
    cdf_pipeline_params pp;
    cdf_pipeline_params_default(&pp);
    pp.scheduler = cJSON_GetObjectItemCaseSensitive(man.root, "scheduler")->valuestring;
    pp.threads = 1; /* the model is tiny: threads would only wait on each other */
    cdf_pipeline *p;
    cdf_error_buf eb;
    if (cdf_pipeline_create(&p, m, &pp, &eb)) fail_msg("%s", eb.message);

    /* token ids: exact */
    const cdf_st_tensor *tid = cdf_st_find(f, "input_ids");
    assert_non_null(tid);
    assert_int_equal(tid->numel, np * 16);
    int64_t ref_ids[16 * 16], ids[16];
    cdf_st_read_i64(tid, ref_ids);
    for (size_t i = 0; i < np; i++) {
        assert_int_equal(cdf_pipeline_tokenize(p, prompts[i], ids, 16), CDF_OK);
        for (int k = 0; k < 16; k++) assert_int_equal(ids[k], ref_ids[i * 16 + (size_t)k]);
    }

    cdf_generate_params g;
    cdf_generate_params_default(&g);
    g.prompts = prompts;
    g.n_prompts = np;
    g.num_inference_steps = (int)cJSON_GetObjectItemCaseSensitive(man.root, "num_inference_steps")->valuedouble;
    g.guidance_scale = cJSON_GetObjectItemCaseSensitive(man.root, "guidance_scale")->valuedouble;
    size_t nl, n;
    float *lat = tu_read_f32(f, "latents", &nl);
    assert_int_equal(nl, np * 4 * 16 * 16);
    g.latents = lat;
    cdf_images *im;
    if (cdf_pipeline_generate(p, &g, &im)) fail_msg("%s", cdf_pipeline_last_error(p));
    float *ref = tu_read_f32(f, "image", &n);
    assert_int_equal(n, im->count * (size_t)(im->height * im->width * 3));
    tu_cmp c = tu_compare(im->pixels, ref, n);
    size_t off1 = 0, worse = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)im->rgb8[i] - (int)lrintf(255.0f * ref[i]));
        off1 += d == 1;
        worse += d > 1;
    }
    printf("  agreement with the torch pipeline: %zu images, float max abs %.3e (tolerance 1e-3), "
           "uint8 +-1 on %zu of %zu values\n", im->count, c.max_abs, off1, n);
    assert_true(c.max_abs <= 1e-3);
    assert_int_equal(worse, 0);
    /* check the checker: a 2e-3 change of one value must fail the rule */
    ref[c.worst] += ref[c.worst] > 0.5f ? -2e-3f : 2e-3f;
    assert_false(tu_compare(im->pixels, ref, n).max_abs <= 1e-3);

    cdf_images_free(im);
    free(lat); free(ref);
    cdf_st_close(f);
    cdf_json_free(&man);
    cdf_pipeline_free(p);
    cdf_model_free(m);
}

static size_t nearest(const float rgb[3]) {
    size_t best = 0;
    float bd = INFINITY;
    for (size_t k = 0; k < NPAL; k++) {
        float d = 0;
        for (int c = 0; c < 3; c++) d += (rgb[c] - palette[k].rgb[c]) * (rgb[c] - palette[k].rgb[c]);
        if (d < bd) { bd = d; best = k; }
    }
    return best;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median(float *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_float);
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

/* Background: per-channel median of the 2-pixel border ring. Shape: pixels
 * more than 60 (RGB distance) from it; its colour is the median of those at
 * least 3/4 as far as the farthest (the core, not the anti-aliased rim). */
static void measure(const float *px, int64_t H, int64_t W, size_t *bg_out, size_t *fg_out, size_t *n_shape) {
    float *buf = malloc((size_t)(H * W) * sizeof(float)), *dist = malloc((size_t)(H * W) * sizeof(float));
    assert_non_null(buf);
    assert_non_null(dist);
    float bg[3], fg[3];
    for (int c = 0; c < 3; c++) {
        size_t k = 0;
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++)
                if (y < 2 || y >= H - 2 || x < 2 || x >= W - 2) buf[k++] = 255.0f * px[(y * W + x) * 3 + c];
        bg[c] = median(buf, k);
    }
    float dmax = 0;
    for (int64_t i = 0; i < H * W; i++) {
        float d = 0;
        for (int c = 0; c < 3; c++) d += (255.0f * px[i * 3 + c] - bg[c]) * (255.0f * px[i * 3 + c] - bg[c]);
        dist[i] = sqrtf(d);
        if (dist[i] > dmax) dmax = dist[i];
    }
    *n_shape = 0;
    for (int64_t i = 0; i < H * W; i++) *n_shape += dist[i] > 60.0f;
    for (int c = 0; c < 3; c++) {
        size_t k = 0;
        for (int64_t i = 0; i < H * W; i++)
            if (dist[i] > 60.0f && dist[i] >= 0.75f * dmax) buf[k++] = 255.0f * px[i * 3 + c];
        fg[c] = k ? median(buf, k) : bg[c];
    }
    *bg_out = nearest(bg);
    *fg_out = nearest(fg);
    free(buf);
    free(dist);
}

static void test_colours(void **state) {
    (void)state;
    /* tools/shapes/make_data.py's test_prompts(): one evaluation prompt for each of
     * the first 8 held-out triples (fixed before the model was trained). */
    static const struct {
        const char *prompt, *colour, *background;
    } cases[] = {
        {"a small yellow square on the right, white background", "yellow", "white"},
        {"a small purple triangle on the left, green background", "purple", "green"},
        {"a small black triangle on the left, blue background", "black", "blue"},
        {"a large purple diamond on the right, red background", "purple", "red"},
        {"a small blue diamond on the left, purple background", "blue", "purple"},
        {"a small white circle on the right, green background", "white", "green"},
        {"a large green diamond on the left, black background", "green", "black"},
        {"a large green circle on the left, blue background", "green", "blue"},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    cdf_model *m = load_model();
    cdf_pipeline *p;
    cdf_error_buf eb;
    cdf_pipeline_params pp;
    cdf_pipeline_params_default(&pp);
    pp.threads = 1;
    if (cdf_pipeline_create(&p, m, &pp, &eb)) fail_msg("%s", eb.message);
    const char *prompts[N];
    uint64_t seeds[N];
    for (size_t i = 0; i < N; i++) {
        prompts[i] = cases[i].prompt;
        seeds[i] = i;
    }
    cdf_generate_params g;
    cdf_generate_params_default(&g);
    g.prompts = prompts;
    g.n_prompts = N;
    g.seeds = seeds;
    g.n_seeds = N;
    g.num_inference_steps = 20;
    cdf_images *im;
    if (cdf_pipeline_generate(p, &g, &im)) fail_msg("%s", cdf_pipeline_last_error(p));
    assert_int_equal(im->height, 32);
    size_t right_bg = 0, right_fg = 0;
    for (size_t i = 0; i < N; i++) {
        size_t bg, fg, ns;
        measure(im->pixels + i * 32 * 32 * 3, 32, 32, &bg, &fg, &ns);
        int ok_bg = strcmp(palette[bg].name, cases[i].background) == 0;
        int ok_fg = strcmp(palette[fg].name, cases[i].colour) == 0;
        right_bg += ok_bg;
        right_fg += ok_fg;
        printf("  %-56s -> %s shape (%zu px), %s background%s\n", cases[i].prompt, palette[fg].name, ns,
               palette[bg].name, ok_bg && ok_fg ? "" : "  WRONG");
    }
    printf("  colours right: shape %zu/%d, background %zu/%d\n", right_fg, N, right_bg, N);
    assert_int_equal(right_bg, N);
    assert_int_equal(right_fg, N);
    cdf_images_free(im);
    cdf_pipeline_free(p);
    cdf_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_agreement), cmocka_unit_test(test_colours)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
