#!/usr/bin/env python3
"""Checks `psnap chart --counts` against the rule of spec/CHARTS.md implemented with numpy, column by column.

usage: check_chart.py RUN.psnap COUNTS.npy CHART.json [--view values|relative|z|steps] [--include-tensors a,b,…]

The series are rebuilt from the independent reader (tools/psnap_reader.py) in f64 with the operations of §1 in the
same order; each point gets its row (§2: `np.searchsorted` on `np.linspace(lo, hi, H + 1)`, the range the chart
printed in CHART.json, from `psnap chart --json`) and each segment is drawn between its end points' rows in integers
(§3). Every column must equal
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
    # §2: each finite point's row: its np.histogram bin (edges from np.linspace, the last bin closed), outside the
    # range ⌊(v − lo)/step⌋ kept within −H … −1 or H … 2H − 1; None for a non-finite point.
    edges = np.linspace(lo, hi, H + 1)
    step = (hi - lo) / H
    fin = np.isfinite(y)
    yy = np.where(fin, y, lo)
    rows = np.searchsorted(edges, yy, side="right") - 1
    rows[yy == hi] = H - 1
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.floor((yy - lo) / step)
    rows = np.where(yy < lo, np.clip(out, -H, -1), rows)
    rows = np.where(yy > hi, np.clip(out, H, 2 * H - 1), rows).astype(np.int64)
    want = np.zeros((H + 2, W), dtype=np.int64)       # row 0: below, rows 1…H: the bins, row H + 1: above

    def add(c, r):
        np.add.at(want[:, c], np.clip(r, -1, H) + 1, 1)

    # §3: segment n covers columns cols[n] ≤ c < cols[n+1]; column cols[n] + j is in row r0 + ⌊(2j(r1 − r0) + L)/(2L)⌋.
    for n in range(N - 1):
        L = int(cols[n + 1] - cols[n])
        ok = fin[:, n] & fin[:, n + 1]
        r0, r1 = rows[ok, n], rows[ok, n + 1]
        for j in range(L):
            add(int(cols[n]) + j, r0 + (2 * j * (r1 - r0) + L) // (2 * L))
        if L > 0:   # a finite point before a non-finite one: its own row in its own column
            add(int(cols[n]), rows[fin[:, n] & ~fin[:, n + 1], n])
    add(int(cols[N - 1]), rows[fin[:, N - 1], N - 1])
    for c in range(W):
        if not (got[:, c] == want[1:H + 1, c]).all():
            i = int(np.nonzero(got[:, c] != want[1:H + 1, c])[0][0])
            print(f"column {c}, bin {i}: {got[i, c]} vs numpy {want[i + 1, c]}"); return 1
    if chart.get("belowColumns") is not None and (chart["belowColumns"] != want[0].tolist() or chart["aboveColumns"] != want[H + 1].tolist()):
        print("the per-column below/above counts differ from numpy's"); return 1
    below, above = int(want[0].sum()), int(want[H + 1].sum())
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
