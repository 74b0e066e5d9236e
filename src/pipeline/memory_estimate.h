/* How much memory a text-to-image call needs, estimated before anything is
 * allocated, and how much the machine has: a request that cannot fit is
 * refused with a message that says both numbers, instead of the process
 * being killed half-way by the kernel's OOM killer.
 *
 * The estimate follows the forward passes' scratch use (src/models: every
 * activation of a UNet or VAE pass stays in the arena until the pass ends,
 * plus the largest block's temporaries, plus the attention kernel's packed
 * K/V and per-thread tiles) from the models' configs, then adds the
 * pipeline's own buffers (embeddings, latents, images) and an allowance for
 * oneDNN's scratchpads and reorders. It errs on the large side: a refusal
 * must never be wrong by being too small. Weights are already loaded and
 * resident, so they are reported but not counted against what is available. */
#ifndef CDF_PIPELINE_MEMORY_ESTIMATE_H
#define CDF_PIPELINE_MEMORY_ESTIMATE_H

#include <stddef.h>
#include <stdint.h>

#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"

typedef struct cdf_mem_request {
    const cdf_unet_config *unet;
    const cdf_vae_config *vae;
    const cdf_clip_config *text;
    size_t batch;          /* images (prompts x images per prompt) */
    size_t prompts;        /* distinct prompts (text encoder batch) */
    int cfg;               /* classifier-free guidance doubles the UNet batch */
    int64_t height, width; /* image pixels */
    int64_t vae_factor;    /* image side / latent side */
    int64_t tokens;        /* text length (77) */
    int threads;           /* per-thread attention tiles */
    int bf16;              /* bfloat16 compute: half-size packed operands, more scratch */
} cdf_mem_request;

typedef struct cdf_mem_estimate {
    uint64_t text_arena;  /* text encoder pass, scratch */
    uint64_t unet_arena;  /* one UNet pass, scratch */
    uint64_t vae_arena;   /* the VAE decoder pass, scratch */
    uint64_t buffers;     /* the pipeline's own buffers and the output images */
    uint64_t backend;     /* allowance for oneDNN scratchpads, reorders, caches */
    uint64_t total;       /* max of the arenas (one arena serves all passes) + buffers + backend */
} cdf_mem_estimate;

void cdf_mem_estimate_generate(const cdf_mem_request *r, cdf_mem_estimate *out);

/* Memory this process may still take, in bytes: MemAvailable from
 * /proc/meminfo (else free physical pages from sysconf), bounded by a cgroup
 * memory limit when one is set. 0 if nothing can be read. */
uint64_t cdf_mem_available(void);
/* Resident memory of this process (loaded weights included), bytes; 0 if unknown. */
uint64_t cdf_mem_resident(void);

/* Refuses (CDF_ERR_OUT_OF_MEMORY, with a message naming the request, the
 * estimate and the available memory) when `need` bytes beyond `held` (scratch
 * already reserved by the run context, reused) exceed `available`. `what` is
 * the request in words ("512x512 image, batch 4"); `resident` is reported. */
cdf_status cdf_mem_check(uint64_t need, uint64_t held, uint64_t available, uint64_t resident, const char *what,
                         cdf_err *err);

/* The check for one cdf_pipeline_generate call (after its parameters are
 * validated; H, W the image size): estimate, machine, message. */
cdf_status cdf_pipeline_check_memory(const cdf_pipeline *p, const cdf_generate_params *g, int64_t H, int64_t W,
                                     cdf_err *err);

#endif
