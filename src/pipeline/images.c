/* Post-processing (diffusers' VaeImageProcessor with output_type "np" and
 * numpy_to_pil), generation metadata, PNG files and grids. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/png.h"
#include "pipeline/images_internal.h"
#include "pipeline/internal.h"

void cdf_images_free(cdf_images *im) {
    if (!im) return;
    if (im->parameters)
        for (size_t i = 0; i < im->count; i++) free(im->parameters[i]);
    free(im->parameters);
    free(im->pixels);
    free(im->rgb8);
    free(im->seeds);
    free(im->prompt_index);
    free(im->metadata_json);
    free(im);
}

/* Appends printf output to a growing string. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t nc = (b->cap ? b->cap * 2 : 256) + (size_t)k;
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = nc;
    }
}

static char *a1111_parameters(const cdf_images_meta *m, size_t prompt, uint64_t seed) {
    const cdf_generate_params *g = m->g;
    sbuf b = {0};
    sb_printf(&b, "%s", g->prompts[prompt]);
    if (g->n_negative_prompts && g->guidance_scale > 1.0)
        sb_printf(&b, "\nNegative prompt: %s", g->negative_prompts[g->n_negative_prompts == 1 ? 0 : prompt]);
    cdf_model_info info;
    cdf_model_get_info(m->p->m, &info);
    sb_printf(&b, "\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %llu, Size: %lldx%lld, Model: %s",
              g->num_inference_steps, cdf_sampler_display_name(m->p->sched), g->guidance_scale,
              (unsigned long long)seed, (long long)m->width, (long long)m->height, info.name);
    if (g->clip_skip) sb_printf(&b, ", Clip skip: %d", g->clip_skip + 1); /* A1111 counts the last layer as 1 */
    sb_printf(&b, ", Scheduler: %s, Version: cdiffusers %s", cdf_pipeline_scheduler_class(m->p), cdf_version());
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

static char *metadata_json(const cdf_images_meta *m) {
    const cdf_generate_params *g = m->g;
    cJSON *o = cJSON_CreateObject(), *pr = cJSON_AddArrayToObject(o, "prompts");
    cJSON *ng = cJSON_AddArrayToObject(o, "negative_prompts"), *sd = cJSON_AddArrayToObject(o, "seeds");
    if (!o || !pr || !ng || !sd) { cJSON_Delete(o); return NULL; }
    for (size_t i = 0; i < g->n_prompts; i++) cJSON_AddItemToArray(pr, cJSON_CreateString(g->prompts[i]));
    for (size_t i = 0; i < g->n_negative_prompts; i++)
        cJSON_AddItemToArray(ng, cJSON_CreateString(g->negative_prompts[i]));
    const size_t B = g->n_prompts * g->num_images_per_prompt;
    for (size_t i = 0; i < B; i++) cJSON_AddItemToArray(sd, cJSON_CreateNumber((double)m->seeds[i]));
    cJSON_AddNumberToObject(o, "num_images_per_prompt", (double)g->num_images_per_prompt);
    cJSON_AddNumberToObject(o, "num_inference_steps", g->num_inference_steps);
    cJSON_AddNumberToObject(o, "guidance_scale", g->guidance_scale);
    cJSON_AddNumberToObject(o, "clip_skip", g->clip_skip);
    cJSON_AddNumberToObject(o, "height", (double)m->height);
    cJSON_AddNumberToObject(o, "width", (double)m->width);
    cJSON_AddBoolToObject(o, "latents_given", g->latents != NULL);
    cJSON_AddStringToObject(o, "scheduler", cdf_pipeline_scheduler_class(m->p));
    cJSON *cfg = cJSON_Parse(cdf_pipeline_scheduler_config(m->p));
    if (cfg) cJSON_AddItemToObject(o, "scheduler_config", cfg);
    cdf_model_info info;
    cdf_model_get_info(m->p->m, &info);
    cJSON_AddStringToObject(o, "model", info.name);
    cJSON_AddStringToObject(o, "generator", "torch.Generator('cpu')");
    cJSON_AddStringToObject(o, "version", cdf_version());
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

cdf_status cdf_images_build(cdf_images **out, const float *img, size_t B, const cdf_images_meta *m, cdf_err *err) {
    *out = NULL;
    const int64_t H = m->height, W = m->width;
    const size_t px = (size_t)(H * W);
    cdf_images *im = cdf_calloc(1, sizeof *im, err);
    if (!im) return CDF_ERR_OUT_OF_MEMORY;
    im->count = B;
    im->height = H;
    im->width = W;
    if (!(im->pixels = cdf_malloc(B * px * 3, sizeof(float), err)) || !(im->rgb8 = cdf_malloc(B * px * 3, 1, err)) ||
        !(im->seeds = cdf_malloc(B, sizeof(uint64_t), err)) ||
        !(im->prompt_index = cdf_malloc(B, sizeof(size_t), err)) ||
        !(im->parameters = cdf_calloc(B, sizeof(char *), err)))
        goto oom;
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < 3; c++)
            for (size_t i = 0; i < px; i++) {
                /* (x / 2 + 0.5).clamp(0, 1), then numpy's round(x * 255) (half to even) */
                float v = img[(b * 3 + c) * px + i] / 2.0f + 0.5f;
                v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                im->pixels[(b * px + i) * 3 + c] = v;
                im->rgb8[(b * px + i) * 3 + c] = (uint8_t)rintf(v * 255.0f);
            }
    for (size_t b = 0; b < B; b++) {
        im->seeds[b] = m->seeds[b];
        im->prompt_index[b] = b / m->g->num_images_per_prompt;
        if (!(im->parameters[b] = a1111_parameters(m, im->prompt_index[b], im->seeds[b]))) goto oom;
    }
    if (!(im->metadata_json = metadata_json(m))) goto oom;
    *out = im;
    return CDF_OK;
oom:
    cdf_images_free(im);
    return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory building the output images");
}

