/* Text-to-image, in the order of diffusers 0.26.3's
 * StableDiffusionPipeline.__call__:
 *   encode prompts (and negatives) -> CFG batch [uncond, cond]
 *   latents (given, or drawn from the generators) x init_noise_sigma
 *   for t in timesteps: scale_model_input -> UNet -> guidance -> step
 *   VAE decode of latents / scaling_factor -> clamp(x/2 + 0.5) -> uint8 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "pipeline/images_internal.h"
#include "pipeline/internal.h"
#include "pipeline/memory_estimate.h"
#include "rng/torch_rng.h"

#define MAX_BATCH 64
#define MAX_PROMPTS 1024
#define MAX_SIDE 8192

void cdf_generate_params_default(cdf_generate_params *g) {
    memset(g, 0, sizeof *g);
    g->num_images_per_prompt = 1;
    g->num_inference_steps = 50;
    g->guidance_scale = 7.5;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Noise as diffusers' randn_tensor draws it: one generator -> one randn call
 * of the whole shape; a list -> one call of shape (1, ...) per image. */
typedef struct gen_set {
    cdf_rng *g;
    size_t n;
} gen_set;

static cdf_status fill_noise(void *user, float *out, const int64_t shape[4], cdf_err *err) {
    gen_set *gs = user;
    size_t per = (size_t)(shape[1] * shape[2] * shape[3]);
    if (gs->n == 1) {
        cdf_rng_randn_f32(&gs->g[0], out, per * (size_t)shape[0]);
        return CDF_OK;
    }
    if ((size_t)shape[0] != gs->n)
        return cdf_errf(err, CDF_ERR_INTERNAL, "noise for %lld images from %zu generators", (long long)shape[0], gs->n);
    for (size_t b = 0; b < gs->n; b++) cdf_rng_randn_f32(&gs->g[b], out + b * per, per);
    return CDF_OK;
}

static uint64_t random_seed(void) {
    uint32_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &s, sizeof s) != (ssize_t)sizeof s) s = 0;
        close(fd);
    }
    if (!s) s = (uint32_t)time(NULL) ^ (uint32_t)getpid();
    return s;
}

static cdf_status check_params(const cdf_pipeline *p, const cdf_generate_params *g, int64_t *H, int64_t *W,
                               cdf_err *err) {
    cdf_model_info info;
    cdf_model_get_info(p->m, &info);
    if (!g->prompts || g->n_prompts == 0)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "no prompt given (the prompt list is empty)");
    if (g->n_prompts > MAX_PROMPTS)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%zu prompts: at most %d per call", g->n_prompts, MAX_PROMPTS);
    for (size_t i = 0; i < g->n_prompts; i++)
        if (!g->prompts[i]) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "prompt %zu is NULL", i);
    if (g->n_negative_prompts != 0 && g->n_negative_prompts != 1 && g->n_negative_prompts != g->n_prompts)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%zu negative prompts for %zu prompts: give 0, 1 or %zu",
                        g->n_negative_prompts, g->n_prompts, g->n_prompts);
    for (size_t i = 0; i < g->n_negative_prompts; i++)
        if (!g->negative_prompts || !g->negative_prompts[i])
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "negative prompt %zu is NULL", i);
    if (g->num_images_per_prompt < 1 || g->num_images_per_prompt > MAX_BATCH ||
        g->n_prompts * g->num_images_per_prompt > MAX_BATCH)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                        "%zu prompts x %zu images per prompt: the batch must be between 1 and %d images",
                        g->n_prompts, g->num_images_per_prompt, MAX_BATCH);
    *H = g->height ? g->height : info.default_height;
    *W = g->width ? g->width : info.default_width;
    /* diffusers requires multiples of 8 whatever the VAE; ours must also divide by its factor. */
    int64_t a = 8, b = info.vae_scale_factor;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    const int64_t m = 8 / a * info.vae_scale_factor; /* lcm(8, factor) */
    if (*H <= 0 || *W <= 0 || *H > MAX_SIDE || *W > MAX_SIDE || *H % m || *W % m)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                        "image size %lldx%lld (width x height): both sides must be positive multiples of %lld "
                        "and at most %d",
                        (long long)*W, (long long)*H, (long long)m, MAX_SIDE);
    if (g->num_inference_steps < 1 || g->num_inference_steps > 1000)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "num_inference_steps %d must be between 1 and 1000",
                        g->num_inference_steps);
    if (!isfinite(g->guidance_scale) || fabs(g->guidance_scale) > 1e4)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "guidance_scale %g is not a sane number", g->guidance_scale);
    const int64_t layers = p->m->te_cfg.layers;
    if (g->clip_skip < 0 || g->clip_skip >= layers)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "clip_skip %d must be between 0 and %lld", g->clip_skip,
                        (long long)layers - 1);
    if (g->attention_slice < 0 || g->attention_slice > 1 << 20)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "attention_slice %lld is out of range",
                        (long long)g->attention_slice);
    const size_t B = g->n_prompts * g->num_images_per_prompt;
    if (g->n_seeds != 0 && g->n_seeds != 1 && g->n_seeds != B)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT,
                        "%zu seeds for %zu images: give one seed (one generator for the batch) or one per image",
                        g->n_seeds, B);
    return cdf_pipeline_check_memory(p, g, *H, *W, err); /* refuse what cannot fit (memory_estimate.h) */
}

