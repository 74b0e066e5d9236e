/* CLIP tokenizer: the 106 reference prompts (SD1 and SD2 folders, ids, BPE
 * strings and untruncated lengths, all exact), the fast BPE against a naive
 * twin, the tiny pipelines' folders, and bad files / bad prompts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "testutil.h"
#include "tokenizer/clip_internal.h"
#include "tokenizer/clip_tokenizer.h"

#define MAXLEN 77

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static cdf_tokenizer *load_ref(const char *rel) {
    cdf_tokenizer *t = NULL;
    cdf_err err = {0};
    if (cdf_tokenizer_load(&t, tu_ref_path(rel), &err) != CDF_OK) fail_msg("%s", err.msg);
    return t;
}

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

static void collect(void *user, const char *tok) {
    strlist *l = user;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    l->v[l->n++] = strdup(tok);
}

static void strlist_free(strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Exact comparison; prints the first difference. */
static int ids_equal(const char *what, const int64_t *got, const int64_t *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            printf("    %s: position %zu: got %lld, want %lld\n", what, i, (long long)got[i], (long long)want[i]);
            return 0;
        }
    }
    return 1;
}

static size_t json_ids(const cJSON *arr, int64_t *out, size_t cap) {
    size_t n = 0;
    assert_true(cJSON_IsArray(arr));
    for (const cJSON *it = arr->child; it; it = it->next) {
        assert_true(cJSON_IsNumber(it));
        assert_true(n < cap);
        out[n++] = (int64_t)it->valuedouble;
    }
    return n;
}

static size_t put_utf8(uint32_t c, char *o) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 0x3F)),
               o[2] = (char)(0x80 | (c & 0x3F)), 3;
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 0x3F));
    return o[2] = (char)(0x80 | (c >> 6 & 0x3F)), o[3] = (char)(0x80 | (c & 0x3F)), 4;
}

/* The "prompt" string of a goldens line with its true length: cJSON stops
 * strings at an escaped NUL, and prompt #73 has one. */
