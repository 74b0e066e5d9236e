#include "models/clip_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/component.h"

typedef struct clip_layer {
    cdf_norm ln1, ln2;
    cdf_linear qkv, out, fc1, fc2;
} clip_layer;

struct cdf_clip_text {
    cdf_clip_config cfg;
    cdf_compute compute;
    cdf_st_file *stream_src; /* streamed weights read from here */
    float *tok_emb;  /* [vocab, D] */
    float *pos_emb;  /* [max_positions, D] */
    clip_layer *layers;
    cdf_norm final_ln;
};

const cdf_clip_config *cdf_clip_text_config(const cdf_clip_text *m) { return &m->cfg; }

cdf_status cdf_clip_read_config(cdf_clip_config *c, const cdf_json *jp, cdf_err *err) {
    const cdf_json j = *jp;
    cdf_status st;
    const char *act = NULL;
    double eps;
    if ((st = cdf_json_req_int(&j, "hidden_size", &c->hidden, err)) ||
        (st = cdf_json_req_int(&j, "intermediate_size", &c->intermediate, err)) ||
        (st = cdf_json_req_int(&j, "num_attention_heads", &c->heads, err)) ||
        (st = cdf_json_req_int(&j, "num_hidden_layers", &c->layers, err)) ||
        (st = cdf_json_int(&j, "max_position_embeddings", 77, &c->max_positions, err)) ||
        (st = cdf_json_int(&j, "vocab_size", 49408, &c->vocab, err)) ||
        (st = cdf_json_int(&j, "eos_token_id", 2, &c->eos_token_id, err)) ||
        (st = cdf_json_str(&j, "hidden_act", "quick_gelu", &act, err)) ||
        (st = cdf_json_num(&j, "layer_norm_eps", 1e-5, &eps, err)))
        goto out;
    c->eps = (float)eps;
    if (strcmp(act, "quick_gelu") == 0) c->act_gelu = 0;
    else if (strcmp(act, "gelu") == 0) c->act_gelu = 1;
    else {
        st = cdf_errf(err, CDF_ERR_UNSUPPORTED, "%s: key 'hidden_act': \"%s\" is not supported (quick_gelu, gelu)",
                      j.label, act);
        goto out;
    }
    if (c->hidden <= 0 || c->heads <= 0 || c->hidden % c->heads != 0 || c->layers <= 0 || c->layers > 1000 ||
        c->intermediate <= 0 || c->max_positions <= 0 || c->vocab <= 0 || c->hidden > 65536 ||
        c->intermediate > 1 << 20 || c->vocab > 1 << 24 || c->max_positions > 1 << 16) {
        st = cdf_errf(err, CDF_ERR_FORMAT,
                      "%s: inconsistent sizes (hidden_size %lld must be a positive multiple of num_attention_heads "
                      "%lld; layers, intermediate_size, vocab_size, max_position_embeddings must be positive and sane)",
                      j.label, (long long)c->hidden, (long long)c->heads);
    }
out:
    return st;
}

cdf_status cdf_clip_text_load(cdf_clip_text **out, const cdf_backend *be, const char *dir, const char *variant,
                              const cdf_weight_opts *o, cdf_err *err) {
    *out = NULL;
    cdf_json j;
    cdf_st_file *f;
    cdf_status st = cdf_component_open(&j, &f, dir, "model", variant, err);
    if (st) return st;
    st = cdf_clip_text_create(out, be, &j, f, o, err);
    cdf_component_close(&j, f, !st && o->stream ? &(*out)->stream_src : NULL);
    return st;
}

