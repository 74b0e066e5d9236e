/* Component benchmarks on full-size SD 1.5-shaped models with synthesised
 * random weights (built from the real config files by the same loaders that
 * read checkpoints; speed does not depend on the weights' values).
 *
 *   bench_models [--threads N] [--dtype fp32|fp16|bf16] [--config DIR] [--repeat N]
 *                [--only gemm,text,unet64,unet32,vae]
 *
 * Each time is also given as a ratio to its FLOP bound: the FLOPs of its
 * matrix products divided by the GEMM rate measured in the same run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"

typedef struct opts {
    int threads, repeat;
    const char *dtype, *config, *only;
} opts;

static int wanted(const opts *o, const char *what) {
    if (!o->only) return 1;
    const char *p = strstr(o->only, what);
    size_t n = strlen(what);
    return p && (p[n] == '\0' || p[n] == ',');
}

static void die(const cdf_err *e) {
    fprintf(stderr, "bench_models: %s\n", e->msg);
    exit(1);
}

static float *filled(size_t n, float scale, uint64_t seed) {
    float *p = malloc(n * sizeof(float));
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = scale * ((float)(x >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
    return p;
}

/* The GEMM library's rate on a large square product (N = 4096), operands
 * already in the compute type: the yardstick for every FLOP bound below. */
static double gemm_rate(cdf_backend *be, cdf_exec *ex, cdf_compute c, int repeat) {
    (void)be;
    double r = cdf_gemm_benchmark(ex, c, 4096, repeat + 1);
    if (r <= 0) {
        fprintf(stderr, "bench_models: GEMM benchmark failed\n");
        exit(1);
    }
    return r;
}

static void print_profile(const cdf_exec *ex) {
    printf("  profile:");
    for (int k = 0; k < CDF_PROF_COUNT; k++) {
        const double t = cdf_exec_profile_seconds(ex, (cdf_prof_kind)k);
        const double gf = (double)cdf_exec_profile_flops(ex, (cdf_prof_kind)k) / 1e9;
        printf(" %s %.3f s", cdf_prof_name((cdf_prof_kind)k), t);
        if (gf > 0) printf(" (%.0f GFLOP, %.0f GFLOP/s)", gf, gf / t);
        printf("%s", k + 1 < CDF_PROF_COUNT ? "," : "\n");
    }
}

static void load_json(cdf_json *j, const opts *o, const char *rel) {
    char path[4096];
    cdf_err err = {0};
    snprintf(path, sizeof path, "%s/%s", o->config, rel);
    if (cdf_json_load(j, path, &err)) die(&err);
}

/* Times fn over `repeat` runs after one warm-up; returns the best time. */
#define TIME_BEST(best, repeat, stmt)                                          \
    do {                                                                       \
        best = 1e30;                                                           \
        for (int r_ = 0; r_ < (repeat) + 1; r_++) {                            \
            double t_ = bench_now();                                           \
            stmt;                                                              \
            t_ = bench_now() - t_;                                             \
            if ((r_ > 0 || (repeat) == 0) && t_ < best) best = t_;            \
        }                                                                      \
    } while (0)

