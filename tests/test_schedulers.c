/* Schedulers against diffusers 0.26.3: every file of goldens/schedulers/.
 *
 * For each case the scheduler is built the way the generator built it
 * (<Class>.from_config(SD1.5 or SD2.1 config, **overrides)), and must give:
 *   - the effective config diffusers recorded (from_config semantics),
 *   - timesteps bit-exact (value and dtype), order, init_noise_sigma,
 *   - sigmas within 1e-6 x max|ref|,
 *   - along the whole trajectory (our own, never reset to the reference):
 *     model_input, model_output, prev_sample and pred_original_sample within
 *     1e-6 x max|ref| of that step.
 * 1e-6 relative is a handful of float32 ulps: the C code follows diffusers'
 * float32/float64 operation order, so anything larger is a bug, not noise.
 * Stochastic classes run twice: replaying the recorded noise, and drawing it
 * from a torch-compatible generator seeded 0 (which must also reproduce the
 * recorded noise bit for bit). DPMSolverSDE replays `brownian_noise` through
 * the override hook and also runs its own Brownian tree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "io/json.h"
#include "rng/torch_rng.h"
#include "schedulers/sched_internal.h"
#include "schedulers/scheduler.h"
#include "testutil.h"

#define TOL 1e-6
#define MANIFEST "goldens/schedulers/manifest.json"

/* ---- reading the manifest (Python's json writes -Infinity) ---- */

static cJSON *parse_python_json(char *text) {
    for (char *p = strstr(text, "-Infinity"); p; p = strstr(p, "-Infinity")) memcpy(p, "-1e999   ", 9);
    return cJSON_Parse(text);
}

static cJSON *load_manifest(void) {
    char *text;
    size_t len;
    cdf_err err = {0};
    if (cdf_read_file(tu_ref_path(MANIFEST), CDF_JSON_MAX_BYTES, &text, &len, &err)) fail_msg("%s", err.msg);
    cJSON *m = parse_python_json(text);
    free(text);
    assert_non_null(m);
    return m;
}

/* ---- the synthetic model of the goldens ---- */

/* m = 0.9*xs + 0.1*torch.sin(3.0*xs + float(t)/100.0): float32 tensor ops;
 * the Python double float(t)/100.0 is rounded to float32 by the add. */
static void model_fn(float *m, const float *xs, size_t n, double t) {
    float off = (float)(t / 100.0);
    for (size_t i = 0; i < n; i++) {
        float a = 3.0f * xs[i] + off;
        m[i] = 0.9f * xs[i] + 0.1f * cdf_torch_sinf(a);
    }
}

/* ---- noise sources ---- */

typedef struct replay {
    const float *noise;     /* [count][n] */
    size_t count, next, n;
    const float *check;     /* when set (generator mode), draws must equal these bit for bit */
    cdf_rng rng;
    int use_rng;
    size_t mismatches;
} replay;

static cdf_status replay_fill(void *user, float *out, const int64_t shape[4], cdf_err *err) {
    replay *r = user;
    size_t n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    if (n != r->n) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "noise shape mismatch");
    if (r->use_rng) {
        cdf_rng_randn_f32(&r->rng, out, n);
        if (r->check && r->next < r->count && memcmp(out, r->check + r->next * n, n * sizeof(float)) != 0)
            r->mismatches++;
    } else {
        if (r->next >= r->count) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "more noise draws than recorded");
        memcpy(out, r->noise + r->next * n, n * sizeof(float));
    }
    r->next++;
    return CDF_OK;
}

typedef struct brownian_replay {
    const float *noise, *sig, *sig_next;
    size_t count, next, n;
    size_t arg_mismatches;
} brownian_replay;

static cdf_status brownian_fill(void *user, double sigma, double sigma_next, float *out, const int64_t shape[4],
                                cdf_err *err) {
    brownian_replay *b = user;
    (void)shape;
    if (b->next >= b->count) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "more Brownian draws than recorded");
    if ((float)sigma != b->sig[b->next] || (float)sigma_next != b->sig_next[b->next]) b->arg_mismatches++;
    memcpy(out, b->noise + b->next * b->n, b->n * sizeof(float));
    b->next++;
    return CDF_OK;
}

/* ---- per-class summary ---- */

typedef struct summary {
    char name[96];
    double worst;      /* max over steps of max_abs / max|ref| (prev_sample) */
    double worst_any;  /* over every compared tensor */
} summary;