/* Encodes n prompts into emb[n, L, D]. */
static cdf_status encode(cdf_pipeline *p, const cdf_clip_text *te, const char *const *prompts, size_t n, int skip,
                         float *emb, const char *what, cdf_err *err) {
    const size_t L = cdf_tokenizer_max_length(p->m->tok);
    int64_t *ids = cdf_malloc(n * L, sizeof *ids, err);
    if (!ids) return CDF_ERR_OUT_OF_MEMORY;
    cdf_status st = CDF_OK;
    for (size_t i = 0; i < n && !st; i++) {
        st = cdf_tokenizer_encode(p->m->tok, prompts[i], ids + i * L, L, NULL, err);
        if (st) {
            /* "prompt: invalid UTF-8 ..." -> "negative prompt 2: invalid UTF-8 ..." */
            if (strncmp(err->msg, "prompt: ", 8) == 0) memmove(err->msg, err->msg + 8, strlen(err->msg + 8) + 1);
            cdf_err_prefix(err, "%s %zu", what, i + 1);
        }
    }
    cdf_clip_outputs o = {emb, NULL, NULL};
    if (!st) st = cdf_clip_text_forward(p->ex, te, ids, (int64_t)n, (int64_t)L, skip, &o, err);
    free(ids);
    return st;
}

static int report(const cdf_generate_params *g, const char *stage, int step, int total, double t0) {
    if (!g->progress) return 0;
    cdf_progress pr = {stage, step, total, now_s() - t0};
    return g->progress(g->progress_user_data, &pr);
}

typedef struct gen_state {
    float *cond, *uncond, *ctx, *lat, *lat2, *noise, *img;
    cdf_rng *gens;
    cdf_scheduler *s;
} gen_state;

static void free_state(gen_state *s) {
    free(s->cond); free(s->uncond); free(s->ctx); free(s->lat); free(s->lat2); free(s->noise); free(s->img);
    free(s->gens);
    cdf_scheduler_free(s->s);
}

