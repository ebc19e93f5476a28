#!/usr/bin/env python3
"""Checks `psnap fit --f64` against numpy `lstsq` in f64 on a random sample of series.

usage: check_fit.py RUN.psnap FIT.psnap [--sample 10000] [--seed 1]

The abscissae are rebuilt from the run's snapshot metadata independently (x = (t − t0)/(t_last − t0); L the
cumulative learning rate Σ lr_s·(t_s − t_{s−1}) scaled to 0…1) and compared with the ones FIT.psnap records
(fit.json); the mode shapes are the ones it records (`psnap modes` is checked against numpy elsewhere). For each
sampled series: coefficients within 1e-9 of numpy's (relative to the largest coefficient of the fit), SSE within
1e-9 relative (or 1e-12 of the series' sum of squares), R², AIC, BIC by their formulas, and best = the lowest AIC
(ties to the first family; allowed to differ only where two AICs are within 1e-9). Exits 1 naming the first difference.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from psnap_reader import Psnap  # noqa: E402


def values(r, t):
    bits = r.tensor_bits(t.name)
    if t.dtype == "bf16":
        return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return bits.view(t.np_dtype).astype(np.float64)


def main(argv):
    run, fit = argv[0], argv[1]
    n_sample = int(argv[argv.index("--sample") + 1]) if "--sample" in argv else 10000
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 1
    r, f = Psnap(run), Psnap(fit)
    info = json.loads(f.metadata["attributes"]["fit.json"])
    view, families = info["view"], info["families"]
    t = np.array([s["step"] for s in r.snapshots], dtype=np.float64)
    lr = [next((s.get("metadata", {}).get(k) for k in ("lr", "learning_rate") if isinstance(s.get("metadata", {}).get(k), (int, float))), None)
          for s in r.snapshots]
    L = None
    if all(v is not None for v in lr[1:]):
        acc = [0.0]
        for i in range(1, len(t)):
            acc.append(acc[-1] + lr[i] * (t[i] - t[i - 1]))
        L = np.array(acc)
        if view == "steps":
            L = L[1:]
        L = (L - L[0]) / (L[-1] - L[0])
    ts = t[1:] if view == "steps" else t
    x = (ts - ts[0]) / (ts[-1] - ts[0])
    if np.abs(x - np.array(info["x"])).max() > 1e-15:
        print("abscissae x differ"); return 1
    if (L is None) != (info["cumulativeLR"] is None) or (L is not None and np.abs(L - np.array(info["cumulativeLR"])).max() > 1e-12):
        print("cumulative learning rates differ"); return 1
    modes = np.array(info["modes"]) if info["modes"] else None
    names = [s["metadata"]["statistic"] for s in f.snapshots]
    Y = np.concatenate([values(r, tt) for tt in r.tensors if tt.name in {u.name for u in f.tensors}], axis=0)
    if view == "steps":
        Y = np.diff(Y, axis=1)
    got = np.concatenate([f.tensor_bits(u.name).view(np.float64) for u in f.tensors], axis=0)
    rng = np.random.default_rng(seed)
    idx = rng.choice(Y.shape[0], size=min(n_sample, Y.shape[0]), replace=False)
    N = Y.shape[1]
    designs = []
    for fam in families:
        if fam == "linear": X = np.stack([np.ones(N), x], 1)
        elif fam == "quadratic": X = np.stack([np.ones(N), x, x * x], 1)
        elif fam == "lr": X = np.stack([np.ones(N), L], 1)
        elif fam == "lr2": X = np.stack([np.ones(N), L, L * L], 1)
        else:
            k = int(fam.split(":")[1]); X = np.concatenate([np.ones((N, 1)), modes[:k].T], 1)
        designs.append(X)
    worst = 0.0
    for i in idx:
        y = Y[i]
        if not np.isfinite(y).all():
            if got[i, -1] != -1 or not np.isnan(got[i, :-1]).all():
                print(f"series {i}: non-finite but not left out"); return 1
            continue
        col, aics = 0, []
        sst = ((y - y.mean()) ** 2).sum()
        for fam, X in zip(families, designs):
            p = X.shape[1]
            beta = np.linalg.lstsq(X, y, rcond=None)[0]
            res = y - X @ beta
            sse = float(res @ res)
            ours = got[i, col:col + p]
            scale = max(np.abs(beta).max(), 1e-300)
            err = np.abs(ours - beta).max() / scale
            worst = max(worst, err)
            if err > 1e-9:
                print(f"series {i} {fam}: coefficients {ours} vs numpy {beta} ({err:.1e})"); return 1
            o_sse, o_r2, o_aic, o_bic = got[i, col + p: col + p + 4]
            if abs(o_sse - sse) > max(1e-9 * sse, 1e-12 * (y @ y)):
                print(f"series {i} {fam}: sse {o_sse} vs numpy {sse}"); return 1
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = 1 - o_sse / sst if sst > 0 else np.nan
                aic = N * np.log(o_sse / N) + 2 * p
                bic = N * np.log(o_sse / N) + p * np.log(N)
            for name, a, b in (("r2", o_r2, r2), ("aic", o_aic, aic), ("bic", o_bic, bic)):
                if not ((np.isnan(a) and np.isnan(b)) or a == b or abs(a - b) <= 1e-9 * max(1, abs(b))):
                    print(f"series {i} {fam}: {name} {a} vs {b}"); return 1
            aics.append(o_aic)
            col += p + 4
        best = int(np.argmin(aics))
        if got[i, -1] != best and not abs(aics[int(got[i, -1])] - aics[best]) <= 1e-9 * max(1, abs(aics[best])):
            print(f"series {i}: best {got[i, -1]} vs lowest AIC {best} ({aics})"); return 1
    print(f"{len(idx)} series × {len(families)} families ({', '.join(families)}; {view}) agree with numpy lstsq "
          f"(coefficients within {worst:.1e} of the largest)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
