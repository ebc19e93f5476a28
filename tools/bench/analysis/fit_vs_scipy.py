#!/usr/bin/env python3
"""`psnap fit` per family beside what a user would otherwise run on the same series.

usage: fit_vs_scipy.py RUN.psnap [--psnap PATH] [--families linear,quadratic,exp,power,logistic] [--sample 400]
                       [--workers 2]

For each family: the whole `psnap fit RUN -o … --family F` command (release build, every parameter, f32 output),
as series per second and peak RSS; beside it, on a sample of the same series read back with tools/psnap_reader.py,
numpy's vectorised `lstsq` for the linear laws (one design matrix, all sampled series at once) and scipy
`least_squares` (trf, default tolerances, the same bounded family and generic start as tools/check_fit.py) for
exp, power and logistic, one series at a time on one core. Prints a markdown table; the ratios are per core
(psnap's rate divided by --workers).
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from psnap_reader import Psnap  # noqa: E402


def arg(argv, name, default):
    return argv[argv.index(name) + 1] if name in argv else default


def psnap_rate(psnap, run, family, workers):
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(run))) as d:
        t0 = time.time()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", psnap, "fit", run, "-o", os.path.join(d, "f.psnap"), "--family", family,
                            "--workers", str(workers)], capture_output=True, text=True)
        dt = time.time() - t0
        if p.returncode != 0:
            sys.exit(f"psnap fit --family {family} failed: {p.stderr}")
        rss = int(p.stderr.strip().splitlines()[-1]) / 1024
        n = int(re.search(r"([\d,]+) series", p.stdout).group(1).replace(",", ""))
    return n, dt, rss


def reference_rate(Y, x, s_pow, family):
    from scipy.optimize import least_squares
    t0 = time.time()
    if family in ("linear", "quadratic"):
        X = np.stack([np.ones_like(x), x] + ([x * x] if family == "quadratic" else []), 1)
        reps = 0
        while time.time() - t0 < 0.5:
            np.linalg.lstsq(X, Y.T, rcond=None)
            reps += 1
        return reps * Y.shape[0] / (time.time() - t0), "numpy lstsq (vectorised)"
    with np.errstate(over="ignore"):
        for y in Y:
            if family == "exp":
                least_squares(lambda q: q[0] + q[1] * np.exp(-x / q[2]) - y, [y[-1], y[0] - y[-1], 0.3], method="trf",
                              bounds=([-np.inf, -np.inf, 1e-3], [np.inf, np.inf, 1e3]))
            elif family == "power":
                least_squares(lambda q: q[0] + q[1] * s_pow ** (-q[2]) - y, [y[-1], y[0] - y[-1], 0.5], method="trf",
                              bounds=([-np.inf, -np.inf, 1e-3], [np.inf, np.inf, 10.0]))
            else:
                least_squares(lambda q: q[0] + q[1] / (1 + np.exp(-(x - q[2]) / q[3])) - y, [y[0], y[-1] - y[0], 0.5, 0.1],
                              method="trf", bounds=([-np.inf, -np.inf, 0.0, 1e-3], [np.inf, np.inf, 1.0, 10.0]))
    return Y.shape[0] / (time.time() - t0), "scipy least_squares (one core)"


def main(argv):
    run = argv[0]
    here = os.path.dirname(os.path.abspath(__file__))
    psnap = arg(argv, "--psnap", os.path.join(here, "..", "..", "..", ".build", "release", "psnap"))
    families = arg(argv, "--families", "linear,quadratic,exp,power,logistic").split(",")
    sample, workers = int(arg(argv, "--sample", "400")), int(arg(argv, "--workers", "2"))
    r = Psnap(run)
    steps = np.array([s["step"] for s in r.snapshots], dtype=np.float64)
    x = (steps - steps[0]) / (steps[-1] - steps[0])
    s_pow = 1 + (steps - steps[0]) / (steps[1] - steps[0])
    rng = np.random.default_rng(1)
    rows = []
    for t in r.tensors:
        Y = r.tensor_float64(t.name)
        rows.append(Y[rng.choice(Y.shape[0], size=min(Y.shape[0], max(1, sample // len(r.tensors) + 1)), replace=False)])
    Y = np.concatenate(rows)[:sample]
    Y = Y[np.isfinite(Y).all(1)]
    print(f"{os.path.basename(run)}: {len(x)} snapshots; psnap on {workers} workers, the reference on {len(Y)} sampled series\n")
    print("| family | psnap fit (whole command) | series/s | peak RSS | reference | series/s | psnap per core / reference |")
    print("|---|---|---|---|---|---|---|")
    for f in families:
        n, dt, rss = psnap_rate(psnap, run, f, workers)
        ref, name = reference_rate(Y, x, s_pow, f)
        print(f"| {f} | {dt:.2f} s ({n:,} series) | {n / dt / 1e6:.3f}·10⁶ | {rss:.0f} MiB | {name} | {ref:,.0f} | "
              f"{n / dt / workers / ref:,.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
