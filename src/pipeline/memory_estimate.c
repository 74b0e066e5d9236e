/* Peak memory of a generate call (see memory_estimate.h). Sizes are summed
 * in double: a hostile request (8192x8192, batch 64) reaches terabytes,
 * which must compare correctly rather than wrap. */
#include "pipeline/memory_estimate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/unet_internal.h"
#include "pipeline/internal.h"

#define F32 4.0
/* The attention kernel's tiles (src/kernels/attention.c: QT query rows, KT keys). */
#define ATT_QT 128.0
#define ATT_KT 1024.0
/* oneDNN's own scratchpads, weight reorders and primitive caches, which do
 * not go through the arena: a fixed allowance plus a share of the scratch. */
#define BACKEND_FIXED (256.0 * 1024 * 1024)
#define BACKEND_SHARE 0.125

typedef struct est {
    double B;       /* batch of the pass */
    double threads;
    double esz;     /* bytes of a packed matmul operand */
    int bf16;
} est;

/* One arena allocation of `bytes`: the arena rounds each to 64 bytes. */
static double al(double bytes) { return ceil(bytes / 64.0) * 64.0; }
/* One allocation of n floats. */
static double fl(double n) { return al(n * F32); }
static double dmax(double a, double b) { return a > b ? a : b; }

/* cdf_attention: packed K and V for all heads, plus per-thread tiles; the
 * larger of the oneDNN-tile path and the AMX path (attention_amx.c: K padded
 * to a multiple of 32 dims and V of 16, keys to a multiple of 128). */
static double attn_kernel(const est *e, double B, double heads, double Nk, double D) {
    const double packed = 2.0 * al(B * heads * Nk * D * e->esz);
    const double tile = ATT_QT * D * e->esz + ATT_QT * ATT_KT * 6.0 + ATT_QT * D * 8.0 + ATT_QT * 8.0 +
                        ATT_KT * (D > ATT_QT ? D : ATT_QT) * F32 + 16 * 64;
    const double onednn = packed + al(e->threads * tile);
    if (!e->bf16) return onednn;
    const double Dq = ceil(D / 32.0) * 32.0, Dv = ceil(D / 16.0) * 16.0, Nkp = ceil(Nk / 128.0) * 128.0;
    const double amx = al(B * heads * Nkp * Dq * 2.0) + al(B * heads * Nkp * Dv * 2.0) +
                       al(e->threads * (16.0 * Dq * 2.0 + 16.0 * 128.0 * 8.0 + 16.0 * Dv * 8.0 + 4 * 64 + 3 * 64));
    return amx > onednn ? amx : onednn;
}

/* A linear or convolution in bf16 converts its input to bf16 in the arena:
 * input M x cin. */
static double bf16_operand(const est *e, double M, double cin) { return e->bf16 ? al(M * cin * 2.0) : 0.0; }
/* A linear or convolution may widen half-precision weights to float32 and
 * reorder them for the shape at hand, both in the arena: n weights. */
static double weights(double n) { return 2.0 * fl(n); }

/* cdf_attention_forward: o [M, inner], qkv [M, 3 inner] (self) or q [M, inner]
 * + kv [B Nc, 2 inner] (cross), the kernel, then t [M, dim]. */
static double attn_layer(const est *e, double N, double dim, double heads, double dhead, double Nc, int self) {
    const double M = e->B * N, inner = heads * dhead;
    const double io = self ? fl(M * 3.0 * inner) : fl(M * inner) + fl(e->B * Nc * 2.0 * inner);
    const double kernel = attn_kernel(e, e->B, heads, self ? N : Nc, dhead);
    const double out = fl(M * dim) + bf16_operand(e, M, inner);
    return fl(M * inner) + io + dmax(bf16_operand(e, M, dim) + weights(3.0 * inner * dim), dmax(kernel, out));
}

/* cdf_transformer2d_forward (ff = 4 I), then the self- and cross-attention
 * of each block. */
