// The density chart's counting of one segment for a batch of series (spec/CHARTS.md §3, Density.swift's `flush`),
// in C: each series' table slot is computed without branches over a chunk (the compiler vectorizes it), then the
// slots are incremented one by one. The Swift loop that decided and incremented series by series took 1.7 ns per
// segment on tiny-gpt ×150 (spec/RATIONALE.md §I has this kernel's numbers). Built for the baseline and for AVX2.
#include "density_rows.h"

enum { COUNT_CHUNK = 256 };

#define DENSITY_COUNT_BODY                                                                              \
    const int32_t H2 = H + 2;                                                                           \
    const int32_t below = reach * H2, above = reach * H2 + H + 1;                                       \
    int32_t key[COUNT_CHUNK];                                                                           \
    long others = 0;                                                                                    \
    for (long start = 0; start < n; start += COUNT_CHUNK) {                                             \
        long m = n - start < COUNT_CHUNK ? n - start : COUNT_CHUNK;                                     \
        const int32_t *a = from + start, *b = to + start;                                               \
        for (long i = 0; i < m; i++) {                                                                  \
            int32_t r0 = a[i], r1d = b[i];                                                              \
            int32_t r1 = oneColumn ? r0 : r1d;                                                          \
            uint32_t e = (uint32_t)r1 - (uint32_t)r0;                                                   \
            int next = r1d != INT32_MIN; /* else: skipped (r0 too) or to `rest` */                      \
            int inside = ((uint32_t)r0 < (uint32_t)H) & ((uint32_t)r1 < (uint32_t)H) & next;            \
            int band = inside & (e + (uint32_t)reach <= 2u * (uint32_t)reach);                          \
            int lowBoth = (r0 < 0) & (r1 < 0) & (r0 != INT32_MIN) & next;                               \
            int highBoth = (r0 >= H) & (r1 >= H) & next;                                                \
            int32_t slot = (int32_t)((e + (uint32_t)reach) * (uint32_t)H2 + (uint32_t)r0 + 1u);         \
            key[i] = band ? slot : lowBoth ? below : highBoth ? above : r0 == INT32_MIN ? -1 : -2;      \
        }                                                                                               \
        for (long i = 0; i < m; i++) {                                                                  \
            int32_t k = key[i];                                                                         \
            if (k >= 0) table[k]++;                                                                     \
            else if (k == -2) rest[others++] = (int32_t)(start + i);                                    \
        }                                                                                               \
    }                                                                                                   \
    return others;

static long count_baseline(const int32_t *from, const int32_t *to, long n, int oneColumn, int32_t H, int32_t reach,
                           uint32_t *table, int32_t *rest) {
    DENSITY_COUNT_BODY
}

#if defined(__x86_64__)
__attribute__((target("avx2")))
static long count_avx2(const int32_t *from, const int32_t *to, long n, int oneColumn, int32_t H, int32_t reach,
                       uint32_t *table, int32_t *rest) {
    DENSITY_COUNT_BODY
}
#endif

long psnap_density_count(const int32_t *from, const int32_t *to, long n, int oneColumn, int32_t H, int32_t reach,
                         uint32_t *table, int32_t *rest) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) return count_avx2(from, to, n, oneColumn, H, reach, table, rest);
#endif
    return count_baseline(from, to, n, oneColumn, H, reach, table, rest);
}