static cdf_status run(cdf_pipeline *p, const cdf_generate_params *g, cdf_images **out, cdf_err *err) {
    int64_t H = 0, W = 0;
    cdf_status st = check_params(p, g, &H, &W, err);
    if (st) return st;
    const cdf_model *m = p->m;
    const size_t np = g->n_prompts, nipp = g->num_images_per_prompt, B = np * nipp;
    const int cfg = g->guidance_scale > 1.0;
    const size_t U = cfg ? 2 * B : B; /* UNet batch */
    const int64_t L = (int64_t)cdf_tokenizer_max_length(m->tok), D = m->te_cfg.hidden;
    const int64_t f = cdf_vae_config_scale_factor(&m->vae_cfg), h = H / f, w = W / f;
    const int64_t C = m->unet_cfg.in_channels;
    const size_t nl = B * (size_t)(C * h * w), ne = (size_t)(L * D);
    gen_state s = {0};
    cdf_clip_text *te = NULL;
    cdf_unet *unet = NULL;
    cdf_vae *vae = NULL;
    gen_set gs = {0};
    uint64_t seeds_used[MAX_BATCH];
    if (!(s.cond = cdf_malloc(np, ne * sizeof(float), err)) || !(s.ctx = cdf_malloc(U, ne * sizeof(float), err)) ||
        !(s.lat = cdf_malloc(nl, sizeof(float), err)) || !(s.lat2 = cdf_malloc(2 * nl, sizeof(float), err)) ||
        !(s.noise = cdf_malloc(2 * nl, sizeof(float), err)) ||
        !(s.img = cdf_malloc(B, (size_t)(3 * H * W) * sizeof(float), err)) ||
        (cfg && !(s.uncond = cdf_malloc(np, ne * sizeof(float), err)))) {
        st = CDF_ERR_OUT_OF_MEMORY;
        goto out;
    }
    /* Generators: one for the batch, or one per image. */
    gs.n = g->n_seeds == B && B > 1 ? B : 1;
    if (!(s.gens = cdf_calloc(gs.n, sizeof(cdf_rng), err))) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
    gs.g = s.gens;
    for (size_t i = 0; i < gs.n; i++) cdf_rng_seed(&gs.g[i], g->n_seeds ? g->seeds[i] : random_seed());
    for (size_t i = 0; i < B; i++) seeds_used[i] = gs.g[gs.n == 1 ? 0 : i].seed;

    /* 1. prompt embeddings; CFG batch = [uncond x B, cond x B], prompt-major */
    double t0 = now_s();
    if ((st = cdf_model_text_encoder(m, &te, err))) goto out;
    if ((st = encode(p, te, g->prompts, np, g->clip_skip, s.cond, "prompt", err))) goto out;
    if (cfg) {
        /* diffusers 0.26.3 encodes negative prompts without clip_skip. */
        const char **neg = cdf_malloc(np, sizeof *neg, err);
        if (!neg) { st = CDF_ERR_OUT_OF_MEMORY; goto out; }
        for (size_t i = 0; i < np; i++)
            neg[i] = g->n_negative_prompts == 0 ? "" : g->negative_prompts[g->n_negative_prompts == 1 ? 0 : i];
        st = encode(p, te, neg, np, 0, s.uncond, "negative prompt", err);
        free(neg);
        if (st) goto out;
    }
    for (size_t i = 0; i < B; i++) {
        if (cfg) memcpy(s.ctx + i * ne, s.uncond + (i / nipp) * ne, ne * sizeof(float));
        memcpy(s.ctx + ((cfg ? B : 0) + i) * ne, s.cond + (i / nipp) * ne, ne * sizeof(float));
    }
    cdf_model_release_text_encoder(m, te); /* staged mode: frees it before the UNet comes in */
    te = NULL;
    cdf_arena_trim(cdf_exec_arena(p->ex));
    if (report(g, "text_encoder", 1, 1, t0)) { st = cdf_errf(err, CDF_ERR_CANCELLED, "cancelled"); goto out; }

    /* 2. scheduler and initial latents */
    if ((st = cdf_pipeline_new_scheduler(p, &s.s, err))) goto out;
    cdf_scheduler_set_default_noise_seed(s.s, seeds_used[0]);
    if ((st = cdf_scheduler_set_timesteps(s.s, g->num_inference_steps, err))) goto out;
    const int64_t shape[4] = {(int64_t)B, C, h, w}, shape2[4] = {(int64_t)U, C, h, w};
    cdf_noise_source ns = {fill_noise, &gs};
    if (g->latents) memcpy(s.lat, g->latents, nl * sizeof(float));
    else if ((st = fill_noise(&gs, s.lat, shape, err))) goto out;
    const float sigma0 = (float)cdf_scheduler_init_noise_sigma(s.s);
    for (size_t i = 0; i < nl; i++) s.lat[i] *= sigma0;

    /* 3. denoising loop */
    cdf_exec_set_attention_slice(p->ex, g->attention_slice);
    if ((st = cdf_model_unet(m, &unet, err))) goto out;
    const size_t nt = cdf_scheduler_num_timesteps(s.s);
    const float gsc = (float)g->guidance_scale;
    t0 = now_s();
    for (size_t it = 0; it < nt; it++) {
        const double t = cdf_scheduler_timestep(s.s, it);
        memcpy(s.lat2, s.lat, nl * sizeof(float));
        if (cfg) memcpy(s.lat2 + nl, s.lat, nl * sizeof(float));
        if ((st = cdf_scheduler_scale_model_input(s.s, s.lat2, s.lat2, shape2, t, err))) goto out;
        const float tf = (float)t;
        if ((st = cdf_unet_forward(p->ex, unet, s.noise, s.lat2, (int64_t)U, h, w, &tf, 1, s.ctx, L, NULL, NULL,
                                   err)))
            goto out;
        if (cfg) /* uncond + scale * (text - uncond) */
            for (size_t i = 0; i < nl; i++) s.noise[i] = s.noise[i] + gsc * (s.noise[nl + i] - s.noise[i]);
        if ((st = cdf_scheduler_step(s.s, s.noise, t, s.lat, shape, &ns, NULL, NULL, err))) goto out;
        if (report(g, "denoise", (int)it + 1, (int)nt, t0)) {
            st = cdf_errf(err, CDF_ERR_CANCELLED, "cancelled at step %zu of %zu", it + 1, nt);
            goto out;
        }
    }

    cdf_model_release_unet(m, unet);
    unet = NULL;
    cdf_arena_trim(cdf_exec_arena(p->ex)); /* the VAE's activations have other shapes */

    /* 4. decode and post-process */
    t0 = now_s();
    if ((st = cdf_model_vae(m, &vae, err))) goto out;
    {
        /* VAE slicing: one image at a time; tiling: tile by tile within an image. */
        const size_t per = g->vae_slicing ? 1 : B, il = (size_t)(C * h * w), io = (size_t)(3 * H * W);
        for (size_t b0 = 0; b0 < B && !st; b0 += per) {
            const size_t nb = B - b0 < per ? B - b0 : per;
            st = g->vae_tiling ? cdf_vae_decode_tiled(p->ex, vae, s.img + b0 * io, s.lat + b0 * il, (int64_t)nb, h, w, err)
                               : cdf_vae_decode(p->ex, vae, s.img + b0 * io, s.lat + b0 * il, (int64_t)nb, h, w, err);
        }
        if (st) goto out;
    }
    if (report(g, "vae_decode", 1, 1, t0)) { st = cdf_errf(err, CDF_ERR_CANCELLED, "cancelled"); goto out; }
    cdf_images_meta meta = {g, p, H, W, seeds_used};
    st = cdf_images_build(out, s.img, B, &meta, err);
out:
    if (te) cdf_model_release_text_encoder(m, te);
    if (unet) cdf_model_release_unet(m, unet);
    if (vae) cdf_model_release_vae(m, vae);
    free_state(&s);
    return st;
}

cdf_status cdf_pipeline_generate(cdf_pipeline *p, const cdf_generate_params *g, cdf_images **out) {
    *out = NULL;
    cdf_err err = {0};
    if (!g) {
        cdf_errf(&err, CDF_ERR_INVALID_ARGUMENT, "no parameters given");
        return cdf_pipeline_fail(p, &err);
    }
    cdf_status st = run(p, g, out, &err);
    if (st) return cdf_pipeline_fail(p, &err);
    return CDF_OK;
}
