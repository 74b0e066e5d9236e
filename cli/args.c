#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    O_MODEL = 1, O_VAE, O_VARIANT, O_DTYPE, O_SCHED, O_SCHED_CFG, O_OUTPUT, O_LATENTS, O_OUT_TENSOR, O_COMPONENT,
    O_INPUT, O_PROMPT, O_NEG, O_SEED, O_SEEDS, O_STEPS, O_BATCH, O_HEIGHT, O_WIDTH, O_CLIP_SKIP, O_THREADS,
    O_GUIDANCE, O_KARRAS, O_QUIET, O_GRID, O_HELP, O_VERSION, O_VAE_TILING, O_VAE_SLICING, O_ATTN_SLICING,
    O_LOW_MEMORY
};

typedef struct opt_spec {
    const char *lng;
    char shrt;
    int id, has_arg;
} opt_spec;

static const opt_spec specs[] = {
    {"model", 'm', O_MODEL, 1},          {"vae", 0, O_VAE, 1},
    {"variant", 0, O_VARIANT, 1},        {"dtype", 0, O_DTYPE, 1},
    {"scheduler", 's', O_SCHED, 1},      {"sampler", 0, O_SCHED, 1},
    {"scheduler-config", 0, O_SCHED_CFG, 1}, {"output", 'o', O_OUTPUT, 1},
    {"latents", 0, O_LATENTS, 1},        {"output-tensor", 0, O_OUT_TENSOR, 1},
    {"component", 0, O_COMPONENT, 1},    {"input", 'i', O_INPUT, 1},
    {"prompt", 'p', O_PROMPT, 1},        {"negative-prompt", 'n', O_NEG, 1},
    {"seed", 0, O_SEED, 1},              {"seeds", 0, O_SEEDS, 1},
    {"steps", 0, O_STEPS, 1},            {"batch", 'b', O_BATCH, 1},
    {"num-images-per-prompt", 0, O_BATCH, 1}, {"height", 'H', O_HEIGHT, 1},
    {"width", 'W', O_WIDTH, 1},          {"clip-skip", 0, O_CLIP_SKIP, 1},
    {"threads", 't', O_THREADS, 1},      {"guidance-scale", 'g', O_GUIDANCE, 1},
    {"cfg-scale", 0, O_GUIDANCE, 1},     {"karras", 0, O_KARRAS, 0},
    {"quiet", 'q', O_QUIET, 0},          {"grid", 0, O_GRID, 1},
    {"help", 'h', O_HELP, 0},            {"version", 'V', O_VERSION, 0},
    {"vae-tiling", 0, O_VAE_TILING, 0},  {"vae-slicing", 0, O_VAE_SLICING, 0},
    {"attention-slicing", 0, O_ATTN_SLICING, 1}, {"low-memory", 0, O_LOW_MEMORY, 0},
};

static int fail(char *err, size_t cap, const char *fmt, const char *a, const char *b) {
    snprintf(err, cap, fmt, a, b);
    return -1;
}

static int parse_long(const char *name, const char *v, long lo, long hi, long *out, char *err, size_t cap) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        snprintf(err, cap, "--%s: '%s' is not a whole number between %ld and %ld", name, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int cli_parse_seeds(const char *s, uint64_t *out, size_t cap, char *err, size_t errcap) {
    char buf[1024];
    if (strlen(s) >= sizeof buf) { snprintf(err, errcap, "--seeds: list too long"); return -1; }
    snprintf(buf, sizeof buf, "%s", s);
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *dots = strstr(tok, ".."), *dash = strchr(tok, '-');
        char *sep = dots ? dots : dash;
        uint64_t a, b;
        if (sep) {
            *sep = '\0';
            const char *rhs = sep + (dots ? 2 : 1);
            if (parse_u64(tok, &a) || parse_u64(rhs, &b) || b < a) {
                snprintf(err, errcap, "--seeds: bad range in '%s' (use A-B or A..B with A <= B)", s);
                return -1;
            }
        } else {
            if (parse_u64(tok, &a)) {
                snprintf(err, errcap, "--seeds: '%s' is not a list of non-negative integers", s);
                return -1;
            }
            b = a;
        }
        for (uint64_t v = a;; v++) {
            if (n >= cap) {
                snprintf(err, errcap, "--seeds: more than %zu seeds", cap);
                return -1;
            }
            out[n++] = v;
            if (v == b) break;
        }
    }
    if (n == 0) { snprintf(err, errcap, "--seeds: empty list"); return -1; }
    return (int)n;
}

