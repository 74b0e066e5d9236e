/* safetensors reader: real files, bad files, and the writer round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "testutil.h"

/* Builds "len8 + header + data" in a malloc'd buffer. */
static uint8_t *image(const char *hdr, size_t data_len, size_t *len) {
    size_t hl = strlen(hdr);
    *len = 8 + hl + data_len;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (uint8_t)i;
    return b;
}

/* Expects parsing to fail with `code` and a message containing `needle`. */
static void expect_bad(const char *hdr, size_t data_len, cdf_status code, const char *needle) {
    size_t len;
    uint8_t *b = image(hdr, data_len, &len);
    cdf_st_file *f = (cdf_st_file *)1;
    cdf_err err = {0};
    cdf_status st = cdf_st_parse(&f, b, len, "bad.safetensors", &err);
    printf("  %-70.70s -> %s\n", hdr, err.msg);
    assert_int_equal(st, code);
    assert_null(f);
    assert_non_null(strstr(err.msg, "bad.safetensors"));
    assert_non_null(strstr(err.msg, needle));
    free(b);
}

static void test_reads_reference_weights(void **state) {
    (void)state;
    cdf_st_file *f = tu_open_ref("tiny-sd1/text_encoder/model.safetensors");
    const cdf_st_tensor *t = cdf_st_find(f, "text_model.embeddings.token_embedding.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, CDF_DTYPE_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 49408);
    assert_int_equal(t->shape[1], 32);
    assert_null(cdf_st_find(f, "no.such.tensor"));
    cdf_st_close(f);

    /* The fp16 variant holds the same weights rounded to half precision. */
    cdf_st_file *h = tu_open_ref("tiny-sd1/text_encoder/model.fp16.safetensors");
    cdf_st_file *g = tu_open_ref("tiny-sd1/text_encoder/model.safetensors");
    const cdf_st_tensor *th = cdf_st_find(h, "text_model.final_layer_norm.weight");
    const cdf_st_tensor *tg = cdf_st_find(g, "text_model.final_layer_norm.weight");
    assert_int_equal(th->dtype, CDF_DTYPE_F16);
    float a[32], b[32];
    cdf_st_read_f32(th, a);
    cdf_st_read_f32(tg, b);
    for (int i = 0; i < 32; i++) assert_true(cdf_f16_to_f32(cdf_f32_to_f16(b[i])) == a[i]);
    cdf_st_close(h);
    cdf_st_close(g);
}

static void test_bad_files(void **state) {
    (void)state;
    cdf_err err = {0};
    cdf_st_file *f;
    /* truncated: fewer than 8 bytes */
    uint8_t tiny[5] = {1, 2, 3, 4, 5};
    assert_int_equal(cdf_st_parse(&f, tiny, sizeof tiny, "bad.safetensors", &err), CDF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "too short"));
    /* header length beyond the file */
    size_t len;
    uint8_t *b = image("{}", 0, &len);
    b[0] = 200;
    assert_int_equal(cdf_st_parse(&f, b, len, "bad.safetensors", &err), CDF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "past the end"));
    free(b);
    /* huge header length */
    b = image("{}", 0, &len);
    b[7] = 0x7f;
    assert_int_equal(cdf_st_parse(&f, b, len, "bad.safetensors", &err), CDF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "limit"));
    free(b);
    /* missing file */
    assert_int_equal(cdf_st_open(&f, "/nonexistent/x.safetensors", &err), CDF_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.safetensors"));

    expect_bad("{\"a\":", 0, CDF_ERR_FORMAT, "not valid JSON");
    expect_bad("[1,2]", 0, CDF_ERR_FORMAT, "not a JSON object");
    expect_bad("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, CDF_ERR_UNSUPPORTED,
               "F8_E4M3");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, CDF_ERR_FORMAT,
               "out of range");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,0]}}", 8, CDF_ERR_FORMAT,
               "out of range");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, CDF_ERR_FORMAT, "need 12");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, CDF_ERR_FORMAT, "overlap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, CDF_ERR_FORMAT,
               "non-negative");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, CDF_ERR_FORMAT,
               "non-negative");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
               "\"data_offsets\":[0,4]}}",
               4, CDF_ERR_FORMAT, "overflow");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, CDF_ERR_FORMAT,
               "rank");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, CDF_ERR_FORMAT,
               "data_offsets");
    expect_bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CDF_ERR_FORMAT, "dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, CDF_ERR_FORMAT, "twice");
    expect_bad("{\"a\":7}", 0, CDF_ERR_FORMAT, "not an object");
}

