/* txt2img: the smallest complete cdiffusers program.
 *   txt2img MODEL_DIR "a prompt" out.png [seed]
 * Build: cc txt2img.c -lcdiffusers (see docs/API.md). */
#include <stdio.h>
#include <stdlib.h>

#include "cdiffusers.h"

static int on_progress(void *user, const cdf_progress *p) {
    (void)user;
    if (p->total > 1) fprintf(stderr, "\r%s %d/%d", p->stage, p->step, p->total);
    return 0; /* non-zero would cancel */
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT OUT.png [SEED]\n", argv[0]);
        return 2;
    }
    cdf_error_buf err;
    cdf_load_params lp;
    cdf_load_params_default(&lp);
    lp.model_dir = argv[1];
    cdf_model *model;
    if (cdf_model_load(&model, &lp, &err) != CDF_OK) {
        fprintf(stderr, "load failed: %s\n", err.message);
        return 1;
    }
    cdf_pipeline_params pp;
    cdf_pipeline_params_default(&pp);
    pp.scheduler = "dpm++2m"; /* DPMSolverMultistepScheduler, from the model's config */
    cdf_pipeline *pipe;
    if (cdf_pipeline_create(&pipe, model, &pp, &err) != CDF_OK) {
        fprintf(stderr, "pipeline failed: %s\n", err.message);
        cdf_model_free(model);
        return 1;
    }
    const char *prompt = argv[2];
    uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    cdf_generate_params g;
    cdf_generate_params_default(&g);
    g.prompts = &prompt;
    g.n_prompts = 1;
    g.num_inference_steps = 20;
    g.seeds = &seed;
    g.n_seeds = 1;
    g.progress = on_progress;
    cdf_images *images;
    int rc = 0;
    if (cdf_pipeline_generate(pipe, &g, &images) != CDF_OK) {
        fprintf(stderr, "\ngenerate failed: %s\n", cdf_pipeline_last_error(pipe));
        rc = 1;
    } else {
        if (cdf_images_write_png(images, 0, argv[3], &err) != CDF_OK) {
            fprintf(stderr, "\n%s\n", err.message);
            rc = 1;
        } else {
            fprintf(stderr, "\nwrote %s (%lldx%lld)\n", argv[3], (long long)images->width, (long long)images->height);
        }
        cdf_images_free(images);
    }
    cdf_pipeline_free(pipe);
    cdf_model_free(model);
    return rc;
}