static summary sums[128];
static size_t n_sums;

static void note(const char *name, double rel_prev, double rel_any) {
    for (size_t i = 0; i < n_sums; i++) {
        if (strcmp(sums[i].name, name) == 0) {
            if (rel_prev > sums[i].worst) sums[i].worst = rel_prev;
            if (rel_any > sums[i].worst_any) sums[i].worst_any = rel_any;
            return;
        }
    }
    if (n_sums < 128) {
        snprintf(sums[n_sums].name, sizeof sums[0].name, "%s", name);
        sums[n_sums].worst = rel_prev;
        sums[n_sums].worst_any = rel_any;
        n_sums++;
    }
}

/* max |got - ref| / max |ref| over the finite reference values; a NaN where
 * diffusers has a NaN counts as equal (degenerate schedules produce them),
 * anywhere else as infinitely wrong. */
static double rel_err(const float *got, const float *ref, size_t n, size_t *worst) {
    double max_abs = 0, max_ref = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(ref[i]) && isnan(got[i])) continue;
        double d = fabs((double)got[i] - (double)ref[i]);
        if (isinf(ref[i]) && got[i] == ref[i]) d = 0;
        if (!(d <= max_abs)) { max_abs = isnan(d) ? INFINITY : d; *worst = i; }
        if (isfinite(ref[i]) && fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    }
    return max_ref > 0 ? max_abs / max_ref : max_abs;
}

/* Quiet check; prints only failures. */
static int close_enough(const char *what, const float *got, const float *ref, size_t n, double *rel) {
    size_t w;
    *rel = rel_err(got, ref, n, &w);
    if (!(*rel <= TOL)) {
        printf("    %s: rel %.3e > %.0e (worst at %zu: got %.9g ref %.9g)\n", what, *rel, TOL, w, (double)got[w],
               (double)ref[w]);
        return 0;
    }
    return 1;
}

/* ---- config comparison ---- */

static int json_equal(const cJSON *a, const cJSON *b) {
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b)) return a->valuedouble == b->valuedouble;
    if (cJSON_IsBool(a) && cJSON_IsBool(b)) return cJSON_IsTrue(a) == cJSON_IsTrue(b);
    if (cJSON_IsNull(a) && cJSON_IsNull(b)) return 1;
    if (cJSON_IsString(a) && cJSON_IsString(b)) return strcmp(a->valuestring, b->valuestring) == 0;
    if (cJSON_IsArray(a) && cJSON_IsArray(b)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return 0;
        for (int i = 0; i < cJSON_GetArraySize(a); i++)
            if (!json_equal(cJSON_GetArrayItem(a, i), cJSON_GetArrayItem(b, i))) return 0;
        return 1;
    }
    return 0;
}

/* Same set of strings, any order (_use_default_values is a Python set). */
static int same_string_set(const cJSON *a, const cJSON *b) {
    if (!cJSON_IsArray(a) || !cJSON_IsArray(b) || cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        int found = 0;
        const cJSON *y;
        cJSON_ArrayForEach(y, b) found |= cJSON_IsString(x) && cJSON_IsString(y) && !strcmp(x->valuestring, y->valuestring);
        if (!found) return 0;
    }
    return 1;
}

static int check_config(const cdf_scheduler *s, const cJSON *want) {
    char *text = cdf_scheduler_config_json(s);
    assert_non_null(text);
    cJSON *got = parse_python_json(text);
    free(text);
    assert_non_null(got);
    int ok = 1;
    const cJSON *it;
    cJSON_ArrayForEach(it, want) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, it->string);
        int eq = strcmp(it->string, "_use_default_values") == 0 ? same_string_set(g, it) : (g && json_equal(g, it));
        if (!eq) {
            char *w = cJSON_PrintUnformatted(it), *h = g ? cJSON_PrintUnformatted(g) : NULL;
            printf("    config '%s': got %s, diffusers has %s\n", it->string, h ? h : "(missing)", w);
            free(w);
            free(h);
            ok = 0;
        }
    }
    cJSON_ArrayForEach(it, got) {
        if (!cJSON_GetObjectItemCaseSensitive(want, it->string)) {
            printf("    config '%s': present here, absent in diffusers\n", it->string);
            ok = 0;
        }
    }
    cJSON_Delete(got);
    return ok;
}

