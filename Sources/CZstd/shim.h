// Shim header exposing the system libzstd to Swift.
#include <zstd.h>
#include <zstd_errors.h>
