// Shim header exposing the system libzstd to Swift.
// ZSTD_STATIC_LINKING_ONLY: the buffer-less decompression API (ZSTD_decompressBegin, ZSTD_nextSrcSizeToDecompress,
// ZSTD_decompressContinue), exported by the shared library since 1.0 and stable since; a prefix decode of a frame
// through it stops after the blocks wanted, which ZSTD_decompressStream did not (RATIONALE §C.5).
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>