cdf_status cdf_clip_text_create(cdf_clip_text **out, const cdf_backend *be, const cdf_json *config,
                                const cdf_st_file *f, const cdf_weight_opts *o, cdf_err *err) {
    *out = NULL;
    cdf_clip_text *m = cdf_calloc(1, sizeof *m, err);
    if (!m) return CDF_ERR_OUT_OF_MEMORY;
    m->compute = o->compute;
    cdf_status st = cdf_clip_read_config(&m->cfg, config, err);
    if (st) goto fail;
    const cdf_clip_config *c = &m->cfg;
    const int64_t D = c->hidden;
    const int64_t te[2] = {c->vocab, D}, pe[2] = {c->max_positions, D};
    if ((st = cdf_load_f32(f, "text_model.embeddings.token_embedding.weight", 2, te, &m->tok_emb, err)) ||
        (st = cdf_load_f32(f, "text_model.embeddings.position_embedding.weight", 2, pe, &m->pos_emb, err)) ||
        (st = cdf_norm_load(&m->final_ln, f, "text_model.final_layer_norm", D, 0, c->eps, err)))
        goto fail;
    if (!(m->layers = cdf_calloc((size_t)c->layers, sizeof *m->layers, err))) { st = CDF_ERR_OUT_OF_MEMORY; goto fail; }
    for (int64_t i = 0; i < c->layers; i++) {
        clip_layer *l = &m->layers[i];
        char p[256], a[256], b[256], q[256];
        snprintf(p, sizeof p, "text_model.encoder.layers.%lld", (long long)i);
        const char *qkv[3] = {cdf_join(a, sizeof a, p, "self_attn.q_proj"), cdf_join(b, sizeof b, p, "self_attn.k_proj"),
                              cdf_join(q, sizeof q, p, "self_attn.v_proj")};
        char n1[256], n2[256], o1[256], f1[256], f2[256];
        if ((st = cdf_norm_load(&l->ln1, f, cdf_join(n1, sizeof n1, p, "layer_norm1"), D, 0, c->eps, err)) ||
            (st = cdf_norm_load(&l->ln2, f, cdf_join(n2, sizeof n2, p, "layer_norm2"), D, 0, c->eps, err)) ||
            (st = cdf_linear_load(&l->qkv, be, o, f, qkv, 3, D, D, 1, err)))
            goto fail;
        const char *op[1] = {cdf_join(o1, sizeof o1, p, "self_attn.out_proj")};
        const char *fp1[1] = {cdf_join(f1, sizeof f1, p, "mlp.fc1")};
        const char *fp2[1] = {cdf_join(f2, sizeof f2, p, "mlp.fc2")};
        if ((st = cdf_linear_load(&l->out, be, o, f, op, 1, D, D, 1, err)) ||
            (st = cdf_linear_load(&l->fc1, be, o, f, fp1, 1, D, c->intermediate, 1, err)) ||
            (st = cdf_linear_load(&l->fc2, be, o, f, fp2, 1, c->intermediate, D, 1, err)))
            goto fail;
    }
    *out = m;
    return CDF_OK;
fail:
    cdf_clip_text_free(m);
    return st;
}

void cdf_clip_text_free(cdf_clip_text *m) {
    if (!m) return;
    if (m->layers) {
        for (int64_t i = 0; i < m->cfg.layers; i++) {
            clip_layer *l = &m->layers[i];
            cdf_norm_free(&l->ln1);
            cdf_norm_free(&l->ln2);
            cdf_linear_free(&l->qkv);
            cdf_linear_free(&l->out);
            cdf_linear_free(&l->fc1);
            cdf_linear_free(&l->fc2);
        }
        free(m->layers);
    }
    cdf_norm_free(&m->final_ln);
    free(m->tok_emb);
    free(m->pos_emb);
    cdf_st_close(m->stream_src);
    free(m);
}

/* One encoder layer in place on h[B*L, D]. */
static cdf_status layer_forward(cdf_exec *ex, const cdf_clip_text *m, const clip_layer *l, float *h, int64_t B,
                                int64_t L, cdf_err *err) {
    const cdf_clip_config *c = &m->cfg;
    const int64_t D = c->hidden, M = B * L, hd = D / c->heads;
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    cdf_status st = CDF_ERR_OUT_OF_MEMORY;
    float *x = cdf_arena_f32(ar, (size_t)(M * D), err);           /* [M, D] normed */
    float *qkv = cdf_arena_f32(ar, (size_t)(M * 3 * D), err);     /* [M, 3D] */
    float *mid = cdf_arena_f32(ar, (size_t)(M * c->intermediate), err);
    if (!x || !qkv || !mid) goto out;
    cdf_layer_norm(ex, &l->ln1, x, h, M);
    if ((st = cdf_linear_forward(ex, &l->qkv, qkv, (size_t)(3 * D), x, (size_t)D, M, err))) goto out;
    const cdf_attn_shape as = {B, L, L, c->heads, hd, (size_t)(3 * D), (size_t)(3 * D), (size_t)(3 * D), (size_t)D,
                               1.0f / sqrtf((float)hd), 1, m->compute, 0};
    if ((st = cdf_attention(ex, &as, x, qkv, qkv + D, qkv + 2 * D, err))) goto out;
    /* out_proj accumulates onto the residual: h += attn @ Wo^T + bo */
    if ((st = cdf_linear_forward(ex, &l->out, qkv, (size_t)D, x, (size_t)D, M, err))) goto out;
    cdf_add_scaled(ex, h, h, qkv, (size_t)(M * D), 1.0f);
    cdf_layer_norm(ex, &l->ln2, x, h, M);
    if ((st = cdf_linear_forward(ex, &l->fc1, mid, (size_t)c->intermediate, x, (size_t)D, M, err))) goto out;
    if (c->act_gelu) cdf_gelu_erf(ex, mid, mid, (size_t)(M * c->intermediate));
    else cdf_quick_gelu(ex, mid, mid, (size_t)(M * c->intermediate));
    if ((st = cdf_linear_forward(ex, &l->fc2, x, (size_t)D, mid, (size_t)c->intermediate, M, err))) goto out;
    cdf_add_scaled(ex, h, h, x, (size_t)(M * D), 1.0f);
out:
    cdf_arena_reset(ar, mark);
    return st;
}

