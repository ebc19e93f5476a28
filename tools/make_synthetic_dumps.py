#!/usr/bin/env python3
# Writes a synthetic training run as safetensors snapshot dumps (realistic random-walk trajectories) for
# measuring `psnap convert` on runs larger than memory budgets. numpy only.
"""Usage: tools/make_synthetic_dumps.py OUT_DIR [--gib 8] [--snapshots 64] [--tensors 8] [--seed 1]

Each snapshot is OUT_DIR/step-NNNNN.safetensors with TENSORS float32 matrices. Parameters start at
N(0, 0.02) (GPT-2 style init) and move by a random walk whose step size follows a warm-up + cosine
learning-rate schedule, with a per-parameter drift (a slowly converging AdamW-like update) and weight
decay, so trajectories look like real fine-tuning ones: mostly small relative moves, shared high bytes.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--gib", type=float, default=8.0, help="total raw bytes of all snapshots, GiB")
    ap.add_argument("--snapshots", type=int, default=64)
    ap.add_argument("--tensors", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    per_snapshot = int(a.gib * 2**30 / a.snapshots)
    params = per_snapshot // 4 // a.tensors
    cols = 1024
    rows = max(1, params // cols)
    rng = np.random.default_rng(a.seed)
    names = [f"layers.{i // 2}.{'attn' if i % 2 == 0 else 'mlp'}.weight" for i in range(a.tensors)]
    state = [rng.normal(0, 0.02, size=(rows, cols)).astype(np.float32) for _ in names]
    drift = [rng.normal(0, 1, size=(rows, cols)).astype(np.float32) for _ in names]
    steps = a.snapshots
    for k in range(steps):
        if k > 0:
            warm = min(1.0, k / max(1, steps // 10))
            lr = 3e-4 * warm * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * k / steps)))
            for i in range(len(names)):
                noise = rng.standard_normal(size=(rows, cols), dtype=np.float32)
                state[i] += np.float32(lr) * (0.3 * drift[i] + noise) - np.float32(lr * 0.01) * state[i]
        write_safetensors(os.path.join(a.out, f"step-{k * 100:05d}.safetensors"),
                          {n: np.asarray(x, dtype=np.float32) for n, x in zip(names, state)}, {"format": "pt", "synthetic": "random-walk"})
    total = steps * rows * cols * 4 * len(names)
    print(f"{steps} snapshots x {len(names)} tensors of {rows}x{cols} float32 = {total / 2**30:.2f} GiB raw in {a.out}")


if __name__ == "__main__":
    main()
