/* Writes the seed corpora that are generated from the reference folder
 * rather than kept in the repository (scripts/fuzz.sh runs it):
 *   <out>/tokenizer/prompt-NNN      every prompt of tokenizer/goldens.jsonl
 *   <out>/tokenizer_load/<flavour>-<M>  the SD1 / SD2 tokenizer files cut down
 *       to the 512 byte symbols, the first M merges and the special tokens,
 *       joined by 0xFF as fuzz_tokenizer_load.c expects.
 * Usage: fuzz_seeds <reference dir> <output dir> */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"

static int write_file(const char *dir, const char *name, const char *const *parts, const size_t *lens, int n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "fuzz_seeds: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (i) fputc(0xFF, f);
        fwrite(parts[i], 1, lens[i], f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

static char *slurp(const char *path, size_t *len) {
    char *text;
    cdf_err err = {0};
    if (cdf_read_file(path, 64u << 20, &text, len, &err) != CDF_OK) {
        fprintf(stderr, "fuzz_seeds: %s\n", err.msg);
        return NULL;
    }
    return text;
}

static int prompts(const char *ref, const char *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer/goldens.jsonl", ref);
    size_t len;
    char *text = slurp(path, &len);
    if (!text) return -1;
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
        if (cJSON_IsString(p)) {
            char name[64];
            snprintf(name, sizeof name, "prompt-%03d", n++);
            const char *parts[1] = {p->valuestring};
            size_t lens[1] = {strlen(p->valuestring)};
            if (write_file(out, name, parts, lens, 1)) { cJSON_Delete(o); free(text); return -1; }
        }
        cJSON_Delete(o);
    }
    free(text);
    printf("fuzz_seeds: %d prompts\n", n);
    return n > 0 ? 0 : -1;
}

/* vocab.json entries with id < 512 + merges (bytes, bytes + "</w>", the first
 * merges) or >= 49406 (specials); merges.txt's header and first merges. */
static int tokenizer_cut(const char *ref, const char *flavour, int merges, const char *out) {
    char path[4096];
    size_t lv, lm, lc, ls;
    char *files[4];
    static const char *const names[4] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                         "special_tokens_map.json"};
    size_t *lens[4] = {&lv, &lm, &lc, &ls};
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/tokenizer/%s/%s", ref, flavour, names[k]);
        if (!(files[k] = slurp(path, lens[k]))) return -1;
    }
    cJSON *vocab = cJSON_Parse(files[0]), *cut = cJSON_CreateObject();
    for (const cJSON *e = vocab ? vocab->child : NULL; e; e = e->next) {
        const double id = e->valuedouble;
        if (id < 512 + merges || id >= 49406) cJSON_AddNumberToObject(cut, e->string, id);
    }
    char *vtext = cJSON_PrintUnformatted(cut);
    size_t mlen = 0;
    for (int line = 0; mlen < lm && line <= merges; mlen++)
        if (files[1][mlen] == '\n') line++;
    const char *parts[4] = {vtext, files[1], files[2], files[3]};
    const size_t plens[4] = {vtext ? strlen(vtext) : 0, mlen, lc, ls};
    char name[64];
    snprintf(name, sizeof name, "%s-%d", flavour, merges);
    int rc = vtext ? write_file(out, name, parts, plens, 4) : -1;
    /* The same without the optional files (CLIPTokenizer's defaults). */
    snprintf(name, sizeof name, "%s-%d-defaults", flavour, merges);
    if (!rc) rc = write_file(out, name, parts, plens, 2);
    free(vtext);
    cJSON_Delete(vocab);
    cJSON_Delete(cut);
    for (int k = 0; k < 4; k++) free(files[k]);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_seeds <reference dir> <output dir>\n");
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tokenizer", argv[2]);
    mkdir(argv[2], 0755);
    mkdir(dir, 0755);
    if (prompts(argv[1], dir)) return 1;
    snprintf(dir, sizeof dir, "%s/tokenizer_load", argv[2]);
    mkdir(dir, 0755);
    static const char *const flavours[] = {"clip-vit-large-patch14", "sd2"};
    static const int counts[] = {0, 40, 400};
    for (int f = 0; f < 2; f++)
        for (int c = 0; c < 3; c++)
            if (tokenizer_cut(argv[1], flavours[f], counts[c], dir)) return 1;
    return 0;
}
