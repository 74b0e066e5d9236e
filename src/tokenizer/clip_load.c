/* Loading a CLIP tokenizer folder the way transformers 4.38's
 * CLIPTokenizer.from_pretrained does: vocab.json, merges.txt, then the
 * special tokens (special_tokens_map.json over tokenizer_config.json over
 * CLIPTokenizer's defaults) which all become "added tokens". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"
#include "tokenizer/clip_internal.h"
#include "tokenizer/text_cleanup.h"

#define MERGES_MAX_BYTES (64u * 1024u * 1024u)
/* CLIPTokenizer reads merges.txt lines [1 : 49152 - 256 - 2 + 1]: at most
 * this many merges, whatever the file holds beyond them. */
#define CLIP_MAX_MERGES (49152 - 256 - 2)
#define MAX_LENGTH_LIMIT (1u << 20)

/* ---- files -------------------------------------------------------------- */

static void line_col(const char *text, size_t off, size_t *line, size_t *col) {
    size_t l = 1, start = 0;
    for (size_t i = 0; i < off; i++)
        if (text[i] == '\n') { l++; start = i + 1; }
    *line = l;
    *col = off - start + 1;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 || errno != ENOENT;
}

static cdf_status join(char *out, size_t cap, const char *dir, const char *name, cdf_err *err) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "%s/%s: path too long", dir, name);
    return CDF_OK;
}

/* One file's text, NUL-terminated at text[len] (cJSON wants to see the NUL),
 * and the name it goes by in messages ("<dir>/vocab.json"). */
typedef struct src_text {
    const char *text;
    size_t len;
    char label[4200];
} src_text;

/* Checks that a file's text is UTF-8 (Python opens these files with
 * encoding="utf-8" and fails on anything else). */
static cdf_status check_utf8(const src_text *f, cdf_err *err) {
    const uint8_t *p = (const uint8_t *)f->text;
    for (size_t i = 0; i < f->len;) {
        uint32_t c;
        const char *why = cdf_utf8_next(p, f->len, &i, &c);
        if (why) {
            size_t line, col;
            line_col(f->text, i, &line, &col);
            return cdf_errf(err, CDF_ERR_FORMAT, "%s:%zu:%zu: invalid UTF-8 (byte 0x%02X): %s", f->label, line, col,
                            (unsigned)p[i], why);
        }
    }
    return CDF_OK;
}

/* Parses a JSON object file; a NULL text (an optional file that is absent)
 * leaves j->root NULL. Malformed JSON is reported as path:line:column. */
static cdf_status parse_json(const src_text *f, cdf_json *j, cdf_err *err) {
    j->root = NULL;
    if (!f->text) return CDF_OK;
    cdf_status st = check_utf8(f, err);
    if (st) return st;
    snprintf(j->label, sizeof j->label, "%.*s", (int)sizeof j->label - 1, f->label);
    /* Trailing garbage is an error, as in json.load (text[len] is the NUL,
     * which cJSON wants to see inside the length). */
    const char *end = NULL;
    j->root = cJSON_ParseWithLengthOpts(f->text, f->len + 1, &end, 1);
    if (!j->root) {
        size_t line, col, off = end && end >= f->text && end <= f->text + f->len ? (size_t)(end - f->text) : 0;
        line_col(f->text, off, &line, &col);
        return cdf_errf(err, CDF_ERR_FORMAT, "%s:%zu:%zu: malformed JSON", f->label, line, col);
    }
    if (!cJSON_IsObject(j->root)) {
        cdf_json_free(j);
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: expected a JSON object at the top level", f->label);
    }
    return CDF_OK;
}

/* ---- vocab.json and merges.txt ------------------------------------------ */

