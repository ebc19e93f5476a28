#!/usr/bin/env python3
"""Checks `psnap pairs --csv` against numpy: every pair of the selected tensors with |r| >= MIN_R.

usage: check_pairs.py RUN.psnap PAIRS.csv MIN_R TENSOR… [--on values|steps]
The pair sets must be equal, except pairs whose |r| lies within 1e-12 of MIN_R (rounding may put them on either side);
r within 1e-12 for every pair both hold.
"""
import sys

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from psnap_reader import Psnap  # noqa: E402


def main(argv):
    on = argv[argv.index("--on") + 1] if "--on" in argv else "values"
    args = [a for i, a in enumerate(argv) if a != "--on" and (i == 0 or argv[i - 1] != "--on")]
    run, csv, min_r, names = args[0], args[1], float(args[2]), set(args[3:])
    r = Psnap(run)
    rows, globals_ = [], []
    offset = 0
    for t in r.tensors:
        if t.name in names:
            bits = r.tensor_bits(t.name)
            rows.append((bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64) if t.dtype == "bf16"
                        else bits.view(t.np_dtype).astype(np.float64))
            globals_.append(np.arange(offset, offset + t.count))
        offset += t.count
    m, g = np.concatenate(rows), np.concatenate(globals_)
    if on == "steps":
        m = np.diff(m, axis=1)
    c = m - m.mean(axis=1, keepdims=True)
    norm = np.sqrt((c * c).sum(axis=1))
    ok = np.isfinite(norm) & (norm > 0)
    z, g = c[ok] / norm[ok, None], g[ok]
    want, near = {}, set()
    for i0 in range(0, len(g), 2048):                     # row blocks against the rows after them: bounded memory
        blk = np.clip(z[i0:i0 + 2048] @ z.T, -1, 1)
        for i in range(blk.shape[0]):
            row = blk[i, i0 + i + 1:]
            js = np.nonzero(np.abs(row) >= min_r)[0]
            for j in js:
                want[(int(g[i0 + i]), int(g[i0 + i + 1 + j]))] = float(row[j])
            for j in np.nonzero(np.abs(np.abs(row) - min_r) < 1e-12)[0]:
                near.add((int(g[i0 + i]), int(g[i0 + i + 1 + j])))
    got = {}
    for line in open(csv).read().splitlines()[1:]:
        a, b, _, _, v = line.split(",")
        got[(int(a), int(b))] = float(v)
    for k in set(want) ^ set(got):
        if k not in near:
            print(f"pair {k} in {'numpy only' if k in want else 'psnap only'}"); return 1
    err = max([abs(got[k] - want[k]) for k in set(want) & set(got)] or [0])
    if err > 1e-12:
        print(f"r differs by {err:.3e}"); return 1
    print(f"{len(got)} pairs with |r| >= {min_r} among {len(g)} parameters agree with numpy (r within {err:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
