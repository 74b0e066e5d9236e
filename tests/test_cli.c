/* The cdiffusers command end to end: generate (PNG decoded and compared with
 * the pipeline golden), tokenize, run-component, and bad input (clear message,
 * non-zero exit, no output file left behind). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/png.h"
#include "testutil.h"

static char out_dir[512];

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Runs the CLI with args; stderr goes to <out_dir>/stderr.txt. */
static int cli(const char *args) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s %s 2>%s/stderr.txt >%s/stdout.txt", CDF_CLI_PATH, args, out_dir, out_dir);
    return tu_run(cmd);
}

static char *slurp(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", out_dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return strdup("");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void expect_failure(const char *args, const char *needle, const char *must_not_exist) {
    int rc = cli(args);
    char *err = slurp("stderr.txt");
    printf("  exit %d: %s", rc, err);
    assert_int_not_equal(rc, 0);
    if (!strstr(err, needle)) fail_msg("stderr lacks '%s'", needle);
    if (must_not_exist) assert_false(exists(must_not_exist));
    free(err);
}

static void test_generate_matches_golden(void **s) {
    (void)s;
    char args[4096], png[600];
    snprintf(png, sizeof png, "%s/pndm.png", out_dir);
    snprintf(args, sizeof args,
             "generate --model %s -p 'portrait photo of a old warrior chief' --steps 4 --seed 0 -H 32 -W 32 -o %s",
             tu_ref_path("tiny-sd1"), png);
    assert_int_equal(cli(args), 0);
    uint8_t *rgb;
    int64_t w, h;
    cdf_err err = {0};
    if (cdf_png_read(png, &rgb, &w, &h, &err)) fail_msg("%s", err.msg);
    assert_int_equal(w, 32);
    assert_int_equal(h, 32);
    cdf_st_file *g = tu_open_ref("goldens/tiny-sd1/pipeline/pndm_4_generator0.safetensors");
    size_t n;
    float *ref = tu_read_f32(g, "image_uint8", &n);
    size_t off = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)rgb[i] - (int)ref[i]);
        off += d == 1;
        bad += d > 1;
    }
    printf("  CLI PNG vs pndm_4_generator0 image_uint8: %zu of %zu values differ by 1, %zu by more\n", off, n, bad);
    assert_int_equal(bad, 0);
    assert_true(off * 1000 < n);
    /* generation parameters are in the file */
    char *txt = NULL;
    FILE *f = fopen(png, "rb");
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    txt = memmem(buf, len, "Steps: 4, Sampler: PNDM, CFG scale: 7.5, Seed: 0, Size: 32x32", 61);
    assert_non_null(txt);
    free(rgb);
    free(ref);
    cdf_st_close(g);
}

static void test_batch_grid_and_tensor(void **s) {
    (void)s;
    char args[4096], png[600], st[600];
    snprintf(png, sizeof png, "%s/grid.png", out_dir);
    snprintf(st, sizeof st, "%s/images.safetensors", out_dir);
    snprintf(args, sizeof args,
             "--model %s -p 'a cat' -p 'a dog' --batch 2 --steps 2 --seeds 0-3 -H 32 -W 32 --grid 2x2 -o %s "
             "--output-tensor %s -s euler_a -q",
             tu_ref_path("tiny-sd1"), png, st);
    assert_int_equal(cli(args), 0);
    uint8_t *rgb;
    int64_t w, h;
    cdf_err err = {0};
    if (cdf_png_read(png, &rgb, &w, &h, &err)) fail_msg("%s", err.msg);
    assert_int_equal(w, 64);
    assert_int_equal(h, 64);
    cdf_st_file *f;
    if (cdf_st_open(&f, st, &err)) fail_msg("%s", err.msg);
    const cdf_st_tensor *t = cdf_st_find(f, "image");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 4);
    /* grid cell (1,0) is image 2 */
    float *px = malloc(t->numel * 4);
    cdf_st_read_f32(t, px);
    int maxd = 0;
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            for (int c = 0; c < 3; c++) {
                int v = (int)(px[((2 * 32 + y) * 32 + x) * 3 + c] * 255.0f + 0.5f);
                int d = abs(v - (int)rgb[((32 + y) * 64 + x) * 3 + c]);
                if (d > maxd) maxd = d;
            }
    assert_true(maxd <= 1);
    free(px);
    free(rgb);
    cdf_st_close(f);
}