int main(int argc, char **argv) {
    opts o = {0, 2, "fp32", CDF_BENCH_CONFIGS "/stable-diffusion-v1-5", NULL};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) o.threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) o.repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) o.dtype = argv[++i];
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) o.config = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) o.only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_models [--threads N] [--dtype fp32|fp16|bf16] [--config DIR] [--repeat N] "
                            "[--only gemm,text,unet64,unet32,vae]\n");
            return 2;
        }
    }
    cdf_err err = {0};
    cdf_backend *be;
    cdf_exec *ex;
    if (cdf_backend_create(&be, &err) || cdf_exec_create(&ex, be, o.threads, &err)) die(&err);
    cdf_weight_opts wo = {.storage = CDF_DTYPE_F32, .compute = CDF_COMPUTE_F32};
    if (!strcmp(o.dtype, "fp16")) wo.storage = CDF_DTYPE_F16;
    if (!strcmp(o.dtype, "bf16")) wo = (cdf_weight_opts){.storage = CDF_DTYPE_BF16, .compute = CDF_COMPUTE_BF16};
    printf("# bench_models: config %s, dtype %s, threads %d\n", o.config, o.dtype, cdf_exec_threads(ex));
    double g32 = gemm_rate(be, ex, CDF_COMPUTE_F32, o.repeat), g16 = gemm_rate(be, ex, CDF_COMPUTE_BF16, o.repeat);
    const double gemm = wo.compute == CDF_COMPUTE_BF16 ? g16 : g32;
    printf("%-34s fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s (4096^3, oneDNN matmul via cdf_linear)\n", "GEMM rate", g32, g16);
    printf("JSON {\"what\": \"gemm_fp32\", \"gflops\": %.1f}\nJSON {\"what\": \"gemm_bf16\", \"gflops\": %.1f}\n", g32, g16);
    double best;
    cdf_st_file *syn;
    cdf_st_synthetic(&syn, 1, &err);
    char what[128];

    if (wanted(&o, "text")) {
        cdf_json j;
        load_json(&j, &o, "text_encoder/config.json");
        bench_reset_peak_rss();
        cdf_clip_text *te;
        if (cdf_clip_text_create(&te, be, &j, syn, &wo, &err)) die(&err);
        int64_t ids[2 * 77];
        for (int i = 0; i < 2 * 77; i++) ids[i] = i % 77 == 0 ? 49406 : i % 77 < 10 ? 320 + i % 77 : 49407;
        float *h = malloc(2 * 77 * 768 * sizeof(float));
        cdf_clip_outputs co = {h, NULL, NULL};
        cdf_exec_reset_flops(ex);
        TIME_BEST(best, o.repeat, cdf_clip_text_forward(ex, te, ids, 2, 77, 0, &co, &err));
        bench_report("text encoder, batch 2 x 77", best, cdf_exec_flops(ex) / (uint64_t)(o.repeat + 1), gemm,
                     bench_peak_rss_mb());
        free(h);
        cdf_clip_text_free(te);
        cdf_json_free(&j);
    }
    if (wanted(&o, "unet64") || wanted(&o, "unet32")) {
        cdf_json j;
        load_json(&j, &o, "unet/config.json");
        bench_reset_peak_rss();
        cdf_unet *u;
        double t0 = bench_now();
        if (cdf_unet_create(&u, be, &j, syn, &wo, &err)) die(&err);
        printf("# UNet built in %.1f s\n", bench_now() - t0);
        const int64_t D = cdf_unet_get_config(u)->cross_attention_dim;
        float *ctx = filled((size_t)(2 * 77 * D), 1.0f, 5), t = 999.0f;
        for (int s = 64; s >= 32; s /= 2) {
            snprintf(what, sizeof what, "unet%d", s);
            if (!wanted(&o, what)) continue;
            float *x = filled((size_t)(2 * 4 * s * s), 1.0f, 9), *y = malloc((size_t)(2 * 4 * s * s) * sizeof(float));
            cdf_exec_reset_flops(ex);
            TIME_BEST(best, o.repeat, if (cdf_unet_forward(ex, u, y, x, 2, s, s, &t, 1, ctx, 77, NULL, NULL, &err)) die(&err));
            snprintf(what, sizeof what, "UNet step, batch 2, %dx%d latents", s, s);
            bench_report(what, best, cdf_exec_flops(ex) / (uint64_t)(o.repeat + 1), gemm, bench_peak_rss_mb());
            cdf_exec_profile(ex, 1);
            if (cdf_unet_forward(ex, u, y, x, 2, s, s, &t, 1, ctx, 77, NULL, NULL, &err)) die(&err);
            print_profile(ex);
            cdf_exec_profile(ex, 0);
            free(x);
            free(y);
        }
        free(ctx);
        cdf_unet_free(u);
        cdf_json_free(&j);
    }
    if (wanted(&o, "vae")) {
        cdf_json j;
        load_json(&j, &o, "vae/config.json");
        bench_reset_peak_rss();
        cdf_vae *v;
        if (cdf_vae_create(&v, be, &j, syn, &wo, &err)) die(&err);
        float *z = filled(4 * 64 * 64, 0.18215f, 11), *img = malloc(3 * 512 * 512 * sizeof(float));
        cdf_exec_reset_flops(ex);
        TIME_BEST(best, o.repeat, if (cdf_vae_decode(ex, v, img, z, 1, 64, 64, &err)) die(&err));
        bench_report("VAE decode, 64x64 -> 512x512", best, cdf_exec_flops(ex) / (uint64_t)(o.repeat + 1), gemm,
                     bench_peak_rss_mb());
        cdf_exec_profile(ex, 1);
        if (cdf_vae_decode(ex, v, img, z, 1, 64, 64, &err)) die(&err);
        print_profile(ex);
        cdf_exec_profile(ex, 0);
        free(z);
        free(img);
        cdf_vae_free(v);
        cdf_json_free(&j);
    }
    cdf_st_close(syn);
    cdf_exec_free(ex);
    cdf_backend_free(be);
    return 0;
}
