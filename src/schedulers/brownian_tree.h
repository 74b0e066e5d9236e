/* The Brownian motion behind diffusers' DPMSolverSDEScheduler noise:
 * torchsde 0.2.6 BrownianTree (a BrownianInterval with halfway_tree=True),
 * reproduced bit for bit on the CPU.
 *
 * What it computes (torchsde/_brownian/brownian_interval.py, v0.2.6):
 *   - times are quantised by Python's round(t, 6) (tol = 1e-6);
 *   - W over the whole interval [t0, t1] is randn(numel) * sqrt(t1 - t0),
 *     the randn seeded with SeedSequence(entropy, pool_size=24)'s first word;
 *   - every interval [s, e] splits at m = round(0.5 * (e + s), 6); its left
 *     part is W_l = (m - s) * W / (e - s) + sqrt((m - s)(e - m)/(e - s)) * Z
 *     (float32 tensor ops in that order, double scalars rounded to float),
 *     its right part W - W_l; Z = torch.randn(numel) from a torch CPU
 *     generator seeded with the first word of SeedSequence(entropy,
 *     spawn_key=(key, depth), pool_size=24), key/depth the interval's place
 *     in the dyadic tree (root 0/0, children 2*key+{0,1} / depth+1);
 *   - a query [ta, tb] is the sum, left to right in float32, of the tree
 *     intervals that tile it, found by splitting down to ta and tb.
 * Values depend only on (entropy, t0, t1, numel) and the query times, never
 * on the query order or on cache sizes.
 *
 * Times are doubles. diffusers hands torchsde float32 tensors that torchsde
 * converts with float(): pass (double)(float) values to match it. */
#ifndef CDF_SCHEDULERS_BROWNIAN_TREE_H
#define CDF_SCHEDULERS_BROWNIAN_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct cdf_brownian_tree cdf_brownian_tree;

/* torchsde.BrownianTree(t0, w0=zeros(numel), t1, entropy=seed, tol=1e-6,
 * pool_size=24) as diffusers' BatchedBrownianTree builds it for one seed
 * (t0 <= t1 already sorted). Fails for numel 0, non-finite times or t0 > t1. */
cdf_status cdf_brownian_tree_create(cdf_brownian_tree **out, size_t numel, double t0, double t1, uint64_t seed,
                                    cdf_err *err);

/* out[numel] = W(tb) - W(ta) exactly as BrownianTree.__call__(ta, tb)
 * returns it: times outside [round(t0,6), round(t1,6)] are clamped (torchsde
 * warns and clamps too), ta > tb is an error, ta == tb gives zeros. Where
 * round(ta,6) == round(tb,6) but ta != tb torchsde itself does not terminate
 * (or returns a zero-width interval); this returns zeros. */
cdf_status cdf_brownian_tree_query(cdf_brownian_tree *bt, double ta, double tb, float *out, cdf_err *err);

void cdf_brownian_tree_free(cdf_brownian_tree *bt);

/* As cdf_brownian_tree_create with a cache of `cache_slots` increments of
 * numel floats (0: the default, up to 128 slots and 64 MiB; at least 4). The
 * cache changes how often increments are recomputed, never their values. */
cdf_status cdf_brownian_tree_create_cached(cdf_brownian_tree **out, size_t numel, double t0, double t1,
                                           uint64_t seed, size_t cache_slots, cdf_err *err);

/* Number of tree intervals created so far (for tests and benchmarks). */
size_t cdf_brownian_tree_num_nodes(const cdf_brownian_tree *bt);
/* Number of normal-draw calls (randn of numel values) made so far. */
uint64_t cdf_brownian_tree_num_draws(const cdf_brownian_tree *bt);

#endif
