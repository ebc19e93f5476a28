#!/usr/bin/env python3
"""Checks `psnap modes --json` against numpy: the same Gram matrix built by numpy in f64 from the independent reader.

usage: check_modes.py RUN.psnap MODES.json [--on values|steps]
Eigenvalues must agree within 1e-9 relative to the largest, explained-variance ratios within 1e-9, and every printed
mode whose eigenvalue is separated from its neighbours by more than 1e-6 relative must equal numpy's up to sign
(within 1e-6). Exits 1 naming the first disagreement.
"""
import json
import sys

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from psnap_reader import Psnap  # noqa: E402


def main(argv):
    run, out = argv[0], argv[1]
    on = argv[argv.index("--on") + 1] if "--on" in argv else "values"
    r = Psnap(run)
    rows = []
    for t in r.tensors:
        bits = r.tensor_bits(t.name)
        if t.dtype == "bf16":
            vals = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            vals = bits.view(t.np_dtype).astype(np.float64)
        rows.append(vals)
    m = np.concatenate(rows, axis=0)                      # [parameters × snapshots]
    if on == "steps":
        m = np.diff(m, axis=1)
    m = m[np.isfinite(m).all(axis=1)]
    with np.errstate(over="ignore", invalid="ignore"):
        c = m - m.mean(axis=1, keepdims=True)             # each parameter centred on its own mean (PCA's features)
        keep = np.isfinite(m.sum(axis=1)) & np.isfinite((c * c).sum(axis=1))   # rows whose squares overflow are left out
    m, c = m[keep], c[keep]
    g = c.T @ c
    w, v = np.linalg.eigh(g)
    w, v = w[::-1], v[:, ::-1]
    got = json.load(open(out))
    ew = np.array(got["eigenvalues"])
    scale = abs(w).max()
    err = abs(ew - w).max() / scale
    if err > 1e-9:
        print(f"eigenvalues differ: max relative error {err:.3e}"); return 1
    ratio = np.clip(w, 0, None) / np.clip(w, 0, None).sum()
    rerr = abs(np.array(got["explainedVarianceRatio"]) - ratio).max()
    if rerr > 1e-9:
        print(f"explained variance ratios differ by {rerr:.3e}"); return 1
    checked = 0
    for i, mode in enumerate(got["modes"]):
        gap = min(abs(w[i] - w[j]) for j in (i - 1, i + 1) if 0 <= j < len(w)) / scale
        if gap < 1e-6:
            continue
        d = min(abs(np.array(mode) - v[:, i]).max(), abs(np.array(mode) + v[:, i]).max())
        if d > 1e-6:
            print(f"mode {i} differs from numpy's by {d:.3e}"); return 1
        checked += 1
    print(f"{len(w)} eigenvalues (max relative error {err:.1e}), ratios ({rerr:.1e}) and {checked} modes agree with numpy "
          f"over {m.shape[0]} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
