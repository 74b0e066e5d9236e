/* Internals of the pipeline layer: the loaded model and per-run state. */
#ifndef CDF_PIPELINE_INTERNAL_H
#define CDF_PIPELINE_INTERNAL_H

#include <cjson/cJSON.h>

#include "cdiffusers.h"
#include "core/error.h"
#include "kernels/kernels.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "schedulers/scheduler.h"
#include "tokenizer/clip_tokenizer.h"

struct cdf_model {
    cdf_backend *be;
    cdf_weight_opts wo;
    cdf_tokenizer *tok;
    cdf_clip_text *te;   /* resident components; NULL when staged */
    cdf_unet *unet;
    cdf_vae *vae;
    int staged;          /* CDF_MEMORY_STAGED: components loaded per stage */
    cdf_clip_config te_cfg;
    cdf_unet_config unet_cfg;
    cdf_vae_config vae_cfg;
    char dir[4096], vae_path[4096], variant[64];
    int vae_variant;     /* the VAE folder has the variant files (not a replacement folder) */
    cJSON *sched_config;   /* scheduler/scheduler_config.json (owned) */
    char sched_class[128];
    char name[256];
};

struct cdf_pipeline {
    const cdf_model *m;
    cdf_exec *ex;
    cdf_scheduler *sched;      /* configured instance; runs use fresh copies */
    char *sched_name;          /* as given (class or alias) */
    char *sched_overrides;     /* JSON text or NULL */
    char *sched_config_json;   /* effective config, cached */
    cdf_err err;
};

/* A component for one stage: the resident one, or (staged mode) freshly
 * loaded; give it back with the release call, which frees a staged one. */
cdf_status cdf_model_text_encoder(const cdf_model *m, cdf_clip_text **out, cdf_err *err);
cdf_status cdf_model_unet(const cdf_model *m, cdf_unet **out, cdf_err *err);
cdf_status cdf_model_vae(const cdf_model *m, cdf_vae **out, cdf_err *err);
void cdf_model_release_text_encoder(const cdf_model *m, cdf_clip_text *t);
void cdf_model_release_unet(const cdf_model *m, cdf_unet *u);
void cdf_model_release_vae(const cdf_model *m, cdf_vae *v);

/* Records err's message as the pipeline's last error and returns its code. */
cdf_status cdf_pipeline_fail(cdf_pipeline *p, const cdf_err *err);
/* A fresh scheduler with the pipeline's current selection. */
cdf_status cdf_pipeline_new_scheduler(const cdf_pipeline *p, cdf_scheduler **out, cdf_err *err);
/* A1111's sampler name for a scheduler ("DPM++ 2M Karras", "Euler a", ...). */
const char *cdf_sampler_display_name(const cdf_scheduler *s);

#endif
