#!/usr/bin/env python3
"""Checks `psnap similar --json` against a numpy f64 brute force over every trajectory of the run.

usage: check_similar.py RUN.psnap SIMILAR.json GLOBAL… [--on values|steps] [--remove-modes K]   (one GLOBAL per query)
Rows are centred and scaled to unit norm (constant and non-finite rows left out), r = Z @ z_query, ranked by r
descending then global index ascending. With --remove-modes K, the K leading eigenvectors of numpy's Gram matrix of the
centred finite rows are projected out of every unit row, which is then scaled to unit norm again (rows with a residual
below 1e-10 of their norm left out). The top list must be numpy's, rank by rank, with r within 1e-12; two adjacent
entries may only trade places when their r differ by less than 1e-12 (rounding can order a near-tie either way).
"""
import json
import sys

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from psnap_reader import Psnap  # noqa: E402


def main(argv):
    on = argv[argv.index("--on") + 1] if "--on" in argv else "values"
    remove = int(argv[argv.index("--remove-modes") + 1]) if "--remove-modes" in argv else 0
    flags = ("--on", "--remove-modes")
    args = [a for i, a in enumerate(argv) if a not in flags and (i == 0 or argv[i - 1] not in flags)]
    run, out, queries = args[0], args[1], [int(a) for a in args[2:]]
    r = Psnap(run)
    rows = []
    for t in r.tensors:
        bits = r.tensor_bits(t.name)
        rows.append((bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64) if t.dtype == "bf16"
                    else bits.view(t.np_dtype).astype(np.float64))
    m = np.concatenate(rows, axis=0)
    if on == "steps":
        m = np.diff(m, axis=1)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        c = m - m.mean(axis=1, keepdims=True)
        norm = np.sqrt((c * c).sum(axis=1))
        ok = np.isfinite(m).all(axis=1) & np.isfinite(norm) & (norm > 0)
        z = c / norm[:, None]
    if remove:
        fin = np.isfinite(m).all(axis=1) & np.isfinite((c * c).sum(axis=1))
        g = c[fin].T @ c[fin]
        w, v = np.linalg.eigh(g)
        v = v[:, ::-1][:, :remove]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            res = z - (z @ v) @ v.T
            sq = (res * res).sum(axis=1)
            ok &= np.isfinite(sq) & (sq > 1e-20)
            z = res / np.sqrt(sq)[:, None]
    idx = np.nonzero(ok)[0]
    got = json.load(open(out))
    if got["searched"] != len(idx):
        print(f"searched {got['searched']} vs numpy {len(idx)}"); return 1
    for q, g in zip(got["queries"], queries):
        rr = np.clip(z[idx] @ z[g], -1, 1)
        order = np.lexsort((idx, -rr))
        hits = q["hits"]
        want = [(int(idx[o]), float(rr[o])) for o in order[:len(hits)]]
        for i, (h, (wg, wr)) in enumerate(zip(hits, want)):
            if abs(h["r"] - wr) > 1e-12:
                print(f"query {g} rank {i + 1}: r {h['r']} vs numpy {wr}"); return 1
            if h["global"] != wg:
                swapped = i + 1 < len(want) and h["global"] == want[i + 1][0] and abs(want[i + 1][1] - wr) < 1e-12
                swapped |= i > 0 and h["global"] == want[i - 1][0] and abs(want[i - 1][1] - wr) < 1e-12
                if not swapped:
                    print(f"query {g} rank {i + 1}: global {h['global']} vs numpy {wg} (r {wr})"); return 1
    if len(got["queries"]) != len(queries):
        print(f"{len(got['queries'])} answers for {len(queries)} queries"); return 1
    print(f"top {len(got['queries'][0]['hits'])} of {len(idx)} agree with numpy for {len(queries)} queries ({on})")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
