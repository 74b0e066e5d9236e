/* AutoencoderKL against goldens/tiny-sd{1,2}/vae.safetensors: decode at two
 * sizes, encode mean/std/logvar. Tolerance as for the UNet: max abs error
 * <= 1e-4 x max|ref|, NMSE <= 1e-8 (fp32 weights, and the fp16 files which
 * hold the same values for these models). Also: a stand-alone VAE folder
 * (config.json + weights, as sd-vae-ft-mse ships) loads the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "models/vae.h"
#include "testutil.h"

static cdf_backend *be;

static void run_model(const char *model, const char *variant) {
    char dir[4096], golden[256], what[160];
    snprintf(dir, sizeof dir, "%s/vae", tu_ref_path(model));
    snprintf(golden, sizeof golden, "goldens/%s/vae.safetensors", model);
    cdf_st_file *g = tu_open_ref(golden);
    cdf_weight_opts o = {.storage = variant ? CDF_DTYPE_F16 : CDF_DTYPE_F32, .compute = CDF_COMPUTE_F32};
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
    cdf_weight_opts o = {.storage = CDF_DTYPE_F32, .compute = CDF_COMPUTE_F32};
    assert_int_equal(cdf_vae_load(&v, be, dir, NULL, &o, &err), CDF_ERR_FORMAT);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "encoder.conv_out.weight"));
}

/* Tiled decoding against a plain re-statement of diffusers' tiled_decode
 * (per-tile decodes, then Python's blend_v / blend_h loops on full tiles,
 * crop, concatenate): the same per-tile values and the same float
 * operations, so the results must be bit-identical. */
static void naive_tiled(cdf_exec *ex, const cdf_vae *v, float *out, const float *lat, int64_t h, int64_t w) {
    const int64_t L = 4, f = 2, tl = 16, ts = 32, ov = 12, ext = 8, lim = 24;
    const int64_t ny = (h + ov - 1) / ov, nx = (w + ov - 1) / ov, Ho = h * f, Wo = w * f;
    float *tiles[16][16];
    int64_t th[16][16], tw[16][16];
    cdf_err err = {0};
    for (int64_t i = 0; i < ny; i++)
        for (int64_t j = 0; j < nx; j++) {
            int64_t y0 = i * ov, x0 = j * ov, hh = h - y0 < tl ? h - y0 : tl, ww = w - x0 < tl ? w - x0 : tl;
            float *in = malloc((size_t)(L * hh * ww) * 4);
            for (int64_t c = 0; c < L; c++)
                for (int64_t y = 0; y < hh; y++)
                    for (int64_t x = 0; x < ww; x++) in[(c * hh + y) * ww + x] = lat[(c * h + y0 + y) * w + x0 + x];
            th[i][j] = hh * f;
            tw[i][j] = ww * f;
            tiles[i][j] = malloc((size_t)(3 * th[i][j] * tw[i][j]) * 4);
            assert_int_equal(cdf_vae_decode(ex, v, tiles[i][j], in, 1, hh, ww, &err), CDF_OK);
            free(in);
        }
    (void)ts;
    int64_t oy = 0;
    for (int64_t i = 0; i < ny; i++) {
        int64_t ox = 0, rh = 0;
        for (int64_t j = 0; j < nx; j++) {
            float *b = tiles[i][j];
            if (i > 0) { /* blend_v(rows[i-1][j], tile) */
                float *a = tiles[i - 1][j];
                int64_t e = ext;
                if (th[i - 1][j] < e) e = th[i - 1][j];
                if (th[i][j] < e) e = th[i][j];
                for (int64_t y = 0; y < e; y++)
                    for (int64_t c = 0; c < 3; c++)
                        for (int64_t x = 0; x < tw[i][j]; x++)
                            b[(c * th[i][j] + y) * tw[i][j] + x] =
                                a[(c * th[i - 1][j] + th[i - 1][j] - e + y) * tw[i - 1][j] + x] * (float)(1.0 - (double)y / e) +
                                b[(c * th[i][j] + y) * tw[i][j] + x] * (float)((double)y / e);
            }
            if (j > 0) { /* blend_h(row[j-1], tile) */
                float *a = tiles[i][j - 1];
                int64_t e = ext;
                if (tw[i][j - 1] < e) e = tw[i][j - 1];
                if (tw[i][j] < e) e = tw[i][j];
                for (int64_t x = 0; x < e; x++)
                    for (int64_t c = 0; c < 3; c++)
                        for (int64_t y = 0; y < th[i][j]; y++)
                            b[(c * th[i][j] + y) * tw[i][j] + x] =
                                a[(c * th[i][j - 1] + y) * tw[i][j - 1] + tw[i][j - 1] - e + x] * (float)(1.0 - (double)x / e) +
                                b[(c * th[i][j] + y) * tw[i][j] + x] * (float)((double)x / e);
            }
            int64_t ch = th[i][j] < lim ? th[i][j] : lim, cw = tw[i][j] < lim ? tw[i][j] : lim;
            for (int64_t c = 0; c < 3; c++)
                for (int64_t y = 0; y < ch; y++)
                    for (int64_t x = 0; x < cw; x++) out[(c * Ho + oy + y) * Wo + ox + x] = b[(c * th[i][j] + y) * tw[i][j] + x];
            ox += cw;
            rh = ch;
        }
        oy += rh;
    }
    for (int64_t i = 0; i < ny; i++)
        for (int64_t j = 0; j < nx; j++) free(tiles[i][j]);
}

