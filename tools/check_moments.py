#!/usr/bin/env python3
# Checks `psnap moments` against numpy/scipy on the shared real runs and synthetic edge cases (spec/MOMENTS.md §5).
"""Usage: check_moments.py --psnap PATH/TO/psnap [--data DIR] [--quick] [--runs LIST] [--keep DIR]

For each run: builds a multi-segment .psnap with `psnap append`, runs `psnap moments` (f64 and f32 output;
population and --sample; propagate and --skip-nan on the synthetic cases), reads the output with the
independent reader (tools/psnap_reader.py) and compares every statistic with numpy/scipy computed from the
safetensors files themselves.
Tolerance: |got − ref| ≤ 1e-12·|ref| + floor, where floor is an absolute term for values near 0 (see FLOORS):
1e-12 × the statistic's natural scale (max|x| for location statistics, max|x|² for the variance, and the
condition number max|x − mean|/std for skewness, kurtosis and the step autocorrelation, which are computed
from deviations carrying an absolute rounding error of order ε·max|x|). count/argmin/argmax must be exact,
NaN must match NaN, ±Inf must match exactly, and f32 output must equal the f64 output rounded to f32.
Exit status 0 when everything agrees, 1 otherwise (each disagreement printed)."""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import scipy.stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psnap_reader  # noqa: E402

STATS = ["count", "mean", "variance", "std", "skewness", "kurtosis", "min", "argmin", "max", "argmax",
         "first", "last", "net_change", "path_length", "step_autocorr"]
EXACT = {"count", "argmin", "argmax", "min", "max", "first", "last"}
REL = 1e-12
EPS = np.finfo(np.float64).eps


