/* Writes a full-size diffusers model folder with random fp16 weights, built
 * from a published pipeline's config files (no download needed; speed and
 * memory do not depend on the weights' values):
 *
 *   make_synthetic_model CONFIG_DIR TOKENIZER_DIR OUT_DIR
 *
 * CONFIG_DIR is e.g. ../shared/reference/configs/stable-diffusion-v1-5,
 * TOKENIZER_DIR a folder with vocab.json and merges.txt. The tensor names and
 * shapes are exactly those our loaders ask for (each component is built once
 * from a recording synthetic source), so the folder loads like a real one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/dtype.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"

static void die(const char *what, const char *msg) {
    fprintf(stderr, "make_synthetic_model: %s: %s\n", what, msg);
    exit(1);
}

static void copy_file(const char *from, const char *to) {
    char *text;
    size_t n;
    cdf_err err = {0};
    if (cdf_read_file(from, (size_t)64 << 20, &text, &n, &err)) die(from, err.msg);
    FILE *f = fopen(to, "wb");
    if (!f || fwrite(text, 1, n, f) != n || fclose(f) != 0) die(to, strerror(errno));
    free(text);
}

static void mkdirs(const char *out, const char *sub) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", out, sub);
    if (mkdir(p, 0755) != 0 && errno != EEXIST) die(p, strerror(errno));
}

/* Builds one component from a recording synthetic source, then writes every
 * tensor it asked for as F16. */
static void write_component(const char *cfgdir, const char *out, const char *comp, const char *file, int which) {
    char path[4096];
    cdf_err err = {0};
    cdf_json j;
    snprintf(path, sizeof path, "%s/%s/config.json", cfgdir, comp);
    if (cdf_json_load(&j, path, &err)) die(path, err.msg);
    cdf_backend *be;
    cdf_st_file *syn;
    if (cdf_backend_create(&be, &err) || cdf_st_synthetic(&syn, 1, &err)) die("setup", err.msg);
    cdf_weight_opts wo = {.storage = CDF_DTYPE_BF16, .compute = CDF_COMPUTE_BF16};
    void *m = NULL;
    cdf_status st = which == 0 ? cdf_clip_text_create((cdf_clip_text **)&m, be, &j, syn, &wo, &err)
                  : which == 1 ? cdf_unet_create((cdf_unet **)&m, be, &j, syn, &wo, &err)
                               : cdf_vae_create((cdf_vae **)&m, be, &j, syn, &wo, &err);
    if (st) die(comp, err.msg);
    if (which == 0) cdf_clip_text_free(m);
    else if (which == 1) cdf_unet_free(m);
    else cdf_vae_free(m);
    const size_t n = cdf_st_synthetic_count(syn);
    cdf_st_out *outs = calloc(n, sizeof *outs);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += cdf_st_synthetic_at(syn, i)->numel;
    uint16_t *h = malloc(total * sizeof(uint16_t));
    float *tmp = NULL;
    size_t off = 0, params = 0;
    for (size_t i = 0; i < n; i++) {
        const cdf_st_tensor *t = cdf_st_synthetic_at(syn, i);
        float *nt = realloc(tmp, (t->numel ? t->numel : 1) * sizeof(float));
        if (!nt || !h || !outs) die(comp, "out of memory");
        tmp = nt;
        cdf_st_synthetic_values(syn, t, tmp);
        for (size_t k = 0; k < t->numel; k++) h[off + k] = cdf_f32_to_f16(tmp[k]);
        outs[i].name = t->name;
        outs[i].dtype = CDF_DTYPE_F16;
        outs[i].ndim = t->ndim;
        memcpy(outs[i].shape, t->shape, sizeof t->shape);
        outs[i].data = h + off;
        off += t->numel;
        params += t->numel;
    }
    mkdirs(out, comp);
    snprintf(path, sizeof path, "%s/%s/%s", out, comp, file);
    if (cdf_st_write(path, outs, n, &err)) die(path, err.msg);
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s/%s/config.json", cfgdir, comp);
    snprintf(to, sizeof to, "%s/%s/config.json", out, comp);
    copy_file(from, to);
    printf("%s: %zu tensors, %.1f M parameters, %.0f MB (fp16)\n", comp, n, (double)params / 1e6,
           (double)params * 2 / 1e6);
    free(outs);
    free(h);
    free(tmp);
    cdf_st_close(syn);
    cdf_backend_free(be);
    cdf_json_free(&j);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: make_synthetic_model CONFIG_DIR TOKENIZER_DIR OUT_DIR\n");
        return 2;
    }
    const char *cfg = argv[1], *tok = argv[2], *out = argv[3];
    if (mkdir(out, 0755) != 0 && errno != EEXIST) die(out, strerror(errno));
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s/model_index.json", cfg);
    snprintf(to, sizeof to, "%s/model_index.json", out);
    copy_file(from, to);
    mkdirs(out, "scheduler");
    snprintf(from, sizeof from, "%s/scheduler/scheduler_config.json", cfg);
    snprintf(to, sizeof to, "%s/scheduler/scheduler_config.json", out);
    copy_file(from, to);
    mkdirs(out, "tokenizer");
    const char *tf[4] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(from, sizeof from, "%s/%s", i < 2 ? tok : cfg, i < 2 ? tf[i] : tf[i]);
        if (i >= 2) snprintf(from, sizeof from, "%s/tokenizer/%s", cfg, tf[i]);
        snprintf(to, sizeof to, "%s/tokenizer/%s", out, tf[i]);
        copy_file(from, to);
    }
    write_component(cfg, out, "text_encoder", "model.safetensors", 0);
    write_component(cfg, out, "vae", "diffusion_pytorch_model.safetensors", 2);
    write_component(cfg, out, "unet", "diffusion_pytorch_model.safetensors", 1);
    printf("wrote %s\n", out);
    return 0;
}
