#!/usr/bin/env python3
"""`paramsnap.Writer.append` beside `psnap append`, on the same snapshots (release builds).

usage: bench_write.py DUMPS_DIR [--psnap PATH/psnap] [--snapshots 16]

DUMPS_DIR holds one safetensors file per snapshot. `psnap append` takes the files one by one, each append
committed before it returns (process start, reading and checking the file, staging, encoding, commit). The Writer
gets the same tensors as numpy arrays already in memory (as a trainer hands over its state dict) with
snapshots_per_segment=1, so each append is also committed before it returns. Prints seconds per snapshot and the
ratio.
"""
import glob
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import paramsnap  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402
import numpy as np  # noqa: E402


def main(argv):
    src = argv[0]
    psnap = argv[argv.index("--psnap") + 1] if "--psnap" in argv else "psnap"
    n = int(argv[argv.index("--snapshots") + 1]) if "--snapshots" in argv else 16
    files = sorted(glob.glob(os.path.join(src, "*.safetensors")))[:n]
    with tempfile.TemporaryDirectory() as d:
        cli_run = os.path.join(d, "cli.psnap")
        t0 = time.perf_counter()
        for f in files:
            subprocess.run([psnap, "append", cli_run, f], check=True, stdout=subprocess.DEVNULL)
        cli = (time.perf_counter() - t0) / len(files)
        snaps = [{k: v.view(np.float32) for k, v in read_safetensors(f)[0].items()} for f in files]
        with paramsnap.open(cli_run) as r:
            steps = list(r.steps)
        py_run = os.path.join(d, "py.psnap")
        t0 = time.perf_counter()
        with paramsnap.Writer(py_run, snapshots_per_segment=1) as w:
            for k, s in enumerate(snaps):
                w.append(s, step=steps[k])
        py = (time.perf_counter() - t0) / len(files)
        mb = sum(a.nbytes for a in snaps[0].values()) / 1e6
        same = True
        with paramsnap.open(cli_run) as a, paramsnap.open(py_run) as b:
            for t in a.tensors:
                same &= np.array_equal(a.trajectories(t.name), b.trajectories(t.name))
    print(f"| {os.path.basename(os.path.normpath(src))}: {len(files)} snapshots of {mb:.1f} MB | psnap append {cli:.3f} s each | "
          f"Writer.append {py:.3f} s each | {cli / py:.2f}× | same values: {same} |")


if __name__ == "__main__":
    main(sys.argv[1:])
