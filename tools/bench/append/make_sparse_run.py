#!/usr/bin/env python3
"""A long synthetic run shaped like a low-learning-rate fine-tune, for the append disk-use bound at hundreds of
snapshots (the real fine-tunes in tools/bench/finetune have 41).

Usage: make_sparse_run.py OUT_DIR [--params 2000000] [--snapshots 400] [--moving 0.05] [--dtype bf16|f32] [--seed 1]

Snapshot 0 holds values drawn like pretrained weights (normal, std 0.05). At each step a fraction --moving of the
parameters takes one step; a parameter keeps its direction (the sign of its own drift, as Adam's momentum does) with
probability 0.8. Steps are one unit in the last place of the stored dtype (bf16), or lr 2e-5 scaled (f32). Files:
OUT_DIR/step-NNNN.safetensors, one tensor 'w' per file. Deterministic for a seed.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from safetensors_io import write_safetensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--params", type=int, default=2_000_000)
    ap.add_argument("--snapshots", type=int, default=400)
    ap.add_argument("--moving", type=float, default=0.05)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    x = (rng.standard_normal(a.params) * 0.05).astype(np.float32)
    direction = rng.choice([-1.0, 1.0], a.params).astype(np.float32)
    for s in range(a.snapshots):
        if s > 0:
            move = rng.random(a.params) < a.moving
            flip = rng.random(a.params) < 0.2
            direction = np.where(move & flip, -direction, direction)
            if a.dtype == "bf16":
                step = np.abs(x) * 2.0 ** -7          # about one bf16 ulp
            else:
                step = np.full(a.params, 2e-5, np.float32) * (0.5 + rng.random(a.params, dtype=np.float32))
            x = np.where(move, x + direction * step, x).astype(np.float32)
        path = os.path.join(a.out, f"step-{s:04d}.safetensors")
        if a.dtype == "bf16":
            bits = x.view(np.uint32)
            bf = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)   # round to nearest even
            x = (bf.astype(np.uint32) << 16).view(np.float32)                    # the values the run holds
            write_safetensors(path, {"w": bf}, dtypes={"w": "BF16"})
        else:
            write_safetensors(path, {"w": x})
    print(f"{a.snapshots} snapshots of {a.params} {a.dtype} parameters in {a.out}")


if __name__ == "__main__":
    main()
