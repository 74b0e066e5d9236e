/* torchsde 0.2.6 BrownianTree (halfway tree, no Levy area) in C.
 *
 * Nodes live in one growing array and refer to each other by index. Each
 * node's increment W is a pure function of its place in the tree, so W values
 * are kept in a small LRU cache of float buffers and recomputed from the
 * nearest cached ancestor when evicted (torchsde does the same with its
 * 45-entry LRU dict); the cache size changes speed, never values. */
#include "schedulers/brownian_tree.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng/seed_sequence.h"
#include "rng/torch_rng.h"

#define BT_POOL_SIZE 24
/* Spawn keys grow as 2^depth; 62 levels of halving at tol 1e-6 cover
 * intervals up to 2^62 * 1e-6 ~ 4.6e12 long (sigmas stay far below). */
#define BT_MAX_DEPTH 62
/* 128 cached increments hold every interval a 20-step schedule revisits
 * (measured: 688 draws for 667 splits); at most 64 MiB for big latents. */
#define BT_CACHE_MAX_SLOTS 128
#define BT_CACHE_MIN_SLOTS 4 /* a parent, its two children and one spare */
#define BT_CACHE_BYTES ((size_t)64 << 20)

typedef struct bt_node {
    double start, end;
    double midway;         /* valid once split */
    uint64_t key;          /* torchsde _spawn_key */
    uint32_t depth;        /* torchsde _depth */
    uint32_t w_seed;       /* seed of the normal draw that splits W at midway */
    int32_t parent, left, right;
    int32_t slot;          /* cache slot holding W, -1 if none */
    unsigned char is_left, split;
} bt_node;

struct cdf_brownian_tree {
    size_t numel;
    uint64_t entropy;
    bt_node *nodes;
    size_t n_nodes, cap_nodes;
    float *root_w;         /* [numel] W over the whole interval, kept for good */
    float *noise;          /* [numel] scratch normal draw */
    float *slots;          /* [n_slots][numel] cached W of other nodes */
    int32_t *slot_owner;   /* node index or -1 */
    uint64_t *slot_used;   /* LRU clock value of last use */
    size_t n_slots;
    uint64_t clock;
    int32_t *pieces;       /* intervals tiling the current query, left to right */
    size_t n_pieces, cap_pieces;
    uint64_t n_draws;
    cdf_rng rng;
};

/* Python's round(x, 6): the correctly rounded (ties-to-even on the exact
 * binary value) 6-decimal string read back as the nearest double. glibc's
 * printf and strtod are exact, as CPython's dtoa-based float.__round__ is. */
static double round6(double x) {
    char buf[400];
    snprintf(buf, sizeof buf, "%.6f", x);
    return strtod(buf, NULL);
}

static uint32_t first_seed_word(uint64_t entropy, const uint64_t *key, size_t n_key) {
    cdf_seed_sequence ss;
    uint32_t w;
    /* pool size 24 and a two-integer key are always valid */
    cdf_seedseq_init(&ss, entropy, key, n_key, BT_POOL_SIZE, NULL);
    cdf_seedseq_generate_state(&ss, &w, 1);
    return w;
}

static cdf_status new_node(cdf_brownian_tree *bt, double start, double end, int32_t parent, int is_left,
                           int32_t *out, cdf_err *err) {
    if (bt->n_nodes == bt->cap_nodes) {
        size_t cap = bt->cap_nodes ? 2 * bt->cap_nodes : 64;
        if (cap > INT32_MAX) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "Brownian tree: too many intervals");
        bt_node *n = realloc(bt->nodes, cap * sizeof *n);
        if (!n) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "Brownian tree: out of memory (%zu intervals)", cap);
        bt->nodes = n;
        bt->cap_nodes = cap;
    }
    bt_node *n = &bt->nodes[bt->n_nodes];
    memset(n, 0, sizeof *n);
    n->start = round6(start);
    n->end = round6(end);
    n->parent = parent;
    n->left = n->right = -1;
    n->slot = -1;
    n->is_left = (unsigned char)is_left;
    if (parent >= 0) {
        const bt_node *p = &bt->nodes[parent];
        n->key = 2 * p->key + (is_left ? 0u : 1u);
        n->depth = p->depth + 1;
    }
    *out = (int32_t)bt->n_nodes++;
    return CDF_OK;
}