static cdf_status load_vocab(cdf_tokenizer *t, const src_text *f, size_t *n_keys, cdf_err *err) {
    const char *path = f->label;
    cdf_json j;
    cdf_status st = parse_json(f, &j, err);
    if (st) return st;
    *n_keys = 0;
    size_t n = (size_t)cJSON_GetArraySize(j.root);
    st = cdf_clip_bpe_reserve(&t->bpe, n + 1024, 16 * n + 4096, 0, err);
    for (const cJSON *it = j.root->child; it && !st; it = it->next) {
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!(d >= 0 && d <= INT32_MAX) || (double)(int32_t)d != d) {
            st = cdf_errf(err, CDF_ERR_FORMAT, "%s: the value of \"%.64s\" is not a token id (an integer >= 0)", path,
                          it->string);
            break;
        }
        uint32_t k;
        st = cdf_clip_intern(&t->bpe, it->string, strlen(it->string), &k, err);
        if (st) break;
        if (t->bpe.syms[k].vocab_id < 0) ++*n_keys;
        t->bpe.syms[k].vocab_id = (int32_t)d; /* a repeated key keeps its last value, as json.load does */
    }
    if (!st && *n_keys == 0) st = cdf_errf(err, CDF_ERR_FORMAT, "%s: the vocabulary is empty", path);
    cdf_json_free(&j);
    return st;
}

/* The code point at s[i] of text already checked to be UTF-8; *next is
 * where the following one starts. */
static uint32_t cp_at(const char *s, size_t len, size_t i, size_t *next) {
    uint32_t c = (uint8_t)s[i];
    *next = i + 1;
    if (c >= 0x80) {
        *next = i;
        cdf_utf8_next((const uint8_t *)s, len, next, &c);
    }
    return c;
}

static int is_eol(char c) { return c == '\n' || c == '\r'; }

/* Past the line end at s[i] ("\n", "\r" or "\r\n": Python's text mode). */
static size_t skip_eol(const char *s, size_t len, size_t i) {
    return s[i] == '\r' && i + 1 < len && s[i + 1] == '\n' ? i + 2 : i + 1;
}

/* merges.txt as CLIPTokenizer reads it: text mode, strip(), split("\n"),
 * drop the first ("#version") line, keep the next CLIP_MAX_MERGES lines,
 * each split() into a pair; rank = line order. Works on the bytes: the
 * fields are UTF-8 spans of the file. */
static cdf_status load_merges(cdf_tokenizer *t, const src_text *f, cdf_err *err) {
    const char *path = f->label, *s = f->text;
    const size_t len = f->len;
    cdf_status st = check_utf8(f, err);
    if (st) return st;
    /* A hint only: GPT-2 style files have about one new symbol per merge. */
    st = cdf_clip_bpe_reserve(&t->bpe, t->bpe.n_syms + len / 8 + 1024, t->bpe.pool_len + len + 4096, len / 8 + 1024,
                              err);
    size_t b = 0, e = len, line = 1, next;
    while (b < e && cdf_py_isspace(cp_at(s, len, b, &next))) {
        if (is_eol(s[b])) {
            line++;
            next = skip_eol(s, len, b);
        }
        b = next;
    }
    while (e > b) { /* strip the end: step back to the start of the last code point */
        size_t k = e - 1;
        while (k > b && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
        if (!cdf_py_isspace(cp_at(s, len, k, &next))) break;
        e = k;
    }
    size_t i = b;
    while (i < e && !is_eol(s[i])) i++; /* the header line */
    for (uint32_t rank = 0; !st && i < e && rank < CLIP_MAX_MERGES; rank++) {
        i = skip_eol(s, e, i);
        line++;
        size_t fs[2] = {0, 0}, fe[2] = {0, 0}, nf = 0;
        while (i < e && !is_eol(s[i])) {
            if (cdf_py_isspace(cp_at(s, e, i, &next))) {
                i = next;
                continue;
            }
            size_t f = i;
            while (i < e && !is_eol(s[i]) && !cdf_py_isspace(cp_at(s, e, i, &next))) i = next;
            if (nf < 2) {
                fs[nf] = f;
                fe[nf] = i;
            }
            nf++;
        }
        if (nf != 2) {
            st = cdf_errf(err, CDF_ERR_FORMAT,
                          "%s:%zu: expected a merge (two symbols separated by a space), found %zu %s", path, line, nf,
                          nf == 1 ? "field" : "fields");
            break;
        }
        st = cdf_clip_add_merge(&t->bpe, s + fs[0], fe[0] - fs[0], s + fs[1], fe[1] - fs[1], rank, err);
    }
    return st;
}

/* ---- special tokens ------------------------------------------------------ */

typedef struct tokspec {
    const char *content; /* NULL: not given */
    int lstrip, rstrip, single_word;
} tokspec;

/* A token given as "text" or as {"content": "text", "lstrip": ..., ...}. */
static cdf_status parse_tokspec(const cJSON *v, const char *label, const char *key, tokspec *out, cdf_err *err) {
    memset(out, 0, sizeof *out);
    if (cJSON_IsString(v)) {
        out->content = v->valuestring;
        return CDF_OK;
    }
    if (!cJSON_IsObject(v))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: '%s' must be a string or an object with \"content\"", label, key);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(c)) return cdf_errf(err, CDF_ERR_FORMAT, "%s: '%s' has no string \"content\"", label, key);
    out->content = c->valuestring;
    static const char *const flags[] = {"lstrip", "rstrip", "single_word"};
    int *dst[] = {&out->lstrip, &out->rstrip, &out->single_word};
    for (int k = 0; k < 3; k++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, flags[k]);
        if (!f || cJSON_IsNull(f)) continue;
        if (!cJSON_IsBool(f))
            return cdf_errf(err, CDF_ERR_FORMAT, "%s: '%s': \"%s\" must be true or false", label, key, flags[k]);
        *dst[k] = cJSON_IsTrue(f);
    }
    return CDF_OK;
}