static double transformer(const est *e, double HW, double C, double heads, double Nc) {
    const double M = e->B * HW, I = C, dhead = C / heads, ff = 4.0 * I;
    const double self = attn_layer(e, HW, I, heads, dhead, 0, 1), cross = attn_layer(e, HW, I, heads, dhead, Nc, 0);
    /* g [M, C], h and tmp [M, I], and the feed-forward's row chunk (at most
     * 2048 rows): [rows, 2 ff] projection, [rows, ff] GEGLU, [rows, I] output */
    const double rows = M < 2048.0 ? M : 2048.0;
    return fl(M * C) + 2.0 * fl(M * I) + fl(rows * 2.0 * ff) + fl(rows * ff) + fl(rows * I) +
           dmax(dmax(self, cross), bf16_operand(e, rows, ff) + weights(I * 2.0 * ff));
}

/* cdf_resnet_forward: a [B HW, max(cin, cout)], h [B HW, cout], t [B, cout]. */
static double resnet(const est *e, double HW, double cin, double cout) {
    const double M = e->B * HW;
    return fl(M * dmax(cin, cout)) + fl(M * cout) + fl(e->B * cout) + bf16_operand(e, M, dmax(cin, cout)) +
           weights(9.0 * cout * dmax(cin, cout));
}

/* cdf_unet_forward: the down path keeps every output (they are the skip
 * connections); the mid block and each up-block layer write above them and
 * then move their output down over what they consumed (cdf_arena_keep), so
 * the up path holds the skips not yet used plus the current activation. */
static double unet_arena(const est *e, const cdf_unet_config *c, double h, double w, double Nc) {
    enum { MAX_SKIPS = CDF_UNET_MAX_BLOCKS * (CDF_UNET_MAX_LAYERS + 1) + 1 };
    const int n = c->nblocks;
    const double B = e->B;
    double H = h, W = w, C = (double)c->block_out[0];
    const double base = fl(B * C) + 2.0 * fl(B * (double)c->time_embed_dim) + fl(B * H * W * (double)c->in_channels) +
                        al(32.0 * MAX_SKIPS); /* the skip list */
    double skips = 0, peak = base;
    double skipC[MAX_SKIPS], skipH[MAX_SKIPS], skipW[MAX_SKIPS];
    int ns = 0;
    skips += fl(B * H * W * C); /* conv_in */
    skipC[ns] = C, skipH[ns] = H, skipW[ns++] = W;
    for (int i = 0; i < n; i++) {
        const double oc = (double)c->block_out[i];
        for (int64_t j = 0; j < c->layers_per_block[i]; j++) {
            skips += fl(B * H * W * oc);
            double t = resnet(e, H * W, C, oc);
            if (c->down_cross[i]) t = dmax(t, transformer(e, H * W, oc, (double)c->heads[i], Nc));
            peak = dmax(peak, base + skips + t);
            C = oc;
            if (ns < MAX_SKIPS) skipC[ns] = C, skipH[ns] = H, skipW[ns++] = W;
        }
        if (i < n - 1) {
            H = (double)(((int64_t)H + 1) / 2), W = (double)(((int64_t)W + 1) / 2);
            skips += fl(B * H * W * C);
            peak = dmax(peak, base + skips + bf16_operand(e, 4.0 * B * H * W, C) + weights(9.0 * C * C));
            if (ns < MAX_SKIPS) skipC[ns] = C, skipH[ns] = H, skipW[ns++] = W;
        }
    }
    double cur = fl(B * H * W * C); /* the mid block's output */
    peak = dmax(peak, base + skips + 2.0 * cur +
                          dmax(resnet(e, H * W, C, C), transformer(e, H * W, C, (double)c->heads[n - 1], Nc)));
    for (int i = 0; i < n; i++) {
        const int r = n - 1 - i;
        const double oc = (double)c->block_out[r];
        for (int64_t j = 0; j <= c->layers_per_block[r]; j++) {
            const double sC = ns > 0 ? skipC[ns - 1] : C;
            if (ns > 0) ns--;
            /* concatenation and output above the skips and cur */
            double t = fl(B * H * W * (C + sC)) + fl(B * H * W * oc) + resnet(e, H * W, C + sC, oc);
            peak = dmax(peak, base + skips + cur + t);
            skips -= fl(B * H * W * sC);
            if (skips < 0) skips = 0;
            cur = fl(B * H * W * oc);
            if (c->up_cross[i]) peak = dmax(peak, base + skips + cur + transformer(e, H * W, oc, (double)c->heads[r], Nc));
            C = oc;
        }
        if (i < n - 1) {
            H = ns > 0 ? skipH[ns - 1] : 2.0 * H, W = ns > 0 ? skipW[ns - 1] : 2.0 * W;
            /* nearest upsample and its conv above cur */
            peak = dmax(peak, base + skips + cur + 2.0 * fl(B * H * W * C) + bf16_operand(e, B * H * W, C) +
                                  weights(9.0 * C * C));
            cur = fl(B * H * W * C);
        }
    }
    return dmax(peak, base + skips + cur + fl(B * H * W * C) + fl(B * H * W * (double)c->out_channels) +
                          bf16_operand(e, B * H * W, C) + weights(9.0 * C * dmax(C, c->block_out[0])));
}

