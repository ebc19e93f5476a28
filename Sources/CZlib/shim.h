// Shim header exposing the system zlib (raw inflate for .npz members, crc32 for .npz writing) to Swift.
#include <zlib.h>