def read_safetensors(path):
    """{name: float64 array (flattened)} of one safetensors file (8-byte LE header length, JSON header)."""
    with open(path, "rb") as fh:
        buf = fh.read()
    n = struct.unpack_from("<Q", buf)[0]
    header = json.loads(buf[8:8 + n])
    data = memoryview(buf)[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = data[b:end]
        dt = e["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, "<f4").astype(np.float64)
        elif dt == "F64":
            a = np.frombuffer(raw, "<f8").astype(np.float64)
        elif dt == "F16":
            a = np.frombuffer(raw, "<f2").astype(np.float64)
        elif dt == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            continue
        out[name] = a
    return out


def write_safetensors(path, tensors):
    """tensors: {name: (dtype string, numpy array)}."""
    header, blobs, off = {}, [], 0
    for name, (dt, a) in tensors.items():
        raw = a.astype({"F32": "<f4", "F64": "<f8"}[dt]).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def reference(X, sample=False, skip=False):
    """Statistics of each row of X (params × snapshots, float64) as {name: array}."""
    if skip:
        rows = [reference_row(x, sample) for x in X]
        return {s: np.array([r[s] for r in rows]) for s in STATS}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        P, S = X.shape
        r = {"count": np.full(P, float(S))}
        r["mean"] = X.mean(axis=1)
        r["variance"] = X.var(axis=1, ddof=1 if sample else 0)
        r["std"] = np.sqrt(r["variance"])
        r["skewness"] = scipy.stats.skew(X, axis=1, bias=not sample)
        r["kurtosis"] = scipy.stats.kurtosis(X, axis=1, fisher=True, bias=not sample)
        r["min"], r["max"] = X.min(axis=1), X.max(axis=1)
        r["argmin"], r["argmax"] = X.argmin(axis=1).astype(float), X.argmax(axis=1).astype(float)
        r["first"], r["last"] = X[:, 0], X[:, -1]
        r["net_change"] = X[:, -1] - X[:, 0]
        d = np.diff(X, axis=1)
        r["path_length"] = np.abs(d).sum(axis=1)
        r["step_autocorr"] = acf1(d)
        # The documented convention for exactly constant rows: variance 0, NaN skewness/kurtosis (scipy's
        # own pairwise mean can leave a rounding residue there and report a meaningless skewness).
        const = np.isfinite(X).all(axis=1) & (X == X[:, :1]).all(axis=1)
        r["mean"][const] = X[const, 0]
        r["variance"][const] = np.nan if sample and S == 1 else 0.0
        r["std"][const] = np.sqrt(r["variance"][const])
        r["skewness"][const] = np.nan
        r["kurtosis"][const] = np.nan
    return r


def acf1(d):
    """Lag-1 sample ACF of each row of the steps d (statsmodels acf, adjusted=False); NaN as documented."""
    P, m = d.shape
    out = np.full(P, np.nan)
    if m < 2:
        return out
    with np.errstate(all="ignore"):
        dm = d.mean(axis=1)
        c = d - dm[:, None]
        den = (c * c).sum(axis=1)
        num = (c[:, :-1] * c[:, 1:]).sum(axis=1)
        ok = np.isfinite(d).all(axis=1) & (den / m > (EPS * dm) ** 2)
        out[ok] = num[ok] / den[ok]
    return out


def reference_row(x, sample):
    keep = np.isfinite(x)
    idx = np.nonzero(keep)[0]
    y = x[keep]
    r = {s: np.nan for s in STATS}
    r["count"] = float(len(y))
    if len(y) == 0:
        return r
    one = reference(y[None, :], sample)
    for s in STATS:
        r[s] = one[s][0]
    r["argmin"], r["argmax"] = float(idx[int(one["argmin"][0])]), float(idx[int(one["argmax"][0])])
    return r


def floors(X, ref, skip):
    """Absolute floor per statistic and row (see the module docstring)."""
    with np.errstate(all="ignore"):
        F = np.where(np.isfinite(X), np.abs(X), 0)
        scale = F.max(axis=1)
        dev = np.where(np.isfinite(X), np.abs(X - np.where(np.isfinite(ref["mean"]), ref["mean"], 0)[:, None]), 0).max(axis=1)
        kappa = np.maximum(1.0, np.where(ref["std"] > 0, np.maximum(scale, dev) / ref["std"], 1.0))
        d = np.diff(np.where(np.isfinite(X), X, 0), axis=1) if X.shape[1] > 1 else np.zeros((X.shape[0], 1))
        dscale = np.abs(d).max(axis=1) if d.size else np.zeros(X.shape[0])
        dstd = d.std(axis=1) if d.size else np.zeros(X.shape[0])
        kd = np.maximum(1.0, np.where(dstd > 0, np.maximum(dscale, scale) / dstd, 1.0))
    # Subnormal results are multiples of 2^-1074: allow that granularity for each value summed.
    sub = X.shape[1] * 2.0 ** -1074
    f = {s: REL * scale + sub for s in STATS}
    f["variance"] = REL * scale * scale
    f["skewness"] = REL * kappa ** 2
    f["kurtosis"] = REL * kappa ** 2
    f["step_autocorr"] = REL * kd ** 2
    return f


class Checker:
    def __init__(self):
        self.failures = 0
        self.checked = 0
        self.worst = {}

    def compare(self, label, got, ref, floor, stat):
        got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
        nan_g, nan_r = np.isnan(got), np.isnan(ref)
        bad = nan_g != nan_r
        both = ~nan_g & ~nan_r
        inf = both & (np.isinf(ref) | np.isinf(got))
        bad |= inf & (got != ref)
        fin = both & ~inf
        if stat in EXACT:
            bad |= fin & (got != ref)
            err = np.zeros_like(got)
        else:
            with np.errstate(all="ignore"):
                err = np.abs(got - ref)
                tol = REL * np.abs(ref) + floor
                bad |= fin & ~(err <= tol)
                used = np.where(fin, err / np.where(tol > 0, tol, 1), 0)   # share of the tolerance used
                if used.size:
                    self.worst[stat] = max(self.worst.get(stat, 0.0), float(np.nanmax(used)))
        self.checked += got.size
        if bad.any():
            self.failures += int(bad.sum())
            for i in np.nonzero(bad)[0][:5]:
                print(f"MISMATCH {label} {stat}[{i}]: got {got[i]!r}, expected {ref[i]!r}"
                      f" (floor {np.broadcast_to(floor, got.shape)[i]:.3g})")


def run_moments(psnap, run, out, *flags):
    args = [psnap, "moments", run, "-o", out, "--force", *flags]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")


def stats_of(out_path, name):
    """(statistics × count) float64 array of one output tensor, and the statistic names from its metadata."""
    f = psnap_reader.open_psnap(out_path)
    names = [s["metadata"]["statistic"] for s in f.snapshots]
    t = f.by_name[name]
    bits = f.tensor_bits(name)
    vals = bits.view({4: np.float32, 8: np.float64}[t.esize]).astype(np.float64).T
    return names, vals, bits


def check_run(ck, psnap, label, run_path, data, flags_sets):
    """data: {tensor: (params × snapshots) float64}."""
    tmp = os.path.dirname(run_path)
    for flags in flags_sets:
        sample, skip = "--sample" in flags, "--skip-nan" in flags
        o64, o32 = os.path.join(tmp, "m64.psnap"), os.path.join(tmp, "m32.psnap")
        run_moments(psnap, run_path, o64, "--f64", *flags)
        run_moments(psnap, run_path, o32, *flags)
        for name, X in data.items():
            ref = reference(X, sample, skip)
            fl = floors(X, ref, skip)
            names, got, _ = stats_of(o64, name)
            if names != STATS:
                raise SystemExit(f"error: {o64}: statistics {names}, expected {STATS}")
            for k, s in enumerate(STATS):
                ck.compare(f"{label} {' '.join(flags) or 'default'} {name}", got[k], ref[s], fl[s], s)
            _, got32, _ = stats_of(o32, name)
            with np.errstate(all="ignore"):
                want32 = got.astype(np.float32).astype(np.float64)
            same = (got32 == want32) | (np.isnan(got32) & np.isnan(want32))
            ck.checked += same.size
            if not same.all():
                ck.failures += int((~same).sum())
                k, i = np.argwhere(~same)[0]
                print(f"MISMATCH {label} {name} f32 {STATS[k]}[{i}]: {got32[k, i]!r} != f32({got[k, i]!r})")


def append_run(psnap, run_path, files, groups):
    """Appends `files` in `groups` invocations (each a commit: tiered merging makes several segments)."""
    for g in np.array_split(np.arange(len(files)), groups):
        if len(g) == 0:
            continue
        cmd = [psnap, "append", run_path] + [files[i] for i in g]
        if len(g) == 1:
            cmd += ["--step", str(int(g[0]))]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"error: {' '.join(cmd[:3])} … exited {p.returncode}: {p.stderr.strip()}")


def real_runs(ck, psnap, data_dir, tmp, quick, runs):
    for run in [r for r in ["tiny-gpt", "tiny-gpt-bf16", "mlp-digits"] if r in runs]:
        d = os.path.join(data_dir, run)
        if not os.path.isdir(d):
            print(f"skip {run}: {d} not found")
            continue
        files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".safetensors"))
        if quick:
            files = files[:13]
        snaps = [read_safetensors(f) for f in files]
        data = {n: np.stack([s[n] for s in snaps], axis=1) for n in snaps[0]}
        rd = os.path.join(tmp, run)
        os.makedirs(rd, exist_ok=True)
        rp = os.path.join(rd, "run.psnap")
        append_run(psnap, rp, files, 5)
        check_run(ck, psnap, run, rp, data, [[], ["--sample"]])
        print(f"{run}: {len(files)} snapshots, {sum(x.shape[0] for x in data.values())} parameters checked")