/* ---- one golden case ---- */

typedef enum { MODE_REPLAY, MODE_RNG, MODE_TREE } noise_mode;

typedef struct case_result {
    int ok;
    double worst_prev, worst_any;
    size_t steps, tensors, draws;   /* steps run, tensors compared, noise draws made */
} case_result;

static case_result run_case(const cJSON *manifest, const char *case_name, const cJSON *c, noise_mode mode) {
    case_result res = {1, 0, 0, 0, 0, 0};
    const char *cls = cJSON_GetObjectItem(c, "class")->valuestring;
    const char *base = cJSON_GetObjectItem(c, "base_config")->valuestring;
    const cJSON *cfg = cJSON_GetObjectItem(manifest, strncmp(base, "SD2.1", 5) == 0 ? "sd21_scheduler_config"
                                                                                     : "sd15_scheduler_config");
    const cJSON *ovr = cJSON_GetObjectItem(c, "from_config_overrides");
    int steps = cJSON_GetObjectItem(c, "num_inference_steps")->valueint;
    char rel[256];
    snprintf(rel, sizeof rel, "goldens/schedulers/%s", cJSON_GetObjectItem(c, "file")->valuestring);
    cdf_st_file *f = tu_open_ref(rel);

    cdf_err err = {0};
    cdf_scheduler *s = NULL;
    if (cdf_scheduler_create(&s, cls, cfg, cJSON_GetArraySize(ovr) ? ovr : NULL, &err) ||
        cdf_scheduler_set_timesteps(s, steps, &err)) {
        printf("    %s\n", err.msg);
        cdf_scheduler_free(s);
        cdf_st_close(f);
        res.ok = 0;
        return res;
    }
    if (mode == MODE_REPLAY && !check_config(s, cJSON_GetObjectItem(c, "config"))) res.ok = 0;
    const cJSON *skw = cJSON_GetObjectItem(c, "step_kwargs"); /* DDIM's eta */
    if (cJSON_IsNumber(cJSON_GetObjectItem(skw, "eta"))) cdf_scheduler_set_eta(s, cJSON_GetObjectItem(skw, "eta")->valuedouble);
    if (cdf_scheduler_order(s) != cJSON_GetObjectItem(c, "order")->valueint) {
        printf("    order %d, diffusers %d\n", cdf_scheduler_order(s), cJSON_GetObjectItem(c, "order")->valueint);
        res.ok = 0;
    }

    /* timesteps: exact, with diffusers' dtype */
    const cdf_st_tensor *tt = cdf_st_find(f, "timesteps");
    assert_non_null(tt);
    size_t N = tt->numel;
    double *ts = malloc(N * sizeof(double));
    cdf_st_read_f64(tt, ts);
    if (cdf_scheduler_num_timesteps(s) != N) {
        printf("    %zu timesteps, diffusers %zu\n", cdf_scheduler_num_timesteps(s), N);
        res.ok = 0;
        N = N < cdf_scheduler_num_timesteps(s) ? N : cdf_scheduler_num_timesteps(s);
    }
    if (cdf_scheduler_timestep_dtype(s) != tt->dtype) {
        printf("    timesteps dtype %s, diffusers %s\n", cdf_dtype_name(cdf_scheduler_timestep_dtype(s)),
               cdf_dtype_name(tt->dtype));
        res.ok = 0;
    }
    for (size_t i = 0; i < N; i++) {
        double got = cdf_scheduler_timestep(s, i);
        if (got != ts[i] && !(isnan(got) && isnan(ts[i]))) {
            printf("    timestep %zu: %.17g, diffusers %.17g\n", i, cdf_scheduler_timestep(s, i), ts[i]);
            res.ok = 0;
        }
    }
    /* sigmas */
    const cdf_st_tensor *st = cdf_st_find(f, "sigmas");
    if (st) {
        const float *sg;
        size_t ns = cdf_scheduler_sigmas(s, &sg);
        float *ref = tu_read_f32(f, "sigmas", NULL);
        double r;
        if (ns != st->numel) {
            printf("    %zu sigmas, diffusers %zu\n", ns, st->numel);
            res.ok = 0;
        } else if (!close_enough("sigmas", sg, ref, ns, &r)) {
            res.ok = 0;
        }
        free(ref);
    }
    double ins_ref = cJSON_GetObjectItem(c, "init_noise_sigma")->valuedouble;
    if (fabs(cdf_scheduler_init_noise_sigma(s) - ins_ref) > TOL * fabs(ins_ref)) {
        printf("    init_noise_sigma %.9g, diffusers %.9g\n", cdf_scheduler_init_noise_sigma(s), ins_ref);
        res.ok = 0;
    }

    /* x_init = randn((1,4,8,8), Generator seeded 0) * init_noise_sigma */
    const int64_t shape[4] = {1, 4, 8, 8};
    size_t n = 256;
    float *x = malloc(n * sizeof(float)), *xs = malloc(n * sizeof(float)), *m = malloc(n * sizeof(float));
    float *pred = malloc(n * sizeof(float));
    float *x_init = tu_read_f32(f, "x_init", NULL);
    cdf_rng g;
    cdf_rng_seed(&g, 0);
    cdf_rng_randn_f32(&g, x, n);
    for (size_t i = 0; i < n; i++) x[i] = x[i] * (float)cdf_scheduler_init_noise_sigma(s);
    if (memcmp(x, x_init, n * sizeof(float)) != 0) {
        printf("    x_init differs from randn(seed 0) * init_noise_sigma\n");
        res.ok = 0;
    }

    float *r_in = tu_read_f32(f, "model_input", NULL), *r_out = tu_read_f32(f, "model_output", NULL);
    float *r_prev = tu_read_f32(f, "prev_sample", NULL);
    float *r_pred = cdf_st_find(f, "pred_original_sample") ? tu_read_f32(f, "pred_original_sample", NULL) : NULL;

    replay rp = {0};
    brownian_replay br = {0};
    cdf_noise_source ns = {replay_fill, &rp};
    float *noise_ref = NULL, *bn = NULL, *bs = NULL, *bsn = NULL;
    const cdf_st_tensor *nt = cdf_st_find(f, "noise");
    rp.n = n;
    if (nt) {
        noise_ref = tu_read_f32(f, "noise", NULL);
        rp.noise = noise_ref;
        rp.count = nt->numel / n;
        if (mode == MODE_RNG) {
            rp.use_rng = 1;
            rp.check = noise_ref;
            cdf_rng_seed(&rp.rng, 0);
        }
    }
    const cdf_st_tensor *bt = cdf_st_find(f, "brownian_noise");
    if (bt && mode == MODE_REPLAY) {
        bn = tu_read_f32(f, "brownian_noise", NULL);
        bs = tu_read_f32(f, "brownian_sigma", NULL);
        bsn = tu_read_f32(f, "brownian_sigma_next", NULL);
        br = (brownian_replay){bn, bs, bsn, bt->numel / n, 0, n, 0};
        cdf_scheduler_set_brownian_override(s, brownian_fill, &br);
    }

    for (size_t i = 0; i < N && res.ok; i++) {
        double t = cdf_scheduler_timestep(s, i), r;
        char what[64];
        if (cdf_scheduler_scale_model_input(s, xs, x, shape, t, &err)) {
            printf("    step %zu: %s\n", i, err.msg);
            res.ok = 0;
            break;
        }
        snprintf(what, sizeof what, "step %zu model_input", i);
        if (!close_enough(what, xs, r_in + i * n, n, &r)) res.ok = 0;
        res.worst_any = fmax(res.worst_any, r);
        model_fn(m, xs, n, t);
        snprintf(what, sizeof what, "step %zu model_output", i);
        if (!close_enough(what, m, r_out + i * n, n, &r)) res.ok = 0;
        res.worst_any = fmax(res.worst_any, r);
        int has_pred = 0;
        if (cdf_scheduler_step(s, m, t, x, shape, &ns, pred, &has_pred, &err)) {
            printf("    step %zu: %s\n", i, err.msg);
            res.ok = 0;
            break;
        }
        snprintf(what, sizeof what, "step %zu prev_sample", i);
        if (!close_enough(what, x, r_prev + i * n, n, &r)) res.ok = 0;
        res.worst_prev = fmax(res.worst_prev, r);
        res.worst_any = fmax(res.worst_any, r);
        res.steps++;
        res.tensors += r_pred ? 4 : 3;
        if (r_pred) {
            if (!has_pred) {
                printf("    step %zu: no pred_original_sample\n", i);
                res.ok = 0;
            } else {
                snprintf(what, sizeof what, "step %zu pred_original_sample", i);
                if (!close_enough(what, pred, r_pred + i * n, n, &r)) res.ok = 0;
                res.worst_any = fmax(res.worst_any, r);
            }
        }
    }
    res.draws = rp.next + br.next;
    if (res.steps != N) res.ok = 0;
    if (nt && rp.next != rp.count) {
        printf("    %zu noise draws, diffusers %zu\n", rp.next, rp.count);
        res.ok = 0;
    }
    if (!nt && rp.next) {
        printf("    %zu noise draws, diffusers none\n", rp.next);
        res.ok = 0;
    }
    if (rp.mismatches) {
        printf("    %zu generator draws differ from the recorded noise\n", rp.mismatches);
        res.ok = 0;
    }
    if (bn && (br.next != br.count || br.arg_mismatches)) {
        printf("    Brownian draws %zu (diffusers %zu), %zu with other (sigma, sigma_next)\n", br.next, br.count,
               br.arg_mismatches);
        res.ok = 0;
    }
    cdf_scheduler_free(s);
    free(ts); free(x); free(xs); free(m); free(pred); free(x_init);
    free(r_in); free(r_out); free(r_prev); free(r_pred); free(noise_ref);
    free(bn); free(bs); free(bsn);
    cdf_st_close(f);
    return res;
}

