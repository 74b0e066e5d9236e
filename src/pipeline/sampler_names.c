/* A1111's names for diffusers schedulers (the "Sampler:" field users and
 * tools such as image browsers expect in PNG metadata). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/internal.h"

static int cfg_true(const cJSON *c, const char *k) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, k)); }
static const char *cfg_str(const cJSON *c, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

const char *cdf_sampler_display_name(const cdf_scheduler *s) {
    static const struct { const char *cls, *name, *karras; } tab[] = {
        {"PNDMScheduler", "PNDM", "PNDM"},
        {"DDIMScheduler", "DDIM", "DDIM"},
        {"DDPMScheduler", "DDPM", "DDPM"},
        {"LMSDiscreteScheduler", "LMS", "LMS Karras"},
        {"EulerDiscreteScheduler", "Euler", "Euler Karras"},
        {"EulerAncestralDiscreteScheduler", "Euler a", "Euler a"},
        {"HeunDiscreteScheduler", "Heun", "Heun Karras"},
        {"KDPM2DiscreteScheduler", "DPM2", "DPM2 Karras"},
        {"KDPM2AncestralDiscreteScheduler", "DPM2 a", "DPM2 a Karras"},
        {"DPMSolverSinglestepScheduler", "DPM++ 2S", "DPM++ 2S Karras"},
        {"DPMSolverSDEScheduler", "DPM++ SDE", "DPM++ SDE Karras"},
        {"DEISMultistepScheduler", "DEIS", "DEIS Karras"},
        {"UniPCMultistepScheduler", "UniPC", "UniPC Karras"},
    };
    const char *cls = cdf_scheduler_class(s);
    char *json = cdf_scheduler_config_json(s);
    cJSON *c = json ? cJSON_Parse(json) : NULL;
    free(json);
    const int karras = c && cfg_true(c, "use_karras_sigmas");
    const char *name = cls;
    if (strcmp(cls, "DPMSolverMultistepScheduler") == 0) {
        const char *alg = c ? cfg_str(c, "algorithm_type") : "";
        int sde = strncmp(alg, "sde-", 4) == 0;
        name = sde ? (karras ? "DPM++ 2M SDE Karras" : "DPM++ 2M SDE") : (karras ? "DPM++ 2M Karras" : "DPM++ 2M");
    } else {
        for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
            if (strcmp(cls, tab[i].cls) == 0) name = karras ? tab[i].karras : tab[i].name;
    }
    cJSON_Delete(c);
    return name;
}