static void test_good_image_and_metadata(void **state) {
    (void)state;
    size_t len;
    uint8_t *b = image("{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"z\":{\"dtype\":\"U8\",\"shape\":[2,2],\"data_offsets\":[4,8]},"
                       "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                       "\"a\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                       8, &len);
    cdf_st_file *f;
    cdf_err err = {0};
    assert_int_equal(cdf_st_parse(&f, b, len, "good", &err), CDF_OK);
    assert_int_equal(cdf_st_count(f), 3);
    assert_string_equal(cdf_st_at(f, 0)->name, "a");
    const cdf_st_tensor *z = cdf_st_find(f, "z");
    assert_int_equal(z->numel, 4);
    float v[4];
    cdf_st_read_f32(z, v);
    assert_true(v[0] == 4.0f && v[3] == 7.0f);
    assert_int_equal(cdf_st_find(f, "a")->ndim, 0);
    assert_int_equal(cdf_st_find(f, "a")->numel, 1);
    const int64_t want[2] = {2, 3};
    const cdf_st_tensor *t;
    assert_int_equal(cdf_st_expect(f, "z", 2, want, &t, &err), CDF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "[2, 2]"));
    cdf_st_close(f);
    free(b);
}

static void test_write_round_trip(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", tu_tmpdir());
    float x[6] = {1, -2, 3.5f, 0, 1e-8f, 7};
    int64_t ids[3] = {49406, 320, 49407};
    cdf_st_out outs[2] = {{"x", CDF_DTYPE_F32, 2, {2, 3}, x}, {"ids", CDF_DTYPE_I64, 1, {3}, ids}};
    cdf_err err = {0};
    assert_int_equal(cdf_st_write(path, outs, 2, &err), CDF_OK);
    cdf_st_file *f;
    assert_int_equal(cdf_st_open(&f, path, &err), CDF_OK);
    const cdf_st_tensor *t = cdf_st_find(f, "x");
    float y[6];
    cdf_st_read_f32(t, y);
    assert_memory_equal(x, y, sizeof x);
    int64_t r[3];
    cdf_st_read_i64(cdf_st_find(f, "ids"), r);
    assert_memory_equal(ids, r, sizeof ids);
    cdf_st_close(f);
    /* Unwritable location: error, and nothing left behind. */
    assert_int_equal(cdf_st_write("/nonexistent-dir/x.safetensors", outs, 2, &err), CDF_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.safetensors"));
}

static void test_half_conversions(void **state) {
    (void)state;
    /* Exhaustive: every finite f16 survives f16 -> f32 -> f16. */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) continue; /* NaN payloads */
        assert_int_equal(cdf_f32_to_f16(cdf_f16_to_f32((uint16_t)h)), h);
    }
    assert_int_equal(cdf_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(cdf_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(cdf_f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3c00);        /* tie -> even */
    assert_int_equal(cdf_f32_to_f16(1.0f + 3.0f / 2048.0f), 0x3c02);        /* tie -> even (up) */
    assert_int_equal(cdf_f32_to_bf16(1.0f + 1.0f / 256.0f), 0x3f80);        /* tie -> even */
    assert_int_equal(cdf_f32_to_bf16(1.0f + 3.0f / 256.0f), 0x3f82);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_reference_weights),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_good_image_and_metadata),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_half_conversions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