static int64_t find_added(const cdf_tokenizer *t, const char *content) {
    for (size_t i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].content, content) == 0) return (int64_t)i;
    return -1;
}

static int32_t vocab_id(const cdf_tokenizer *t, const char *s) {
    uint32_t k = cdf_clip_find(&t->bpe, s, strlen(s));
    return k == CDF_CLIP_NO_SYM ? -1 : t->bpe.syms[k].vocab_id;
}

/* Adds (or, for a content already present, replaces) an added token. */
static cdf_status add_token(cdf_tokenizer *t, const tokspec *s, int64_t id, cdf_err *err) {
    int64_t at = find_added(t, s->content);
    cdf_clip_added *a;
    if (at >= 0) {
        a = &t->added[at];
    } else {
        cdf_clip_added *na = realloc(t->added, (t->n_added + 1) * sizeof *na);
        if (!na) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory adding a special token");
        t->added = na;
        a = &t->added[t->n_added];
        memset(a, 0, sizeof *a);
        size_t len = strlen(s->content);
        cdf_u32buf cp = {0};
        cdf_status st = cdf_utf8_decode(s->content, len, "special token", &cp, err);
        a->content = cdf_malloc(len + 1, 1, err);
        if (st || !a->content) {
            free(a->content);
            cdf_u32buf_free(&cp);
            return st ? st : CDF_ERR_OUT_OF_MEMORY;
        }
        memcpy(a->content, s->content, len + 1);
        a->cps = cp.v;
        a->n_cps = cp.n;
        t->n_added++;
    }
    a->id = id;
    a->lstrip = s->lstrip;
    a->rstrip = s->rstrip;
    a->single_word = s->single_word;
    return CDF_OK;
}

/* tokenizer_config.json's "added_tokens_decoder" (written by transformers
 * >= 4.34): {"49406": {"content": "<|startoftext|>", ...}, ...}. */
static cdf_status load_added_decoder(cdf_tokenizer *t, const cdf_json *cfg, cdf_err *err) {
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg->root, "added_tokens_decoder");
    if (!dec || cJSON_IsNull(dec)) return CDF_OK;
    if (!cJSON_IsObject(dec))
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: 'added_tokens_decoder' must be an object", cfg->label);
    for (const cJSON *it = dec->child; it; it = it->next) {
        char *end;
        errno = 0;
        long long id = strtoll(it->string, &end, 10);
        if (errno || end == it->string || *end || id < 0 || id > INT32_MAX)
            return cdf_errf(err, CDF_ERR_FORMAT, "%s: added_tokens_decoder: \"%.32s\" is not a token id", cfg->label,
                            it->string);
        tokspec s;
        cdf_status st = parse_tokspec(it, cfg->label, it->string, &s, err);
        if (!st && s.content[0]) st = add_token(t, &s, id, err);
        if (st) return st;
    }
    return CDF_OK;
}