/* torchsde _Interval._split_exact at the halfway point. */
static cdf_status split_halfway(cdf_brownian_tree *bt, int32_t idx, cdf_err *err) {
    bt_node *n = &bt->nodes[idx];
    if (n->depth >= BT_MAX_DEPTH)
        return cdf_errf(err, CDF_ERR_UNSUPPORTED, "Brownian tree: deeper than %d levels at [%.17g, %.17g]",
                        BT_MAX_DEPTH, n->start, n->end);
    double mid = 0.5 * (n->end + n->start);
    double start = n->start, end = n->end;
    n->midway = round6(mid);
    if (!(n->midway > start && n->midway < end))
        return cdf_errf(err, CDF_ERR_UNSUPPORTED, "Brownian tree: interval [%.17g, %.17g] cannot be split at tol 1e-6",
                        start, end);
    uint64_t key[2] = {n->key, n->depth};
    n->w_seed = first_seed_word(bt->entropy, key, 2);
    n->split = 1;
    int32_t l, r;
    cdf_status rc = new_node(bt, start, mid, idx, 1, &l, err);
    if (rc == CDF_OK) rc = new_node(bt, mid, end, idx, 0, &r, err);
    if (rc != CDF_OK) return rc;
    bt->nodes[idx].left = l; /* new_node may have moved the array */
    bt->nodes[idx].right = r;
    return CDF_OK;
}

/* torchsde _Interval._split with halfway_tree: halve until x is a midpoint. */
static cdf_status split_toward(cdf_brownian_tree *bt, int32_t idx, double x, cdf_err *err) {
    for (;;) {
        cdf_status rc = split_halfway(bt, idx, err);
        if (rc != CDF_OK) return rc;
        const bt_node *n = &bt->nodes[idx];
        if (x > n->midway) idx = n->right;
        else if (x < n->midway) idx = n->left;
        else return CDF_OK;
    }
}

static cdf_status push_piece(cdf_brownian_tree *bt, int32_t idx, cdf_err *err) {
    if (bt->n_pieces == bt->cap_pieces) {
        size_t cap = bt->cap_pieces ? 2 * bt->cap_pieces : 32;
        int32_t *p = realloc(bt->pieces, cap * sizeof *p);
        if (!p) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "Brownian tree: out of memory");
        bt->pieces = p;
        bt->cap_pieces = cap;
    }
    bt->pieces[bt->n_pieces++] = idx;
    return CDF_OK;
}

/* torchsde _Interval._loc_inner for ta < tb inside node idx: appends the
 * intervals tiling [ta, tb] in order. An unsplit node is split toward tb
 * (if ta is its start) or ta, then examined again: that is where torchsde's
 * tail calls into the new child (and back up to the parent) end up. */
static cdf_status locate(cdf_brownian_tree *bt, int32_t idx, double ta, double tb, cdf_err *err) {
    for (;;) {
        const bt_node *n = &bt->nodes[idx];
        if (ta == n->start && tb == n->end) return push_piece(bt, idx, err);
        if (!n->split) {
            cdf_status rc = split_toward(bt, idx, ta == n->start ? tb : ta, err);
            if (rc != CDF_OK) return rc;
            continue;
        }
        if (tb <= n->midway) {
            idx = n->left;
        } else if (ta >= n->midway) {
            idx = n->right;
        } else {
            double mid = n->midway;
            int32_t right = n->right;
            cdf_status rc = locate(bt, n->left, ta, mid, err);
            if (rc != CDF_OK) return rc;
            idx = right;
            ta = mid;
        }
    }
}

/* A cache slot for node idx, evicting the least recently used one that is
 * not pinned (the parent being split and its other child). */
