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

/* What every component's _load does around its _create: loads
 * "<dir>/config.json" into *j and opens the weights (as
 * cdf_component_open_weights) into *f; on an error nothing is left open. */
cdf_status cdf_component_open(cdf_json *j, cdf_st_file **f, const char *dir, const char *base, const char *variant,
                              cdf_err *err);
/* Then frees the config and closes the weights, unless `keep` is not NULL
 * (a model that streams its weights): the file goes to *keep instead, to be
 * read at every use and closed when the model is freed. */
void cdf_component_close(cdf_json *j, cdf_st_file *f, cdf_st_file **keep);

/* Joins a prefix and a name: "down_blocks.0" + "resnets.1" -> buf. */
const char *cdf_join(char *buf, size_t cap, const char *prefix, const char *name);

#endif