static cdf_status finish(cdf_status st, const cdf_err *e, cdf_error_buf *out) {
    if (st && out) snprintf(out->message, sizeof out->message, "%s", e->msg);
    return st;
}

cdf_status cdf_images_write_png(const cdf_images *im, size_t i, const char *path, cdf_error_buf *ebuf) {
    cdf_err err = {0};
    if (i >= im->count)
        return finish(cdf_errf(&err, CDF_ERR_INVALID_ARGUMENT, "image %zu of %zu", i, im->count), &err, ebuf);
    cdf_png_text t[2] = {{"parameters", im->parameters[i]}, {"cdiffusers", im->metadata_json}};
    cdf_status st = cdf_png_write(path, im->rgb8 + i * (size_t)(im->height * im->width * 3), im->width, im->height, t,
                                  2, &err);
    return finish(st, &err, ebuf);
}

cdf_status cdf_images_write_grid(const cdf_images *im, size_t rows, size_t cols, const char *path,
                                 cdf_error_buf *ebuf) {
    cdf_err err = {0};
    if (rows == 0 || cols == 0 || rows * cols != im->count)
        return finish(cdf_errf(&err, CDF_ERR_INVALID_ARGUMENT,
                               "a %zux%zu grid needs %zu images, but there are %zu", rows, cols, rows * cols,
                               im->count),
                      &err, ebuf);
    const size_t h = (size_t)im->height, w = (size_t)im->width, gw = cols * w;
    uint8_t *g = cdf_malloc(rows * h, gw * 3, &err);
    if (!g) return finish(CDF_ERR_OUT_OF_MEMORY, &err, ebuf);
    for (size_t k = 0; k < im->count; k++) {
        const size_t r = k / cols, c = k % cols;
        for (size_t y = 0; y < h; y++)
            memcpy(g + ((r * h + y) * gw + c * w) * 3, im->rgb8 + ((k * h + y) * w) * 3, w * 3);
    }
    cdf_png_text t[2] = {{"parameters", im->parameters[0]}, {"cdiffusers", im->metadata_json}};
    cdf_status st = cdf_png_write(path, g, (int64_t)gw, (int64_t)(rows * h), t, 2, &err);
    free(g);
    return finish(st, &err, ebuf);
}