/* PreTrainedTokenizer.__init__: every special token not yet an added token
 * becomes one, with its vocabulary id or, if it has none, the next free id. */
static cdf_status load_special(cdf_tokenizer *t, const cdf_json *map, const cdf_json *cfg, size_t n_vocab_keys,
                               tokspec *named, cdf_err *err) {
    /* transformers' SPECIAL_TOKENS_ATTRIBUTES order. */
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};
    static const char *const defaults[] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>", NULL,
                                           "<|endoftext|>",   NULL,            NULL};
    enum { N_KEYS = 7, MAX_EXTRA = 1024 };
    tokspec list[N_KEYS + MAX_EXTRA];
    size_t n = 0;
    for (int k = 0; k < N_KEYS; k++) {
        const cJSON *v = map->root ? cJSON_GetObjectItemCaseSensitive(map->root, keys[k]) : NULL;
        const char *label = map->label;
        if (!v || cJSON_IsNull(v)) {
            v = cfg->root ? cJSON_GetObjectItemCaseSensitive(cfg->root, keys[k]) : NULL;
            label = cfg->label;
        }
        tokspec s = {defaults[k], 0, 0, 0};
        if (v && !cJSON_IsNull(v)) {
            cdf_status st = parse_tokspec(v, label, keys[k], &s, err);
            if (st) return st;
        }
        if (k < 5) named[k] = s;
        if (s.content) list[n++] = s;
    }
    const cJSON *extra = map->root ? cJSON_GetObjectItemCaseSensitive(map->root, "additional_special_tokens") : NULL;
    const char *label = map->label;
    if (!extra || cJSON_IsNull(extra)) {
        extra = cfg->root ? cJSON_GetObjectItemCaseSensitive(cfg->root, "additional_special_tokens") : NULL;
        label = cfg->label;
    }
    if (extra && !cJSON_IsNull(extra)) {
        if (!cJSON_IsArray(extra) || cJSON_GetArraySize(extra) > MAX_EXTRA)
            return cdf_errf(err, CDF_ERR_FORMAT, "%s: 'additional_special_tokens' must be a list of at most %d tokens",
                            label, MAX_EXTRA);
        for (const cJSON *it = extra->child; it; it = it->next) {
            cdf_status st = parse_tokspec(it, label, "additional_special_tokens", &list[n], err);
            if (st) return st;
            n++;
        }
    }
    /* len(get_vocab()) before the special tokens join: vocab keys plus the
     * added tokens that are not vocab keys. */
    int64_t next_id = (int64_t)n_vocab_keys;
    for (size_t i = 0; i < t->n_added; i++) next_id += vocab_id(t, t->added[i].content) < 0;
    for (size_t i = 0; i < n; i++) {
        if (!list[i].content[0] || find_added(t, list[i].content) >= 0) continue;
        int32_t v = vocab_id(t, list[i].content);
        cdf_status st = add_token(t, &list[i], v >= 0 ? v : next_id++, err);
        if (st) return st;
    }
    return CDF_OK;
}

/* convert_tokens_to_ids for one token: added tokens first, then the vocab. */
static int64_t token_id(const cdf_tokenizer *t, const char *s) {
    int64_t a = find_added(t, s);
    if (a >= 0) return t->added[a].id;
    return vocab_id(t, s);
}

