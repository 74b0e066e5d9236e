#include "core/dtype.h"

size_t cdf_dtype_size(cdf_dtype dt) {
    switch (dt) {
    case CDF_DTYPE_F32: case CDF_DTYPE_I32: return 4;
    case CDF_DTYPE_F16: case CDF_DTYPE_BF16: return 2;
    case CDF_DTYPE_F64: case CDF_DTYPE_I64: return 8;
    case CDF_DTYPE_U8: return 1;
    }
    return 0;
}

static const char *const names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8"};

const char *cdf_dtype_name(cdf_dtype dt) {
    if ((unsigned)dt < sizeof names / sizeof names[0]) return names[dt];
    return "?";
}

int cdf_dtype_parse(const char *s, cdf_dtype *out) {
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) { *out = (cdf_dtype)i; return 0; }
    }
    return -1;
}