static void test_tokenize(void **s) {
    (void)s;
    char args[4096];
    snprintf(args, sizeof args, "tokenize --model %s 'a photo of a cat' ''", tu_ref_path("tiny-sd1"));
    assert_int_equal(cli(args), 0);
    char *out = slurp("stdout.txt");
    assert_true(strncmp(out, "[49406, 320, 1125, 539, 320, 2368, 49407, 49407", 47) == 0);
    assert_non_null(strstr(out, "\n[49406, 49407, 49407"));
    free(out);
}

static void test_run_component(void **s) {
    (void)s;
    char args[8192], in[600], outp[600];
    cdf_err err = {0};
    /* unet: golden case cfg_16x24_t261 */
    cdf_st_file *g = tu_open_ref("goldens/tiny-sd1/unet.safetensors");
    float *x = tu_read_f32(g, "cfg_16x24_t261.sample_in", NULL), *c = tu_read_f32(g, "cfg_16x24_t261.encoder_hidden_states", NULL);
    int64_t t = 261;
    cdf_st_out ins[3] = {{"sample", CDF_DTYPE_F32, 4, {2, 4, 16, 24}, x},
                         {"timestep", CDF_DTYPE_I64, 0, {0}, &t},
                         {"encoder_hidden_states", CDF_DTYPE_F32, 3, {2, 77, 32}, c}};
    snprintf(in, sizeof in, "%s/unet_in.safetensors", out_dir);
    snprintf(outp, sizeof outp, "%s/unet_out.safetensors", out_dir);
    assert_int_equal(cdf_st_write(in, ins, 3, &err), CDF_OK);
    snprintf(args, sizeof args, "run-component --model %s --component unet --input %s --output %s",
             tu_ref_path("tiny-sd1"), in, outp);
    assert_int_equal(cli(args), 0);
    cdf_st_file *o;
    assert_int_equal(cdf_st_open(&o, outp, &err), CDF_OK);
    size_t n;
    float *got = tu_read_f32(o, "out", &n), *ref = tu_read_f32(g, "cfg_16x24_t261.out", NULL);
    TU_ASSERT_CLOSE("run-component unet", got, ref, n, 1e-4, 1e-8);
    free(x); free(c); free(got); free(ref);
    cdf_st_close(o);
    cdf_st_close(g);
    /* vae_decoder with --vae pointing at a stand-alone VAE folder */
    g = tu_open_ref("goldens/tiny-sd1/vae.safetensors");
    float *lat = tu_read_f32(g, "decode.latents", NULL);
    cdf_st_out li = {"latents", CDF_DTYPE_F32, 4, {1, 4, 16, 16}, lat};
    snprintf(in, sizeof in, "%s/vae_in.safetensors", out_dir);
    snprintf(outp, sizeof outp, "%s/vae_out.safetensors", out_dir);
    assert_int_equal(cdf_st_write(in, &li, 1, &err), CDF_OK);
    snprintf(args, sizeof args, "run-component --model /nonexistent --vae %s --component vae_decoder --input %s --output %s",
             tu_ref_path("tiny-sd1/vae"), in, outp);
    assert_int_equal(cli(args), 0);
    assert_int_equal(cdf_st_open(&o, outp, &err), CDF_OK);
    got = tu_read_f32(o, "image", &n);
    ref = tu_read_f32(g, "decode.image", NULL);
    TU_ASSERT_CLOSE("run-component vae_decoder --vae", got, ref, n, 1e-4, 1e-8);
    free(lat); free(got); free(ref);
    cdf_st_close(o);
    cdf_st_close(g);
    /* text_encoder */
    g = tu_open_ref("goldens/tiny-sd2/text_encoder.safetensors");
    snprintf(in, sizeof in, "%s", tu_ref_path("goldens/tiny-sd2/text_encoder.safetensors"));
    snprintf(outp, sizeof outp, "%s/te_out.safetensors", out_dir);
    snprintf(args, sizeof args, "run-component --model %s --component text_encoder --input %s --output %s --variant fp16",
             tu_ref_path("tiny-sd2"), in, outp);
    assert_int_equal(cli(args), 0);
    assert_int_equal(cdf_st_open(&o, outp, &err), CDF_OK);
    const char *names[3] = {"last_hidden_state", "pooler_output", "hidden_states_penultimate"};
    for (int i = 0; i < 3; i++) {
        got = tu_read_f32(o, names[i], &n);
        ref = tu_read_f32(g, names[i], NULL);
        TU_ASSERT_CLOSE(names[i], got, ref, n, 1e-5, 1e-10);
        free(got); free(ref);
    }
    cdf_st_close(o);
    cdf_st_close(g);
}