static void test_all_golden_cases(void **state) {
    (void)state;
    cJSON *manifest = load_manifest();
    const cJSON *cases = cJSON_GetObjectItem(manifest, "cases");
    assert_non_null(cases);
    int total = 0, passed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        int stochastic = cJSON_GetObjectItem(c, "num_noise_draws")->valueint > 0;
        int sde = cJSON_GetObjectItem(c, "num_brownian_draws") != NULL;
        noise_mode modes[2] = {MODE_REPLAY, stochastic ? MODE_RNG : (sde ? MODE_TREE : MODE_REPLAY)};
        int n_modes = (stochastic || sde) ? 2 : 1;
        for (int k = 0; k < n_modes; k++) {
            const char *mname = modes[k] == MODE_REPLAY ? "replay" : (modes[k] == MODE_RNG ? "generator" : "tree");
            case_result r = run_case(manifest, c->string, c, modes[k]);
            total++;
            passed += r.ok;
            printf("  %-50s %-9s %2zu steps %3zu tensors %2zu draws  prev_sample rel %.2e, any %.2e  %s\n",
                   c->string, mname, r.steps, r.tensors, r.draws, r.worst_prev, r.worst_any, r.ok ? "ok" : "FAIL");
            char key[96];
            snprintf(key, sizeof key, "%s", cJSON_GetObjectItem(c, "class")->valuestring);
            note(key, r.worst_prev, r.worst_any);
        }
    }
    printf("\n  per class (worst over cases, steps and noise modes; tolerance %.0e x max|ref|):\n", TOL);
    for (size_t i = 0; i < n_sums; i++)
        printf("    %-34s prev_sample %.2e   any tensor %.2e\n", sums[i].name, sums[i].worst, sums[i].worst_any);
    printf("  %d of %d runs pass\n", passed, total);
    cJSON_Delete(manifest);
    assert_int_equal(passed, total);
    assert_true(total >= 46);
}

