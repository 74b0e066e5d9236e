/* AMX (bf16 tile) fused attention; see attention_amx.c. */
#ifndef CDF_KERNELS_ATTENTION_AMX_H
#define CDF_KERNELS_ATTENTION_AMX_H

#include "kernels/kernels.h"

/* 1 when this build and CPU can run AMX tiles (asks the kernel for the
 * tile state: Linux grants it per process). */
int cdf_amx_ok(void);
/* Same contract as cdf_attention, for bf16 compute. */
cdf_status cdf_attention_amx(cdf_exec *ex, const cdf_attn_shape *a, void *out, const float *q, const float *k,
                             const float *v, cdf_err *err);

#endif
