/* Loading a diffusers model folder: model_index.json names the components;
 * each is loaded from its own folder and config.json. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"
#include "models/component.h"
#include "pipeline/internal.h"

void cdf_load_params_default(cdf_load_params *p) {
    memset(p, 0, sizeof *p);
    p->weight_dtype = CDF_DTYPE_F32;
    p->compute = CDF_COMPUTE_TYPE_F32;
}

static void set_err(cdf_error_buf *out, const cdf_err *err) {
    if (out) snprintf(out->message, sizeof out->message, "%s", err->msg);
}

/* Checks model_index.json's entry for a component: ["library", "Class"]. */
static cdf_status expect_component(const cdf_json *idx, const char *key, const char *cls, cdf_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(idx->root, key);
    if (!v || cJSON_IsNull(v))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: component '%s' is missing", idx->label, key);
    const cJSON *c = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, 1) : NULL;
    if (!cJSON_IsString(c))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: component '%s' must be [\"library\", \"ClassName\"]", idx->label,
                        key);
    if (cls && strcmp(c->valuestring, cls) != 0)
        return cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s: component '%s' is %s; only %s is supported", idx->label, key,
                        c->valuestring, cls);
    return CDF_OK;
}

static cdf_status check_dir(const char *path, const char *what, cdf_err *err) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cdf_errf(err, CDF_ERR_IO, "%s: %s folder not found", path, what);
    return CDF_OK;
}

static cdf_status load_scheduler_config(cdf_model *m, const char *dir, cdf_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", dir);
    cdf_json j;
    cdf_status st = cdf_json_load(&j, path, err);
    if (st) return st;
    const char *cls;
    if ((st = cdf_json_req_str(&j, "_class_name", &cls, err))) { cdf_json_free(&j); return st; }
    snprintf(m->sched_class, sizeof m->sched_class, "%s", cls);
    /* StableDiffusionPipeline.__init__ rewrites outdated scheduler configs:
     * steps_offset != 1 becomes 1 and clip_sample true becomes false (only
     * where the config has those keys). */
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(j.root, "steps_offset");
    if (so && cJSON_IsNumber(so) && so->valuedouble != 1.0)
        cJSON_ReplaceItemInObjectCaseSensitive(j.root, "steps_offset", cJSON_CreateNumber(1));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j.root, "clip_sample")))
        cJSON_ReplaceItemInObjectCaseSensitive(j.root, "clip_sample", cJSON_CreateFalse());
    /* The scheduler must exist in our registry, with valid options. */
    cdf_scheduler *s;
    if ((st = cdf_scheduler_create(&s, cls, j.root, NULL, err))) {
        cdf_err_prefix(err, "%s", path);
        cdf_json_free(&j);
        return st;
    }
    cdf_scheduler_free(s);
    m->sched_config = j.root; /* keep the parsed document */
    return CDF_OK;
}

/* The weights variant ("fp16") a component is read with, NULL for none. */
static const char *variant_of(const cdf_model *m, int is_vae) {
    return m->variant[0] && (!is_vae || m->vae_variant) ? m->variant : NULL;
}