static char *json_prompt(const char *line, size_t *len) {
    const char *p = strstr(line, "\"prompt\": \"");
    assert_non_null(p);
    p += strlen("\"prompt\": \"");
    char *out = malloc(4 * strlen(p) + 1);
    size_t n = 0;
    while (*p != '"') {
        assert_true(*p != '\0');
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        p++;
        switch (*p++) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'u': {
            uint32_t c = (uint32_t)strtoul((char[5]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
            p += 4;
            if (c >= 0xD800 && c < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                uint32_t lo = (uint32_t)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            n += put_utf8(c, out + n);
            break;
        }
        default: out[n++] = p[-1]; break; /* \" \\ \/ */
        }
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static int64_t *encode_ok(const cdf_tokenizer *t, const char *prompt, int64_t *ids, size_t *n_untrunc) {
    cdf_err err = {0};
    if (cdf_tokenizer_encode(t, prompt, ids, MAXLEN, n_untrunc, &err) != CDF_OK) fail_msg("%s", err.msg);
    return ids;
}

static void test_goldens(void **state) {
    (void)state;
    double t0 = now_s();
    cdf_tokenizer *sd1 = load_ref("tokenizer/clip-vit-large-patch14");
    double t1 = now_s();
    cdf_tokenizer *sd2 = load_ref("tokenizer/sd2");
    printf("  load: SD1 %.1f ms, SD2 %.1f ms (%zu symbols, %zu merges)\n", 1e3 * (t1 - t0), 1e3 * (now_s() - t1),
           sd1->bpe.n_syms, sd1->bpe.n_pairs);
    assert_int_equal(sd1->bpe.n_pairs, 48894);
    assert_int_equal(cdf_tokenizer_max_length(sd1), 77);
    assert_int_equal(cdf_tokenizer_bos_id(sd1), 49406);
    assert_int_equal(cdf_tokenizer_eos_id(sd1), 49407);
    assert_int_equal(cdf_tokenizer_pad_id(sd1), 49407);
    assert_int_equal(cdf_tokenizer_max_length(sd2), 77);
    assert_int_equal(cdf_tokenizer_bos_id(sd2), 49406);
    assert_int_equal(cdf_tokenizer_eos_id(sd2), 49407);
    assert_int_equal(cdf_tokenizer_pad_id(sd2), 0); /* special_tokens_map.json's "!" wins */

    /* The README's check, unpadded. */
    int64_t ids[MAXLEN];
    size_t nu = 0;
    encode_ok(sd1, "a photo of a cat", ids, &nu);
    const int64_t cat[] = {49406, 320, 1125, 539, 320, 2368, 49407};
    assert_int_equal(nu, 7);
    assert_true(ids_equal("a photo of a cat", ids, cat, 7));

    FILE *f = fopen(tu_ref_path("tokenizer/goldens.jsonl"), "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, ok_sd1 = 0, ok_sd2 = 0, ok_bpe = 0, ok_len = 0, ok_unpadded = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *g = cJSON_Parse(line);
        assert_non_null(g);
        size_t plen;
        char *prompt = json_prompt(line, &plen);
        assert_string_equal(prompt, cJSON_GetObjectItem(g, "prompt")->valuestring); /* up to a NUL */
        int index = cJSON_GetObjectItem(g, "index")->valueint;
        cdf_err err = {0};
        char what[64];
        int64_t want[MAXLEN], got[MAXLEN], unpadded[MAXLEN];
        n++;

        snprintf(what, sizeof what, "#%d SD1 input_ids", index);
        assert_int_equal(json_ids(cJSON_GetObjectItem(g, "input_ids"), want, MAXLEN), MAXLEN);
        if (cdf_tokenizer_encode_len(sd1, prompt, plen, got, MAXLEN, &nu, &err) != CDF_OK) fail_msg("%s", err.msg);
        ok_sd1 += ids_equal(what, got, want, MAXLEN);
        size_t nun = json_ids(cJSON_GetObjectItem(g, "tokens_unpadded"), unpadded, MAXLEN);
        snprintf(what, sizeof what, "#%d tokens_unpadded", index);
        ok_unpadded += ids_equal(what, got, unpadded, nun) && (nun == MAXLEN || got[nun - 1] == 49407);
        int want_len = cJSON_GetObjectItem(g, "num_tokens_untruncated")->valueint;
        if ((int)nu == want_len) ok_len++;
        else printf("    #%d num_tokens_untruncated: got %zu, want %d\n", index, nu, want_len);

        snprintf(what, sizeof what, "#%d SD2 input_ids_sd2", index);
        assert_int_equal(json_ids(cJSON_GetObjectItem(g, "input_ids_sd2"), want, MAXLEN), MAXLEN);
        if (cdf_tokenizer_encode_len(sd2, prompt, plen, got, MAXLEN, NULL, &err) != CDF_OK) fail_msg("%s", err.msg);
        ok_sd2 += ids_equal(what, got, want, MAXLEN);

        strlist toks = {0};
        if (cdf_tokenizer_tokenize_len(sd1, prompt, plen, collect, &toks, &err) != CDF_OK) fail_msg("%s", err.msg);
        const cJSON *bpe = cJSON_GetObjectItem(g, "bpe_tokens");
        size_t k = 0;
        int same = 1;
        for (const cJSON *it = bpe->child; it; it = it->next, k++) {
            if (k >= toks.n || strcmp(toks.v[k], it->valuestring) != 0) {
                printf("    #%d bpe_tokens[%zu]: got '%s', want '%s'\n", index, k, k < toks.n ? toks.v[k] : "(end)",
                       it->valuestring);
                same = 0;
                break;
            }
        }
        if (same && k != toks.n) {
            printf("    #%d bpe_tokens: got %zu tokens, want %zu\n", index, toks.n, k);
            same = 0;
        }
        ok_bpe += same;
        strlist_free(&toks);
        free(prompt);
        cJSON_Delete(g);
    }
    free(line);
    fclose(f);
    printf("  goldens: %d prompts; SD1 input_ids %d/%d, SD2 input_ids_sd2 %d/%d, bpe_tokens %d/%d, "
           "num_tokens_untruncated %d/%d, tokens_unpadded %d/%d (all exact)\n",
           n, ok_sd1, n, ok_sd2, n, ok_bpe, n, ok_len, n, ok_unpadded, n);
    assert_int_equal(n, 106);
    assert_int_equal(ok_sd1, n);
    assert_int_equal(ok_sd2, n);
    assert_int_equal(ok_bpe, n);
    assert_int_equal(ok_len, n);
    assert_int_equal(ok_unpadded, n);

    /* Check the checker: one id off by one must be caught. */
    int64_t got[MAXLEN], perturbed[MAXLEN];
    encode_ok(sd1, "a photo of a cat", got, NULL);
    memcpy(perturbed, got, sizeof got);
    perturbed[3] += 1;
    assert_false(ids_equal("perturbed (expected to differ)", got, perturbed, MAXLEN));

    cdf_tokenizer_free(sd1);
    cdf_tokenizer_free(sd2);
}

/* Python's bpe() written naively over strings: every round, the pair of
 * lowest rank, merged at every occurrence left to right. */
static void naive_bpe(const cdf_clip_bpe *m, const uint8_t *bytes, size_t n, strlist *out) {
    char **sym = calloc(n, sizeof *sym);
    size_t ns = n;
    for (size_t i = 0; i < n; i++) {
        char buf[8];
        size_t l = m->byte_len[bytes[i]];
        memcpy(buf, m->byte_utf8[bytes[i]], l);
        if (i + 1 == n) memcpy(buf + l, "</w>", 4), l += 4;
        buf[l] = '\0';
        sym[i] = strdup(buf);
    }
    for (;;) {
        uint32_t best = UINT32_MAX;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < ns; i++) {
            uint32_t a = cdf_clip_find(m, sym[i], strlen(sym[i])), b = cdf_clip_find(m, sym[i + 1], strlen(sym[i + 1]));
            if (a == CDF_CLIP_NO_SYM || b == CDF_CLIP_NO_SYM) continue;
            uint32_t r = cdf_clip_merge_rank(m, a, b);
            if (r < best) best = r, bi = i;
        }
        if (best == UINT32_MAX) break;
        char *first = strdup(sym[bi]), *second = strdup(sym[bi + 1]);
        size_t w = 0;
        for (size_t i = 0; i < ns;) {
            if (i + 1 < ns && strcmp(sym[i], first) == 0 && strcmp(sym[i + 1], second) == 0) {
                size_t la = strlen(sym[i]), lb = strlen(sym[i + 1]);
                char *j = malloc(la + lb + 1);
                memcpy(j, sym[i], la);
                memcpy(j + la, sym[i + 1], lb + 1);
                free(sym[i]);
                free(sym[i + 1]);
                sym[w++] = j;
                i += 2;
            } else {
                sym[w++] = sym[i++];
            }
        }
        ns = w;
        free(first);
        free(second);
    }
    for (size_t i = 0; i < ns; i++) {
        collect(out, sym[i]);
        free(sym[i]);
    }
    free(sym);
}

static cdf_status collect_tok(void *user, const char *tok, size_t len, int64_t id, cdf_err *err) {
    (void)id;
    (void)err;
    char *s = strndup(tok, len);
    collect(user, s);
    free(s);
    return CDF_OK;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void test_bpe_against_naive_twin(void **state) {
    (void)state;
    cdf_tokenizer *t = load_ref("tokenizer/clip-vit-large-patch14");
    const char *alphabets[] = {"etaoinshrdlucmfwypvbgkjqxz", "ab", "aeiou", "0123456789", "!?.,;:-_()[]"};
    cdf_clip_bpe_scratch s = {0};
    int words = 0, same = 0;
    size_t total_tokens = 0;
    for (int it = 0; it < 3000; it++) {
        uint8_t w[64];
        size_t n = 1 + rnd() % 40;
        const char *al = alphabets[rnd() % 5];
        for (size_t i = 0; i < n; i++) {
            if (it % 10 == 9) w[i] = (uint8_t)rnd(); /* arbitrary bytes too */
            else w[i] = (uint8_t)al[rnd() % strlen(al)];
        }
        strlist fast = {0}, slow = {0};
        cdf_err err = {0};
        assert_int_equal(cdf_clip_bpe_word(&t->bpe, w, n, t->unk_id, &s, collect_tok, &fast, &err), CDF_OK);
        naive_bpe(&t->bpe, w, n, &slow);
        int eq = fast.n == slow.n;
        for (size_t i = 0; eq && i < fast.n; i++) eq = strcmp(fast.v[i], slow.v[i]) == 0;
        words++;
        same += eq;
        total_tokens += fast.n;
        strlist_free(&fast);
        strlist_free(&slow);
    }
    printf("  BPE heap vs naive twin: %d/%d random words identical (%zu tokens)\n", same, words, total_tokens);
    assert_int_equal(same, words);

    /* A 200 kB word stays fast (the naive form is quadratic). */
    size_t big = 200000;
    uint8_t *w = malloc(big);
    for (size_t i = 0; i < big; i++) w[i] = (uint8_t)"abcab"[i % 5];
    strlist fast = {0};
    cdf_err err = {0};
    double t0 = now_s();
    assert_int_equal(cdf_clip_bpe_word(&t->bpe, w, big, t->unk_id, &s, collect_tok, &fast, &err), CDF_OK);
    printf("  one %zu-byte word: %zu tokens in %.1f ms\n", big, fast.n, 1e3 * (now_s() - t0));
    strlist_free(&fast);
    free(w);
    cdf_clip_bpe_scratch_free(&s);
    cdf_tokenizer_free(t);
}

static void test_tiny_pipeline_folders(void **state) {
    (void)state;
    const char *prompt = "portrait photo of a old warrior chief!";
    cdf_tokenizer *a = load_ref("tiny-sd1/tokenizer"), *b = load_ref("tokenizer/clip-vit-large-patch14");
    cdf_tokenizer *c = load_ref("tiny-sd2/tokenizer"), *d = load_ref("tokenizer/sd2");
    int64_t x[MAXLEN], y[MAXLEN];
    assert_true(ids_equal("tiny-sd1", encode_ok(a, prompt, x, NULL), encode_ok(b, prompt, y, NULL), MAXLEN));
    assert_int_equal(cdf_tokenizer_pad_id(a), 49407);
    assert_true(ids_equal("tiny-sd2", encode_ok(c, prompt, x, NULL), encode_ok(d, prompt, y, NULL), MAXLEN));
    assert_int_equal(cdf_tokenizer_pad_id(c), 0);
    assert_int_equal(x[8], 0); /* SD2 splits "!" out as its pad token */
    assert_int_equal(y[9], 49407);
    cdf_tokenizer_free(a);
    cdf_tokenizer_free(b);
    cdf_tokenizer_free(c);
    cdf_tokenizer_free(d);
}

/* cdf_tokenizer_load_mem (the fuzzers' entry): the same tokenizer from the
 * files' texts, not NUL-terminated; optional files may be absent; messages
 * name the label. */
static char *read_all(const char *rel, size_t *len) {
    FILE *f = fopen(tu_ref_path(rel), "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*len ? *len : 1); /* no room for a NUL on purpose */
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void test_load_from_memory(void **state) {
    (void)state;
    static const char *const flavours[] = {"clip-vit-large-patch14", "sd2"};
    static const char *const prompts[] = {"a photo of a cat", "portrait photo of a old warrior chief!",
                                          "<|startoftext|>caf\xc3\xa9  \xe6\x97\xa5\xe6\x9c\xac it's 12!!"};
    for (int f = 0; f < 2; f++) {
        char rel[4][256];
        static const char *const names[4] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                             "special_tokens_map.json"};
        char *text[4];
        size_t len[4];
        for (int k = 0; k < 4; k++) {
            snprintf(rel[k], sizeof rel[k], "tokenizer/%s/%s", flavours[f], names[k]);
            text[k] = read_all(rel[k], &len[k]);
        }
        cdf_tokenizer_texts tx = {text[0], len[0], text[1], len[1], text[2], len[2], text[3], len[3], flavours[f]};
        cdf_tokenizer *m, *ref = load_ref(f ? "tokenizer/sd2" : "tokenizer/clip-vit-large-patch14");
        cdf_err err = {0};
        if (cdf_tokenizer_load_mem(&m, &tx, &err)) fail_msg("%s", err.msg);
        for (size_t i = 0; i < 3; i++) {
            int64_t x[MAXLEN], y[MAXLEN];
            assert_true(ids_equal(prompts[i], encode_ok(m, prompts[i], x, NULL), encode_ok(ref, prompts[i], y, NULL),
                                  MAXLEN));
        }
        assert_int_equal(cdf_tokenizer_pad_id(m), cdf_tokenizer_pad_id(ref));
        printf("  %s from memory: same ids as from the folder (pad id %lld)\n", flavours[f],
               (long long)cdf_tokenizer_pad_id(m));
        cdf_tokenizer_free(m);
        cdf_tokenizer_free(ref);
        if (f == 0) {
            /* without the optional files: CLIPTokenizer's defaults (pad = eos for SD1) */
            cdf_tokenizer_texts bare = {text[0], len[0], text[1], len[1], NULL, 0, NULL, 0, "bare"};
            if (cdf_tokenizer_load_mem(&m, &bare, &err)) fail_msg("%s", err.msg);
            assert_int_equal(cdf_tokenizer_pad_id(m), 49407);
            cdf_tokenizer_free(m);
            /* a broken vocab is reported under the label */
            cdf_tokenizer_texts bad = {"{\"a\": -1}", 10, text[1], len[1], NULL, 0, NULL, 0, "mem"};
            m = (cdf_tokenizer *)1;
            assert_int_equal(cdf_tokenizer_load_mem(&m, &bad, &err), CDF_ERR_FORMAT);
            printf("  bad vocab from memory -> %s\n", err.msg);
            assert_null(m);
            assert_non_null(strstr(err.msg, "mem/vocab.json"));
            cdf_tokenizer_texts none = {NULL, 0, text[1], len[1], NULL, 0, NULL, 0, "mem"};
            assert_int_equal(cdf_tokenizer_load_mem(&m, &none, &err), CDF_ERR_INVALID_ARGUMENT);
        }
        for (int k = 0; k < 4; k++) free(text[k]);
    }
}

/* ---- bad input -------------------------------------------------------------- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* A folder named `name` in the temp dir with the SD1 files except `skip`. */
static const char *make_folder(const char *name, const char *skip) {
    static char dir[512];
    static const char *files[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), name);
    mkdir(dir, 0700);
    for (int i = 0; i < 4; i++) {
        if (skip && strcmp(files[i], skip) == 0) continue;
        char src[512], dst[600];
        snprintf(src, sizeof src, "tokenizer/clip-vit-large-patch14/%s", files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        copy_file(tu_ref_path(src), dst);
    }
    return dir;
}

/* make_folder(name, file), then `file` written with `text`. */
static const char *folder_with(const char *name, const char *file, const char *text) {
    const char *dir = make_folder(name, file);
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    write_file(path, text);
    return dir;
}

static void expect_load_error(const char *dir, cdf_status code, const char *n1, const char *n2) {
    cdf_tokenizer *t = (cdf_tokenizer *)1;
    cdf_err err = {0};
    cdf_status st = cdf_tokenizer_load(&t, dir, &err);
    printf("  load %s -> %s\n", strrchr(dir, '/') + 1, err.msg);
    assert_int_equal(st, code);
    assert_null(t);
    assert_non_null(strstr(err.msg, n1));
    if (n2) assert_non_null(strstr(err.msg, n2));
}

static void test_bad_files(void **state) {
    (void)state;
    char path[700];
    expect_load_error(make_folder("no-vocab", "vocab.json"), CDF_ERR_IO, "no-vocab/vocab.json", "cannot open");
    expect_load_error(make_folder("no-merges", "merges.txt"), CDF_ERR_IO, "no-merges/merges.txt", "cannot open");

    expect_load_error(folder_with("bad-vocab", "vocab.json", "{\n  \"a\": 0,\n  \"b\": 1,,\n  \"c\": 2\n}\n"),
                      CDF_ERR_FORMAT, "bad-vocab/vocab.json:3:", "malformed JSON");
    expect_load_error(folder_with("bad-vocab", "vocab.json", "{\"a\": 0}\n}\n"), CDF_ERR_FORMAT,
                      "bad-vocab/vocab.json:2:1", "malformed JSON");
    expect_load_error(folder_with("bad-vocab-id", "vocab.json", "{\"a\": 0, \"b\": \"one\"}"), CDF_ERR_FORMAT,
                      "bad-vocab-id/vocab.json", "\"b\" is not a token id");
    expect_load_error(folder_with("bad-vocab-utf8", "vocab.json", "{\n\"a\": 0,\n\"\xC3\x28\": 1}"), CDF_ERR_FORMAT,
                      "bad-vocab-utf8/vocab.json:3:2", "invalid UTF-8");
    expect_load_error(folder_with("bad-merges", "merges.txt", "#version: 0.2\ni n\nt h\na n d e\nr e\n"),
                      CDF_ERR_FORMAT, "bad-merges/merges.txt:4:", "found 4 fields");
    expect_load_error(folder_with("bad-config", "special_tokens_map.json", "{\"pad_token\": 5}"), CDF_ERR_FORMAT,
                      "bad-config/special_tokens_map.json", "'pad_token'");

    /* Optional files: without the two configs CLIPTokenizer's defaults apply. */
    const char *dir = make_folder("vocab-and-merges", "tokenizer_config.json");
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    remove(path);
    cdf_tokenizer *t = NULL;
    cdf_err err = {0};
    assert_int_equal(cdf_tokenizer_load(&t, dir, &err), CDF_OK);
    assert_int_equal(cdf_tokenizer_max_length(t), 77);
    assert_int_equal(cdf_tokenizer_pad_id(t), 49407);
    cdf_tokenizer_free(t);

    /* Tokens as plain strings and as {"content": ...} objects, with flags. */
    dir = folder_with("token-forms", "special_tokens_map.json",
                      "{\"bos_token\": \"<|startoftext|>\", \"pad_token\": {\"content\": \"cat\", \"lstrip\": true,"
                      " \"rstrip\": true}}");
    assert_int_equal(cdf_tokenizer_load(&t, dir, &err), CDF_OK);
    assert_int_equal(cdf_tokenizer_bos_id(t), 49406);
    assert_int_equal(cdf_tokenizer_pad_id(t), 1481); /* vocab.json's "cat" (not "cat</w>") */
    /* "cat" is now split out of the raw text, eating the spaces around it. */
    strlist toks = {0};
    assert_int_equal(cdf_tokenizer_tokenize(t, "a  cat  bobcat", collect, &toks, &err), CDF_OK);
    const char *want[] = {"a</w>", "cat", "bob</w>", "cat"};
    assert_int_equal(toks.n, 4);
    for (int i = 0; i < 4; i++) assert_string_equal(toks.v[i], want[i]);
    strlist_free(&toks);
    cdf_tokenizer_free(t);
}

/* tokenizer_config.json as transformers >= 4.34 writes it (added_tokens_decoder),
 * an added token outside the vocabulary (next free id) and single_word. */
static void test_added_tokens_decoder(void **state) {
    (void)state;
    char path[700];
    const char *dir = make_folder("added-decoder", "tokenizer_config.json");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_file(path, "{\"added_tokens_decoder\": {\"49406\": {\"content\": \"<|startoftext|>\", \"lstrip\": false,"
                     " \"normalized\": true, \"rstrip\": false, \"single_word\": false, \"special\": true},"
                     " \"49407\": {\"content\": \"<|endoftext|>\", \"special\": true}},"
                     " \"model_max_length\": 77, \"tokenizer_class\": \"CLIPTokenizer\"}");
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    write_file(path, "{\"pad_token\": \"!\", \"additional_special_tokens\": [\"<lora>\","
                     " {\"content\": \"dog\", \"single_word\": true}]}");
    cdf_tokenizer *t = NULL;
    cdf_err err = {0};
    if (cdf_tokenizer_load(&t, dir, &err) != CDF_OK) fail_msg("%s", err.msg);
    assert_int_equal(cdf_tokenizer_pad_id(t), 0);
    /* "<lora>" is no vocab key: it gets len(vocab) = 49408; "dog" keeps 4326. */
    int64_t ids[MAXLEN];
    size_t nu;
    encode_ok(t, "a <lora> cat! dog", ids, &nu);
    const int64_t want[] = {49406, 320, 49408, 2368, 0, 4326, 49407, 0};
    assert_int_equal(nu, 7);
    assert_true(ids_equal("added tokens", ids, want, 8));
    /* single_word: "dog" glued to a word goes back into it and is BPE'd with it. */
    strlist toks = {0};
    assert_int_equal(cdf_tokenizer_tokenize(t, "hotdog dog", collect, &toks, &err), CDF_OK);
    assert_int_equal(toks.n, 2);
    assert_string_equal(toks.v[0], "hotdog</w>");
    assert_string_equal(toks.v[1], "dog");
    strlist_free(&toks);
    cdf_tokenizer_free(t);
}

/* Another max_len truncates to max_len - 2 content ids, like max_length=10. */
static void test_other_max_len(void **state) {
    (void)state;
    cdf_tokenizer *t = load_ref("tokenizer/clip-vit-large-patch14");
    const char *p = "a very long prompt about a lighthouse on a cliff at sunset with many words";
    int64_t ids[10];
    size_t nu;
    cdf_err err = {0};
    assert_int_equal(cdf_tokenizer_encode(t, p, ids, 10, &nu, &err), CDF_OK);
    const int64_t want[] = {49406, 320, 1070, 1538, 20198, 781, 320, 13717, 525, 49407};
    assert_true(ids_equal("max_len 10", ids, want, 10));
    assert_int_equal(nu, 17);
    cdf_tokenizer_free(t);
}

static void expect_prompt_error(const cdf_tokenizer *t, const char *prompt, const char *needle) {
    int64_t ids[MAXLEN];
    cdf_err err = {0};
    cdf_status st = cdf_tokenizer_encode(t, prompt, ids, MAXLEN, NULL, &err);
    printf("  -> %s\n", err.msg);
    assert_int_equal(st, CDF_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "prompt"));
    assert_non_null(strstr(err.msg, needle));
}

static void test_bad_prompts(void **state) {
    (void)state;
    cdf_tokenizer *t = load_ref("tokenizer/clip-vit-large-patch14");
    expect_prompt_error(t, "cat \xE2\x82", "byte offset 4 (byte 0xE2): truncated");
    expect_prompt_error(t, "cat \xE2\x82x", "byte offset 4 (byte 0xE2): truncated");
    expect_prompt_error(t, "ab\xC0\xAF", "byte offset 2 (byte 0xC0): overlong");
    expect_prompt_error(t, "ab\xE0\x80\xAF", "byte offset 2 (byte 0xE0): overlong");
    expect_prompt_error(t, "ab\xF0\x80\x80\xAF", "byte offset 2 (byte 0xF0): overlong");
    expect_prompt_error(t, "x\xED\xA0\x80y", "byte offset 1 (byte 0xED): UTF-16 surrogate");
    expect_prompt_error(t, "\x80 cat", "byte offset 0 (byte 0x80): unexpected continuation");
    expect_prompt_error(t, "caf\xC3\xA9\xA9", "byte offset 5 (byte 0xA9): unexpected continuation");
    expect_prompt_error(t, "\xF4\x90\x80\x80", "above U+10FFFF");
    expect_prompt_error(t, "a\xFF", "byte offset 1 (byte 0xFF)");

    size_t big = CDF_TOKENIZER_MAX_PROMPT_BYTES + 1;
    char *p = malloc(big + 1);
    memset(p, 'a', big);
    p[big] = '\0';
    expect_prompt_error(t, p, "longer than the limit");
    p[big - 1] = '\0'; /* exactly the limit is accepted (and truncated) */
    int64_t ids[MAXLEN];
    size_t nu;
    cdf_err err = {0};
    assert_int_equal(cdf_tokenizer_encode(t, p, ids, MAXLEN, &nu, &err), CDF_OK);
    printf("  a %u-byte prompt: %zu tokens before truncation\n", (unsigned)CDF_TOKENIZER_MAX_PROMPT_BYTES, nu);
    assert_int_equal(ids[MAXLEN - 1], 49407);
    free(p);

    assert_int_equal(cdf_tokenizer_encode(t, NULL, ids, MAXLEN, NULL, &err), CDF_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdf_tokenizer_encode(t, "cat", ids, 1, NULL, &err), CDF_ERR_INVALID_ARGUMENT);
    cdf_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_goldens),
        cmocka_unit_test(test_bpe_against_naive_twin),
        cmocka_unit_test(test_tiny_pipeline_folders),
        cmocka_unit_test(test_load_from_memory),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_added_tokens_decoder),
        cmocka_unit_test(test_other_max_len),
        cmocka_unit_test(test_bad_prompts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
