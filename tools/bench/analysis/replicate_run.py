#!/usr/bin/env python3
"""Writes a bigger run made of K copies of a real run's tensors, for timing passes at the 3–6 GB scale on values
that move as a real training run's do (a synthetic random walk moves differently).

usage: replicate_run.py SRC_DIR OUT_DIR --copies K

SRC_DIR holds one safetensors file per snapshot (e.g. ../shared/data/tiny-gpt). Each OUT_DIR file holds, for every
tensor `name` of the source snapshot, `copyNNN.name`: the source values times (1 + 1e-3·NNN), so copies are not
byte-identical. Convert with `psnap convert OUT_DIR -o RUN.psnap`.
"""
import argparse, glob, json, os, struct

import numpy as np


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16, "F64": np.float64}.get(h["dtype"])
        if dt is None:
            raise SystemExit(f"{path}: {name} has dtype {h['dtype']}; this tool copies F16/F32/F64 tensors")
        out[name] = np.frombuffer(data[a:b], dtype=dt).reshape(h["shape"])
    return out, meta


def write(path, tensors, meta):
    header, chunks, off = {}, [], 0
    for name, x in tensors.items():
        b = np.ascontiguousarray(x).tobytes()
        header[name] = {"dtype": {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64"}[x.dtype],
                        "shape": list(x.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b); off += len(b)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for b in chunks:
            f.write(b)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src"); ap.add_argument("out"); ap.add_argument("--copies", type=int, required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    files = sorted(glob.glob(os.path.join(a.src, "*.safetensors")))
    if not files:
        raise SystemExit(f"{a.src}: no .safetensors files")
    for extra in glob.glob(os.path.join(a.src, "*.json")):
        with open(extra, "rb") as f, open(os.path.join(a.out, os.path.basename(extra)), "wb") as g:
            g.write(f.read())
    for path in files:
        tensors, meta = read(path)
        out = {}
        for k in range(a.copies):
            scale = np.float32(1 + 1e-3 * k)
            for name, x in tensors.items():
                out[f"copy{k:03d}.{name}"] = (x * scale).astype(x.dtype)
        write(os.path.join(a.out, os.path.basename(path)), out, meta)
    print(f"wrote {len(files)} snapshots × {a.copies} copies to {a.out}")


if __name__ == "__main__":
    main()