cdf_status cdf_model_load(cdf_model **out, const cdf_load_params *p, cdf_error_buf *ebuf) {
    *out = NULL;
    cdf_err err = {0};
    cdf_model *m = NULL;
    cdf_json idx = {0};
    cdf_status st;
    if (!p || !p->model_dir || !*p->model_dir) {
        st = cdf_errf(&err, CDF_ERR_INVALID_ARGUMENT, "no model folder given");
        goto fail;
    }
    if (p->weight_dtype != CDF_DTYPE_F32 && p->weight_dtype != CDF_DTYPE_F16 && p->weight_dtype != CDF_DTYPE_BF16) {
        st = cdf_errf(&err, CDF_ERR_INVALID_ARGUMENT, "weight dtype must be f32, f16 or bf16");
        goto fail;
    }
    const char *dir = p->model_dir;
    if ((st = check_dir(dir, "model", &err))) goto fail;
    if (!(m = cdf_calloc(1, sizeof *m, &err))) { st = CDF_ERR_OUT_OF_MEMORY; goto fail; }
    m->wo.storage = p->weight_dtype;
    m->wo.compute = p->compute == CDF_COMPUTE_TYPE_BF16 ? CDF_COMPUTE_BF16 : CDF_COMPUTE_F32;
    /* The folder's name, for image metadata ("Model: stable-diffusion-v1-5"). */
    snprintf(m->name, sizeof m->name, "%s", dir);
    for (size_t n = strlen(m->name); n > 1 && m->name[n - 1] == '/'; n--) m->name[n - 1] = '\0';
    const char *base = strrchr(m->name, '/');
    if (base) memmove(m->name, base + 1, strlen(base));

    char path[4096];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    if ((st = cdf_json_load(&idx, path, &err))) goto fail;
    if (cJSON_GetObjectItemCaseSensitive(idx.root, "text_encoder_2")) {
        st = cdf_errf(&err, CDF_ERR_UNSUPPORTED,
                      "%s: this is an SDXL-style pipeline (text_encoder_2); only SD 1.x/2.x pipelines are supported",
                      path);
        goto fail;
    }
    if ((st = expect_component(&idx, "tokenizer", "CLIPTokenizer", &err)) ||
        (st = expect_component(&idx, "text_encoder", "CLIPTextModel", &err)) ||
        (st = expect_component(&idx, "unet", "UNet2DConditionModel", &err)) ||
        (st = expect_component(&idx, "scheduler", NULL, &err)) ||
        (!p->vae_dir && (st = expect_component(&idx, "vae", "AutoencoderKL", &err))))
        goto fail;
    if ((st = cdf_backend_create(&m->be, &err))) goto fail;
    m->staged = p->memory == CDF_MEMORY_STAGED || p->memory == CDF_MEMORY_LOW;
    m->wo.stream = p->memory == CDF_MEMORY_LOW;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    snprintf(m->variant, sizeof m->variant, "%s", p->variant ? p->variant : "");
    if (p->vae_dir) snprintf(m->vae_path, sizeof m->vae_path, "%s", p->vae_dir);
    else snprintf(m->vae_path, sizeof m->vae_path, "%s/vae", dir);
    m->vae_variant = p->vae_dir == NULL; /* a stand-alone VAE folder usually has no variant files */
    snprintf(path, sizeof path, "%s/tokenizer", dir);
    if ((st = check_dir(path, "tokenizer", &err)) || (st = cdf_tokenizer_load(&m->tok, path, &err))) goto fail;
    /* Configs first (model facts without the weights), then the weights:
     * loaded now (resident) or only checked (staged: loaded per stage). */
    const char *comp[3] = {"text_encoder", "unet", NULL};
    for (int i = 0; i < 3; i++) {
        if (comp[i]) snprintf(path, sizeof path, "%s/%s", dir, comp[i]);
        else snprintf(path, sizeof path, "%s", m->vae_path);
        cdf_json j;
        if ((st = check_dir(path, comp[i] ? comp[i] : "VAE", &err)) || (st = cdf_component_config(&j, path, &err)))
            goto fail;
        st = i == 0 ? cdf_clip_read_config(&m->te_cfg, &j, &err)
           : i == 1 ? cdf_unet_read_config(&m->unet_cfg, &j, &err)
                    : cdf_vae_read_config(&m->vae_cfg, &j, &err);
        cdf_json_free(&j);
        if (st) goto fail;
        if (m->staged) {
            cdf_st_file *f;
            if ((st = cdf_component_open_weights(&f, path, i == 0 ? "model" : "diffusion_pytorch_model",
                                                 variant_of(m, i == 2), &err)))
                goto fail;
            cdf_st_close(f);
        }
    }
    if (!m->staged) {
        if ((st = cdf_model_text_encoder(m, &m->te, &err)) || (st = cdf_model_unet(m, &m->unet, &err)) ||
            (st = cdf_model_vae(m, &m->vae, &err)))
            goto fail;
    }
    if ((st = load_scheduler_config(m, dir, &err))) goto fail;
    /* Cross-component consistency. */
    const cdf_unet_config *uc = &m->unet_cfg;
    if (uc->cross_attention_dim != m->te_cfg.hidden) {
        st = cdf_errf(&err, CDF_ERR_FORMAT,
                      "%s/unet/config.json: cross_attention_dim %lld does not match the text encoder's hidden_size %lld",
                      dir, (long long)uc->cross_attention_dim, (long long)m->te_cfg.hidden);
        goto fail;
    }
    if (uc->in_channels != m->vae_cfg.latent_channels) {
        st = cdf_errf(&err, CDF_ERR_FORMAT, "%s/unet/config.json: in_channels %lld does not match the VAE's latent_channels %lld",
                      dir, (long long)uc->in_channels, (long long)m->vae_cfg.latent_channels);
        goto fail;
    }
    cdf_json_free(&idx);
    *out = m;
    return CDF_OK;
fail:
    cdf_json_free(&idx);
    set_err(ebuf, &err);
    cdf_model_free(m);
    return st;
}

