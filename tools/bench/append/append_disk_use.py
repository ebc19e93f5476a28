#!/usr/bin/env python3
"""The training writer's disk use while appending: `psnap append` once per checkpoint, as a training script calls it.

Usage: append_disk_use.py RUN_DIR [--psnap BIN] [--work DIR] [--every K] [--no-compact] [--out FILE.md]
                          [--append-args '--block-size 2048']

RUN_DIR holds one checkpoint per snapshot (`*.safetensors`, in name order: `step-000.safetensors`, ...). After each
append it records the space the run occupies on disk (allocated blocks, what `du` counts), the file's length, and
(every K appends, default 1) the size `psnap compact` makes of it at that moment; the bound the writer keeps is
allocated <= 1.25 x compact (spec/FORMAT.md section 9 "Space"). It also times the appends against `zstd -3 -T2` of
the same checkpoint files (what a user would otherwise run to keep them), and prints a markdown report (to --out too).
The run and the compacted copies live under --work (default /tmp/psnap-append-disk-use) and are deleted at the end.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))


def allocated(path):
    return os.stat(path).st_blocks * 512


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--psnap", default=os.path.join(ROOT, ".build", "release", "psnap"))
    ap.add_argument("--work", default="/tmp/psnap-append-disk-use")
    ap.add_argument("--every", type=int, default=1, help="measure the compact size every K appends")
    ap.add_argument("--no-compact", action="store_true", help="do not measure the compact size (appends only)")
    ap.add_argument("--out", help="also write the report here")
    ap.add_argument("--append-args", default="", help="extra options for psnap append, e.g. '--block-size 2048'")
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.run_dir, "*.safetensors")))
    if not files:
        sys.exit(f"append_disk_use.py: no *.safetensors in {a.run_dir}")
    os.makedirs(a.work, exist_ok=True)
    run = os.path.join(a.work, "run.psnap")
    comp = os.path.join(a.work, "compact.psnap")
    for p in (run, comp):
        if os.path.exists(p):
            os.unlink(p)
    raw = sum(os.path.getsize(f) for f in files)
    rows, append_secs, worst = [], 0.0, 0.0
    for k, f in enumerate(files):
        t = time.perf_counter()
        out = subprocess.run([a.psnap, "append", run, f, "--json"] + a.append_args.split(), capture_output=True, text=True)
        dt = time.perf_counter() - t
        if out.returncode != 0:
            sys.exit(f"append of {f} failed: {out.stderr.strip()}")
        rep = json.loads(out.stdout)
        append_secs += dt
        row = {"snapshot": k, "seconds": dt, "allocated": allocated(run), "length": os.path.getsize(run),
               "rewrittenFrom": rep["rewrittenFrom"], "reclaimed": rep.get("bytesReclaimed", 0), "compact": None}
        if not a.no_compact and (k % a.every == 0 or k == len(files) - 1):
            c = subprocess.run([a.psnap, "compact", run, "-o", comp, "--force"], capture_output=True, text=True)
            if c.returncode != 0:
                sys.exit(f"compact failed: {c.stderr.strip()}")
            row["compact"] = os.path.getsize(comp)
            worst = max(worst, row["allocated"] / row["compact"])
        rows.append(row)
        print(f"{k:4d}  {dt:6.2f} s  allocated {row['allocated'] / 1e6:9.1f} MB  length {row['length'] / 1e6:9.1f} MB"
              + (f"  compact {row['compact'] / 1e6:9.1f} MB  x{row['allocated'] / row['compact']:.3f}" if row["compact"] else ""),
              file=sys.stderr)
    t = time.perf_counter()
    z = subprocess.run(["bash", "-o", "pipefail", "-c", 'cat "$@" | zstd -3 -T2 -q -c | wc -c', "_", *files],
                       capture_output=True, text=True, check=True)
    zsecs = time.perf_counter() - t
    lines = [f"# Append disk use: {os.path.basename(os.path.normpath(a.run_dir))}", "",
             f"{len(files)} checkpoints, {raw / 1e6:.1f} MB; `psnap append` once per checkpoint.", "",
             f"- appends: {append_secs:.1f} s in all ({raw / append_secs / 1e6:.0f} MB/s of checkpoint files); "
             f"`zstd -3 -T2` of the same files {zsecs:.1f} s ({raw / zsecs / 1e6:.0f} MB/s, {int(z.stdout.strip()) / 1e6:.1f} MB): "
             f"append / zstd speed {zsecs / append_secs:.2f}",
             f"- end: {rows[-1]['allocated'] / 1e6:.1f} MB allocated, length {rows[-1]['length'] / 1e6:.1f} MB"
             + (f", compact {rows[-1]['compact'] / 1e6:.1f} MB" if rows[-1]["compact"] else ""),
             f"- worst allocated / compact after an append: {worst:.3f} (bound 1.25)" if worst else "", "",
             "| after snapshot | append s | allocated MB | length MB | compact MB | allocated / compact | rewritten from |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["compact"]
        lines.append(f"| {r['snapshot']} | {r['seconds']:.2f} | {r['allocated'] / 1e6:.1f} | {r['length'] / 1e6:.1f} | "
                     + (f"{c / 1e6:.1f} | {r['allocated'] / c:.3f}" if c else "– | –") + f" | {r['rewrittenFrom']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)
    # Only what this script made: --work may be a folder holding other files.
    for p in (run, comp):
        if os.path.exists(p):
            os.unlink(p)
    try:
        os.rmdir(a.work)
    except OSError:
        pass


if __name__ == "__main__":
    main()