def synthetic(ck, psnap, tmp):
    rng = np.random.default_rng(7)
    S = 23
    P = 12
    walk = np.cumsum(rng.normal(0, 0.01, (P, S)), axis=1) + rng.normal(0, 1, (P, 1))
    cases = {
        "walk": walk,
        "const": np.repeat(np.array([0.0, 1.0, -3.5, 1e30, 5e-324, 1e-300, 0.1, 7.0, -0.0, 2.0, 3.0, 4.0])[:, None], S, axis=1),
        "huge": walk * 1e30,
        "tiny": walk * 1e-300,
        "denormal": np.round(walk * 1000) * 5e-324,
        "offset": walk * 1e-6 + 1e3,
    }
    nan = walk.copy()
    nan[0, 3] = np.nan; nan[1, 0] = np.nan; nan[2, S - 1] = np.nan; nan[3, :] = np.nan
    nan[4, 5] = np.inf; nan[5, 7] = -np.inf; nan[6, 2] = np.inf; nan[6, 9] = -np.inf
    nan[7, :S - 1] = np.nan; nan[8, 10] = np.nan; nan[8, 11] = np.inf; nan[9, :] = np.inf
    cases["nonfinite"] = nan
    f32 = (walk.astype(np.float32) * np.float32(1e-36)).astype(np.float64)  # near the f32 denormal range
    sd = os.path.join(tmp, "synthetic")
    os.makedirs(sd, exist_ok=True)
    files = []
    for k in range(S):
        t = {n: ("F64", a[:, k]) for n, a in cases.items()}
        t["f32_small"] = ("F32", f32[:, k])
        p = os.path.join(sd, f"step-{k:03d}.safetensors")
        write_safetensors(p, t)
        files.append(p)
    data = dict(cases)
    data["f32_small"] = f32
    rp = os.path.join(sd, "run.psnap")
    append_run(psnap, rp, files, S)          # one snapshot per commit: tiered merging, several segments
    flags = [[], ["--sample"], ["--skip-nan"], ["--sample", "--skip-nan"]]
    check_run(ck, psnap, "synthetic", rp, data, flags)
    # One snapshot only.
    one = os.path.join(tmp, "one")
    os.makedirs(one, exist_ok=True)
    rp1 = os.path.join(one, "run.psnap")
    append_run(psnap, rp1, files[:1], 1)
    check_run(ck, psnap, "one-snapshot", rp1, {n: a[:, :1] for n, a in data.items()}, flags)
    print(f"synthetic: {len(data)} tensors × {S} snapshots (+ a one-snapshot run), 4 option sets checked")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--psnap", required=True)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))
    ap.add_argument("--quick", action="store_true", help="first 13 snapshots of each real run")
    ap.add_argument("--keep", help="work in this directory and keep it")
    ap.add_argument("--runs", default="synthetic,tiny-gpt,tiny-gpt-bf16,mlp-digits",
                    help="comma-separated subset of synthetic,tiny-gpt,tiny-gpt-bf16,mlp-digits")
    a = ap.parse_args()
    if not os.path.isdir(a.data) and os.path.isdir("/work/shared/data"):
        a.data = "/work/shared/data"
    ck = Checker()
    tmp = a.keep or tempfile.mkdtemp(prefix="check-moments-")
    try:
        runs = a.runs.split(",")
        if "synthetic" in runs:
            synthetic(ck, a.psnap, tmp)
        real_runs(ck, a.psnap, a.data, tmp, a.quick, runs)
    finally:
        if not a.keep:
            subprocess.run(["rm", "-rf", tmp])
    worst = ", ".join(f"{s} {v:.2g}" for s, v in sorted(ck.worst.items()))
    print(f"checked {ck.checked} values, {ck.failures} mismatches; largest error as a share of its tolerance (f64): {worst}")
    return 1 if ck.failures else 0


if __name__ == "__main__":
    sys.exit(main())