void cdf_model_free(cdf_model *m) {
    if (!m) return;
    cdf_tokenizer_free(m->tok);
    cdf_clip_text_free(m->te);
    cdf_unet_free(m->unet);
    cdf_vae_free(m->vae);
    cJSON_Delete(m->sched_config);
    cdf_backend_free(m->be);
    free(m);
}

/* Resident components are returned as they are; staged ones are loaded now
 * and freed by the matching release call. */
cdf_status cdf_model_text_encoder(const cdf_model *m, cdf_clip_text **out, cdf_err *err) {
    if (m->te) { *out = m->te; return CDF_OK; }
    char path[4200];
    snprintf(path, sizeof path, "%s/text_encoder", m->dir);
    return cdf_clip_text_load(out, m->be, path, variant_of(m, 0), &m->wo, err);
}
cdf_status cdf_model_unet(const cdf_model *m, cdf_unet **out, cdf_err *err) {
    if (m->unet) { *out = m->unet; return CDF_OK; }
    char path[4200];
    snprintf(path, sizeof path, "%s/unet", m->dir);
    return cdf_unet_load(out, m->be, path, variant_of(m, 0), &m->wo, err);
}
cdf_status cdf_model_vae(const cdf_model *m, cdf_vae **out, cdf_err *err) {
    if (m->vae) { *out = m->vae; return CDF_OK; }
    return cdf_vae_load(out, m->be, m->vae_path, variant_of(m, 1), &m->wo, err);
}
/* After freeing a staged component, hand malloc's free heap back to the
 * system too (the packed weights are mmapped and already gone). */
static void give_back(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}
void cdf_model_release_text_encoder(const cdf_model *m, cdf_clip_text *t) {
    if (t != m->te) { cdf_clip_text_free(t); give_back(); }
}
void cdf_model_release_unet(const cdf_model *m, cdf_unet *u) {
    if (u != m->unet) { cdf_unet_free(u); give_back(); }
}
void cdf_model_release_vae(const cdf_model *m, cdf_vae *v) {
    if (v != m->vae) { cdf_vae_free(v); give_back(); }
}

void cdf_model_get_info(const cdf_model *m, cdf_model_info *info) {
    const int64_t f = cdf_vae_config_scale_factor(&m->vae_cfg);
    const cdf_unet_config *uc = &m->unet_cfg;
    info->vae_scale_factor = f;
    info->default_height = info->default_width = uc->sample_size * f;
    info->latent_channels = uc->in_channels;
    info->max_tokens = (int64_t)cdf_tokenizer_max_length(m->tok);
    info->scheduler_class = m->sched_class;
    info->name = m->name;
}

int64_t cdf_model_text_hidden_size(const cdf_model *m) { return m->te_cfg.hidden; }
