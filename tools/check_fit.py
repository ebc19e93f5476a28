#!/usr/bin/env python3
"""Checks `psnap fit --f64` against numpy `lstsq` in f64 on a random sample of series.

usage: check_fit.py RUN.psnap FIT.psnap [--sample 10000] [--nonlinear-sample N] [--seed 1] [--verbose]

The abscissae are rebuilt from the run's snapshot metadata independently (x = (t − t0)/(t_last − t0); L the
cumulative learning rate Σ lr_s·(t_s − t_{s−1}) scaled to 0…1) and compared with the ones FIT.psnap records
(fit.json); the mode shapes are the ones it records (`psnap modes` is checked against numpy elsewhere). For each
sampled series: coefficients within 1e-9 of numpy's (relative to the largest coefficient of the fit), SSE within
1e-9 relative (or 1e-12 of the series' sum of squares), R², AIC, BIC by their formulas, and best = the lowest AIC
(ties to the first family; allowed to differ only where two AICs are within 1e-9). exp, power and logistic (fitted by
variable projection): the SSE of the written coefficients recomputed, and at most scipy `least_squares`' SSE (trf, from
a = last value, b = first − last, τ = 0.3 / α = 0.5; logistic from a = first value, b = last − first, m = 0.5,
w = 0.1; the nonlinear coefficients bounded to the ranges psnap searches) + 1e-9 relative on ≥ 99 % of the first
--nonlinear-sample series (default: all sampled). Exits 1 naming the first difference.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from psnap_reader import Psnap  # noqa: E402


# The laws fitted by variable projection, and their coefficient counts.
NONLINEAR = {"exp": 3, "power": 3, "logistic": 4}


def main(argv):
    run, fit = argv[0], argv[1]
    n_sample = int(argv[argv.index("--sample") + 1]) if "--sample" in argv else 10000
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 1
    nl_sample = int(argv[argv.index("--nonlinear-sample") + 1]) if "--nonlinear-sample" in argv else None
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
    Y = np.concatenate([r.tensor_float64(tt.name) for tt in r.tensors if tt.name in {u.name for u in f.tensors}], axis=0)
    if view == "steps":
        Y = np.diff(Y, axis=1)
    got = np.concatenate([f.tensor_bits(u.name).view(np.float64) for u in f.tensors], axis=0)
    rng = np.random.default_rng(seed)
    idx = rng.choice(Y.shape[0], size=min(n_sample, Y.shape[0]), replace=False)
    N = Y.shape[1]
    designs = []
    s_pow = 1 + (ts - ts[0]) / (ts[1] - ts[0])
    for fam in families:
        if fam == "linear": X = np.stack([np.ones(N), x], 1)
        elif fam == "quadratic": X = np.stack([np.ones(N), x, x * x], 1)
        elif fam == "lr": X = np.stack([np.ones(N), L], 1)
        elif fam == "lr2": X = np.stack([np.ones(N), L, L * L], 1)
        elif fam in NONLINEAR: X = None
        else:
            k = int(fam.split(":")[1]); X = np.concatenate([np.ones((N, 1)), modes[:k].T], 1)
        designs.append(X)
    worst = 0.0
    nonlinear = {fam: [0, 0] for fam in families if fam in NONLINEAR}   # [series at least as good as scipy, checked]
    from scipy.optimize import least_squares
    for count, i in enumerate(idx):
        y = Y[i]
        if not np.isfinite(y).all():
            if got[i, -1] != -1 or not np.isnan(got[i, :-1]).all():
                print(f"series {i}: non-finite but not left out"); return 1
            continue
        col, aics = 0, []
        sst = ((y - y.mean()) ** 2).sum()
        for fam, X in zip(families, designs):
            if X is None:
                # exp / power / logistic: the SSE of our coefficients recomputed, and compared with scipy
                # least_squares from a generic start.
                p = NONLINEAR[fam]
                coefs = got[i, col:col + p]
                th = coefs[2:]
                if fam == "exp":
                    model = lambda q: q[0] + q[1] * np.exp(-x / q[2])
                elif fam == "power":
                    model = lambda q: q[0] + q[1] * s_pow ** (-q[2])
                else:
                    model = lambda q: q[0] + q[1] / (1 + np.exp(-(x - q[2]) / q[3]))
                with np.errstate(over="ignore"):
                    sse = float(((y - model(coefs)) ** 2).sum())
                o_sse = got[i, col + p]
                if not (np.isfinite(coefs).all() and not np.isnan(o_sse)):
                    print(f"series {i} {fam}: a finite series got coefficients {coefs}, sse {o_sse}"); return 1
                # (equal infinities: values whose squares overflow f64 give an infinite SSE either way)
                if not (o_sse == sse or (np.isfinite(o_sse) and abs(o_sse - sse) <= max(1e-9 * sse, 1e-12 * (y @ y)))):
                    print(f"series {i} {fam}: sse {o_sse} vs recomputed {sse}"); return 1
                # The same family: τ (α) kept in the range psnap searches (1e-3 … 1e3; 1e-3 … 10).
                if nl_sample is not None and count >= nl_sample:
                    o_sse, o_r2, o_aic, o_bic = got[i, col + p: col + p + 4]
                    aics_skip = True
                else:
                    aics_skip = False
                if fam == "logistic":
                    start = [y[0], y[-1] - y[0], 0.5, 0.1]
                    bounds = ([-np.inf, -np.inf, 0.0, 1e-3], [np.inf, np.inf, 1.0, 10.0])
                else:
                    start = [y[-1], y[0] - y[-1], 0.3 if fam == "exp" else 0.5]
                    bounds = ([-np.inf, -np.inf, 1e-3], [np.inf, np.inf, 1e3 if fam == "exp" else 10.0])
                try:
                    if aics_skip:
                        raise StopIteration
                    with np.errstate(over="ignore"):
                        ref = least_squares(lambda q: model(q) - y, start, method="trf", bounds=bounds,
                                            xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=2000)
                    s_sse = float((ref.fun ** 2).sum()) if ref.success and np.isfinite(ref.fun).all() else np.inf
                except StopIteration:
                    s_sse = None
                except Exception:
                    s_sse = np.inf
                if s_sse is None:
                    o_sse, o_r2, o_aic, o_bic = got[i, col + p: col + p + 4]
                    aics.append(o_aic)
                    col += p + 4
                    continue
                nonlinear[fam][1] += 1
                if o_sse <= s_sse * (1 + 1e-9) + 1e-15 * (y @ y):
                    nonlinear[fam][0] += 1
                elif "--verbose" in argv:
                    print(f"  {fam} series {i}: ours {o_sse:.6e} (θ {th}) scipy {s_sse:.6e} (θ {ref.x[2:]})")
                o_sse, o_r2, o_aic, o_bic = got[i, col + p: col + p + 4]
            else:
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
    for fam, (good, total) in nonlinear.items():
        print(f"{fam}: SSE at most scipy least_squares' (+1e-9 relative) on {good} of {total} series ({100 * good / max(1, total):.2f} %)")
        if total and good < 0.99 * total:
            print(f"{fam}: below the 99 % required"); return 1
    print(f"{len(idx)} series × {len(families)} families ({', '.join(families)}; {view}) agree with numpy lstsq "
          f"(coefficients within {worst:.1e} of the largest)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