static float *take_slot(cdf_brownian_tree *bt, int32_t idx, int32_t pin_a, int32_t pin_b) {
    if (bt->nodes[idx].slot >= 0) { /* recomputing gives the same values */
        size_t s = (size_t)bt->nodes[idx].slot;
        bt->slot_used[s] = ++bt->clock;
        return bt->slots + s * bt->numel;
    }
    size_t best = bt->n_slots;
    for (size_t s = 0; s < bt->n_slots; s++) {
        int32_t o = bt->slot_owner[s];
        if (o >= 0 && (o == pin_a || o == pin_b)) continue;
        if (o < 0) { best = s; break; }
        if (best == bt->n_slots || bt->slot_used[s] < bt->slot_used[best]) best = s;
    }
    if (bt->slot_owner[best] >= 0) bt->nodes[bt->slot_owner[best]].slot = -1;
    bt->slot_owner[best] = idx;
    bt->slot_used[best] = ++bt->clock;
    bt->nodes[idx].slot = (int32_t)best;
    return bt->slots + best * bt->numel;
}

static const float *cached_w(cdf_brownian_tree *bt, int32_t idx) {
    if (idx == 0) return bt->root_w;
    int32_t s = bt->nodes[idx].slot;
    if (s < 0) return NULL;
    bt->slot_used[s] = ++bt->clock;
    return bt->slots + (size_t)s * bt->numel;
}

/* Both children's W from the parent's (torchsde computes each child alone,
 * from the same draw; sharing the draw changes nothing). */
static void split_w(cdf_brownian_tree *bt, int32_t pidx) {
    const bt_node *p = &bt->nodes[pidx];
    int32_t l = p->left, r = p->right;
    const float *w = cached_w(bt, pidx);
    float *wl = take_slot(bt, l, pidx, r);
    float *wr = take_slot(bt, r, pidx, l);
    p = &bt->nodes[pidx];

    cdf_rng_seed(&bt->rng, p->w_seed);
    cdf_rng_randn_f32(&bt->rng, bt->noise, bt->numel);
    bt->n_draws++;

    /* Python doubles exactly as torchsde forms them; each tensor op rounds to
     * float32 with its double scalar rounded to float first. No FMA: the
     * ISO -std=c11 build keeps GCC's fp-contract off (the goldens would
     * show a fused multiply-add as 1-ulp differences). */
    double h_reciprocal = 1 / (p->end - p->start);
    double left_diff = p->midway - p->start;
    double right_diff = p->end - p->midway;
    double var = left_diff * right_diff * h_reciprocal;
    float a = (float)left_diff, h = (float)h_reciprocal, sd = (float)sqrt(var);
    const float *z = bt->noise;
    for (size_t i = 0; i < bt->numel; i++) {
        float mean = a * w[i];
        mean = mean * h;
        float scaled = sd * z[i];
        float left = mean + scaled;
        wl[i] = left;
        wr[i] = w[i] - left;
    }
}

/* W of node idx, computed down from its nearest ancestor with a known W. */
static const float *node_w(cdf_brownian_tree *bt, int32_t idx) {
    const float *w = cached_w(bt, idx);
    if (w) return w;
    int32_t path[BT_MAX_DEPTH + 2];
    size_t n = 0;
    int32_t a = idx;
    while (!cached_w(bt, a)) {
        a = bt->nodes[a].parent;
        path[n++] = a; /* ancestors whose children must be computed, deepest first */
    }
    while (n > 0) split_w(bt, path[--n]);
    return cached_w(bt, idx);
}

cdf_status cdf_brownian_tree_create(cdf_brownian_tree **out, size_t numel, double t0, double t1, uint64_t seed,
                                    cdf_err *err) {
    return cdf_brownian_tree_create_cached(out, numel, t0, t1, seed, 0, err);
}

