/* diffusers' from_config for the schedulers: which keys a class takes, where
 * each value comes from, and the typed view of the result.
 *
 * Precedence (configuration_utils.extract_init_dict): an override, else the
 * config's value unless the config lists the key in `_use_default_values`,
 * else the class default. Keys the class does not take stay in the effective
 * config as "hidden" entries (diffusers keeps them for compatible classes)
 * and are otherwise ignored. */
#include "schedulers/sched_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

const char *const sched_spacings[] = {"linspace", "leading", "trailing", NULL};
const char *const sched_predictions[] = {"epsilon", "v_prediction", "sample", NULL};
const char *const sched_beta_schedules[] = {"linear", "scaled_linear", "squaredcos_cap_v2", NULL};

int sched_streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* Where each key lands in sched_cfg. */
typedef struct key_slot {
    const char *key;
    size_t offset;
    size_t has_offset; /* for optional numbers: offset of the has_ flag, else 0 */
} key_slot;

#define SLOT(k) {#k, offsetof(sched_cfg, k), 0}
#define OPT_SLOT(k) {#k, offsetof(sched_cfg, k), offsetof(sched_cfg, has_##k)}
static const key_slot slots[] = {
    SLOT(num_train_timesteps), SLOT(beta_start), SLOT(beta_end), SLOT(beta_schedule), SLOT(trained_betas),
    SLOT(prediction_type), SLOT(timestep_spacing), SLOT(steps_offset), SLOT(clip_sample),
    SLOT(clip_sample_range), SLOT(set_alpha_to_one), SLOT(thresholding), SLOT(dynamic_thresholding_ratio),
    SLOT(sample_max_value), SLOT(rescale_betas_zero_snr), SLOT(variance_type), SLOT(skip_prk_steps),
    SLOT(use_karras_sigmas), SLOT(interpolation_type), OPT_SLOT(sigma_min), OPT_SLOT(sigma_max),
    SLOT(timestep_type), SLOT(solver_order), SLOT(algorithm_type), SLOT(solver_type), SLOT(lower_order_final),
    SLOT(euler_at_final), SLOT(use_lu_lambdas), SLOT(final_sigmas_type), SLOT(lambda_min_clipped),
    SLOT(predict_x0), SLOT(disable_corrector), OPT_SLOT(noise_sampler_seed),
};

static const key_slot *find_slot(const char *key) {
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
        if (strcmp(slots[i].key, key) == 0) return &slots[i];
    return NULL;
}

static const sched_param *find_param(const sched_class *c, const char *key) {
    for (const sched_param *p = c->params; p->key; p++)
        if (strcmp(p->key, key) == 0) return p;
    return NULL;
}

static int in_string_list(const cJSON *list, const char *key) {
    const cJSON *it;
    if (!cJSON_IsArray(list)) return 0;
    cJSON_ArrayForEach(it, list) if (cJSON_IsString(it) && strcmp(it->valuestring, key) == 0) return 1;
    return 0;
}

static int nullable(sched_ptype t) {
    return t == P_OPT_STR || t == P_OPT_NUM || t == P_OPT_INT || t == P_BETAS || t == P_NULL;
}

static void list_choices(char *buf, size_t cap, const char *const *choices) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; choices[i]; i++) {
        int w = snprintf(buf + len, cap - len, "%s'%s'", i ? ", " : "", choices[i]);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
}

static int is_integral(const cJSON *v) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && floor(v->valuedouble) == v->valuedouble &&
           fabs(v->valuedouble) <= 9007199254740992.0;
}

/* Stores eff[key] into cfg according to the parameter's type. */
static cdf_status store(cdf_scheduler *s, const sched_param *p, const cJSON *v, cdf_err *err) {
    const char *cls = s->cls->name;
    if (p->type == P_NULL) {
        if (v && !cJSON_IsNull(v))
            return cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s config: '%s' (a scheduler object) is not supported", cls,
                            p->key);
        return CDF_OK;
    }
    const key_slot *slot = find_slot(p->key);
    if (!slot) return cdf_errf(err, CDF_ERR_INTERNAL, "%s: no storage for config key '%s'", cls, p->key);
    char *base = (char *)&s->cfg;
    void *dst = base + slot->offset;
    int is_null = !v || cJSON_IsNull(v);
    switch (p->type) {
    case P_INT:
    case P_OPT_INT:
        if (is_null && p->type == P_OPT_INT) { *(int *)(base + slot->has_offset) = 0; return CDF_OK; }
        if (!is_integral(v))
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: '%s' must be an integer", cls, p->key);
        *(int64_t *)dst = (int64_t)v->valuedouble;
        if (p->type == P_OPT_INT) *(int *)(base + slot->has_offset) = 1;
        return CDF_OK;
    case P_NUM:
    case P_OPT_NUM:
        if (is_null && p->type == P_OPT_NUM) { *(int *)(base + slot->has_offset) = 0; return CDF_OK; }
        if (!cJSON_IsNumber(v))
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: '%s' must be a number", cls, p->key);
        *(double *)dst = v->valuedouble;
        if (p->type == P_OPT_NUM) *(int *)(base + slot->has_offset) = 1;
        return CDF_OK;
    case P_BOOL:
        if (cJSON_IsBool(v)) *(int *)dst = cJSON_IsTrue(v);
        else if (cJSON_IsNumber(v)) *(int *)dst = v->valuedouble != 0;
        else return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: '%s' must be true or false", cls, p->key);
        return CDF_OK;
    case P_STR:
    case P_OPT_STR:
        if (is_null && p->type == P_OPT_STR) { *(const char **)dst = NULL; return CDF_OK; }
        if (!cJSON_IsString(v))
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: '%s' must be a string", cls, p->key);
        if (p->choices) {
            int ok = 0;
            for (int i = 0; p->choices[i]; i++) ok |= strcmp(p->choices[i], v->valuestring) == 0;
            if (!ok) {
                char buf[512];
                list_choices(buf, sizeof buf, p->choices);
                return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: %s '%s' is not supported; valid values: %s",
                                cls, p->key, v->valuestring, buf);
            }
        }
        *(const char **)dst = v->valuestring;
        return CDF_OK;
    case P_BETAS:
        if (is_null) { *(const cJSON **)dst = NULL; return CDF_OK; }
        if (cJSON_IsArray(v)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, v) if (!cJSON_IsNumber(it)) goto bad_betas;
            *(const cJSON **)dst = v;
            return CDF_OK;
        }
    bad_betas:
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: '%s' must be null or an array of numbers", cls,
                        p->key);
    case P_INT_LIST:
        if (cJSON_IsArray(v)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, v) if (!is_integral(it)) goto bad_list;
            *(const cJSON **)dst = v;
            return CDF_OK;
        }
    bad_list:
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s config: '%s' must be an array of integers", cls, p->key);
    case P_NULL:
        if (!is_null)
            return cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s config: '%s' (a scheduler object) is not supported", cls,
                            p->key);
        return CDF_OK;
    }
    return CDF_OK;
}