static void test_tiled_decode(void **s) {
    (void)s;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/vae", tu_ref_path("tiny-sd1"));
    cdf_weight_opts o = {.storage = CDF_DTYPE_F32, .compute = CDF_COMPUTE_F32};
    cdf_vae *v;
    cdf_err err = {0};
    if (cdf_vae_load(&v, be, dir, NULL, &o, &err) != CDF_OK) fail_msg("%s", err.msg);
    cdf_exec *ex;
    assert_int_equal(cdf_exec_create(&ex, be, 0, &err), CDF_OK);
    const int64_t sizes[3][2] = {{16, 40}, {28, 28}, {40, 26}};
    for (int k = 0; k < 3; k++) {
        const int64_t h = sizes[k][0], w = sizes[k][1], n = 3 * 4 * h * w;
        float *lat = malloc((size_t)(4 * h * w) * 4), *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
        float *full = malloc((size_t)n * 4);
        for (int64_t i = 0; i < 4 * h * w; i++) lat[i] = 0.2f * sinf(0.37f * (float)i) + 0.1f * cosf(0.05f * (float)i);
        assert_int_equal(cdf_vae_decode_tiled(ex, v, a, lat, 1, h, w, &err), CDF_OK);
        naive_tiled(ex, v, b, lat, h, w);
        printf("  tiled decode %lldx%lld latents: ", (long long)h, (long long)w);
        assert_memory_equal(a, b, (size_t)n * 4);
        /* For information: tiles of 16 latents are far smaller than this VAE's
         * receptive field (its mid-block attention is global), so tiled and
         * untiled images differ a lot here, as they would in diffusers. */
        assert_int_equal(cdf_vae_decode(ex, v, full, lat, 1, h, w, &err), CDF_OK);
        tu_cmp c = tu_compare(a, full, (size_t)n);
        printf("bit-identical to the naive statement; vs untiled max abs %.3f, NMSE %.2e\n", c.max_abs, c.nmse);
        free(lat); free(a); free(b); free(full);
    }
    cdf_exec_free(ex);
    cdf_vae_free(v);
}

static int setup(void **s) { (void)s; cdf_err e; return cdf_backend_create(&be, &e) ? -1 : 0; }
static int teardown(void **s) { (void)s; cdf_backend_free(be); return 0; }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sd1), cmocka_unit_test(test_sd2), cmocka_unit_test(test_sd1_fp16),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_tiled_decode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