cdf_status cdf_brownian_tree_create_cached(cdf_brownian_tree **out, size_t numel, double t0, double t1,
                                           uint64_t seed, size_t cache_slots, cdf_err *err) {
    *out = NULL;
    if (numel == 0) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "Brownian tree: numel is 0");
    if (!isfinite(t0) || !isfinite(t1) || t0 > t1)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "Brownian tree: need finite t0 <= t1, got t0=%.17g t1=%.17g",
                        t0, t1);
    cdf_brownian_tree *bt = cdf_calloc(1, sizeof *bt, err);
    if (!bt) return err ? err->code : CDF_ERR_OUT_OF_MEMORY;
    bt->numel = numel;
    bt->entropy = seed;

    size_t per = numel * sizeof(float);
    size_t n_slots = per > BT_CACHE_BYTES / BT_CACHE_MAX_SLOTS ? BT_CACHE_BYTES / per : BT_CACHE_MAX_SLOTS;
    if (cache_slots) n_slots = cache_slots;
    if (n_slots < BT_CACHE_MIN_SLOTS) n_slots = BT_CACHE_MIN_SLOTS;
    bt->n_slots = n_slots;
    bt->root_w = cdf_malloc(numel, sizeof(float), err);
    bt->noise = bt->root_w ? cdf_malloc(numel, sizeof(float), err) : NULL;
    size_t slot_floats;
    if (bt->noise && !cdf_mul_ok(numel, n_slots, &slot_floats)) {
        cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "Brownian tree: cache size overflow");
    } else if (bt->noise) {
        bt->slots = cdf_malloc(slot_floats, sizeof(float), err);
        bt->slot_owner = bt->slots ? cdf_malloc(n_slots, sizeof(int32_t), err) : NULL;
        bt->slot_used = bt->slot_owner ? cdf_calloc(n_slots, sizeof(uint64_t), err) : NULL;
    }
    if (!bt->slot_used) {
        cdf_brownian_tree_free(bt);
        return err ? err->code : CDF_ERR_OUT_OF_MEMORY;
    }
    for (size_t s = 0; s < n_slots; s++) bt->slot_owner[s] = -1;

    int32_t root;
    cdf_status rc = new_node(bt, t0, t1, -1, 0, &root, err);
    if (rc != CDF_OK) {
        cdf_brownian_tree_free(bt);
        return rc;
    }

    /* W over [t0, t1] from SeedSequence(entropy, pool_size=24)'s first word,
     * scaled with the unrounded times (torchsde uses t1 - t0 before _round). */
    uint32_t w_seed = first_seed_word(seed, NULL, 0);
    cdf_rng_seed(&bt->rng, w_seed);
    cdf_rng_randn_f32(&bt->rng, bt->root_w, numel);
    bt->n_draws++;
    float scale = (float)sqrt(t1 - t0);
    for (size_t i = 0; i < numel; i++) bt->root_w[i] = bt->root_w[i] * scale;
    *out = bt;
    return CDF_OK;
}

cdf_status cdf_brownian_tree_query(cdf_brownian_tree *bt, double ta, double tb, float *out, cdf_err *err) {
    if (!isfinite(ta) || !isfinite(tb))
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "Brownian tree: non-finite query time (ta=%g, tb=%g)", ta, tb);
    const double start = bt->nodes[0].start, end = bt->nodes[0].end;
    /* torchsde clamps (with a warning) against the rounded interval ends */
    if (ta < start) ta = start;
    if (tb < start) tb = start;
    if (ta > end) ta = end;
    if (tb > end) tb = end;
    if (ta > tb)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "Brownian tree: query times ta=%.17g and tb=%.17g must have ta <= tb",
                        ta, tb);
    double ra = round6(ta), rb = round6(tb);
    if (ta == tb || ra == rb) {
        memset(out, 0, bt->numel * sizeof *out);
        return CDF_OK;
    }

    bt->n_pieces = 0;
    cdf_status rc = locate(bt, 0, ra, rb, err);
    if (rc != CDF_OK) return rc;

    /* torchsde sums the pieces left to right: W = W + Wi in float32. */
    const size_t n = bt->numel;
    memcpy(out, node_w(bt, bt->pieces[0]), n * sizeof *out);
    for (size_t k = 1; k < bt->n_pieces; k++) {
        const float *w = node_w(bt, bt->pieces[k]);
        for (size_t i = 0; i < n; i++) out[i] = out[i] + w[i];
    }
    return CDF_OK;
}

void cdf_brownian_tree_free(cdf_brownian_tree *bt) {
    if (!bt) return;
    free(bt->nodes);
    free(bt->root_w);
    free(bt->noise);
    free(bt->slots);
    free(bt->slot_owner);
    free(bt->slot_used);
    free(bt->pieces);
    free(bt);
}

size_t cdf_brownian_tree_num_nodes(const cdf_brownian_tree *bt) { return bt->n_nodes; }

uint64_t cdf_brownian_tree_num_draws(const cdf_brownian_tree *bt) { return bt->n_draws; }