static cdf_status parse_typed(cdf_scheduler *s, cdf_err *err) {
    memset(&s->cfg, 0, sizeof s->cfg);
    s->cfg.lambda_min_clipped = -INFINITY;
    for (const sched_param *p = s->cls->params; p->key; p++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->config, p->key);
        cdf_status st = store(s, p, v, err);
        if (st) return st;
    }
    return CDF_OK;
}

static cJSON *parse_default(const sched_param *p) { return cJSON_Parse(p->def); }

cdf_status sched_configure(cdf_scheduler *s, const cJSON *config, const cJSON *overrides, cdf_err *err) {
    const char *cls = s->cls->name;
    if (config && !cJSON_IsObject(config))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: the scheduler config must be a JSON object", cls);
    if (overrides && !cJSON_IsObject(overrides))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s: the overrides must be a JSON object", cls);
    const cJSON *used_defaults = config ? cJSON_GetObjectItemCaseSensitive(config, "_use_default_values") : NULL;
    cJSON *eff = cJSON_CreateObject(), *defaulted = cJSON_CreateArray();
    if (!eff || !defaulted) goto oom;
    for (const sched_param *p = s->cls->params; p->key; p++) {
        const cJSON *v = overrides ? cJSON_GetObjectItemCaseSensitive(overrides, p->key) : NULL;
        if (!v && config && !in_string_list(used_defaults, p->key))
            v = cJSON_GetObjectItemCaseSensitive(config, p->key);
        cJSON *val;
        if (v && (!cJSON_IsNull(v) || nullable(p->type))) {
            val = cJSON_Duplicate(v, 1);
        } else {
            val = parse_default(p);
            if (!v && !cJSON_AddItemToArray(defaulted, cJSON_CreateString(p->key))) goto oom;
        }
        if (!val || !cJSON_AddItemToObject(eff, p->key, val)) { cJSON_Delete(val); goto oom; }
    }
    if (cJSON_GetArraySize(defaulted) > 0) {
        if (!cJSON_AddItemToObject(eff, "_use_default_values", defaulted)) goto oom;
    } else {
        cJSON_Delete(defaulted);
    }
    defaulted = NULL;
    if (config) {
        const cJSON *it;
        cJSON_ArrayForEach(it, config) {
            if (!it->string || strcmp(it->string, "_use_default_values") == 0) continue;
            if (in_string_list(used_defaults, it->string) || find_param(s->cls, it->string)) continue;
            if (cJSON_GetObjectItemCaseSensitive(eff, it->string)) continue; /* duplicate key in the file */
            cJSON *dup = cJSON_Duplicate(it, 1);
            if (!dup || !cJSON_AddItemToObject(eff, it->string, dup)) { cJSON_Delete(dup); goto oom; }
        }
    }
    s->config = eff;
    return parse_typed(s, err);
oom:
    cJSON_Delete(eff);
    cJSON_Delete(defaulted);
    return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "%s: out of memory while building the config", cls);
}

static cdf_status replace(cdf_scheduler *s, const char *key, cJSON *item, cdf_err *err) {
    if (!item) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "%s: out of memory", s->cls->name);
    if (cJSON_GetObjectItemCaseSensitive(s->config, key)) {
        if (!cJSON_ReplaceItemInObjectCaseSensitive(s->config, key, item)) {
            cJSON_Delete(item);
            return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "%s: out of memory", s->cls->name);
        }
    } else if (!cJSON_AddItemToObject(s->config, key, item)) {
        cJSON_Delete(item);
        return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "%s: out of memory", s->cls->name);
    }
    return parse_typed(s, err);
}

cdf_status sched_set_config_str(cdf_scheduler *s, const char *key, const char *value, cdf_err *err) {
    return replace(s, key, cJSON_CreateString(value), err);
}

cdf_status sched_set_config_bool(cdf_scheduler *s, const char *key, int value, cdf_err *err) {
    return replace(s, key, cJSON_CreateBool(value), err);
}