static void test_bad_input(void **s) {
    (void)s;
    char args[8192], png[600], model[600], cmd[4096];
    const char *ref = tu_ref_path("tiny-sd1");
    snprintf(png, sizeof png, "%s/bad.png", out_dir);
    const char *common = "-p 'a cat' --steps 2 -H 32 -W 32 -q";
    snprintf(args, sizeof args, "--model /nonexistent/model %s -o %s", common, png);
    expect_failure(args, "/nonexistent/model", png);
    /* a model folder without its unet */
    snprintf(model, sizeof model, "%s/no-unet", out_dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && for c in model_index.json scheduler text_encoder tokenizer vae; do ln -sf %s/$c %s/; done",
             model, ref, model);
    assert_int_equal(tu_run(cmd), 0);
    snprintf(args, sizeof args, "--model %s %s -o %s", model, common, png);
    expect_failure(args, "unet", png);
    /* corrupted weights: a truncated unet file */
    snprintf(model, sizeof model, "%s/corrupt", out_dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/unet && for c in model_index.json scheduler text_encoder tokenizer vae; do ln -sf %s/$c %s/; done && "
             "cp %s/unet/config.json %s/unet/ && head -c 100000 %s/unet/diffusion_pytorch_model.safetensors > "
             "%s/unet/diffusion_pytorch_model.safetensors",
             model, ref, model, ref, model, ref, model);
    assert_int_equal(tu_run(cmd), 0);
    snprintf(args, sizeof args, "--model %s %s -o %s", model, common, png);
    expect_failure(args, "diffusion_pytorch_model.safetensors", png);
    snprintf(args, sizeof args, "--model %s %s -s NoSuchScheduler -o %s", ref, common, png);
    expect_failure(args, "NoSuchScheduler", png);
    snprintf(args, sizeof args, "--model %s -p 'a cat' -H 100 -W 32 -o %s", ref, png);
    expect_failure(args, "multiples of 8", png);
    snprintf(args, sizeof args, "--model %s -p 'a cat' --steps 0 -o %s", ref, png);
    expect_failure(args, "--steps", png);
    snprintf(args, sizeof args, "--model %s --steps 2 -o %s", ref, png);
    expect_failure(args, "no prompt", png);
    snprintf(args, sizeof args, "--model %s %s -o /nonexistent-dir/x.png", ref, common);
    expect_failure(args, "/nonexistent-dir", NULL);
    snprintf(args, sizeof args, "--model %s %s --batch 3 --grid 2x2 -o %s", ref, common, png);
    expect_failure(args, "--grid", png);
    snprintf(args, sizeof args, "--model %s --prompt \"$(printf 'a\\377\\376')\" --steps 2 -H 32 -W 32 -o %s", ref, png);
    expect_failure(args, "UTF-8", png);
    expect_failure("--frobnicate", "unknown option", NULL);
    /* nothing half-written anywhere in the output folder */
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp-", out_dir);
    assert_int_not_equal(tu_run(cmd), 0);
}

static void test_help_version(void **s) {
    (void)s;
    assert_int_equal(cli("--version"), 0);
    char *out = slurp("stdout.txt");
    assert_non_null(strstr(out, "cdiffusers "));
    free(out);
    assert_int_equal(cli("--help"), 0);
    assert_int_equal(cli("list-schedulers"), 0);
    out = slurp("stdout.txt");
    assert_non_null(strstr(out, "DPMSolverMultistepScheduler"));
    free(out);
}

int main(void) {
    snprintf(out_dir, sizeof out_dir, "%s", tu_tmpdir());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_matches_golden), cmocka_unit_test(test_batch_grid_and_tensor),
        cmocka_unit_test(test_tokenize), cmocka_unit_test(test_run_component),
        cmocka_unit_test(test_bad_input), cmocka_unit_test(test_help_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
