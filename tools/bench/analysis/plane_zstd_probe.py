#!/usr/bin/env python3
"""zstd settings on the default chain's planes, modelled in numpy (RATIONALE §A.9).

Takes a run of safetensors snapshots, applies `linpred` and `lead` per tile of B parameters (spec/FORMAT.md §5), splits
each tile into byte planes, and compresses every k-th tile's parts with each zstd setting given: the leading column of
each plane as one frame, the residuals in 32 KiB frames (the writer's block size). Prints bytes and one-core speed per
part and setting. A setting is LEVEL[:param=value...] with `zstandard.ZstdCompressionParameters` names, e.g. 9:min_match=7.

Usage: plane_zstd_probe.py RUN_DIR B EVERY_KTH_TILE SETTINGS [GLOB]
  python3 tools/bench/analysis/plane_zstd_probe.py RUN 2048 10 "9,9:min_match=7,11:min_match=7,16,19"
Needs numpy and zstandard.
"""
import os
import sys
import time

import numpy as np
import zstandard as zstd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools"))
from codec_study import load_run  # noqa: E402

run = sys.argv[1]; B = int(sys.argv[2]); step = int(sys.argv[3]); which = sys.argv[4].split(",")
files, tensors = load_run(run, sys.argv[5] if len(sys.argv) > 5 else "step-*.safetensors")
def linpred(V):
    W = V.dtype.itemsize * 8; ut = V.dtype
    sign = (V >> np.array(W - 1, dtype=ut)).astype(ut)
    m = V ^ (sign * np.array((1 << (W - 1)) - 1, dtype=ut))
    r = m.copy(); r[:, 1:] = m[:, 1:] - m[:, :-1]; r[:, 2:] = m[:, 2:] - np.array(2, dtype=ut) * m[:, 1:-1] + m[:, :-2]
    return (r << np.array(1, dtype=ut)) ^ (np.array(0, dtype=ut) - (r >> np.array(W - 1, dtype=ut)))
blocks = {}; ti = 0
for name, V in tensors.items():
    Z = linpred(V); E = Z.dtype.itemsize
    for b0 in range(0, Z.shape[0], B):
        ti += 1
        if ti % step: continue
        T = Z[b0:b0 + B]
        L = T[:, 0].copy().view(np.uint8).reshape(-1, E); R = T[:, 1:].reshape(-1).view(np.uint8).reshape(-1, E)
        for k in range(E):
            blocks.setdefault(("lead", k), []).append(np.ascontiguousarray(L[:, k]).tobytes())
            r = np.ascontiguousarray(R[:, k]).tobytes()
            blocks.setdefault(("rest", k), []).extend(r[i:i+32768] for i in range(0, len(r), 32768))
P = zstd.ZstdCompressionParameters
cfgs = {}
for spec in which:
    parts = spec.split(":"); lv = int(parts[0]); kw = {}
    for p in parts[1:]:
        k, v = p.split("="); kw[k] = int(v)
    cfgs[spec] = zstd.ZstdCompressor(compression_params=P.from_level(lv, **kw))
for key, bl in sorted(blocks.items()):
    raw = sum(map(len, bl)); out = [f"{key} raw={raw}"]
    for nm, c in cfgs.items():
        t = time.time(); s = sum(min(len(c.compress(b)), len(b)) for b in bl); dt = time.time() - t
        out.append(f"{nm}={s} ({raw/dt/1e6:.0f}MB/s)")
    print(" ".join(out), flush=True)
