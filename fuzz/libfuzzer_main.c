/* libFuzzer entry points for one harness, chosen at compile time with
 * -DCDF_FUZZ_TARGET=cdf_fuzz_<name> (see fuzz/CMakeLists.txt). The reference
 * folder comes from $CDF_REFERENCE_DIR, else the build's default. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *ref = getenv("CDF_REFERENCE_DIR");
    if (!ref || !*ref) ref = CDF_DEFAULT_REFERENCE_DIR;
    if (CDF_FUZZ_TARGET.init && CDF_FUZZ_TARGET.init(ref) != 0) {
        fprintf(stderr, "%s: initialisation failed (reference folder %s)\n", CDF_FUZZ_TARGET.name, ref);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return CDF_FUZZ_TARGET.run(data, size); }
