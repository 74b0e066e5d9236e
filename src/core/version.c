#include "cdiffusers.h"

#ifndef CDF_VERSION_STRING
#define CDF_VERSION_STRING "0.0.0"
#endif

const char *cdf_version(void) { return CDF_VERSION_STRING; }

const char *cdf_status_string(cdf_status status) {
    switch (status) {
    case CDF_OK: return "ok";
    case CDF_ERR_INVALID_ARGUMENT: return "invalid argument";
    case CDF_ERR_IO: return "input/output error";
    case CDF_ERR_FORMAT: return "malformed file";
    case CDF_ERR_UNSUPPORTED: return "unsupported";
    case CDF_ERR_OUT_OF_MEMORY: return "out of memory";
    case CDF_ERR_CANCELLED: return "cancelled";
    case CDF_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
