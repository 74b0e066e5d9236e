/* The GEMM yardstick of the benchmarks: oneDNN's matmul on a large square
 * product, in the same library and threading the kernels use. */
#include <stdlib.h>
#include <time.h>

#include "kernels/backend_internal.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cdf_gemm_benchmark(cdf_exec *ex, cdf_compute c, int64_t N, int runs) {
    const dnnl_data_type_t dt = c == CDF_COMPUTE_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t a, b, d, bany;
    dnnl_dims_t dims = {N, N};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    if (dnnl_memory_desc_init_by_tag(&a, 2, dims, dt, dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&bany, 2, dims, dt, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&d, 2, dims, dnnl_f32, dnnl_ab) ||
        dnnl_matmul_desc_init(&md, &a, &bany, NULL, &d) ||
        dnnl_primitive_desc_create(&pd, &md, NULL, ex->be->engine, NULL))
        return -1;
    b = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_status_t s = dnnl_primitive_create(&p, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s) return -1;
    size_t esz = c == CDF_COMPUTE_BF16 ? 2 : 4;
    void *pa = calloc((size_t)(N * N), esz), *pb = calloc(dnnl_memory_desc_get_size(&b), 1);
    float *pd_ = calloc((size_t)(N * N), sizeof(float));
    double best = 1e30;
    cdf_exec_begin(ex);
    if (pa && pb && pd_) {
        /* small non-zero values (zeros could take shortcuts in principle) */
        if (c == CDF_COMPUTE_BF16)
            for (int64_t i = 0; i < N * N; i++) ((uint16_t *)pa)[i] = 0x3c00 + (uint16_t)(i & 0x7f);
        else
            for (int64_t i = 0; i < N * N; i++) ((float *)pa)[i] = 0.01f * (float)(i & 0x7f);
        cdf_bind bind[3] = {{DNNL_ARG_SRC, &a, pa}, {DNNL_ARG_WEIGHTS, &b, pb}, {DNNL_ARG_DST, &d, pd_}};
        cdf_err err;
        cdf_exec_run(ex, p, bind, 3, &err); /* warm-up */
        for (int r = 0; r < runs; r++) {
            double t = now_s();
            if (cdf_exec_run(ex, p, bind, 3, &err)) break;
            t = now_s() - t;
            if (t < best) best = t;
        }
    }
    free(pa);
    free(pb);
    free(pd_);
    dnnl_primitive_destroy(p);
    return best < 1e30 ? 2.0 * (double)N * (double)N * (double)N / best / 1e9 : -1;
}