cdf_status cdf_clip_text_forward(cdf_exec *ex, const cdf_clip_text *m, const int64_t *ids, int64_t B, int64_t L,
                                 int skip, const cdf_clip_outputs *out, cdf_err *err) {
    const cdf_clip_config *c = &m->cfg;
    const int64_t D = c->hidden;
    if (L > c->max_positions || L <= 0 || B <= 0)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "text encoder: sequence length %lld not in 1..%lld",
                        (long long)L, (long long)c->max_positions);
    if (skip < 0 || skip >= c->layers)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "clip_skip %d must be between 0 and %lld", skip,
                        (long long)c->layers - 1);
    for (int64_t i = 0; i < B * L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "text encoder: token id %lld at [%lld, %lld] is outside 0..%lld",
                            (long long)ids[i], (long long)(i / L), (long long)(i % L), (long long)c->vocab - 1);
    cdf_exec_begin_sized(ex, (size_t)(B * L * c->intermediate));
    cdf_arena *ar = cdf_exec_arena(ex);
    cdf_arena_mark mark = cdf_arena_save(ar);
    float *h = cdf_arena_f32(ar, (size_t)(B * L * D), err);
    float *fin = cdf_arena_f32(ar, (size_t)(B * L * D), err);
    if (!h || !fin) { cdf_arena_reset(ar, mark); return CDF_ERR_OUT_OF_MEMORY; }
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < L; t++) {
            const float *te = m->tok_emb + ids[b * L + t] * D, *pe = m->pos_emb + t * D;
            float *hr = h + (b * L + t) * D;
            for (int64_t d = 0; d < D; d++) hr[d] = te[d] + pe[d];
        }
    /* Run all layers when the penultimate state is wanted, else stop early. */
    int64_t run = out->penultimate ? c->layers : c->layers - skip;
    cdf_status st = CDF_OK;
    for (int64_t i = 0; i < run && !st; i++) {
        if (out->penultimate && i == c->layers - 1) memcpy(out->penultimate, h, (size_t)(B * L * D) * sizeof(float));
        if (skip && i == c->layers - skip) memcpy(fin, h, (size_t)(B * L * D) * sizeof(float));
        st = layer_forward(ex, m, &m->layers[i], h, B, L, err);
    }
    if (!st) {
        const float *src = (skip && run == c->layers) ? fin : h;
        cdf_layer_norm(ex, &m->final_ln, fin, src, B * L);
        if (out->last_hidden) memcpy(out->last_hidden, fin, (size_t)(B * L * D) * sizeof(float));
        if (out->pooled) {
            for (int64_t b = 0; b < B; b++) {
                /* eos_token_id 2 (legacy configs): argmax of the ids (first
                 * maximum) = the first <|endoftext|>; otherwise the first eos. */
                int64_t pos = 0;
                const int64_t *r = ids + b * L;
                for (int64_t t = 0; t < L; t++) {
                    if (c->eos_token_id == 2 ? r[t] > r[pos] : r[t] == c->eos_token_id) {
                        pos = t;
                        if (c->eos_token_id != 2) break;
                    }
                }
                memcpy(out->pooled + b * D, fin + (b * L + pos) * D, (size_t)D * sizeof(float));
            }
        }
    }
    cdf_arena_reset(ar, mark);
    return st;
}