static const opt_spec *find_long(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (strlen(specs[i].lng) == len && strncmp(specs[i].lng, name, len) == 0) return &specs[i];
    return NULL;
}

static const opt_spec *find_short(char c) {
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (specs[i].shrt == c) return &specs[i];
    return NULL;
}

static int apply(cli_options *o, const opt_spec *s, const char *v, char *err, size_t cap) {
    const char *n = s->lng;
    switch (s->id) {
    case O_MODEL: o->model = v; break;
    case O_VAE: o->vae = v; break;
    case O_VARIANT: o->variant = v; break;
    case O_DTYPE:
        if (strcmp(v, "fp32") && strcmp(v, "fp16") && strcmp(v, "bf16"))
            return fail(err, cap, "--dtype: '%s' is not one of fp32, fp16, bf16%s", v, "");
        o->dtype = v;
        break;
    case O_SCHED: o->scheduler = v; break;
    case O_SCHED_CFG: o->scheduler_config = v; break;
    case O_OUTPUT: o->output = v; break;
    case O_LATENTS: o->latents = v; break;
    case O_OUT_TENSOR: o->output_tensor = v; break;
    case O_COMPONENT: o->component = v; break;
    case O_INPUT: o->input = v; break;
    case O_PROMPT:
        if (o->n_prompts >= CLI_MAX_PROMPTS) return fail(err, cap, "too many --prompt options (at most 64)%s%s", "", "");
        o->prompts[o->n_prompts++] = v;
        break;
    case O_NEG:
        if (o->n_negatives >= CLI_MAX_PROMPTS)
            return fail(err, cap, "too many --negative-prompt options (at most 64)%s%s", "", "");
        o->negatives[o->n_negatives++] = v;
        break;
    case O_SEED:
        if (parse_u64(v, &o->seeds[0])) return fail(err, cap, "--seed: '%s' is not a non-negative integer%s", v, "");
        o->n_seeds = 1;
        o->seed_given = 1;
        break;
    case O_SEEDS: {
        int k = cli_parse_seeds(v, o->seeds, CLI_MAX_SEEDS, err, cap);
        if (k < 0) return -1;
        o->n_seeds = (size_t)k;
        o->seed_given = 2;
        break;
    }
    case O_STEPS: return parse_long(n, v, 1, 1000, &o->steps, err, cap);
    case O_BATCH: return parse_long(n, v, 1, 64, &o->batch, err, cap);
    case O_HEIGHT: return parse_long(n, v, 1, 8192, &o->height, err, cap);
    case O_WIDTH: return parse_long(n, v, 1, 8192, &o->width, err, cap);
    case O_CLIP_SKIP: return parse_long(n, v, 0, 64, &o->clip_skip, err, cap);
    case O_THREADS: return parse_long(n, v, 0, 1024, &o->threads, err, cap);
    case O_GUIDANCE: {
        char *end;
        double g = strtod(v, &end);
        if (end == v || *end || !isfinite(g) || fabs(g) > 1e4)
            return fail(err, cap, "--guidance-scale: '%s' is not a number%s", v, "");
        o->guidance = g;
        break;
    }
    case O_KARRAS: o->karras = 1; break;
    case O_VAE_TILING: o->vae_tiling = 1; break;
    case O_VAE_SLICING: o->vae_slicing = 1; break;
    case O_LOW_MEMORY: o->low_memory = 1; break;
    case O_ATTN_SLICING:
        if (strcmp(v, "auto") == 0) o->attention_slice = 64;
        else return parse_long(n, v, 1, 1 << 20, &o->attention_slice, err, cap);
        break;
    case O_QUIET: o->quiet = 1; break;
    case O_GRID: {
        char *x = strchr(v, 'x');
        if (!x) x = strchr(v, 'X');
        char a[32], b[32];
        if (!x || x == v || (size_t)(x - v) >= sizeof a || strlen(x + 1) >= sizeof b)
            return fail(err, cap, "--grid: '%s' is not ROWSxCOLS (e.g. 2x4)%s", v, "");
        memcpy(a, v, (size_t)(x - v));
        a[x - v] = '\0';
        snprintf(b, sizeof b, "%s", x + 1);
        if (parse_long("grid", a, 1, 64, &o->grid_rows, err, cap) || parse_long("grid", b, 1, 64, &o->grid_cols, err, cap))
            return -1;
        break;
    }
    case O_HELP: o->help_topic = o->cmd == CLI_GENERATE ? "generate" : "other"; o->cmd = CLI_HELP; break;
    case O_VERSION: o->cmd = CLI_VERSION; break;
    }
    return 0;
}