/* betas / alphas_cumprod of the SD1.5 config, bit for bit. */
static void test_sd15_schedule(void **state) {
    (void)state;
    cJSON *manifest = load_manifest();
    cdf_err err = {0};
    cdf_scheduler *s;
    if (cdf_scheduler_create(&s, "PNDMScheduler", cJSON_GetObjectItem(manifest, "sd15_scheduler_config"), NULL, &err))
        fail_msg("%s", err.msg);
    cdf_st_file *f = tu_open_ref("goldens/schedulers/sd15_schedule.safetensors");
    size_t nb, na;
    float *b = tu_read_f32(f, "betas", &nb), *a = tu_read_f32(f, "alphas_cumprod", &na);
    assert_int_equal(nb, s->n_train);
    assert_int_equal(na, s->n_train);
    size_t bad_b = 0, bad_a = 0;
    for (size_t i = 0; i < nb; i++) {
        bad_b += memcmp(&b[i], &s->betas[i], 4) != 0;
        bad_a += memcmp(&a[i], &s->alphas_cumprod[i], 4) != 0;
    }
    printf("  betas: %zu of %zu differ; alphas_cumprod: %zu of %zu differ (bit patterns)\n", bad_b, nb, bad_a, na);
    TU_ASSERT_CLOSE("betas", s->betas, b, nb, 1e-7, -1);
    assert_int_equal(bad_b, 0);
    assert_int_equal(bad_a, 0);
    free(b);
    free(a);
    cdf_st_close(f);
    cdf_scheduler_free(s);
    cJSON_Delete(manifest);
}

