/* Fast kernels against their plain reference twins (kernels_ref.c).
 * fp32 pass rule: NMSE <= 1e-10 (STYLE.md); the fast kernels only reorder
 * float32 sums, whose relative error is ~1e-7 per element (NMSE ~1e-14). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "kernels/kernels.h"
#include "kernels/kernels_ref.h"
#include "testutil.h"

static cdf_backend *be;

static uint64_t rs = 88172645463325252ull;
static float frand(void) { /* xorshift, uniform in [-1, 1) */
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (float)((rs >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static float *rnd(size_t n, float scale) {
    float *p = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

static void round_bf16(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = cdf_bf16_to_f32(cdf_f32_to_bf16(p[i]));
}

/* Writes tensors to a temp file and opens it. */
static cdf_st_file *weights_file(const char *tag, cdf_st_out *t, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", tu_tmpdir(), tag);
    cdf_err err = {0};
    if (cdf_st_write(path, t, n, &err) != CDF_OK) fail_msg("%s", err.msg);
    cdf_st_file *f;
    if (cdf_st_open(&f, path, &err) != CDF_OK) fail_msg("%s", err.msg);
    return f;
}

static cdf_exec *new_exec(int threads) {
    cdf_exec *ex;
    cdf_err err = {0};
    assert_int_equal(cdf_exec_create(&ex, be, threads, &err), CDF_OK);
    cdf_exec_begin(ex);
    return ex;
}

static void check_linear(int64_t M, int64_t K, int64_t N, size_t ldx, size_t ldy, cdf_dtype storage, cdf_compute cp,
                         double nmse_tol) {
    float *w = rnd((size_t)(N * K), 0.2f), *b = rnd((size_t)N, 0.5f);
    float *x = rnd((size_t)M * ldx, 1.0f);
    cdf_st_out t[2] = {{"l.weight", CDF_DTYPE_F32, 2, {N, K}, w}, {"l.bias", CDF_DTYPE_F32, 1, {N}, b}};
    cdf_st_file *f = weights_file("lin", t, 2);
    cdf_weight_opts o = {.storage = storage, .compute = cp};
    cdf_linear l;
    cdf_err err = {0};
    const char *pre[1] = {"l"};
    if (cdf_linear_load(&l, be, &o, f, pre, 1, K, N, 1, &err) != CDF_OK) fail_msg("%s", err.msg);
    cdf_exec *ex = new_exec(0);
    float *y = calloc((size_t)M * ldy, sizeof(float)), *xd = malloc((size_t)(M * K) * sizeof(float));
    float *yr = malloc((size_t)(M * N) * sizeof(float)), *yd = malloc((size_t)(M * N) * sizeof(float));
    for (int64_t i = 0; i < M; i++) memcpy(xd + i * K, x + (size_t)i * ldx, (size_t)K * sizeof(float));
    /* The reference sees the operands exactly as the kernel does: weights
     * rounded to the storage type, and with bf16 arithmetic the activations
     * rounded to bf16 too (their products are exact in float32), so the
     * tolerance stays the fp32 one. */
    if (cp == CDF_COMPUTE_BF16) {
        round_bf16(w, (size_t)(N * K));
        round_bf16(xd, (size_t)(M * K));
    } else if (storage == CDF_DTYPE_F16) {
        for (size_t i = 0; i < (size_t)(N * K); i++) w[i] = cdf_f16_to_f32(cdf_f32_to_f16(w[i]));
    } else if (storage == CDF_DTYPE_BF16) {
        round_bf16(w, (size_t)(N * K));
    }
    cdf_ref_linear(yr, xd, w, b, M, K, N);
    if (cdf_linear_forward(ex, &l, y, ldy, x, ldx, M, &err) != CDF_OK) fail_msg("%s", err.msg);
    for (int64_t i = 0; i < M; i++) memcpy(yd + i * N, y + (size_t)i * ldy, (size_t)N * sizeof(float));
    char what[128];
    snprintf(what, sizeof what, "linear M%lld K%lld N%lld %s/%s", (long long)M, (long long)K, (long long)N,
             storage == CDF_DTYPE_F32 ? "f32" : storage == CDF_DTYPE_F16 ? "f16" : "bf16",
             cp == CDF_COMPUTE_F32 ? "f32" : "bf16");
    TU_ASSERT_CLOSE(what, yd, yr, (size_t)(M * N), 1.0, nmse_tol);
    cdf_linear_free(&l);
    cdf_exec_free(ex);
    cdf_st_close(f);
    free(w); free(b); free(x); free(y); free(xd); free(yr); free(yd);
}

static void test_linear(void **state) {
    (void)state;
    check_linear(77, 32, 96, 32, 96, CDF_DTYPE_F32, CDF_COMPUTE_F32, 1e-10);
    check_linear(300, 320, 1280, 320, 1280, CDF_DTYPE_F32, CDF_COMPUTE_F32, 1e-10);
    check_linear(2, 320, 1280, 320, 1280, CDF_DTYPE_F32, CDF_COMPUTE_F32, 1e-10);  /* time embedding */
    check_linear(33, 40, 37, 64, 50, CDF_DTYPE_F32, CDF_COMPUTE_F32, 1e-10);       /* strided rows */
    check_linear(64, 320, 640, 320, 640, CDF_DTYPE_F16, CDF_COMPUTE_F32, 1e-10);
    check_linear(64, 320, 640, 320, 640, CDF_DTYPE_BF16, CDF_COMPUTE_F32, 1e-10);
    check_linear(64, 320, 640, 320, 640, CDF_DTYPE_BF16, CDF_COMPUTE_BF16, 1e-10);
}

static void check_conv(int64_t B, int64_t H, int64_t W, int64_t Cin, int64_t Cout, int k, int stride, int pt, int pl,
                       int pb, int pr, int acc, cdf_compute cp, double nmse_tol) {
    float *w = rnd((size_t)(Cout * Cin * k * k), 0.1f), *b = rnd((size_t)Cout, 0.5f);
    float *x = rnd((size_t)(B * H * W * Cin), 1.0f);
    cdf_st_out t[2] = {{"c.weight", CDF_DTYPE_F32, 4, {Cout, Cin, k, k}, w}, {"c.bias", CDF_DTYPE_F32, 1, {Cout}, b}};
    cdf_st_file *f = weights_file("conv", t, 2);
    cdf_weight_opts o = {.storage = CDF_DTYPE_F32, .compute = cp};
    cdf_conv2d c;
    cdf_err err = {0};
    if (cdf_conv2d_load(&c, be, &o, f, "c", Cin, Cout, k, stride, pt, pl, pb, pr, &err) != CDF_OK)
        fail_msg("%s", err.msg);
    int64_t Ho, Wo;
    cdf_conv2d_out_size(&c, H, W, &Ho, &Wo);
    size_t ny = (size_t)(B * Ho * Wo * Cout);
    float *y = rnd(ny, 1.0f), *yr = malloc(ny * sizeof(float)), *y0 = malloc(ny * sizeof(float));
    memcpy(y0, y, ny * sizeof(float));
    if (cp == CDF_COMPUTE_BF16) {
        round_bf16(w, (size_t)(Cout * Cin * k * k));
        round_bf16(x, (size_t)(B * H * W * Cin));
    }
    cdf_ref_conv2d(yr, x, w, b, B, H, W, Cin, Cout, k, stride, pt, pl, pb, pr);
    if (acc)
        for (size_t i = 0; i < ny; i++) yr[i] += y0[i];
    cdf_exec *ex = new_exec(0);
    if (cdf_conv2d_forward(ex, &c, y, x, B, H, W, acc, &err) != CDF_OK) fail_msg("%s", err.msg);
    char what[160];
    snprintf(what, sizeof what, "conv B%lld %lldx%lld %lld->%lld k%d s%d pad %d%d%d%d%s%s", (long long)B, (long long)H,
             (long long)W, (long long)Cin, (long long)Cout, k, stride, pt, pl, pb, pr, acc ? " +acc" : "",
             cp == CDF_COMPUTE_BF16 ? " bf16" : "");
    TU_ASSERT_CLOSE(what, y, yr, ny, 1.0, nmse_tol);
    cdf_conv2d_free(&c);
    cdf_exec_free(ex);
    cdf_st_close(f);
    free(w); free(b); free(x); free(y); free(yr); free(y0);
}

static void test_conv(void **state) {
    (void)state;
    check_conv(2, 16, 16, 4, 32, 3, 1, 1, 1, 1, 1, 0, CDF_COMPUTE_F32, 1e-10);
    check_conv(1, 18, 14, 32, 64, 3, 1, 1, 1, 1, 1, 1, CDF_COMPUTE_F32, 1e-10);
    check_conv(2, 16, 24, 64, 64, 3, 2, 1, 1, 1, 1, 0, CDF_COMPUTE_F32, 1e-10);   /* UNet Downsample2D */
    check_conv(1, 32, 32, 32, 32, 3, 2, 0, 0, 1, 1, 0, CDF_COMPUTE_F32, 1e-10);   /* VAE Downsample2D */
    check_conv(2, 8, 8, 96, 64, 1, 1, 0, 0, 0, 0, 1, CDF_COMPUTE_F32, 1e-10);     /* 1x1 shortcut */
    check_conv(1, 9, 7, 3, 5, 3, 1, 1, 1, 1, 1, 0, CDF_COMPUTE_F32, 1e-10);       /* odd channels */
    check_conv(1, 16, 16, 64, 64, 3, 1, 1, 1, 1, 1, 0, CDF_COMPUTE_BF16, 1e-10);
}

static int use_amx = 1; /* test_attention_bf16 runs both bf16 paths */

static void check_attention_c(int64_t B, int64_t Nq, int64_t Nk, int64_t heads, int64_t D, int causal, int threads,
                              cdf_compute cp, double nmse_tol) {
    const int64_t C = heads * D;
    float *q = rnd((size_t)(B * Nq * C), 1.0f), *k = rnd((size_t)(B * Nk * C), 1.0f), *v = rnd((size_t)(B * Nk * C), 1.0f);
    float *o = malloc((size_t)(B * Nq * C) * sizeof(float)), *r = malloc((size_t)(B * Nq * C) * sizeof(float));
    float scale = 1.0f / sqrtf((float)D) * 2.0f; /* sharper than usual: exercises the online max */
    if (cp == CDF_COMPUTE_BF16) {
        /* The reference gets the operands as the kernel rounds them (q after scaling). */
        float *qs = malloc((size_t)(B * Nq * C) * sizeof(float));
        for (size_t i = 0; i < (size_t)(B * Nq * C); i++) qs[i] = cdf_bf16_to_f32(cdf_f32_to_bf16(q[i] * scale));
        round_bf16(k, (size_t)(B * Nk * C));
        round_bf16(v, (size_t)(B * Nk * C));
        cdf_ref_attention(r, qs, k, v, B, Nq, Nk, heads, D, 1.0f, causal);
        free(qs);
    } else {
        cdf_ref_attention(r, q, k, v, B, Nq, Nk, heads, D, scale, causal);
    }
    cdf_exec *ex = new_exec(threads);
    const int amx = cdf_exec_use_amx(ex, use_amx);
    cdf_attn_shape s = {B, Nq, Nk, heads, D, (size_t)C, (size_t)C, (size_t)C, (size_t)C, scale, causal, cp, 0};
    cdf_err err = {0};
    assert_int_equal(cdf_attention(ex, &s, o, q, k, v, &err), CDF_OK);
    char what[128];
    snprintf(what, sizeof what, "attention B%lld Nq%lld Nk%lld h%lld D%lld%s t%d%s", (long long)B, (long long)Nq,
             (long long)Nk, (long long)heads, (long long)D, causal ? " causal" : "", threads,
             cp == CDF_COMPUTE_BF16 ? (amx ? " bf16 amx" : " bf16 onednn") : "");
    TU_ASSERT_CLOSE(what, o, r, (size_t)(B * Nq * C), 1.0, nmse_tol);
    cdf_exec_free(ex);
    free(q); free(k); free(v); free(o); free(r);
}

static void check_attention(int64_t B, int64_t Nq, int64_t Nk, int64_t heads, int64_t D, int causal, int threads) {
    check_attention_c(B, Nq, Nk, heads, D, causal, threads, CDF_COMPUTE_F32, 1e-10);
}

/* bf16 attention on both paths (AMX tiles when the CPU has them, oneDNN
 * matmuls per tile): SD 1.5/2.x head sizes, cross-attention's 77 keys, the
 * VAE's single 512-wide head, causal masks, partial tiles. */
static void test_attention_bf16(void **state) {
    (void)state;
    static const int64_t shapes[][6] = {{2, 333, 333, 2, 40, 0}, {2, 300, 77, 8, 40, 0}, {1, 200, 260, 2, 64, 0},
                                        {1, 130, 100, 2, 80, 0}, {1, 70, 70, 1, 160, 0}, {2, 77, 77, 2, 64, 1},
                                        {1, 64, 64, 1, 512, 0}};
    for (int amx = 1; amx >= 0; amx--) {
        use_amx = amx;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            check_attention_c(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], shapes[i][4], (int)shapes[i][5],
                              2, CDF_COMPUTE_BF16, 1e-5);
    }
    use_amx = 1;
}

static void test_attention(void **state) {
    (void)state;
    check_attention(1, 300, 2100, 2, 40, 0, 2); /* partial query tile, three key blocks (online softmax) */
    check_attention(1, 200, 200, 2, 16, 1, 2);  /* causal over two query tiles */
    /* bf16 operands: besides q, k, v (rounded in the reference too) the
     * probabilities are rounded to bf16 before P V: relative error ~2^-9
     * per term, averaging out over keys; NMSE bound 1e-5. */
    check_attention_c(2, 300, 1500, 2, 40, 0, 2, CDF_COMPUTE_BF16, 1e-5);
    check_attention(2, 77, 77, 4, 8, 1, 0);    /* CLIP */
    check_attention(2, 256, 77, 8, 40, 0, 0);  /* cross-attention */
    check_attention(1, 300, 600, 2, 37, 0, 2); /* several key blocks, odd D */
    check_attention(1, 64, 64, 1, 64, 0, 1);   /* VAE mid-block, one head */
}

static void test_norms(void **state) {
    (void)state;
    const int64_t B = 2, HW = 200, C = 64, G = 32;
    float *x = rnd((size_t)(B * HW * C), 3.0f), *g = rnd((size_t)C, 1.0f), *b = rnd((size_t)C, 1.0f);
    for (size_t i = 0; i < (size_t)(B * HW * C); i++) x[i] += 2.0f; /* non-zero mean */
    float *y = malloc((size_t)(B * HW * C) * sizeof(float)), *r = malloc((size_t)(B * HW * C) * sizeof(float));
    cdf_norm n = {C, 1e-6f, (int)G, g, b};
    cdf_exec *ex = new_exec(0);
    cdf_err err = {0};
    for (int silu = 0; silu < 2; silu++) {
        cdf_ref_group_norm(r, x, g, b, B, HW, C, G, 1e-6f, silu);
        assert_int_equal(cdf_group_norm(ex, &n, y, x, B, HW, silu, &err), CDF_OK);
        TU_ASSERT_CLOSE(silu ? "group_norm+silu" : "group_norm", y, r, (size_t)(B * HW * C), 1.0, 1e-10);
    }
    n.eps = 1e-5f;
    cdf_ref_layer_norm(r, x, g, b, B * HW, C, 1e-5f);
    cdf_layer_norm(ex, &n, y, x, B * HW);
    TU_ASSERT_CLOSE("layer_norm", y, r, (size_t)(B * HW * C), 1.0, 1e-10);
    cdf_exec_free(ex);
    free(x); free(g); free(b); free(y); free(r);
}

static void test_geglu_in_place(void **state) {
    (void)state;
    const int64_t M = 300, F = 40;
    float *h = rnd((size_t)(M * 2 * F), 3.0f), *r = malloc((size_t)(M * F) * sizeof(float));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < F; j++) {
            double g = h[i * 2 * F + F + j];
            r[i * F + j] = (float)(h[i * 2 * F + j] * 0.5 * g * (1.0 + erf(g / sqrt(2.0))));
        }
    cdf_exec *ex = new_exec(2);
    cdf_geglu(ex, h, (size_t)(2 * F), h, M, F);
    float *y = malloc((size_t)(M * F) * sizeof(float));
    for (int64_t i = 0; i < M; i++) memcpy(y + i * F, h + i * 2 * F, (size_t)F * sizeof(float));
    /* the erf approximation (|error| < 1.5e-7, as PyTorch's) is the only difference */
    TU_ASSERT_CLOSE("geglu in place, 2 threads", y, r, (size_t)(M * F), 1e-6, 1e-12);
    cdf_exec_free(ex);
    free(h); free(r); free(y);
}

static void test_thread_count_invariance(void **state) {
    (void)state;
    const int64_t B = 2, N = 256, C = 320;
    float *x = rnd((size_t)(B * N * C), 1.0f), *w = rnd((size_t)(C * C * 9), 0.05f), *bias = rnd((size_t)C, 0.1f);
    cdf_st_out t[2] = {{"c.weight", CDF_DTYPE_F32, 4, {C, C, 3, 3}, w}, {"c.bias", CDF_DTYPE_F32, 1, {C}, bias}};
    cdf_st_file *f = weights_file("inv", t, 2);
    cdf_weight_opts o = {.storage = CDF_DTYPE_F32, .compute = CDF_COMPUTE_F32};
    cdf_conv2d c;
    cdf_err err = {0};
    assert_int_equal(cdf_conv2d_load(&c, be, &o, f, "c", C, C, 3, 1, 1, 1, 1, 1, &err), CDF_OK);
    float *y1 = malloc((size_t)(B * N * C) * sizeof(float)), *y2 = malloc((size_t)(B * N * C) * sizeof(float));
    float *a1 = malloc((size_t)(B * N * C) * sizeof(float)), *a2 = malloc((size_t)(B * N * C) * sizeof(float));
    cdf_attn_shape s = {B, N, N, 8, 40, (size_t)C, (size_t)C, (size_t)C, (size_t)C, 0.158f, 0, CDF_COMPUTE_F32, 0};
    cdf_exec *e1 = new_exec(1);
    assert_int_equal(cdf_conv2d_forward(e1, &c, y1, x, B, 16, 16, 0, &err), CDF_OK);
    assert_int_equal(cdf_attention(e1, &s, a1, x, x, x, &err), CDF_OK);
    cdf_exec *e2 = new_exec(2);
    assert_int_equal(cdf_conv2d_forward(e2, &c, y2, x, B, 16, 16, 0, &err), CDF_OK);
    assert_int_equal(cdf_attention(e2, &s, a2, x, x, x, &err), CDF_OK);
    assert_memory_equal(y1, y2, (size_t)(B * N * C) * sizeof(float));
    assert_memory_equal(a1, a2, (size_t)(B * N * C) * sizeof(float));
    cdf_exec_free(e1);
    cdf_exec_free(e2);
    cdf_conv2d_free(&c);
    cdf_st_close(f);
    free(x); free(w); free(bias); free(y1); free(y2); free(a1); free(a2);
}

static void test_checker_fails_on_perturbation(void **state) {
    (void)state;
    float a[100], b[100];
    for (int i = 0; i < 100; i++) a[i] = b[i] = sinf((float)i);
    assert_true(tu_close("identical", a, b, 100, 1e-6, 1e-10));
    a[37] += 1e-3f;
    assert_false(tu_close("perturbed by 1e-3 (must FAIL)", a, b, 100, 1e-4, 1e-10));
}

static int setup(void **state) {
    (void)state;
    cdf_err err = {0};
    return cdf_backend_create(&be, &err) == CDF_OK ? 0 : -1;
}
static int teardown(void **state) {
    (void)state;
    cdf_backend_free(be);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_bf16),
        cmocka_unit_test(test_norms),
        cmocka_unit_test(test_geglu_in_place),
        cmocka_unit_test(test_thread_count_invariance),
        cmocka_unit_test(test_checker_fails_on_perturbation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
