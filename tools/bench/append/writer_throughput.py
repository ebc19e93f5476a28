#!/usr/bin/env python3
"""The in-process training writer's throughput beside `zstd -3 -T2` of the same checkpoints.

Usage: writer_throughput.py RUN_DIR [--per-segment 1,16] [--work DIR] [--out FILE.md]

RUN_DIR holds one checkpoint per snapshot (`*.safetensors`, in name order). The checkpoints are loaded into memory
first (as a trainer holds its state dict), then handed one by one to `paramsnap.Writer.append` with
`snapshots_per_segment` = each value of --per-segment (1: every append is durable when it returns; 16, the default:
a commit every 16 snapshots, the staged ones in memory or a spill file until then). Timed: the appends and the
closing commit. Then `zstd -3 -T2` of the same files (read from the page cache), what a user would otherwise run to
keep them. Prints a markdown report: seconds, MB/s of raw values, ratio to zstd's speed, the file's size and what it
occupies on disk, and `compact`'s size for comparison. Needs the release library (`swift build -c release
--product paramsnap`) and torch (bf16 checkpoints).
"""
import argparse
import glob
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--per-segment", default="1,16")
    ap.add_argument("--work", default="/tmp/psnap-writer-throughput")
    ap.add_argument("--out")
    ap.add_argument("--psnap", default=os.path.join(ROOT, ".build", "release", "psnap"))
    a = ap.parse_args()
    import paramsnap
    from safetensors.torch import load_file
    files = sorted(glob.glob(os.path.join(a.run_dir, "*.safetensors")))
    if not files:
        sys.exit(f"writer_throughput.py: no *.safetensors in {a.run_dir}")
    os.makedirs(a.work, exist_ok=True)
    snaps = [load_file(f) for f in files]
    raw = sum(t.numel() * t.element_size() for s in snaps for t in s.values())
    rows = []
    for k in [int(x) for x in a.per_segment.split(",")]:
        run = os.path.join(a.work, f"run-{k}.psnap")
        if os.path.exists(run):
            os.unlink(run)
        t0 = time.perf_counter()
        with paramsnap.Writer(run, snapshots_per_segment=k) as w:
            for i, s in enumerate(snaps):
                w.append(s, step=i)
        secs = time.perf_counter() - t0
        comp = os.path.join(a.work, "compact.psnap")
        subprocess.run([a.psnap, "compact", run, "-o", comp, "--force"], check=True, capture_output=True)
        rows.append((k, secs, os.path.getsize(run), os.stat(run).st_blocks * 512, os.path.getsize(comp)))
        os.unlink(comp)
        os.unlink(run)
    t0 = time.perf_counter()
    z = subprocess.run(["bash", "-o", "pipefail", "-c", 'cat "$@" | zstd -3 -T2 -q -c | wc -c', "_", *files],
                       capture_output=True, text=True, check=True)
    zsecs = time.perf_counter() - t0
    lines = [f"# In-process writer throughput: {os.path.basename(os.path.normpath(a.run_dir))}", "",
             f"{len(files)} checkpoints, {raw / 1e6:.1f} MB of raw values, held in memory; `paramsnap.Writer.append` "
             f"per checkpoint. `zstd -3 -T2` of the same files: {zsecs:.1f} s ({raw / zsecs / 1e6:.0f} MB/s, "
             f"{int(z.stdout.strip()) / 1e6:.1f} MB).", "",
             "| snapshots per segment | seconds | MB/s | / zstd speed | file MB | on disk MB | compact MB |",
             "|---|---|---|---|---|---|---|"]
    for k, secs, length, alloc, comp in rows:
        lines.append(f"| {k} | {secs:.1f} | {raw / secs / 1e6:.0f} | {zsecs / secs:.2f} | {length / 1e6:.1f} | "
                     f"{alloc / 1e6:.1f} | {comp / 1e6:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        open(a.out, "w").write(text)


if __name__ == "__main__":
    main()
