#!/usr/bin/env python3
"""`paramsnap.dask` passes on a LocalCluster beside the same pass in one process.

usage: bench_dask.py RUN [--workers 2] [--parts 4] [--passes moments,modes,similar,groups,fit,chart] [--psnap PATH]
                       [--one RUN.psnap]

RUN is a .psnap file or a sharded run's folder (spec/SHARDS.md); --one names the run the one-process side reads
(default: RUN), e.g. the one file a sharded run was split from.

For each pass: one process (`psnap moments -o` for moments, `Run.modes`, `Run.similar`, `Run.groups` (k = 16, 5
iterations), `Run.fit` (linear, quadratic, exp), `Run.chart` with all cores), then the
Dask version on a `distributed.LocalCluster` of --workers worker processes (one thread each), --parts tasks; the
answers are compared (bit for bit) and the workers' peak RSS read from /proc. Prints a markdown table.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paramsnap  # noqa: E402
import paramsnap.dask as pdask  # noqa: E402


def arg(argv, name, default):
    return argv[argv.index(name) + 1] if name in argv else default


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv):
    import distributed
    run = os.path.abspath(argv[0])
    one_run = os.path.abspath(arg(argv, "--one", run))
    workers, parts = int(arg(argv, "--workers", "2")), int(arg(argv, "--parts", "4"))
    passes = arg(argv, "--passes", "moments,modes,similar,groups,fit,chart").split(",")
    here = os.path.dirname(os.path.abspath(__file__))
    psnap = arg(argv, "--psnap", os.environ.get("PSNAP", os.path.join(here, "..", "..", ".build", "release", "psnap")))
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    rows = []
    try:
        with paramsnap.open(run) as r:
            query = (r.tensors[len(r.tensors) // 2].name, 0)
        for p in passes:
            with tempfile.TemporaryDirectory(dir=os.path.dirname(run)) as d:
                if p == "moments":
                    t0 = time.time()
                    subprocess.run([psnap, "moments", one_run, "-o", os.path.join(d, "one.psnap"), "--stats", "mean,variance,skewness,kurtosis"],
                                   check=True, capture_output=True)
                    one = time.time() - t0
                    t0 = time.time()
                    pdask.moments(run, stats=["mean", "variance", "skewness", "kurtosis"], client=client, parts=parts, output=os.path.join(d, "parts"))
                    many = time.time() - t0
                    same = "(files)"
                    label = "`psnap moments -o`"
                elif p == "modes":
                    with paramsnap.open(one_run) as r:
                        t0 = time.time()
                        want = r.modes(k=8)
                        one = time.time() - t0
                    t0 = time.time()
                    got = pdask.modes(run, k=8, client=client, parts=parts)
                    many = time.time() - t0
                    same = all(np.array_equal(got[k], want[k]) for k in ("eigenvalues", "modes"))
                    label = "`Run.modes(k=8)`"
                elif p == "fit":
                    fams = ["linear", "quadratic", "exp"]
                    with paramsnap.open(one_run) as r:
                        t0 = time.time()
                        want = r.fit(families=fams)
                        one = time.time() - t0
                    t0 = time.time()
                    got = pdask.fit(run, families=fams, client=client, parts=parts)
                    many = time.time() - t0
                    same = got["best"] == want["best"] and all(np.array_equal(got["values"][t], want["values"][t], equal_nan=True) for t in want["values"])
                    label = "`Run.fit(linear, quadratic, exp)`"
                elif p == "chart":
                    with paramsnap.open(one_run) as r:
                        t0 = time.time()
                        want = r.chart()
                        one = time.time() - t0
                    t0 = time.time()
                    got = pdask.chart(run, client=client, parts=parts)
                    many = time.time() - t0
                    same = np.array_equal(got["counts"], want["counts"])
                    label = "`Run.chart()` 1000 × 500"
                elif p == "groups":
                    with paramsnap.open(one_run) as r:
                        t0 = time.time()
                        want = r.groups(k=16, iterations=5, seed=1)
                        one = time.time() - t0
                    t0 = time.time()
                    got = pdask.groups(run, k=16, iterations=5, seed=1, client=client, parts=parts)
                    many = time.time() - t0
                    same = all(np.array_equal(got[k], want[k], equal_nan=True) for k in ("centroids", "sizes", "objective_history"))
                    label = "`Run.groups(k=16, iterations=5)`"
                else:
                    with paramsnap.open(one_run) as r:
                        t0 = time.time()
                        want = r.similar(query, top=50)
                        one = time.time() - t0
                    t0 = time.time()
                    got = pdask.similar(run, query, top=50, client=client, parts=parts)
                    many = time.time() - t0
                    same = list(got["flat_index"]) == list(want["flat_index"]) and np.array_equal(np.asarray(got["r"]), np.asarray(want["r"]))
                    label = "`Run.similar`, one query, top 50"
            rss = client.run(peak_rss_mib)
            rows.append(f"| {p} | {label} {one:.2f} s | {many:.2f} s | {one / many:.2f}× | {max(rss.values()):.0f} MiB | {same} |")
    finally:
        client.close()
        cluster.close()
    print(f"{os.path.basename(run)} (one process on {os.path.basename(one_run)}): LocalCluster of {workers} worker processes × 1 thread, {parts} tasks\n")
    print("| pass | one process | Dask | one / Dask | worker peak RSS | same answer |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
