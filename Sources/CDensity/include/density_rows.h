#ifndef PSNAP_DENSITY_ROWS_H
#define PSNAP_DENSITY_ROWS_H
#include <stdint.h>

/// The rows of a series' n points whose product (v − lo)·toBin is at least `slack` from every integer and inside
/// [slack, top): written to out[i · stride]; returns 1 when all of them are, else 0 (the caller bins that series
/// by the edges; what was written is to be overwritten).
int psnap_density_rows(const double *y, long n, double lo, double toBin, double slack, double top, int32_t *out, long stride);

#endif
