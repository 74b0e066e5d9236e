/* One whole text-to-image generation through the public API, timed stage by
 * stage, with the peak resident memory (VmHWM):
 *
 *   bench_generate MODEL_DIR [--dtype fp32|fp16|bf16] [--steps N] [--size PX]
 *                  [--batch N] [--scheduler NAME] [--threads N] [--resident]
 *                  [--low-memory]
 *
 * Prints a table row and a JSON line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cdiffusers.h"

typedef struct stage_times {
    double text, denoise, vae;
    int steps;
} stage_times;

static int on_progress(void *u, const cdf_progress *p) {
    stage_times *t = u;
    fprintf(stderr, "  [%s %d/%d] %.2f s, RSS %.0f MiB, peak %.0f MiB\n", p->stage, p->step, p->total, p->elapsed,
            bench_rss_mb(), bench_peak_rss_mb());
    if (!strcmp(p->stage, "text_encoder")) t->text = p->elapsed;
    else if (!strcmp(p->stage, "denoise")) { t->denoise = p->elapsed; t->steps = p->step; }
    else if (!strcmp(p->stage, "vae_decode")) t->vae = p->elapsed;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_generate MODEL_DIR [--dtype fp32|fp16|bf16] [--steps N] [--size PX] [--batch N] "
                        "[--scheduler NAME] [--threads N] [--resident] [--low-memory] [--vae-slicing]\n");
        return 2;
    }
    const char *dtype = "bf16", *sched = "dpm++2m";
    int steps = 20, size = 512, batch = 1, threads = 0, resident = 0, low = 0, slicing = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scheduler") && i + 1 < argc) sched = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--resident")) resident = 1;
        else if (!strcmp(argv[i], "--low-memory")) low = 1;
        else if (!strcmp(argv[i], "--vae-slicing")) slicing = 1;
        else { fprintf(stderr, "bench_generate: unknown argument %s\n", argv[i]); return 2; }
    }
    cdf_error_buf eb;
    cdf_load_params lp;
    cdf_load_params_default(&lp);
    lp.model_dir = argv[1];
    lp.memory = resident ? CDF_MEMORY_RESIDENT : low ? CDF_MEMORY_LOW : CDF_MEMORY_STAGED;
    if (!strcmp(dtype, "fp16")) lp.weight_dtype = CDF_DTYPE_F16;
    if (!strcmp(dtype, "bf16")) { lp.weight_dtype = CDF_DTYPE_BF16; lp.compute = CDF_COMPUTE_TYPE_BF16; }
    double t0 = bench_now();
    cdf_model *m;
    if (cdf_model_load(&m, &lp, &eb)) { fprintf(stderr, "%s\n", eb.message); return 1; }
    const double load = bench_now() - t0;
    cdf_pipeline_params pp;
    cdf_pipeline_params_default(&pp);
    pp.scheduler = sched;
    pp.threads = threads;
    cdf_pipeline *p;
    if (cdf_pipeline_create(&p, m, &pp, &eb)) { fprintf(stderr, "%s\n", eb.message); return 1; }
    const char *prompt = "portrait photo of a old warrior chief";
    uint64_t seed = 0;
    cdf_generate_params g;
    cdf_generate_params_default(&g);
    g.prompts = &prompt;
    g.n_prompts = 1;
    g.num_images_per_prompt = (size_t)batch;
    g.num_inference_steps = steps;
    g.height = g.width = size;
    g.seeds = &seed;
    g.n_seeds = 1;
    g.vae_tiling = low;
    g.vae_slicing = low || slicing;
    g.attention_slice = low ? 64 : 0;
    stage_times st = {0, 0, 0, 0};
    g.progress = on_progress;
    g.progress_user_data = &st;
    cdf_images *im;
    t0 = bench_now();
    if (cdf_pipeline_generate(p, &g, &im)) { fprintf(stderr, "%s\n", cdf_pipeline_last_error(p)); return 1; }
    const double total = bench_now() - t0;
    const double rss = bench_peak_rss_mb();
    printf("%s %dx%d batch %d, %d %s steps, %s%s: total %.2f s (text %.2f, denoise %.2f = %.2f s/step, VAE %.2f), "
           "load %.2f s, peak RSS %.0f MiB\n",
           argv[1], size, size, batch, st.steps, sched, dtype, resident ? ", resident" : low ? ", low-memory" : slicing ? ", staged, VAE slicing" : ", staged",
           total, st.text, st.denoise, st.steps ? st.denoise / st.steps : 0, st.vae, load, rss);
    printf("JSON {\"what\": \"generate %dx%d batch %d %d steps %s %s%s\", \"seconds\": %.3f, \"load_seconds\": %.3f, "
           "\"peak_rss_mb\": %.0f}\n",
           size, size, batch, steps, sched, dtype, low ? " low-memory" : "", total, load, rss);
    cdf_images_free(im);
    cdf_pipeline_free(p);
    cdf_model_free(m);
    return 0;
}
