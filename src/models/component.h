/* Shared plumbing for model components (text_encoder/, unet/, vae/ folders):
 * finding the weights file for a variant and reading config.json. */
#ifndef CDF_MODELS_COMPONENT_H
#define CDF_MODELS_COMPONENT_H

#include "core/error.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"

/* Opens "<dir>/<base>.safetensors", or "<dir>/<base>.<variant>.safetensors"
 * when variant is not NULL/empty. A missing file is an error that says which
 * variants the folder does have. */
cdf_status cdf_component_open_weights(cdf_st_file **out, const char *dir, const char *base, const char *variant,
                                      cdf_err *err);

/* Loads "<dir>/config.json". */
cdf_status cdf_component_config(cdf_json *j, const char *dir, cdf_err *err);

/* Joins a prefix and a name: "down_blocks.0" + "resnets.1" -> buf. */
const char *cdf_join(char *buf, size_t cap, const char *prefix, const char *name);

#endif
