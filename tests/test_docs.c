/* The documentation shows code that exists: docs/API.md's program is
 * examples/txt2img.c, byte for byte (the example itself is built and run by
 * the example_txt2img test). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char *slurp(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", CDF_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) fail_msg("read error");
    b[n] = '\0';
    fclose(f);
    return b;
}

static void test_api_example_is_the_file(void **s) {
    (void)s;
    char *doc = slurp("docs/API.md"), *ex = slurp("examples/txt2img.c");
    char *start = strstr(doc, "```c\n");
    assert_non_null(start);
    start += 5;
    char *end = strstr(start, "```");
    assert_non_null(end);
    *end = '\0';
    assert_string_equal(start, ex);
    free(doc);
    free(ex);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_api_example_is_the_file)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
