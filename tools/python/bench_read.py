#!/usr/bin/env python3
"""The Python package's reads beside the Swift reader's, on the same file in the same run (release builds).

usage: bench_read.py RUN.psnap TENSOR [--bench PATH/psnap-bench] [--n 1000]

Times (1) the whole tensor `run.trajectories(TENSOR)` (median of 5, MB/s of raw values) against `psnap-bench tensor`
(the same read in Swift), (2) one random parameter's trajectory `run[TENSOR][i, j…]` p50/p99 over N reads against
`psnap-bench read` (Swift, random parameters of the whole run), and (3) the RSS after `paramsnap.open` (lazy: it
should not grow with the file). Prints one markdown table.
"""
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paramsnap  # noqa: E402


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv):
    path, name = argv[0], argv[1]
    bench = argv[argv.index("--bench") + 1] if "--bench" in argv else "psnap-bench"
    n = int(argv[argv.index("--n") + 1]) if "--n" in argv else 1000
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
    before = rss_mib()
    run = paramsnap.open(path, bf16="bits")
    after_open = rss_mib()
    t = next(x for x in run.tensors if x.name == name)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        a = run.trajectories(name)
        times.append(time.perf_counter() - t0)
    py_mbs = a.nbytes / 1e6 / statistics.median(times)
    del a
    sw = subprocess.run([bench, "tensor", path, name], capture_output=True, text=True, check=True).stdout
    sw_mbs = float(re.search(r"\(([\d.]+) MB/s", sw).group(1))
    rng = np.random.default_rng(1)
    view = run[name]
    lat = []
    for _ in range(n):
        idx = tuple(int(rng.integers(d)) for d in t.shape)
        t0 = time.perf_counter()
        view[idx]
        lat.append((time.perf_counter() - t0) * 1e6)
    lat.sort()
    sr = subprocess.run([bench, "read", path, "--n", str(n)], capture_output=True, text=True, check=True).stdout
    sw_p50 = float(re.search(r"p50 ([\d.]+) µs", sr).group(1))
    print(f"| file | {os.path.basename(path)} ({os.path.getsize(path) / 2**30:.2f} GiB) | |")
    print("|---|---|---|")
    print(f"| whole tensor `{name}` ({t.size:,} × {run.snapshot_count}) | Python {py_mbs:,.0f} MB/s | Swift {sw_mbs:,.0f} MB/s ({py_mbs / sw_mbs:.2f}×) |")
    print(f"| one trajectory, p50 / p99 | Python {lat[n // 2]:.0f} / {lat[int(n * 0.99)]:.0f} µs | Swift p50 {sw_p50:.0f} µs ({lat[n // 2] / sw_p50:.2f}×) |")
    print(f"| RSS growth at open | {after_open - before:.1f} MiB | |")


if __name__ == "__main__":
    main(sys.argv[1:])
