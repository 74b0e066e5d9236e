/* UNet2DConditionModel against goldens/tiny-sd{1,2}/unet.safetensors.
 *
 * fp32: max abs error <= 1e-4 x max|ref| and NMSE <= 1e-8 (issue 3 / STYLE.md).
 * PyTorch's own 1- vs 2-thread runs differ by up to 4.2e-6 on outputs of
 * magnitude 7 (6e-7 relative), so 1e-4 leaves room only for reordered
 * float32 sums, not for a wrong operation (which shows as O(1e-1)).
 * fp16 weight files: identical values to the fp32 files for these models
 * (see test_clip_text.c), so the same bound applies. The inner activations of
 * case cfg_16x16_t981 are checked too, to localise errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet.h"
#include "testutil.h"

static cdf_backend *be;

typedef struct tap_ctx {
    const cdf_st_file *g;
    const char *prefix;
    int checked, ok;
} tap_ctx;

static void tap(void *user, const char *name, const float *nhwc, int64_t B, int64_t C, int64_t H, int64_t W) {
    tap_ctx *t = user;
    char key[256];
    snprintf(key, sizeof key, "%s.inner.%s", t->prefix, name);
    const cdf_st_tensor *ref = cdf_st_find(t->g, key);
    if (!ref) return;
    size_t n = (size_t)(B * C * H * W);
    if (ref->numel != n) {
        printf("  %s: %zu values, reference has %zu\n", key, n, ref->numel);
        t->ok = 0;
        return;
    }
    float *got = malloc(n * 4), *r = malloc(n * 4);
    cdf_nhwc_to_nchw(got, nhwc, B, C, H, W);
    cdf_st_read_f32(ref, r);
    t->ok &= tu_close(key, got, r, n, 1e-4, 1e-8);
    t->checked++;
    free(got);
    free(r);
}

static void run_model(const char *model, const char *variant) {
    char dir[4096], golden[256];
    snprintf(dir, sizeof dir, "%s/unet", tu_ref_path(model));
    snprintf(golden, sizeof golden, "goldens/%s/unet.safetensors", model);
    cdf_st_file *g = tu_open_ref(golden);
    cdf_weight_opts o = {.storage = variant ? CDF_DTYPE_F16 : CDF_DTYPE_F32, .compute = CDF_COMPUTE_F32};
    cdf_unet *u;
    cdf_err err = {0};
    if (cdf_unet_load(&u, be, dir, variant, &o, &err) != CDF_OK) fail_msg("%s", err.msg);
    cdf_exec *ex;
    assert_int_equal(cdf_exec_create(&ex, be, 0, &err), CDF_OK);
    const char *cases[] = {"cfg_16x16_t981", "cfg_16x24_t261", "single_18x14_t500p5_float",
                           "batch2_16x16_per_sample_t"};
    for (size_t i = 0; i < 4; i++) {
        char key[256];
        snprintf(key, sizeof key, "%s.sample_in", cases[i]);
        const cdf_st_tensor *s = cdf_st_find(g, key);
        assert_non_null(s);
        int64_t B = s->shape[0], h = s->shape[2], w = s->shape[3];
        float *x = tu_read_f32(g, key, NULL);
        size_t nt, nc, no;
        snprintf(key, sizeof key, "%s.timestep", cases[i]);
        float *t = tu_read_f32(g, key, &nt);
        snprintf(key, sizeof key, "%s.encoder_hidden_states", cases[i]);
        float *ctx = tu_read_f32(g, key, &nc);
        snprintf(key, sizeof key, "%s.out", cases[i]);
        float *ref = tu_read_f32(g, key, &no);
        float *out = malloc(no * 4);
        tap_ctx tc = {g, cases[i], 0, 1};
        int64_t L = (int64_t)nc / B / cdf_unet_get_config(u)->cross_attention_dim;
        if (cdf_unet_forward(ex, u, out, x, B, h, w, t, (int64_t)nt, ctx, L, tap, &tc, &err) != CDF_OK)
            fail_msg("%s", err.msg);
        char what[160];
        snprintf(what, sizeof what, "%s %s %s.out", model, variant ? variant : "fp32", cases[i]);
        TU_ASSERT_CLOSE(what, out, ref, no, 1e-4, 1e-8);
        assert_true(tc.ok);
        if (i == 0) assert_int_equal(tc.checked, 10);
        free(x); free(t); free(ctx); free(ref); free(out);
    }
    cdf_exec_free(ex);
    cdf_unet_free(u);
    cdf_st_close(g);
}

static void test_sd1(void **s) { (void)s; run_model("tiny-sd1", NULL); }
static void test_sd2(void **s) { (void)s; run_model("tiny-sd2", NULL); }
static void test_sd1_fp16(void **s) { (void)s; run_model("tiny-sd1", "fp16"); }
static void test_sd2_fp16(void **s) { (void)s; run_model("tiny-sd2", "fp16"); }

static int setup(void **s) { (void)s; cdf_err e; return cdf_backend_create(&be, &e) ? -1 : 0; }
static int teardown(void **s) { (void)s; cdf_backend_free(be); return 0; }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sd1), cmocka_unit_test(test_sd2),
        cmocka_unit_test(test_sd1_fp16), cmocka_unit_test(test_sd2_fp16),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
