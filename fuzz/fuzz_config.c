/* config.json -> model configs: the same JSON text goes through the UNet,
 * VAE and CLIP text encoder config readers, and through a scheduler class
 * as its scheduler_config.json (or as overrides on the class defaults),
 * followed by set_timesteps for a few step counts. */
#include <stdlib.h>

#include "harness.h"
#include "io/json.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/unet_internal.h"
#include "models/vae.h"
#include "schedulers/scheduler.h"

static void schedule(cdf_scheduler *s) {
    static const int steps[] = {1, 2, 7, 50};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        cdf_err err = {0};
        if (cdf_scheduler_set_timesteps(s, steps[k], &err) != CDF_OK) continue;
        const size_t n = cdf_scheduler_num_timesteps(s);
        volatile double sink = cdf_scheduler_init_noise_sigma(s);
        for (size_t i = 0; i < n; i++) sink += cdf_scheduler_timestep(s, i);
        const float *sig = NULL;
        const size_t ns = cdf_scheduler_sigmas(s, &sig);
        for (size_t i = 0; i < ns; i++) sink += sig[i];
        (void)sink;
    }
    free(cdf_scheduler_config_json(s));
}

static int run(const uint8_t *data, size_t size) {
    cdf_json j;
    cdf_err err = {0};
    if (cdf_json_parse(&j, (const char *)data, size, "config.json", &err) != CDF_OK) return 0;
    cdf_unet_config u;
    cdf_vae_config v;
    cdf_clip_config c;
    (void)cdf_unet_read_config(&u, &j, &err);
    (void)cdf_vae_read_config(&v, &j, &err);
    (void)cdf_clip_read_config(&c, &j, &err);
    /* One scheduler per input, as the pipeline does: the class the file
     * names, else one picked by a hash of the input (so every class is
     * reached); the text is its config or, by another bit, overrides on the
     * class defaults. All classes for every input would be 14x slower. */
    const char *const *classes;
    const size_t nc = cdf_scheduler_class_names(&classes);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 16777619u;
    const char *cls = classes[h % nc];
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j.root, "_class_name");
    if (cJSON_IsString(name) && cdf_scheduler_resolve(name->valuestring)) cls = name->valuestring;
    const int as_overrides = (h >> 16) & 1;
    cdf_scheduler *s = NULL;
    if (cdf_scheduler_create(&s, cls, as_overrides ? NULL : j.root, as_overrides ? j.root : NULL, &err) == CDF_OK) {
        schedule(s);
        cdf_scheduler_free(s);
    }
    cdf_json_free(&j);
    return 0;
}

const cdf_fuzz_target cdf_fuzz_config = {"config", NULL, run, NULL};