int cli_parse(int argc, char **argv, cli_options *o, char *err, size_t cap) {
    memset(o, 0, sizeof *o);
    o->steps = -1;
    o->batch = 1;
    o->clip_skip = 0;
    o->guidance = NAN;
    int i = 1;
    if (argc > 1 && argv[1][0] != '-') {
        const char *c = argv[1];
        if (strcmp(c, "generate") == 0) o->cmd = CLI_GENERATE;
        else if (strcmp(c, "tokenize") == 0) o->cmd = CLI_TOKENIZE;
        else if (strcmp(c, "run-component") == 0) o->cmd = CLI_RUN_COMPONENT;
        else if (strcmp(c, "list-schedulers") == 0) o->cmd = CLI_LIST_SCHEDULERS;
        else if (strcmp(c, "help") == 0) { o->cmd = CLI_HELP; o->help_topic = argc > 2 ? argv[2] : NULL; return 0; }
        else return fail(err, cap, "unknown command '%s' (try --help)%s", c, "");
        i = 2;
    }
    const cli_command cmd = o->cmd;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            /* Positional arguments: prompts for tokenize (and generate). */
            if (o->n_prompts >= CLI_MAX_PROMPTS) return fail(err, cap, "too many prompts (at most 64)%s%s", "", "");
            o->prompts[o->n_prompts++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (o->n_prompts >= CLI_MAX_PROMPTS) return fail(err, cap, "too many prompts (at most 64)%s%s", "", "");
                o->prompts[o->n_prompts++] = argv[i];
            }
            break;
        }
        const opt_spec *s;
        const char *val = NULL;
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            s = find_long(a + 2, len);
            if (!s) return fail(err, cap, "unknown option '%s' (try --help)%s", a, "");
            if (eq) {
                if (!s->has_arg) return fail(err, cap, "option '--%s' takes no value%s", s->lng, "");
                val = eq + 1;
            }
        } else {
            s = a[2] == '\0' ? find_short(a[1]) : NULL;
            if (!s) return fail(err, cap, "unknown option '%s' (try --help)%s", a, "");
        }
        if (s->has_arg && !val) {
            if (i + 1 >= argc) return fail(err, cap, "option '--%s' needs a value%s", s->lng, "");
            val = argv[++i];
        }
        if (apply(o, s, val, err, cap)) return -1;
        if (o->cmd == CLI_HELP && cmd != CLI_GENERATE)
            o->help_topic = cmd == CLI_TOKENIZE ? "tokenize" : cmd == CLI_RUN_COMPONENT ? "run-component" : "list-schedulers";
    }
    if (o->cmd == CLI_HELP || o->cmd == CLI_VERSION) return 0;
    if (o->seed_given == 1 && o->n_seeds != 1) return fail(err, cap, "internal: seed state%s%s", "", "");
    return 0;
}