/* Check the checker: a trajectory off by 2e-6 x max|ref| in one value fails. */
static void test_checker_catches_small_error(void **state) {
    (void)state;
    cdf_st_file *f = tu_open_ref("goldens/schedulers/EulerDiscreteScheduler_20.safetensors");
    size_t n;
    float *ref = tu_read_f32(f, "prev_sample", &n);
    float *got = malloc(n * sizeof(float));
    memcpy(got, ref, n * sizeof(float));
    double r;
    assert_true(close_enough("identical", got, ref, 256, &r));
    float mx = 0;
    for (size_t i = 0; i < 256; i++) mx = fmaxf(mx, fabsf(ref[i]));
    got[17] = ref[17] + 2e-6f * mx;
    assert_false(close_enough("perturbed (expected to fail)", got, ref, 256, &r));
    free(ref);
    free(got);
    cdf_st_close(f);
}

static void expect_error(const char *cls, const char *cfg_text, const char *needle1, const char *needle2) {
    cJSON *cfg = cfg_text ? cJSON_Parse(cfg_text) : NULL;
    cdf_err err = {0};
    cdf_scheduler *s = (cdf_scheduler *)1;
    cdf_status st = cdf_scheduler_create(&s, cls, cfg, NULL, &err);
    printf("  %s %s -> %s\n", cls, cfg_text ? cfg_text : "", err.msg);
    assert_int_not_equal(st, CDF_OK);
    assert_null(s);
    assert_non_null(strstr(err.msg, needle1));
    if (needle2) assert_non_null(strstr(err.msg, needle2));
    cJSON_Delete(cfg);
}

static void test_bad_options(void **state) {
    (void)state;
    expect_error("FooScheduler", NULL, "DDIMScheduler", "UniPCMultistepScheduler");
    expect_error("DDIMScheduler", "{\"beta_schedule\": \"cosine\"}", "'scaled_linear'", "'squaredcos_cap_v2'");
    expect_error("EulerDiscreteScheduler", "{\"prediction_type\": \"eps\"}", "'v_prediction'", "'epsilon'");
    expect_error("DPMSolverMultistepScheduler", "{\"timestep_spacing\": \"uniform\"}", "'trailing'", "'leading'");
    expect_error("DPMSolverMultistepScheduler", "{\"algorithm_type\": \"foo\"}", "'sde-dpmsolver++'", NULL);
    expect_error("DPMSolverMultistepScheduler", "{\"solver_order\": 4}", "solver_order", "1, 2, 3");
    expect_error("DDIMScheduler", "{\"num_train_timesteps\": \"many\"}", "num_train_timesteps", "integer");
    expect_error("DDPMScheduler", "{\"variance_type\": \"learned\"}", "variance_type", NULL);

    cdf_err err = {0};
    cdf_scheduler *s;
    assert_int_equal(cdf_scheduler_create(&s, "DDIMScheduler", NULL, NULL, &err), CDF_OK);
    assert_int_not_equal(cdf_scheduler_set_timesteps(s, 0, &err), CDF_OK);
    printf("  set_timesteps(0) -> %s\n", err.msg);
    assert_non_null(strstr(err.msg, "num_inference_steps"));
    assert_int_not_equal(cdf_scheduler_set_timesteps(s, 1001, &err), CDF_OK);
    printf("  set_timesteps(1001) -> %s\n", err.msg);
    assert_int_equal(cdf_scheduler_set_timesteps(s, 1000, &err), CDF_OK);
    /* stepping a stochastic class without a noise source is an error, not a crash */
    cdf_scheduler_free(s);
    assert_int_equal(cdf_scheduler_create(&s, "euler_a", NULL, NULL, &err), CDF_OK);
    assert_int_equal(cdf_scheduler_set_timesteps(s, 4, &err), CDF_OK);
    float x[16] = {0}, m[16] = {0};
    const int64_t shape[4] = {1, 1, 4, 4};
    assert_int_not_equal(cdf_scheduler_step(s, m, cdf_scheduler_timestep(s, 0), x, shape, NULL, NULL, NULL, &err),
                         CDF_OK);
    printf("  step without noise -> %s\n", err.msg);
    cdf_scheduler_free(s);
}

