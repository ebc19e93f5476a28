#!/usr/bin/env python3
"""`psnap chart` beside datashader's line aggregation on the same trajectories: time and the two pictures.

usage: chart_vs_datashader.py --psnap PATH/psnap DUMPS_DIR RUN.psnap OUT_PREFIX [--width 1000] [--height 500]

datashader gets every trajectory as a row of a wide DataFrame (one column per snapshot, x = the snapshots' steps) and
aggregates them with `Canvas.line(..., axis=1, agg=count())` over the same x and y ranges psnap used (from
`psnap chart --json`); timed cold (first call, numba compiling) and warm (median of 3), the matrix already in memory.
`psnap chart` is timed as a whole command (reading the file included), median of 3. Writes OUT_PREFIX-psnap.png,
OUT_PREFIX-datashader.png (both shaded on a log scale) and prints a markdown row.
"""
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np


def load(dumps):
    files = sorted(glob.glob(os.path.join(dumps, "*.safetensors")))
    cols, steps = [], []
    for i, f in enumerate(files):
        b = open(f, "rb").read()
        n = int.from_bytes(b[:8], "little")
        h = json.loads(b[8:8 + n])
        meta = h.pop("__metadata__", {}) or {}
        parts = []
        for name in sorted(h):
            v = h[name]
            raw = b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]
            if v["dtype"] == "BF16":
                parts.append((np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32))
            else:
                parts.append(np.frombuffer(raw, {"F32": np.float32, "F16": np.float16, "F64": np.float64}[v["dtype"]]).astype(np.float32))
        cols.append(np.concatenate(parts))
        steps.append(float(meta.get("step", i)))
    return np.stack(cols, axis=1), np.array(steps)


def main(argv):
    psnap = argv[argv.index("--psnap") + 1]
    args = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or not argv[i - 1].startswith("--"))]
    dumps, run, prefix = args
    W = int(argv[argv.index("--width") + 1]) if "--width" in argv else 1000
    H = int(argv[argv.index("--height") + 1]) if "--height" in argv else 500
    times = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run([psnap, "chart", run, "-o", prefix + "-psnap.png", "--width", str(W), "--height", str(H), "--json", "--force"],
                             check=True, capture_output=True, text=True).stdout
        times.append(time.perf_counter() - t)
    chart = json.loads(out)
    t_psnap = sorted(times)[1]
    import datashader as ds
    import datashader.transfer_functions as tf
    import pandas as pd
    t = time.perf_counter()
    X, steps = load(dumps)
    t_load = time.perf_counter() - t
    steps = np.array(chart["pointSteps"], dtype=np.float64)
    df = pd.DataFrame(X, columns=[f"s{i}" for i in range(X.shape[1])])
    cvs = ds.Canvas(plot_width=W, plot_height=H, x_range=(steps[0], steps[-1]), y_range=(chart["lo"], chart["hi"]))
    def aggregate():
        return cvs.line(df, x=steps, y=list(df.columns), agg=ds.count(), axis=1)
    t = time.perf_counter(); agg = aggregate(); t_cold = time.perf_counter() - t
    warm = []
    for _ in range(3):
        t = time.perf_counter(); agg = aggregate(); warm.append(time.perf_counter() - t)
    t_warm = sorted(warm)[1]
    tf.shade(agg, how="log", cmap=["#1b0c41", "#ba3655", "#f98c0a", "#fcffa4"]).to_pil().save(prefix + "-datashader.png")
    print(f"| {X.shape[0]:,} × {X.shape[1]} | {W} × {H} | psnap chart {t_psnap:.2f} s (whole command) | datashader {t_warm:.2f} s warm, "
          f"{t_cold:.2f} s cold (+ {t_load:.2f} s to load the dumps) | {t_warm / t_psnap:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
