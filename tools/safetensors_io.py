"""Reading and writing safetensors files with numpy alone, for the tools, benchmarks and tests (the library's own
reader and writer are in Sources/PSnapImport). Values are handled as raw little-endian bit patterns, so every dtype
(F16, BF16, F32, F64) round-trips exactly."""
import json
import os
import struct

import numpy as np

#: safetensors dtype → the unsigned integer type of its bit patterns, and the float type a value reads as.
BITS = {"F16": np.uint16, "BF16": np.uint16, "F32": np.uint32, "F64": np.uint64}
FLOATS = {"F16": np.float16, "F32": np.float32, "F64": np.float64}


def read_safetensors(path):
    """({name: bit-pattern array of the tensor's shape}, {name: dtype name}, the __metadata__ dict or None)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    tensors, dtypes = {}, {}
    for name, h in header.items():
        if h["dtype"] not in BITS:
            raise ValueError(f"{path}: tensor '{name}' has dtype {h['dtype']} (F16, BF16, F32 or F64 here)")
        a, b = h["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype=BITS[h["dtype"]]).reshape(h["shape"])
        dtypes[name] = h["dtype"]
    return tensors, dtypes, meta


def write_safetensors(path, tensors, metadata=None, dtypes=None):
    """Writes {name: array} (float16/32/64 arrays; or bit patterns with their dtype names in `dtypes`, e.g. BF16)
    atomically (a temporary file renamed)."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.asarray(a)
        kind = (dtypes or {}).get(name) or {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}[a.dtype]
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": kind, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