static cdf_status build_trie(cdf_tokenizer *t, cdf_err *err) {
    size_t cap = 1;
    for (size_t i = 0; i < t->n_added; i++) cap += t->added[i].n_cps;
    t->trie = cdf_malloc(cap, sizeof *t->trie, err);
    if (!t->trie) return CDF_ERR_OUT_OF_MEMORY;
    t->trie[0] = (cdf_clip_trie_node){0, -1, -1, 0};
    t->n_trie = 1;
    for (size_t i = 0; i < t->n_added; i++) {
        int32_t node = 0;
        for (size_t k = 0; k < t->added[i].n_cps; k++) {
            uint32_t c = t->added[i].cps[k];
            int32_t next = cdf_clip_trie_child(t, node, c);
            if (next < 0) {
                next = (int32_t)t->n_trie++;
                t->trie[next] = (cdf_clip_trie_node){c, -1, t->trie[node].child, 0};
                t->trie[node].child = next;
            }
            node = next;
        }
        t->trie[node].terminal = 1;
    }
    return CDF_OK;
}

static cdf_status load_max_length(cdf_tokenizer *t, const cdf_json *cfg, cdf_err *err) {
    t->max_length = 77; /* CLIP's context length, when the config does not say */
    const cJSON *v = cfg->root ? cJSON_GetObjectItemCaseSensitive(cfg->root, "model_max_length") : NULL;
    if (!v || cJSON_IsNull(v)) return CDF_OK;
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!(d >= 2 && d <= MAX_LENGTH_LIMIT) || (double)(size_t)d != d)
        return cdf_errf(err, CDF_ERR_FORMAT, "%s: 'model_max_length' must be an integer from 2 to %u", cfg->label,
                        MAX_LENGTH_LIMIT);
    t->max_length = (size_t)d;
    return CDF_OK;
}

enum { F_VOCAB, F_MERGES, F_CONFIG, F_MAP, N_FILES };
static const char *const file_names[N_FILES] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                                "special_tokens_map.json"};

/* Builds the tokenizer from the four files' texts (the last two may be absent). */
static cdf_status load_all(cdf_tokenizer *t, const src_text *files, const char *dir, cdf_err *err) {
    size_t n_vocab_keys = 0;
    cdf_status st = cdf_clip_bpe_init(&t->bpe, err);
    if (!st) st = load_vocab(t, &files[F_VOCAB], &n_vocab_keys, err);
    if (!st) st = load_merges(t, &files[F_MERGES], err);
    if (st) return st;

    cdf_json cfg = {0}, map = {0};
    tokspec named[5]; /* bos, eos, unk, sep, pad */
    st = parse_json(&files[F_CONFIG], &cfg, err);
    if (!st) st = parse_json(&files[F_MAP], &map, err);
    if (!st && cfg.root) st = load_added_decoder(t, &cfg, err);
    if (!st) st = load_special(t, &map, &cfg, n_vocab_keys, named, err);
    if (!st) st = load_max_length(t, &cfg, err);
    if (!st) {
        /* The unknown-token fallback is a vocab look-up in _convert_token_to_id. */
        int32_t v = vocab_id(t, named[2].content);
        t->unk_id = v >= 0 ? v : token_id(t, named[2].content);
        t->bos_id = token_id(t, named[0].content);
        t->eos_id = token_id(t, named[1].content);
        t->pad_id = token_id(t, named[4].content);
        const char *which = t->unk_id < 0 ? "unk_token" : t->bos_id < 0 ? "bos_token" : t->eos_id < 0 ? "eos_token"
                          : t->pad_id < 0 ? "pad_token" : NULL;
        if (which)
            st = cdf_errf(err, CDF_ERR_FORMAT, "%s: the %s is neither in vocab.json nor an added token", dir, which);
        if (t->bos_id < 0) t->bos_id = t->unk_id;
        if (t->eos_id < 0) t->eos_id = t->unk_id;
        if (t->pad_id < 0) t->pad_id = t->unk_id;
    }
    cdf_json_free(&cfg);
    cdf_json_free(&map);
    if (st) return st;

    /* What each known string converts to, decided once. */
    for (size_t i = 0; i < t->n_added && !st; i++) {
        uint32_t k;
        st = cdf_clip_intern(&t->bpe, t->added[i].content, strlen(t->added[i].content), &k, err);
    }
    if (st) return st;
    for (size_t k = 0; k < t->bpe.n_syms; k++)
        t->bpe.syms[k].id = t->bpe.syms[k].vocab_id >= 0 ? t->bpe.syms[k].vocab_id : t->unk_id;
    for (size_t i = 0; i < t->n_added; i++) {
        uint32_t k = cdf_clip_find(&t->bpe, t->added[i].content, strlen(t->added[i].content));
        t->bpe.syms[k].id = t->added[i].id;
    }
    return build_trie(t, err);
}

