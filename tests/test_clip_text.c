/* CLIP text encoder against goldens/tiny-sd{1,2}/text_encoder.safetensors.
 *
 * fp32 weights: max abs error <= 1e-5 x max|ref| (issue 2), NMSE <= 1e-10.
 * The reference is float32 PyTorch; our kernels reorder float32 sums only.
 * fp16 weight files: the tiny models' float32 weights are exactly
 * representable in float16 (the reference README says the fp16 files are the
 * fp32 weights rounded; rounding changed nothing, see test_safetensors), so
 * keeping the weights in half precision and widening them in the kernels
 * must reproduce the same goldens at the same fp32 tolerance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/clip_text.h"
#include "testutil.h"

static cdf_backend *be;

static void run_case(const char *model, const char *variant, double rel, double nmse) {
    char dir[4096], golden[256];
    snprintf(dir, sizeof dir, "%s/text_encoder", tu_ref_path(model));
    snprintf(golden, sizeof golden, "goldens/%s/text_encoder.safetensors", model);
    cdf_st_file *g = tu_open_ref(golden);
    cdf_weight_opts o = {.storage = variant ? CDF_DTYPE_F16 : CDF_DTYPE_F32, .compute = CDF_COMPUTE_F32};
    cdf_clip_text *m;
    cdf_err err = {0};
    if (cdf_clip_text_load(&m, be, dir, variant, &o, &err) != CDF_OK) fail_msg("%s", err.msg);
    const cdf_st_tensor *it = cdf_st_find(g, "input_ids");
    assert_non_null(it);
    int64_t B = it->shape[0], L = it->shape[1], D = cdf_clip_text_config(m)->hidden;
    int64_t *ids = malloc((size_t)(B * L) * sizeof(int64_t));
    cdf_st_read_i64(it, ids);
    size_t n = (size_t)(B * L * D);
    float *last = malloc(n * 4), *pen = malloc(n * 4), *pool = malloc((size_t)(B * D) * 4), *skip1 = malloc(n * 4);
    cdf_exec *ex;
    assert_int_equal(cdf_exec_create(&ex, be, 0, &err), CDF_OK);
    cdf_clip_outputs out = {last, pool, pen};
    if (cdf_clip_text_forward(ex, m, ids, B, L, 0, &out, &err) != CDF_OK) fail_msg("%s", err.msg);
    cdf_clip_outputs out1 = {skip1, NULL, NULL};
    if (cdf_clip_text_forward(ex, m, ids, B, L, 1, &out1, &err) != CDF_OK) fail_msg("%s", err.msg);
    char what[128];
    struct { const char *name; float *got; } cmp[] = {{"last_hidden_state", last},
                                                      {"pooler_output", pool},
                                                      {"hidden_states_penultimate", pen},
                                                      {"clip_skip_1_prompt_embeds", skip1}};
    for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++) {
        size_t rn;
        float *ref = tu_read_f32(g, cmp[i].name, &rn);
        snprintf(what, sizeof what, "%s %s %s", model, variant ? variant : "fp32", cmp[i].name);
        TU_ASSERT_CLOSE(what, cmp[i].got, ref, rn, rel, nmse);
        free(ref);
    }
    cdf_exec_free(ex);
    cdf_clip_text_free(m);
    cdf_st_close(g);
    free(ids); free(last); free(pen); free(pool); free(skip1);
}

static void test_sd1_fp32(void **s) { (void)s; run_case("tiny-sd1", NULL, 1e-5, 1e-10); }
static void test_sd2_fp32(void **s) { (void)s; run_case("tiny-sd2", NULL, 1e-5, 1e-10); }
static void test_sd1_fp16(void **s) { (void)s; run_case("tiny-sd1", "fp16", 1e-5, 1e-10); }
static void test_sd2_fp16(void **s) { (void)s; run_case("tiny-sd2", "fp16", 1e-5, 1e-10); }

static void test_errors(void **s) {
    (void)s;
    cdf_clip_text *m;
    cdf_err err = {0};
    cdf_weight_opts o = {.storage = CDF_DTYPE_F32, .compute = CDF_COMPUTE_F32};
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/text_encoder", tu_ref_path("tiny-sd1"));
    assert_int_equal(cdf_clip_text_load(&m, be, dir, "bf16", &o, &err), CDF_ERR_IO);
    printf("  missing variant: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "bf16"));
    assert_non_null(strstr(err.msg, "model.fp16.safetensors"));
    assert_int_equal(cdf_clip_text_load(&m, be, "/nonexistent/text_encoder", NULL, &o, &err), CDF_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/text_encoder"));
    /* out-of-range token id */
    assert_int_equal(cdf_clip_text_load(&m, be, dir, NULL, &o, &err), CDF_OK);
    cdf_exec *ex;
    assert_int_equal(cdf_exec_create(&ex, be, 0, &err), CDF_OK);
    int64_t ids[3] = {49406, 60000, 49407};
    float h[3 * 32];
    cdf_clip_outputs out = {h, NULL, NULL};
    assert_int_equal(cdf_clip_text_forward(ex, m, ids, 1, 3, 0, &out, &err), CDF_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "60000"));
    assert_int_equal(cdf_clip_text_forward(ex, m, ids, 1, 3, 5, &out, &err), CDF_ERR_INVALID_ARGUMENT);
    cdf_exec_free(ex);
    cdf_clip_text_free(m);
}

static int setup(void **s) { (void)s; cdf_err e; return cdf_backend_create(&be, &e) ? -1 : 0; }
static int teardown(void **s) { (void)s; cdf_backend_free(be); return 0; }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sd1_fp32), cmocka_unit_test(test_sd2_fp32), cmocka_unit_test(test_sd1_fp16),
        cmocka_unit_test(test_sd2_fp16), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