/* from_config: a class keeps its own defaults, `_use_default_values` keys of
 * the source config are not taken, unknown keys stay hidden. */
static void test_from_config_semantics(void **state) {
    (void)state;
    cJSON *cfg = cJSON_Parse("{\"_class_name\": \"PNDMScheduler\", \"prediction_type\": \"v_prediction\", "
                             "\"timestep_spacing\": \"trailing\", \"skip_prk_steps\": true, "
                             "\"_use_default_values\": [\"prediction_type\"]}");
    cdf_err err = {0};
    cdf_scheduler *s;
    assert_int_equal(cdf_scheduler_create(&s, "DDIMScheduler", cfg, NULL, &err), CDF_OK);
    assert_string_equal(s->cfg.prediction_type, "epsilon");   /* listed as a default there */
    assert_string_equal(s->cfg.timestep_spacing, "trailing");  /* taken */
    assert_true(s->cfg.clip_sample);                           /* DDIM's own default */
    char *text = cdf_scheduler_config_json(s);
    assert_non_null(strstr(text, "\"skip_prk_steps\": true")); /* hidden key kept */
    free(text);
    cdf_scheduler_free(s);
    /* overrides win; an alias brings its overrides, the caller's win over them */
    cJSON *ovr = cJSON_Parse("{\"solver_order\": 1}");
    assert_int_equal(cdf_scheduler_create(&s, "DPM++ 2M Karras", cfg, ovr, &err), CDF_OK);
    assert_string_equal(cdf_scheduler_class(s), "DPMSolverMultistepScheduler");
    assert_true(s->cfg.use_karras_sigmas);
    assert_int_equal(s->cfg.solver_order, 1);
    cdf_scheduler_free(s);
    /* register_to_config remaps (DEIS config fed to DPM-Solver) */
    cJSON *deis = cJSON_Parse("{\"algorithm_type\": \"deis\", \"solver_type\": \"logrho\", "
                              "\"final_sigmas_type\": \"sigma_min\"}");
    assert_int_equal(cdf_scheduler_create(&s, "DPMSolverSinglestepScheduler", deis, NULL, &err), CDF_OK);
    assert_string_equal(s->cfg.algorithm_type, "dpmsolver++");
    assert_string_equal(s->cfg.solver_type, "midpoint");
    cdf_scheduler_free(s);
    cJSON_Delete(deis);
    cJSON_Delete(ovr);
    cJSON_Delete(cfg);
}

static void test_registry(void **state) {
    (void)state;
    const char *const *names;
    size_t n = cdf_scheduler_class_names(&names);
    assert_int_equal(n, 14);
    cdf_err err = {0};
    for (size_t i = 0; i < n; i++) {
        cdf_scheduler *s;
        assert_int_equal(cdf_scheduler_create(&s, names[i], NULL, NULL, &err), CDF_OK);
        assert_string_equal(cdf_scheduler_class(s), names[i]);
        assert_int_equal(cdf_scheduler_set_timesteps(s, 10, &err), CDF_OK);
        cdf_scheduler_free(s);
    }
    const cdf_scheduler_alias *al;
    size_t na = cdf_scheduler_aliases(&al);
    for (size_t i = 0; i < na; i++) {
        cdf_scheduler *s;
        if (cdf_scheduler_create(&s, al[i].alias, NULL, NULL, &err)) fail_msg("%s: %s", al[i].alias, err.msg);
        assert_string_equal(cdf_scheduler_class(s), al[i].class_name);
        assert_ptr_equal(cdf_scheduler_resolve(al[i].display), &al[i]);
        if (cdf_scheduler_set_timesteps(s, 10, &err)) fail_msg("%s: %s", al[i].alias, err.msg);
        cdf_scheduler_free(s);
    }
    assert_string_equal(cdf_scheduler_resolve("EULER_A")->class_name, "EulerAncestralDiscreteScheduler");
    assert_null(cdf_scheduler_resolve("nonsense"));
}