static cdf_status load_new(cdf_tokenizer **out, const src_text *files, const char *dir, cdf_err *err) {
    cdf_tokenizer *t = cdf_calloc(1, sizeof *t, err);
    if (!t) return CDF_ERR_OUT_OF_MEMORY;
    cdf_status st = load_all(t, files, dir, err);
    if (st) {
        cdf_tokenizer_free(t);
        return st;
    }
    *out = t;
    return CDF_OK;
}

cdf_status cdf_tokenizer_load(cdf_tokenizer **out, const char *dir, cdf_err *err) {
    *out = NULL;
    if (!dir) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "tokenizer folder: NULL path");
    src_text files[N_FILES];
    char *bufs[N_FILES] = {NULL};
    cdf_status st = CDF_OK;
    for (int k = 0; k < N_FILES && !st; k++) {
        src_text *f = &files[k];
        f->text = NULL;
        f->len = 0;
        st = join(f->label, sizeof f->label, dir, file_names[k], err);
        if (st || (k >= F_CONFIG && !file_exists(f->label))) continue; /* the last two are optional */
        st = cdf_read_file(f->label, k == F_MERGES ? MERGES_MAX_BYTES : CDF_JSON_MAX_BYTES, &bufs[k], &f->len, err);
        f->text = bufs[k];
    }
    if (!st) st = load_new(out, files, dir, err);
    for (int k = 0; k < N_FILES; k++) free(bufs[k]);
    return st;
}

cdf_status cdf_tokenizer_load_mem(cdf_tokenizer **out, const cdf_tokenizer_texts *in, cdf_err *err) {
    *out = NULL;
    if (!in || !in->vocab_json || !in->merges_txt)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "tokenizer: vocab.json and merges.txt texts are required");
    const char *dir = in->label ? in->label : "<memory>";
    const char *text[N_FILES] = {in->vocab_json, in->merges_txt, in->config_json, in->special_tokens_json};
    const size_t len[N_FILES] = {in->vocab_len, in->merges_len, in->config_len, in->special_tokens_len};
    src_text files[N_FILES];
    char *bufs[N_FILES] = {NULL};
    cdf_status st = CDF_OK;
    for (int k = 0; k < N_FILES && !st; k++) {
        src_text *f = &files[k];
        f->text = NULL;
        f->len = len[k];
        snprintf(f->label, sizeof f->label, "%.4000s/%s", dir, file_names[k]);
        if (!text[k]) continue;
        /* The same limits as for files, checked before copying. */
        const size_t max = k == F_MERGES ? MERGES_MAX_BYTES : CDF_JSON_MAX_BYTES;
        if (len[k] > max) {
            st = cdf_errf(err, CDF_ERR_FORMAT, "%s: %zu bytes, more than the limit of %zu", f->label, len[k], max);
            break;
        }
        if (!(bufs[k] = cdf_malloc(len[k] + 1, 1, err))) { st = CDF_ERR_OUT_OF_MEMORY; break; }
        memcpy(bufs[k], text[k], len[k]);
        bufs[k][len[k]] = '\0';
        f->text = bufs[k];
    }
    if (!st) st = load_new(out, files, dir, err);
    for (int k = 0; k < N_FILES; k++) free(bufs[k]);
    return st;
}

void cdf_tokenizer_free(cdf_tokenizer *t) {
    if (!t) return;
    cdf_clip_bpe_free(&t->bpe);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].cps);
    }
    free(t->added);
    free(t->trie);
    free(t);
}