/* cdf_vae_decode: one activation at a time (each layer's output moves down
 * over its input), from the latents up to the image. */
static double vae_arena(const est *e, const cdf_vae_config *c, double h, double w) {
    const int n = c->nblocks;
    const double B = e->B;
    double H = h, W = w, C = (double)c->block_out[n - 1];
    const double base = 2.0 * fl(B * H * W * (double)c->latent_channels);
    double cur = fl(B * H * W * C);
    /* mid block: two resnets around a single-head attention over all pixels */
    const double mid_attn = fl(B * H * W * C) + attn_layer(e, H * W, C, 1, C, H * W, 1);
    double peak = base + 2.0 * cur + dmax(resnet(e, H * W, C, C), c->mid_attention ? mid_attn : 0);
    for (int i = 0; i < n; i++) {
        const double oc = (double)c->block_out[n - 1 - i];
        for (int64_t j = 0; j <= c->layers_per_block; j++) {
            peak = dmax(peak, base + cur + fl(B * H * W * oc) + resnet(e, H * W, C, oc));
            C = oc;
            cur = fl(B * H * W * C);
        }
        if (i < n - 1) {
            H *= 2, W *= 2;
            peak = dmax(peak, base + cur + 2.0 * fl(B * H * W * C) + bf16_operand(e, B * H * W, C) +
                                  weights(9.0 * C * C));
            cur = fl(B * H * W * C);
        }
    }
    return dmax(peak, base + cur + fl(B * H * W * C) + fl(B * H * W * (double)c->out_channels) +
                          bf16_operand(e, B * H * W, C) + weights(9.0 * C * C));
}

/* cdf_clip_text_forward on `prompts` rows of `tokens`. */
static double text_arena(const est *e, const cdf_clip_config *c, double tokens) {
    const double M = e->B * tokens, D = (double)c->hidden;
    const double layer = fl(M * D) + fl(M * 3.0 * D) + fl(M * (double)c->intermediate) + fl(M * D) +
                         attn_kernel(e, e->B, (double)c->heads, tokens, D / (double)c->heads) +
                         bf16_operand(e, M, (double)c->intermediate) +
                         weights(D * dmax(3.0 * D, (double)c->intermediate));
    return 2.0 * fl(M * D) + layer;
}

static uint64_t to_u64(double x) { return x >= 1.8e19 ? UINT64_MAX : (uint64_t)x; }

void cdf_mem_estimate_generate(const cdf_mem_request *r, cdf_mem_estimate *out) {
    const double B = (double)r->batch, U = r->cfg ? 2.0 * B : B, P = (double)r->prompts;
    const double f = (double)(r->vae_factor > 0 ? r->vae_factor : 1);
    const double H = (double)r->height, W = (double)r->width, h = H / f, w = W / f;
    const double L = (double)r->tokens, D = (double)r->text->hidden, lat = (double)r->unet->in_channels;
    est e = {0, r->threads > 0 ? r->threads : 1, r->bf16 ? 2.0 : 4.0, r->bf16};
    e.B = P;
    const double text = text_arena(&e, r->text, L);
    e.B = U;
    const double unet = unet_arena(&e, r->unet, h, w, L);
    e.B = B;
    const double vae = vae_arena(&e, r->vae, h, w);
    /* generate.c: cond, uncond [P, L, D], ctx [U, L, D], latents x1, x2
     * (model input), noise x2, the decoded image; the output images as
     * float pixels and uint8 (cdf_images). */
    const double nl = B * lat * h * w;
    const double buffers = ((2.0 * P + U) * L * D + 5.0 * nl + B * 3.0 * H * W) * F32 + B * H * W * 3.0 * (F32 + 1.0);
    const double arena = dmax(text, dmax(unet, vae));
    const double backend = BACKEND_FIXED + BACKEND_SHARE * arena;
    out->text_arena = to_u64(text);
    out->unet_arena = to_u64(unet);
    out->vae_arena = to_u64(vae);
    out->buffers = to_u64(buffers);
    out->backend = to_u64(backend);
    out->total = to_u64(arena + buffers + backend);
}

