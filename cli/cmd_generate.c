/* cdiffusers generate: the text-to-image command. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cdiffusers.h"
#include "commands.h"
#include "io/safetensors.h"

#ifndef CDF_DEFAULT_MODEL_DIR
#define CDF_DEFAULT_MODEL_DIR "models/shapes-tiny"
#endif

const char *cli_default_model(void) { return CDF_DEFAULT_MODEL_DIR; }

typedef struct run_stats {
    int quiet;
    double text_s, denoise_s, vae_s, last_step_s;
    int steps;
} run_stats;

static int on_progress(void *user, const cdf_progress *p) {
    run_stats *s = user;
    if (strcmp(p->stage, "text_encoder") == 0) {
        s->text_s = p->elapsed;
        if (!s->quiet) fprintf(stderr, "text encoder  %.2f s\n", p->elapsed);
    } else if (strcmp(p->stage, "denoise") == 0) {
        s->steps = p->step;
        s->denoise_s = p->elapsed;
        if (!s->quiet) {
            const int width = 30, done = p->total ? p->step * width / p->total : width;
            fprintf(stderr, "\rdenoise %3d/%-3d [", p->step, p->total);
            for (int i = 0; i < width; i++) fputc(i < done ? '=' : ' ', stderr);
            fprintf(stderr, "] %.1f s, %.2f s/step", p->elapsed, p->elapsed / p->step);
            if (p->step == p->total) fputc('\n', stderr);
        }
    } else if (strcmp(p->stage, "vae_decode") == 0) {
        s->vae_s = p->elapsed;
        if (!s->quiet) fprintf(stderr, "VAE decode    %.2f s\n", p->elapsed);
    }
    return 0;
}

/* Name of image i of n for the output pattern. */
static int output_name(char *buf, size_t cap, const char *pattern, size_t i, size_t n) {
    const char *pct = strchr(pattern, '%');
    if (pct) {
        /* one %d / %0Nd conversion and nothing else */
        const char *q = pct + 1;
        while (*q >= '0' && *q <= '9') q++;
        if (*q != 'd' || strchr(q + 1, '%')) return -1;
        char fmt[600];
        snprintf(fmt, sizeof fmt, "%s", pattern);
        fmt[q - pattern] = 'd';
        snprintf(buf, cap, fmt, (int)i);
        return 0;
    }
    if (n == 1) {
        snprintf(buf, cap, "%s", pattern);
        return 0;
    }
    const char *dot = strrchr(pattern, '.'), *slash = strrchr(pattern, '/');
    if (!dot || (slash && dot < slash)) dot = pattern + strlen(pattern);
    snprintf(buf, cap, "%.*s-%zu%s", (int)(dot - pattern), pattern, i, dot);
    return 0;
}

/* Fails early (before minutes of work) when the output folder is not writable. */
static int check_writable(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    const char *dir = dirname(tmp);
    if (access(dir, W_OK) != 0) return cli_error("%s: cannot write into folder '%s': %s", path, dir, strerror(errno));
    return 0;
}

