#include "bench_util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bench_reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

/* A "Vm...:" line of /proc/self/status (kB) in MiB; 0 where there is none. */
static double status_mb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    size_t k = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0) sscanf(line + k, "%lf", &kb);
    if (f) fclose(f);
    return kb / 1024.0;
}

double bench_peak_rss_mb(void) { return status_mb("VmHWM:"); }
double bench_rss_mb(void) { return status_mb("VmRSS:"); }

void bench_report(const char *what, double seconds, uint64_t flops, double gemm_gflops, double peak_rss_mb) {
    const double gf = (double)flops / 1e9;
    const double bound = gemm_gflops > 0 ? gf / gemm_gflops : 0;
    printf("%-34s %9.3f s  %9.1f GFLOP  %7.1f GFLOP/s  bound %8.3f s  ratio %5.2fx  peak RSS %7.0f MiB\n", what,
           seconds, gf, seconds > 0 ? gf / seconds : 0, bound, bound > 0 ? seconds / bound : 0, peak_rss_mb);
    printf("JSON {\"what\": \"%s\", \"seconds\": %.4f, \"gflop\": %.2f, \"bound_seconds\": %.4f, \"peak_rss_mb\": %.0f}\n",
           what, seconds, gf, bound, peak_rss_mb);
    fflush(stdout);
}
