#!/usr/bin/env python3
"""Checks `psnap groups` against numpy, and its k-means objective against faiss and scikit-learn.

usage: check_groups.py RUN.psnap GROUPS.json GROUPS.psnap [--on values|steps|moments|modes] [--features FILE]
                       [--faiss] [--sklearn] [--slack 0.01]

The features are rebuilt from the independent reader (tools/psnap_reader.py): unit-norm centred rows of the values or
steps; a moments file's statistics standardised across parameters (the ones groups.json names, with its means and
scales checked against numpy); a modes file's mode columns. Then, with the centroids printed in GROUPS.json:
  - every parameter's group (an f64 GROUPS.psnap) is a nearest centroid (within 1e-9 of the best squared distance),
    its distance equals numpy's within 1e-9, the codes -1 / -2 mark exactly the rows without a shape / non-finite;
  - the sizes, each tensor's counts and the objective (Σ squared distances, 1e-9 relative) follow from those labels;
  - --faiss: faiss.Kmeans on the same rows (same k and iteration count, every row used for training) reaches an
    objective no better than ours × (1 + slack) - i.e. ours is within `slack` of faiss's or better;
  - --sklearn: the same against sklearn KMeans (k-means++, one init, the same iteration count).
Exits 1 naming the first disagreement.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from psnap_reader import Psnap  # noqa: E402


def arg(argv, name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


def features(argv, run, got):
    """(rows, state, tensor names and counts): state 0 ok, 1 no shape / undefined, 2 non-finite."""
    on = arg(argv, "--on", "values")
    r = Psnap(run)
    tensors = [t for t in r.tensors if t.name in set(got["tensors"])]
    names = [(t.name, t.count) for t in tensors]
    if on in ("values", "steps"):
        m = np.concatenate([r.tensor_float64(t.name) for t in tensors], axis=0)
        if on == "steps":
            m = np.diff(m, axis=1)
        with np.errstate(over="ignore", invalid="ignore"):
            c = m - m.mean(axis=1, keepdims=True)
            sq = (c * c).sum(axis=1)
            finite_vals = np.isfinite(m).all(axis=1)
            ok = np.isfinite(sq) & (sq > 0) & np.isfinite(m.sum(axis=1))
            x = c / np.sqrt(sq)[:, None]
        state = np.where(ok, 0, np.where(finite_vals, 1, 2))
        return x, state, names
    f = Psnap(arg(argv, "--features"))
    stats = [s.get("metadata", {}).get("statistic") for s in f.snapshots]
    cols = np.concatenate([f.tensor_float64(t.name) for t in tensors], axis=0)
    if on == "modes":
        use = [i for i, s in enumerate(stats) if s.startswith("mode")]
        x = cols[:, use]
        fin = np.isfinite(x).all(axis=1)
        r2 = cols[:, stats.index("r2")]
        state = np.where(fin & np.isnan(r2), 1, np.where(fin, 0, 2))
        return x, state, names
    # moments: the statistics groups.json used, standardised over the rows where every statistic used is finite
    allnames = [s for s in got["featureNames"]] + got["constantFeatures"]
    idx = [stats.index(s) for s in allnames]
    raw = cols[:, idx]
    ok = np.isfinite(raw).all(axis=1)
    mean = raw[ok].mean(axis=0)
    std = raw[ok].std(axis=0)
    n = len(got["featureNames"])
    if not np.allclose(mean[:n], got["featureMeans"], rtol=1e-9, atol=1e-12 * abs(mean).max()):
        raise SystemExit(f"feature means differ from numpy: {mean[:n]} vs {got['featureMeans']}")
    if not np.allclose(std[:n], got["featureScales"], rtol=1e-9):
        raise SystemExit(f"feature scales differ from numpy: {std[:n]} vs {got['featureScales']}")
    if (std[n:] > 0).any():
        raise SystemExit("a statistic left out as constant varies")
    x = (raw[:, :n] - mean[:n]) / std[:n]
    return x, np.where(ok, 0, 1), names


def main(argv):
    run, out_json, out_psnap = argv[0], argv[1], argv[2]
    got = json.load(open(out_json))
    x, state, names = features(argv, run, got)
    k = got["k"]
    cent = np.array(got["centroids"], dtype=np.float64)
    g = Psnap(out_psnap)
    res = np.concatenate([g.tensor_bits(n).view(np.float64) for n, _ in names], axis=0)
    labels, dist = res[:, 0], res[:, 1]
    if not ((labels == -1) == (state == 1)).all() or not ((labels == -2) == (state == 2)).all():
        print("the codes -1/-2 do not mark the rows without a shape / non-finite"); return 1
    ok = state == 0
    xo, lo = x[ok], labels[ok].astype(np.int64)
    d2 = ((xo[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2) if len(xo) * k < 5e7 else None
    if d2 is None:  # large: by blocks
        d2 = np.concatenate([((xo[i:i + 4096, None, :] - cent[None]) ** 2).sum(axis=2) for i in range(0, len(xo), 4096)])
    mine = d2[np.arange(len(lo)), lo]
    worst = (mine - d2.min(axis=1)).max()
    if worst > 1e-9:
        print(f"a parameter is not in its nearest group: {worst:.3e} farther than the best"); return 1
    derr = np.abs(np.sqrt(mine) - dist[ok]).max()
    if derr > 1e-9:
        print(f"distances differ from numpy by {derr:.3e}"); return 1
    sizes = np.bincount(lo, minlength=k)
    if sizes.tolist() != got["sizes"]:
        print("sizes differ from the labels' counts"); return 1
    start = 0
    for (name, count), counts in zip(names, got["tensorCounts"]):
        lab = labels[start:start + count]
        start += count
        if np.bincount(lab[lab >= 0].astype(np.int64), minlength=k).tolist() != counts:
            print(f"{name}: counts per group differ"); return 1
    obj = mine.sum()
    oerr = abs(obj - got["objective"]) / max(obj, 1e-300)
    if oerr > 1e-9:
        print(f"objective {got['objective']} differs from numpy's {obj} ({oerr:.1e})"); return 1
    print(f"{len(lo)} parameters: nearest groups, distances ({derr:.1e}), sizes, tensor counts and objective {obj:.6e} agree with numpy")
    slack = float(arg(argv, "--slack", "0.01"))
    iters = max(1, got["iterations"])
    status = 0
    if "--faiss" in argv:
        import faiss
        xf = np.ascontiguousarray(xo, dtype=np.float32)
        km = faiss.Kmeans(xf.shape[1], k, niter=iters, seed=1234, max_points_per_centroid=len(xf) + 1, verbose=False)
        km.train(xf)
        fc = km.centroids.astype(np.float64)
        fobj = sum(((xo[i:i + 4096, None, :] - fc[None]) ** 2).sum(axis=2).min(axis=1).sum() for i in range(0, len(xo), 4096))
        print(f"faiss Kmeans ({iters} iterations): objective {fobj:.6e}; ours / faiss = {obj / fobj:.4f}")
        if obj > fobj * (1 + slack):
            print(f"objective more than {slack:.0%} above faiss's"); status = 1
    if "--sklearn" in argv:
        from sklearn.cluster import KMeans
        km = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=iters, tol=0, random_state=0, algorithm="lloyd").fit(xo)
        sobj = sum(((xo[i:i + 4096, None, :] - km.cluster_centers_[None]) ** 2).sum(axis=2).min(axis=1).sum() for i in range(0, len(xo), 4096))
        print(f"sklearn KMeans ({iters} iterations): objective {sobj:.6e}; ours / sklearn = {obj / sobj:.4f}")
        if obj > sobj * (1 + slack):
            print(f"objective more than {slack:.0%} above sklearn's"); status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
