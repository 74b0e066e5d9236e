/* Timing, memory and reporting helpers for the benchmarks. */
#ifndef CDF_BENCH_UTIL_H
#define CDF_BENCH_UTIL_H

#include <stdint.h>

double bench_now(void);
/* Resets the process's peak resident set (Linux: /proc/self/clear_refs). */
void bench_reset_peak_rss(void);
/* Peak resident set since the last reset, MiB (VmHWM). */
double bench_peak_rss_mb(void);
/* Resident set now, MiB (VmRSS). */
double bench_rss_mb(void);
/* One result: a table row on stdout and a JSON line (prefixed "JSON ") for scripts. */
void bench_report(const char *what, double seconds, uint64_t flops, double gemm_gflops, double peak_rss_mb);

#endif
