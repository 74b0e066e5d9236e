/* AutoencoderKL against goldens/tiny-sd{1,2}/vae.safetensors: decode at two
 * sizes, encode mean/std/logvar. Tolerance as for the UNet: max abs error
 * <= 1e-4 x max|ref|, NMSE <= 1e-8 (fp32 weights, and the fp16 files which
 * hold the same values for these models). Also: a stand-alone VAE folder
 * (config.json + weights, as sd-vae-ft-mse ships) loads the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/vae.h"
#include "testutil.h"

static cdf_backend *be;

static void run_model(const char *model, const char *variant) {
    char dir[4096], golden[256], what[160];
    snprintf(dir, sizeof dir, "%s/vae", tu_ref_path(model));
    snprintf(golden, sizeof golden, "goldens/%s/vae.safetensors", model);
    cdf_st_file *g = tu_open_ref(golden);
    cdf_weight_opts o = {variant ? CDF_DTYPE_F16 : CDF_DTYPE_F32, CDF_COMPUTE_F32};
    cdf_vae *v;
    cdf_err err = {0};
    if (cdf_vae_load(&v, be, dir, variant, &o, &err) != CDF_OK) fail_msg("%s", err.msg);
    assert_int_equal(cdf_vae_scale_factor(v), 2);
    cdf_exec *ex;
    assert_int_equal(cdf_exec_create(&ex, be, 0, &err), CDF_OK);
    const char *dec[2] = {"decode", "decode_16x24"};
    for (int i = 0; i < 2; i++) {
        char key[128];
        snprintf(key, sizeof key, "%s.latents", dec[i]);
        const cdf_st_tensor *lt = cdf_st_find(g, key);
        assert_non_null(lt);
        float *lat = tu_read_f32(g, key, NULL);
        size_t n;
        snprintf(key, sizeof key, "%s.image", dec[i]);
        float *ref = tu_read_f32(g, key, &n), *img = malloc(n * 4);
        if (cdf_vae_decode(ex, v, img, lat, lt->shape[0], lt->shape[2], lt->shape[3], &err)) fail_msg("%s", err.msg);
        snprintf(what, sizeof what, "%s %s %s", model, variant ? variant : "fp32", key);
        TU_ASSERT_CLOSE(what, img, ref, n, 1e-4, 1e-8);
        free(lat); free(ref); free(img);
    }
    const cdf_st_tensor *it = cdf_st_find(g, "encode.image");
    assert_non_null(it);
    float *image = tu_read_f32(g, "encode.image", NULL);
    size_t n;
    float *rm = tu_read_f32(g, "encode.mean", &n), *rs = tu_read_f32(g, "encode.std", NULL);
    float *rl = tu_read_f32(g, "encode.logvar", NULL);
    float *m = malloc(n * 4), *s = malloc(n * 4), *l = malloc(n * 4);
    if (cdf_vae_encode(ex, v, m, s, l, image, it->shape[0], it->shape[2], it->shape[3], &err)) fail_msg("%s", err.msg);
    snprintf(what, sizeof what, "%s %s encode.mean", model, variant ? variant : "fp32");
    TU_ASSERT_CLOSE(what, m, rm, n, 1e-4, 1e-8);
    snprintf(what, sizeof what, "%s %s encode.std", model, variant ? variant : "fp32");
    TU_ASSERT_CLOSE(what, s, rs, n, 1e-4, 1e-8);
    snprintf(what, sizeof what, "%s %s encode.logvar", model, variant ? variant : "fp32");
    TU_ASSERT_CLOSE(what, l, rl, n, 1e-4, 1e-8);
    /* image sides must be multiples of the scale factor */
    assert_int_equal(cdf_vae_encode(ex, v, m, s, l, image, 1, 31, 32, &err), CDF_ERR_INVALID_ARGUMENT);
    free(image); free(rm); free(rs); free(rl); free(m); free(s); free(l);
    cdf_exec_free(ex);
    cdf_vae_free(v);
    cdf_st_close(g);
}

static void test_sd1(void **s) { (void)s; run_model("tiny-sd1", NULL); }
static void test_sd2(void **s) { (void)s; run_model("tiny-sd2", NULL); }
static void test_sd1_fp16(void **s) { (void)s; run_model("tiny-sd1", "fp16"); }

static void test_bad_config(void **s) {
    (void)s;
    /* A VAE folder whose config disagrees with its weights: the error names the tensor and both shapes. */
    char dir[512], cmd[4096];
    snprintf(dir, sizeof dir, "%s/vae-bad", tu_tmpdir());
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp %s/diffusion_pytorch_model.safetensors %s/ && "
             "sed 's/\"latent_channels\": 4/\"latent_channels\": 8/' %s/config.json > %s/config.json",
             dir, tu_ref_path("tiny-sd1/vae"), dir, tu_ref_path("tiny-sd1/vae"), dir);
    assert_int_equal(tu_run(cmd), 0);
    cdf_vae *v;
    cdf_err err = {0};
    cdf_weight_opts o = {CDF_DTYPE_F32, CDF_COMPUTE_F32};
    assert_int_equal(cdf_vae_load(&v, be, dir, NULL, &o, &err), CDF_ERR_FORMAT);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "encoder.conv_out.weight"));
}

static int setup(void **s) { (void)s; cdf_err e; return cdf_backend_create(&be, &e) ? -1 : 0; }
static int teardown(void **s) { (void)s; cdf_backend_free(be); return 0; }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sd1), cmocka_unit_test(test_sd2), cmocka_unit_test(test_sd1_fp16),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
