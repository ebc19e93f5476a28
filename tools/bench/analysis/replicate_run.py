#!/usr/bin/env python3
"""Writes a bigger run made of K copies of a real run's tensors, for timing passes at the 3–6 GB scale on values
that move as a real training run's do (a synthetic random walk moves differently).

usage: replicate_run.py SRC_DIR OUT_DIR --copies K

SRC_DIR holds one safetensors file per snapshot (e.g. ../shared/data/tiny-gpt). Each OUT_DIR file holds, for every
tensor `name` of the source snapshot, `copyNNN.name`: the source values times (1 + 1e-3·NNN), so copies are not
byte-identical. Convert with `psnap convert OUT_DIR -o RUN.psnap`.
"""
import argparse, glob, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from safetensors_io import FLOATS, read_safetensors, write_safetensors  # noqa: E402


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
        tensors, dtypes, meta = read_safetensors(path)
        out = {}
        for k in range(a.copies):
            scale = 1 + 1e-3 * k
            for name, bits in tensors.items():
                if dtypes[name] not in FLOATS:
                    raise SystemExit(f"{path}: {name} has dtype {dtypes[name]}; this tool copies F16/F32/F64 tensors")
                x = bits.view(FLOATS[dtypes[name]])
                out[f"copy{k:03d}.{name}"] = (x * x.dtype.type(scale)).astype(x.dtype)
        write_safetensors(os.path.join(a.out, os.path.basename(path)), out, meta)
    print(f"wrote {len(files)} snapshots × {a.copies} copies to {a.out}")


if __name__ == "__main__":
    main()
