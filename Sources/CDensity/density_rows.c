// The density chart's binning of the points far from every edge (spec/CHARTS.md §2, Density.swift's `slack`), in C
// so the compiler turns it into vector instructions: Swift's checked float-to-integer conversion and its SIMD types
// did not vectorize (measured on tiny-gpt ×30, 1000 × 500 values: the Swift SIMD8 version took 2.2× the scalar loop;
// spec/RATIONALE.md §I has this kernel's numbers). Built twice, for the baseline and for AVX2, chosen at run time.
#include "density_rows.h"

enum { CHUNK = 64 };

#define DENSITY_ROWS_BODY                                                                                   \
    const double oneMinus = 1.0 - slack;                                                                    \
    int32_t k[CHUNK];                                                                                       \
    for (long start = 0; start < n; start += CHUNK) {                                                       \
        long m = n - start < CHUNK ? n - start : CHUNK;                                                     \
        const double *v = y + start;                                                                        \
        int bad = 0;                                                                                        \
        for (long i = 0; i < m; i++) {                                                                      \
            double t = (v[i] - lo) * toBin;                                                                 \
            int inside = (t >= slack) & (t < top);                                                          \
            double safe = inside ? t : 0.5; /* converted only in range (NaN and huge values fail `inside`) */ \
            int32_t r = (int32_t)safe;                                                                      \
            double f = safe - (double)r;                                                                    \
            bad |= !(inside & (f >= slack) & (f <= oneMinus));                                              \
            k[i] = r;                                                                                       \
        }                                                                                                   \
        if (bad) return 0;                                                                                  \
        int32_t *o = out + start * stride;                                                                  \
        for (long i = 0; i < m; i++) o[i * stride] = k[i];                                                  \
    }                                                                                                       \
    return 1;

static int rows_baseline(const double *y, long n, double lo, double toBin, double slack, double top, int32_t *out, long stride) {
    DENSITY_ROWS_BODY
}

#if defined(__x86_64__)
__attribute__((target("avx2")))
static int rows_avx2(const double *y, long n, double lo, double toBin, double slack, double top, int32_t *out, long stride) {
    DENSITY_ROWS_BODY
}
#endif

int psnap_density_rows(const double *y, long n, double lo, double toBin, double slack, double top, int32_t *out, long stride) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) return rows_avx2(y, n, lo, toBin, slack, top, out, stride);
#endif
    return rows_baseline(y, n, lo, toBin, slack, top, out, stride);
}
