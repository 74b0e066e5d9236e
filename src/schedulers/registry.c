/* Scheduler classes by diffusers class name, and the sampler names users know
 * from AUTOMATIC1111's web UI and stable-diffusion.cpp mapped onto them
 * (following diffusers' own A1111 correspondence table). */
#include <stddef.h>
#include <strings.h>
#include <string.h>

#include "schedulers/sched_internal.h"

static const sched_class *const classes[] = {
    &cdf_sched_ddim,     &cdf_sched_ddpm,         &cdf_sched_deis,      &cdf_sched_dpm_multi,
    &cdf_sched_dpm_sde,  &cdf_sched_dpm_single,   &cdf_sched_euler_a,   &cdf_sched_euler,
    &cdf_sched_heun,     &cdf_sched_kdpm2_a,      &cdf_sched_kdpm2,     &cdf_sched_lms,
    &cdf_sched_pndm,     &cdf_sched_unipc,
};
#define N_CLASSES (sizeof classes / sizeof classes[0])

static const char *const class_names[N_CLASSES] = {
    "DDIMScheduler",
    "DDPMScheduler",
    "DEISMultistepScheduler",
    "DPMSolverMultistepScheduler",
    "DPMSolverSDEScheduler",
    "DPMSolverSinglestepScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "HeunDiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "LMSDiscreteScheduler",
    "PNDMScheduler",
    "UniPCMultistepScheduler",
};

/* A class name resolves to itself with no overrides. */
static const cdf_scheduler_alias class_entries[N_CLASSES] = {
#define SELF(n) {n, n, n, NULL}
    SELF("DDIMScheduler"),
    SELF("DDPMScheduler"),
    SELF("DEISMultistepScheduler"),
    SELF("DPMSolverMultistepScheduler"),
    SELF("DPMSolverSDEScheduler"),
    SELF("DPMSolverSinglestepScheduler"),
    SELF("EulerAncestralDiscreteScheduler"),
    SELF("EulerDiscreteScheduler"),
    SELF("HeunDiscreteScheduler"),
    SELF("KDPM2AncestralDiscreteScheduler"),
    SELF("KDPM2DiscreteScheduler"),
    SELF("LMSDiscreteScheduler"),
    SELF("PNDMScheduler"),
    SELF("UniPCMultistepScheduler"),
#undef SELF
};

#define KARRAS "{\"use_karras_sigmas\": true}"
static const cdf_scheduler_alias aliases[] = {
    {"euler", "Euler", "EulerDiscreteScheduler", NULL},
    {"euler_karras", "Euler Karras", "EulerDiscreteScheduler", KARRAS},
    {"euler_a", "Euler a", "EulerAncestralDiscreteScheduler", NULL},
    {"heun", "Heun", "HeunDiscreteScheduler", NULL},
    {"heun_karras", "Heun Karras", "HeunDiscreteScheduler", KARRAS},
    {"dpm2", "DPM2", "KDPM2DiscreteScheduler", NULL},
    {"dpm2_karras", "DPM2 Karras", "KDPM2DiscreteScheduler", KARRAS},
    {"dpm2_a", "DPM2 a", "KDPM2AncestralDiscreteScheduler", NULL},
    {"dpm2_a_karras", "DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", KARRAS},
    {"lms", "LMS", "LMSDiscreteScheduler", NULL},
    {"lms_karras", "LMS Karras", "LMSDiscreteScheduler", KARRAS},
    {"dpm++2m", "DPM++ 2M", "DPMSolverMultistepScheduler",
     "{\"algorithm_type\": \"dpmsolver++\", \"solver_order\": 2}"},
    {"dpm++2m_karras", "DPM++ 2M Karras", "DPMSolverMultistepScheduler",
     "{\"algorithm_type\": \"dpmsolver++\", \"solver_order\": 2, \"use_karras_sigmas\": true}"},
    {"dpm++2m_sde", "DPM++ 2M SDE", "DPMSolverMultistepScheduler",
     "{\"algorithm_type\": \"sde-dpmsolver++\", \"solver_order\": 2}"},
    {"dpm++2m_sde_karras", "DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler",
     "{\"algorithm_type\": \"sde-dpmsolver++\", \"solver_order\": 2, \"use_karras_sigmas\": true}"},
    {"dpm++2s", "DPM++ 2S", "DPMSolverSinglestepScheduler",
     "{\"algorithm_type\": \"dpmsolver++\", \"solver_order\": 2}"},
    {"dpm++2s_karras", "DPM++ 2S Karras", "DPMSolverSinglestepScheduler",
     "{\"algorithm_type\": \"dpmsolver++\", \"solver_order\": 2, \"use_karras_sigmas\": true}"},
    {"dpm++_sde", "DPM++ SDE", "DPMSolverSDEScheduler", NULL},
    {"dpm++_sde_karras", "DPM++ SDE Karras", "DPMSolverSDEScheduler", KARRAS},
    {"ddim", "DDIM", "DDIMScheduler", NULL},
    {"ddim_trailing", "DDIM trailing", "DDIMScheduler", "{\"timestep_spacing\": \"trailing\"}"},
    {"ddpm", "DDPM", "DDPMScheduler", NULL},
    {"pndm", "PNDM", "PNDMScheduler", NULL},
    {"plms", "PLMS", "PNDMScheduler", "{\"skip_prk_steps\": true}"},
    {"unipc", "UniPC", "UniPCMultistepScheduler", NULL},
    {"unipc_karras", "UniPC Karras", "UniPCMultistepScheduler", KARRAS},
    {"deis", "DEIS", "DEISMultistepScheduler", NULL},
    {"deis_karras", "DEIS Karras", "DEISMultistepScheduler", KARRAS},
};
#undef KARRAS

const sched_class *cdf_sched_find_class(const char *name) {
    for (size_t i = 0; i < N_CLASSES; i++)
        if (strcmp(classes[i]->name, name) == 0) return classes[i];
    return NULL;
}

size_t cdf_scheduler_class_names(const char *const **out) {
    *out = class_names;
    return N_CLASSES;
}

size_t cdf_scheduler_aliases(const cdf_scheduler_alias **out) {
    *out = aliases;
    return sizeof aliases / sizeof aliases[0];
}

const cdf_scheduler_alias *cdf_scheduler_resolve(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < N_CLASSES; i++)
        if (strcmp(class_entries[i].class_name, name) == 0) return &class_entries[i];
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(aliases[i].alias, name) == 0 || strcasecmp(aliases[i].display, name) == 0)
            return &aliases[i];
    return NULL;
}

/* The public listing declared in include/cdiffusers.h (main): the classes
 * first (alias = display = class name), then the aliases. */
size_t cdf_scheduler_count(void) { return N_CLASSES + sizeof aliases / sizeof aliases[0]; }

void cdf_scheduler_entry(size_t i, const char **alias, const char **display, const char **class_name) {
    const cdf_scheduler_alias *e = NULL;
    if (i < N_CLASSES) e = &class_entries[i];
    else if (i < cdf_scheduler_count()) e = &aliases[i - N_CLASSES];
    if (alias) *alias = e ? e->alias : NULL;
    if (display) *display = e ? e->display : NULL;
    if (class_name) *class_name = e ? e->class_name : NULL;
}