/* "Key:   123 kB" of /proc/meminfo, in bytes; 0 if absent. */
static uint64_t meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    uint64_t v = 0;
    const size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (strncmp(line, key, kl) == 0 && line[kl] == ':' && sscanf(line + kl + 1, "%llu", &kb) == 1) {
            v = (uint64_t)kb * 1024u;
            break;
        }
    }
    fclose(f);
    return v;
}

/* A number from a one-line file (cgroup limits); 0 if absent or "max". */
static uint64_t file_u64(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long v = 0;
    if (fscanf(f, "%llu", &v) != 1) v = 0;
    fclose(f);
    return (uint64_t)v;
}

uint64_t cdf_mem_available(void) {
    uint64_t avail = meminfo("MemAvailable");
    if (!avail) {
        const long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psz > 0) avail = (uint64_t)pages * (uint64_t)psz;
    }
    /* A container's limit (cgroup v2, then v1) binds before the machine's. */
    static const char *const lim[][2] = {
        {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
    for (int i = 0; i < 2; i++) {
        const uint64_t max = file_u64(lim[i][0]), cur = file_u64(lim[i][1]);
        if (max && max < (UINT64_C(1) << 60)) {
            const uint64_t room = max > cur ? max - cur : 0;
            if (!avail || room < avail) avail = room;
            break;
        }
    }
    return avail;
}

uint64_t cdf_mem_resident(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size, res;
    const int ok = fscanf(f, "%llu %llu", &size, &res) == 2;
    fclose(f);
    const long psz = sysconf(_SC_PAGESIZE);
    return ok && psz > 0 ? (uint64_t)res * (uint64_t)psz : 0;
}

static double gib(uint64_t b) { return (double)b / (1024.0 * 1024.0 * 1024.0); }

cdf_status cdf_mem_check(uint64_t need, uint64_t held, uint64_t available, uint64_t resident, const char *what,
                         cdf_err *err) {
    if (!available) return CDF_OK; /* unknown machine: let the allocator decide */
    const uint64_t extra = need > held ? need - held : 0;
    if (extra <= available) return CDF_OK;
    return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY,
                    "%s needs about %.1f GiB of working memory (besides the %.1f GiB this process already holds, "
                    "the loaded model included); this machine has %.1f GiB available: use a smaller size or batch",
                    what, gib(extra), gib(resident), gib(available));
}

cdf_status cdf_pipeline_check_memory(const cdf_pipeline *p, const cdf_generate_params *g, int64_t H, int64_t W,
                                     cdf_err *err) {
    const cdf_model *m = p->m;
    cdf_mem_request r = {&m->unet_cfg, &m->vae_cfg, &m->te_cfg,
                         g->n_prompts * g->num_images_per_prompt, g->n_prompts, g->guidance_scale > 1.0, H, W,
                         cdf_vae_config_scale_factor(&m->vae_cfg), (int64_t)cdf_tokenizer_max_length(m->tok),
                         cdf_exec_threads(p->ex), m->wo.compute == CDF_COMPUTE_BF16};
    cdf_mem_estimate e;
    cdf_mem_estimate_generate(&r, &e);
    char what[160];
    snprintf(what, sizeof what, "a %lldx%lld image with batch %zu%s", (long long)W, (long long)H, r.batch,
             r.cfg ? " (x2 for classifier-free guidance)" : "");
    return cdf_mem_check(e.total, cdf_exec_arena(p->ex)->touched, cdf_mem_available(), cdf_mem_resident(), what,
                         err);
}
