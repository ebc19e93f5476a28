#ifndef PSNAP_DENSITY_ROWS_H
#define PSNAP_DENSITY_ROWS_H
#include <stdint.h>

/// The rows of a series' n points whose product (v − lo)·toBin is at least `slack` from every integer and inside
/// [slack, top): written to out[i · stride]; returns 1 when all of them are, else 0 (the caller bins that series
/// by the edges; what was written is to be overwritten).
int psnap_density_rows(const double *y, long n, double lo, double toBin, double slack, double top, int32_t *out, long stride);

/// Counts segment r₀ = from[p] → r₁ = to[p] (r₁ = r₀ when `oneColumn`) of series p < n in a band table of height H
/// (Density.swift's layout, `table` at its first cell): both rows inside 0 ..< H and |r₁ − r₀| ≤ reach at
/// (r₁ − r₀ + reach)·(H + 2) + r₀ + 1, both below at reach·(H + 2), both above at reach·(H + 2) + H + 1; a point
/// r₀ = INT32_MIN (not finite) is skipped. Every other p (in the range at one end only, steeper, or a finite r₀
/// before a non-finite r₁) goes to `rest`, in order; returns how many.
long psnap_density_count(const int32_t *from, const int32_t *to, long n, int oneColumn, int32_t H, int32_t reach,
                         uint32_t *table, int32_t *rest);

#endif
