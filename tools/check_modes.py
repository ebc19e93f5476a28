#!/usr/bin/env python3
"""Checks `psnap modes --json` against numpy: the same Gram matrix built by numpy in f64 from the independent reader.

usage: check_modes.py RUN.psnap MODES.json [--on values|steps] [--coefficients OUT.psnap]
Explained-variance ratios must also agree within 1e-6 with sklearn PCA on the snapshot × parameter matrix (when sklearn
is installed). Eigenvalues must agree within 1e-9 relative to the largest, explained-variance ratios within 1e-9, and every printed
mode whose eigenvalue is separated from its neighbours by more than 1e-6 relative must equal numpy's up to sign
(within 1e-6). With --coefficients (an f64 `psnap modes -o` output): every parameter's coefficients equal its centred
row times the printed modes within 1e-9 relative (numpy matmul), and its R² = Σ coef² / Σ c² within 1e-9; rows left out
(non-finite) are NaN. Exits 1 naming the first disagreement.
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
    rows, names = [], []
    for t in r.tensors:
        names.append((t.name, t.count))
        bits = r.tensor_bits(t.name)
        if t.dtype == "bf16":
            vals = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            vals = bits.view(t.np_dtype).astype(np.float64)
        rows.append(vals)
    m = np.concatenate(rows, axis=0)                      # [parameters × snapshots]
    if on == "steps":
        m = np.diff(m, axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        c_all = m - m.mean(axis=1, keepdims=True)         # each parameter centred on its own mean (PCA's features)
        keep = np.isfinite(m).all(axis=1) & np.isfinite(m.sum(axis=1)) & np.isfinite((c_all * c_all).sum(axis=1))
    m, c = m[keep], c_all[keep]
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
    try:
        from sklearn.decomposition import PCA
    except ImportError:
        PCA = None
    if PCA is not None:
        # sklearn's PCA of the snapshot × parameter matrix (each parameter a feature, centred over the snapshots).
        pca = PCA(svd_solver="full").fit(m.T)
        n = len(pca.explained_variance_ratio_)
        serr = abs(np.array(got["explainedVarianceRatio"])[:n] - pca.explained_variance_ratio_).max()
        if serr > 1e-6:
            print(f"explained variance ratios differ from sklearn PCA's by {serr:.3e}"); return 1
        print(f"explained variance ratios agree with sklearn PCA ({serr:.1e})")
    checked = 0
    for i, mode in enumerate(got["modes"]):
        gap = min(abs(w[i] - w[j]) for j in (i - 1, i + 1) if 0 <= j < len(w)) / scale
        if gap < 1e-6:
            continue
        d = min(abs(np.array(mode) - v[:, i]).max(), abs(np.array(mode) + v[:, i]).max())
        if d > 1e-6:
            print(f"mode {i} differs from numpy's by {d:.3e}"); return 1
        checked += 1
    if "--coefficients" in argv:
        out_run = Psnap(argv[argv.index("--coefficients") + 1])
        got_rows = np.concatenate([out_run.tensor_bits(n).view(np.float64) for n, _ in names], axis=0)   # [params × (k+1)]
        k = len(got["modes"])
        v_ours = np.array(got["modes"]).T                     # [d × k]
        with np.errstate(over="ignore", invalid="ignore"):
            coef = c_all @ v_ours
            r2 = (coef * coef).sum(axis=1) / (c_all * c_all).sum(axis=1)
        want = np.concatenate([coef, r2[:, None]], axis=1)
        want[~keep] = np.nan
        both = np.isfinite(want) & np.isfinite(got_rows)
        if not (np.isnan(want) == np.isnan(got_rows)).all():
            print("coefficients: NaN in different places"); return 1
        scale = np.abs(want[both]).max()
        cerr = np.abs(want[both] - got_rows[both]).max() / scale
        if cerr > 1e-9:
            print(f"coefficients or R² differ: max error {cerr:.3e} of the largest"); return 1
        print(f"coefficients and R² of {got_rows.shape[0]} parameters agree with numpy ({cerr:.1e}); median R² {np.nanmedian(got_rows[:, k]):.4f}")
    print(f"{len(w)} eigenvalues (max relative error {err:.1e}), ratios ({rerr:.1e}) and {checked} modes agree with numpy "
          f"over {m.shape[0]} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
