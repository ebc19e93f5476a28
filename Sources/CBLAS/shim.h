// Shim header exposing the distribution's OpenBLAS (CBLAS) and LAPACKE to Swift.
#include <cblas.h>
#include <lapacke.h>