/* add_noise, the three ways diffusers does it (values from diffusers 0.26.3
 * add_noise on this stack: x = randn(16, seed 1), noise = randn(16, seed 2),
 * SD1.5 config, 20 steps, t = timesteps[k]). */
static void test_add_noise(void **state) {
    (void)state;
    static const struct {
        const char *cls;
        size_t k;
        float want[16];
    } cases[] = {
        {"DDIMScheduler", 1, {-1.2140297889709473f, 0.8213789463043213f, -1.3724192380905151f, -1.2923506498336792f,
                              -1.2220675945281982f, 1.0872948169708252f, -1.1659101247787476f, -0.3084283471107483f,
                              -0.9857370853424072f, 0.37873944640159607f, -0.6593081951141357f, -0.2632145583629608f,
                              0.9742206335067749f, -0.5479340553283691f, -0.19638575613498688f, -0.3743044435977936f}},
        {"EulerDiscreteScheduler", 1, {-12.710928916931152f, 9.100375175476074f, -14.66991901397705f,
                                       -13.535030364990234f, -13.19819164276123f, 11.938750267028809f,
                                       -12.343405723571777f, -2.8862452507019043f, -10.468562126159668f,
                                       4.013773441314697f, -6.91735315322876f, -2.7781355381011963f,
                                       10.60630989074707f, -6.403990268707275f, -2.1896071434020996f,
                                       -4.182375907897949f}},
        {"DPMSolverMultistepScheduler", 3, {-1.2624704837799072f, 0.7906948924064636f, -1.3890622854232788f,
                                            -1.3433990478515625f, -1.2197210788726807f, 1.0603456497192383f,
                                            -1.1951510906219482f, -0.3642234802246094f, -1.0063217878341675f,
                                            0.38772016763687134f, -0.6837923526763916f, -0.270893394947052f,
                                            0.9615936875343323f, -0.48521798849105835f, -0.18730314075946808f,
                                            -0.3558445870876312f}},
        {"HeunDiscreteScheduler", 2, {-12.710928916931152f, 9.100375175476074f, -14.66991901397705f,
                                      -13.535030364990234f, -13.19819164276123f, 11.938750267028809f,
                                      -12.343405723571777f, -2.8862452507019043f, -10.468562126159668f,
                                      4.013773441314697f, -6.91735315322876f, -2.7781355381011963f,
                                      10.60630989074707f, -6.403990268707275f, -2.1896071434020996f,
                                      -4.182375907897949f}},
        {"UniPCMultistepScheduler", 0, {-1.1425179243087769f, 0.8632513880729675f, -1.3457918167114258f,
                                        -1.2169610261917114f, -1.2227728366851807f, 1.1232824325561523f,
                                        -1.121809482574463f, -0.22840693593025208f, -0.9543365240097046f,
                                        0.36515045166015625f, -0.6230643391609192f, -0.25172603130340576f,
                                        0.9900813698768616f, -0.6359545588493347f, -0.20888090133666992f,
                                        -0.3997535705566406f}},
    };
    cJSON *manifest = load_manifest();
    float x[16], noise[16], out[16];
    cdf_rng g;
    cdf_rng_seed(&g, 1);
    cdf_rng_randn_f32(&g, x, 16);
    cdf_rng_seed(&g, 2);
    cdf_rng_randn_f32(&g, noise, 16);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cdf_err err = {0};
        cdf_scheduler *s;
        assert_int_equal(cdf_scheduler_create(&s, cases[c].cls, cJSON_GetObjectItem(manifest, "sd15_scheduler_config"),
                                              NULL, &err), CDF_OK);
        assert_int_equal(cdf_scheduler_set_timesteps(s, 20, &err), CDF_OK);
        if (cdf_scheduler_add_noise(s, out, x, noise, 16, cdf_scheduler_timestep(s, cases[c].k), &err))
            fail_msg("%s", err.msg);
        char what[96];
        snprintf(what, sizeof what, "add_noise %s", cases[c].cls);
        TU_ASSERT_CLOSE(what, out, cases[c].want, 16, 1e-7, -1);
        cdf_scheduler_free(s);
    }
    cJSON_Delete(manifest);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sd15_schedule),
        cmocka_unit_test(test_all_golden_cases),
        cmocka_unit_test(test_checker_catches_small_error),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_from_config_semantics),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_add_noise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