static int load_latents(const char *path, float **out, size_t want, const int64_t shape[4]) {
    cdf_err err = {0};
    cdf_st_file *f;
    if (cdf_st_open(&f, path, &err)) return cli_error("%s", err.msg);
    const cdf_st_tensor *t;
    if (cdf_st_expect(f, "latents", 4, shape, &t, &err)) {
        cdf_st_close(f);
        return cli_error("%s", err.msg);
    }
    *out = malloc(want * sizeof(float));
    if (!*out) { cdf_st_close(f); return cli_error("out of memory"); }
    cdf_st_read_f32(t, *out);
    cdf_st_close(f);
    return 0;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int cmd_generate(const cli_options *o) {
    if (o->n_prompts == 0) return cli_error("no prompt given: use --prompt TEXT (or give the prompt as an argument)");
    const size_t B = o->n_prompts * (size_t)o->batch;
    const char *output = o->output ? o->output : "output.png";
    const int grid = o->grid_rows > 0;
    if (grid && (size_t)(o->grid_rows * o->grid_cols) != B)
        return cli_error("--grid %ldx%ld holds %ld images, but %zu prompts x --batch %ld make %zu", o->grid_rows,
                         o->grid_cols, o->grid_rows * o->grid_cols, o->n_prompts, o->batch, B);
    char name[4096];
    if (output_name(name, sizeof name, output, 0, grid ? 1 : B) != 0)
        return cli_error("--output '%s': a pattern may hold one %%d conversion (e.g. img_%%02d.png)", output);
    if (check_writable(name)) return 1;
    if (o->output_tensor && check_writable(o->output_tensor)) return 1;

    cdf_error_buf eb = {{0}};
    cdf_load_params lp;
    cdf_load_params_default(&lp);
    lp.model_dir = o->model ? o->model : cli_default_model();
    lp.variant = o->variant;
    lp.vae_dir = o->vae;
    int wd, bf16;
    cli_dtype(o->dtype, &wd, &bf16);
    lp.weight_dtype = (cdf_dtype)wd;
    lp.compute = bf16 ? CDF_COMPUTE_TYPE_BF16 : CDF_COMPUTE_TYPE_F32;
    /* One generation per run: load each component when its stage comes and
     * free it after, so the peak is the largest component, not their sum. */
    lp.memory = o->low_memory ? CDF_MEMORY_LOW : CDF_MEMORY_STAGED;
    struct timespec ts0, ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    cdf_model *m = NULL;
    if (cdf_model_load(&m, &lp, &eb)) return cli_error("%s", eb.message);
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    const double load_s = (double)(ts1.tv_sec - ts0.tv_sec) + 1e-9 * (double)(ts1.tv_nsec - ts0.tv_nsec);
    if (!o->quiet) fprintf(stderr, "loaded %s in %.2f s\n", lp.model_dir, load_s);

    /* --karras is use_karras_sigmas=true on top of --scheduler-config. */
    char *sched_cfg = NULL;
    if (o->karras || o->scheduler_config) {
        cJSON *c = o->scheduler_config ? cJSON_Parse(o->scheduler_config) : cJSON_CreateObject();
        if (!cJSON_IsObject(c)) {
            cJSON_Delete(c);
            cdf_model_free(m);
            return cli_error("--scheduler-config: '%s' is not a JSON object", o->scheduler_config);
        }
        if (o->karras) {
            cJSON_DeleteItemFromObjectCaseSensitive(c, "use_karras_sigmas");
            cJSON_AddBoolToObject(c, "use_karras_sigmas", 1);
        }
        sched_cfg = cJSON_PrintUnformatted(c);
        cJSON_Delete(c);
    }
    cdf_pipeline_params pp;
    cdf_pipeline_params_default(&pp);
    pp.threads = (int)o->threads;
    pp.scheduler = o->scheduler;
    pp.scheduler_config = sched_cfg;
    cdf_pipeline *p = NULL;
    int created = cdf_pipeline_create(&p, m, &pp, &eb) == CDF_OK;
    free(sched_cfg);
    if (!created) {
        cdf_model_free(m);
        return cli_error("%s", eb.message);
    }
    cdf_model_info info;
    cdf_model_get_info(m, &info);

    cdf_generate_params g;
    cdf_generate_params_default(&g);
    g.prompts = o->prompts;
    g.n_prompts = o->n_prompts;
    g.negative_prompts = o->negatives;
    g.n_negative_prompts = o->n_negatives;
    g.num_images_per_prompt = (size_t)o->batch;
    g.height = o->height;
    g.width = o->width;
    if (o->steps > 0) g.num_inference_steps = (int)o->steps;
    if (!isnan(o->guidance)) g.guidance_scale = o->guidance;
    g.clip_skip = (int)o->clip_skip;
    g.seeds = o->seeds;
    g.n_seeds = o->n_seeds;
    run_stats stats = {o->quiet, 0, 0, 0, 0, 0};
    g.vae_tiling = o->vae_tiling || o->low_memory;
    g.vae_slicing = o->vae_slicing || o->low_memory;
    g.attention_slice = o->attention_slice ? o->attention_slice : (o->low_memory ? 64 : 0);
    g.progress = on_progress;
    g.progress_user_data = &stats;
    float *latents = NULL;
    int rc = 0;
    if (o->latents) {
        const int64_t H = o->height ? o->height : info.default_height, W = o->width ? o->width : info.default_width;
        const int64_t shape[4] = {(int64_t)B, info.latent_channels, H / info.vae_scale_factor, W / info.vae_scale_factor};
        if (H % info.vae_scale_factor || W % info.vae_scale_factor) {
            rc = cli_error("image size %lldx%lld: both sides must be multiples of %lld", (long long)W, (long long)H,
                           (long long)info.vae_scale_factor);
            goto done;
        }
        if ((rc = load_latents(o->latents, &latents, (size_t)(shape[0] * shape[1] * shape[2] * shape[3]), shape)))
            goto done;
        g.latents = latents;
    }
    cdf_images *im = NULL;
    if (cdf_pipeline_generate(p, &g, &im)) {
        rc = cli_error("%s", cdf_pipeline_last_error(p));
        goto done;
    }
    if (grid) {
        if (cdf_images_write_grid(im, (size_t)o->grid_rows, (size_t)o->grid_cols, name, &eb)) rc = cli_error("%s", eb.message);
        else if (!o->quiet) fprintf(stderr, "wrote %s (%ldx%ld grid)\n", name, o->grid_rows, o->grid_cols);
    } else {
        for (size_t i = 0; i < im->count && !rc; i++) {
            output_name(name, sizeof name, output, i, im->count);
            if (cdf_images_write_png(im, i, name, &eb)) rc = cli_error("%s", eb.message);
            else if (!o->quiet) fprintf(stderr, "wrote %s (seed %llu)\n", name, (unsigned long long)im->seeds[i]);
        }
    }
    if (!rc && o->output_tensor) {
        cdf_err err = {0};
        cdf_st_out t = {"image", CDF_DTYPE_F32, 4, {(int64_t)im->count, im->height, im->width, 3}, im->pixels};
        if (cdf_st_write(o->output_tensor, &t, 1, &err)) rc = cli_error("%s", err.msg);
    }
    if (!rc && !o->quiet)
        fprintf(stderr,
                "time: load %.2f s, text encoder %.2f s, denoise %.2f s (%d steps, %.2f s/step), VAE decode %.2f s; "
                "peak memory %.0f MB\n",
                load_s, stats.text_s, stats.denoise_s, stats.steps, stats.steps ? stats.denoise_s / stats.steps : 0.0,
                stats.vae_s, peak_rss_mb());
    cdf_images_free(im);
done:
    free(latents);
    cdf_pipeline_free(p);
    cdf_model_free(m);
    return rc;
}
