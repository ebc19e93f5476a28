#!/usr/bin/env python3
"""Checks `psnap chart --counts` against the rule of spec/CHARTS.md implemented with numpy, column by column.

usage: check_chart.py RUN.psnap COUNTS.npy CHART.json [--view values|relative|z|steps] [--include-tensors a,b,…]

The series are rebuilt from the independent reader (tools/psnap_reader.py) in f64 with the operations of §1 in the
same order; each column's values are the interpolation of §3 at that column, binned by `np.histogram(v, bins=H,
range=(lo, hi))` with the range the chart printed (CHART.json, from `psnap chart --json`). Every column must equal
numpy's exactly, the below/above totals too, and the column of every point not shared with a later point must equal
`np.histogram` of that point's values. Exits 1 naming the first difference.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from psnap_reader import Psnap  # noqa: E402


def series(x, view):
    """(y, drop): the series of §1 and the rows left out (z: constant or non-finite)."""
    S = x.shape[1]
    drop = np.zeros(x.shape[0], dtype=bool)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if view == "values":
            return x.copy(), drop
        if view == "relative":
            return x - x[:, :1], drop
        if view == "steps":
            return x[:, 1:] - x[:, :-1], drop
        s = np.zeros(x.shape[0])
        for k in range(S):            # sums in snapshot order, as the rule says
            s = s + x[:, k]
        m = s / S
        q = np.zeros(x.shape[0])
        for k in range(S):
            c = x[:, k] - m
            q = q + c * c
        sd = np.sqrt(q / S)
        drop = ~(np.isfinite(sd) & np.isfinite(m)) | (sd == 0)
        return (x - m[:, None]) / sd[:, None], drop


def main(argv):
    run, counts_path, chart_path = argv[0], argv[1], argv[2]
    view = argv[argv.index("--view") + 1] if "--view" in argv else "values"
    chart = json.load(open(chart_path))
    got = np.load(counts_path)
    H, W = got.shape
    lo, hi = chart["lo"], chart["hi"]
    r = Psnap(run)
    names = set(argv[argv.index("--include-tensors") + 1].split(",")) if "--include-tensors" in argv else None
    x = np.concatenate([r.tensor_float64(t.name) for t in r.tensors if names is None or t.name in names], axis=0)
    y, drop = series(x, view)
    y = y[~drop]
    steps = np.array([s["step"] for s in r.snapshots], dtype=np.float64)
    if view == "steps":
        steps = steps[1:]
    N = y.shape[1]
    cols = np.floor((steps - steps[0]) / (steps[-1] - steps[0]) * (W - 1) + 0.5).astype(np.int64)
    if cols.tolist() != chart["pointColumns"]:
        print(f"point columns differ: {cols.tolist()[:10]}… vs {chart['pointColumns'][:10]}…"); return 1
    below = above = 0
    for c in range(W):
        # the segment covering column c: the last n with cols[n] <= c < cols[n+1]; the last point's own column
        v = None
        for n in range(N - 1):
            if cols[n] <= c < cols[n + 1]:
                a, b = y[:, n], y[:, n + 1]
                ok = np.isfinite(a) & np.isfinite(b)
                tau = float(c - cols[n]) / float(cols[n + 1] - cols[n])
                with np.errstate(invalid="ignore", over="ignore"):
                    v = (a + tau * (b - a))[ok]
                break
        if v is None:
            if c == cols[N - 1]:
                v = y[:, N - 1][np.isfinite(y[:, N - 1])]
            else:
                v = np.array([])
        want = np.histogram(v, bins=H, range=(lo, hi))[0]
        if not (got[:, c] == want).all():
            i = int(np.nonzero(got[:, c] != want)[0][0])
            print(f"column {c}, bin {i}: {got[i, c]} vs numpy {want[i]}"); return 1
        below += int((v < lo).sum())
        above += int((v > hi).sum())
    if below != chart["below"] or above != chart["above"]:
        print(f"below/above {chart['below']}/{chart['above']} vs numpy {below}/{above}"); return 1
    checked = 0
    for n in range(N):
        if n + 1 < N and cols[n + 1] == cols[n]:
            continue
        v = y[:, n][np.isfinite(y[:, n])]
        if not (got[:, cols[n]] == np.histogram(v, bins=H, range=(lo, hi))[0]).all():
            print(f"the column of point {n} is not np.histogram of its values"); return 1
        checked += 1
    print(f"{W} columns × {H} bins of {y.shape[0]} series ({view}) equal numpy's; {checked} point columns equal np.histogram; "
          f"{below} below and {above} above the range")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
