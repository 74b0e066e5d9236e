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
    return tu_read_file(path, NULL);
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
