/* The attention kernel alone at Stable Diffusion 1.5's shapes:
 *   bench_attention [--dtype fp32|bf16] [--threads N] [--slice ROWS]
 * self-attention at 64x64 latents (8 heads x 40, 4096 tokens, batch 2) and
 * cross-attention (77 keys); times and GFLOP/s of the two products. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "kernels/kernels.h"

int main(int argc, char **argv) {
    const char *dtype = "bf16";
    int threads = 0;
    long slice = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--slice") && i + 1 < argc) slice = atol(argv[++i]);
        else { fprintf(stderr, "usage: bench_attention [--dtype fp32|bf16] [--threads N] [--slice ROWS]\n"); return 2; }
    }
    cdf_err err = {0};
    cdf_backend *be;
    cdf_exec *ex;
    if (cdf_backend_create(&be, &err) || cdf_exec_create(&ex, be, threads, &err)) return 1;
    cdf_exec_begin(ex);
    cdf_exec_set_attention_slice(ex, slice);
    const cdf_compute c = strcmp(dtype, "bf16") ? CDF_COMPUTE_F32 : CDF_COMPUTE_BF16;
    const int64_t B = 2, H = 8, D = 40, C = H * D, N = 4096;
    const int64_t nk[2] = {4096, 77};
    float *q = malloc((size_t)(B * N * C) * 4), *kv = malloc((size_t)(B * N * 2 * C) * 4), *o = malloc((size_t)(B * N * C) * 4);
    for (int64_t i = 0; i < B * N * C; i++) q[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (int64_t i = 0; i < B * N * 2 * C; i++) kv[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    for (int k = 0; k < 2; k++) {
        cdf_attn_shape s = {B, N, nk[k], H, D, (size_t)C, (size_t)(2 * C), (size_t)(2 * C), (size_t)C, 0.158f, 0, c, 0};
        double best = 1e30;
        for (int r = 0; r < 4; r++) {
            double t = bench_now();
            if (cdf_attention(ex, &s, o, q, kv, kv + C, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            t = bench_now() - t;
            if (r > 0 && t < best) best = t;
        }
        const double gf = 4.0 * (double)(B * H) * (double)N * (double)nk[k] * (double)D / 1e9;
        printf("attention %s, %lld queries x %lld keys, 2x8 heads x 40: %.4f s, %.1f GFLOP, %.1f GFLOP/s\n", dtype,
               (long long)N, (long long)nk[k], best, gf, gf / best);
    }
    free(q); free(kv); free(o);
    cdf_exec_free(ex);
    cdf_backend_free(be);
    return 0;
}
