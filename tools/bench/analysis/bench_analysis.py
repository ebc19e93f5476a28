#!/usr/bin/env python3
"""The psnap analysis commands against what a user would pick instead (numpy, scikit-learn, faiss), same data, same run.

For every --run NAME=DUMPS_DIR:RUN.psnap (DUMPS_DIR: the `*.safetensors` snapshot dumps of one training run; RUN.psnap:
the same run after `psnap convert DUMPS_DIR -o RUN.psnap`) it measures, each measurement in its own process so that
the peak RSS belongs to that measurement alone:

  psnap (`/usr/bin/time -f "%e %M"`, wall time the median of --repeat runs, peak RSS the largest):
    verify                        every tile read and decoded: the decode-speed reference
    modes -k 8                    PCA of the trajectories (one streaming pass)
    similar --global G --top 50   exact Pearson r of one parameter against all (G = 12345 mod P, non-constant)
    similar --queries FILE        --queries seeded random non-constant parameters, answered by one pass (--json)
    groups -k K --iterations 0|N  --tolerance 0; one Lloyd iteration costs (t_N - t_0) / N
    moments --stats moments -o    mean, variance, skewness, kurtosis of every parameter
  peers (skipped with --skip-peers), on X = [parameters x snapshots] loaded into RAM from the dumps, as they must be:
    load                          X from the safetensors files (f32; bf16 widened by a 16-bit shift)
    sklearn PCA                   PCA(n_components=8, svd_solver="full").fit(X.T): each parameter a feature (DLDR)
    numpy eigh                    f64 rows centred, G = C.T @ C, np.linalg.eigh(G)
    numpy similar                 f64 rows centred and scaled to unit norm, r = Z @ z_q, top 50 by np.argpartition;
                                  many queries as Q @ Z_b.T (= (Z_b @ Q.T).T, each query's scores contiguous) over
                                  blocks Z_b of 65,536 rows, a running top 50 kept per query
    faiss IndexFlatIP             f32 unit rows, add + search k=50, one query and --queries queries
    faiss Kmeans / sklearn KMeans f32 unit rows, K centroids, N iterations (total); one iteration: faiss's own
                                  iteration_stats, (time_N - time_1) / (N - 1); sklearn: KMeans(init=the centres
                                  of sklearn.cluster.kmeans_plusplus, max_iter=N) timed alone, / n_iter_
  A peer's time is its compute (perf_counter, median of --repeat in one process after one load), its RSS the
  process's ru_maxrss (X included). Constant or non-finite trajectories are left out by every tool, as psnap does.
  ratio = peer time / psnap time (above 1: psnap is faster); the load row compares loading X with `psnap verify`.
  The page cache is warmed (dumps and .psnap read once) before measuring. Answers are cross-checked (explained variance,
  top-50 overlap, k-means objective) and the checks are in the JSON and under each table.

Writes PREFIX.md (environment header, one table per run) and PREFIX.json (every raw number). Rerun with, e.g.:
  python3 tools/bench/analysis/bench_analysis.py --psnap .build/release/psnap \\
      --run tiny-gpt=../shared/data/tiny-gpt:/tmp/tg.psnap --run mlp-digits=../shared/data/mlp-digits:/tmp/mlp.psnap \\
      --out tools/bench/peers/results/YYYY-MM-DD-HHMM-analysis-real-runs
  (convert first: psnap convert DUMPS_DIR -o RUN.psnap). Internal: `bench_analysis.py --child MODE ...` runs one peer.
"""
import argparse, datetime, glob, json, os, platform, re, resource, shutil, statistics, struct, subprocess, sys
import tempfile, time

import numpy as np

TOP = 50
SEED = 20261204
BLOCK = 65536
DTYPES = {"F32": "<f4", "BF16": "<u2", "F16": "<f2"}

# --------------------------------------------------------------------------------------------------- the dumps

def dump_files(folder):
    """The dumps in step order (the last number in each name, as `psnap convert` orders them)."""
    def key(p):
        nums = re.findall(r"\d+", os.path.basename(p))
        return (int(nums[-1]) if nums else -1, p)
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")), key=key)
    if not files:
        raise SystemExit(f"{folder}: no *.safetensors")
    return files


def layout(path):
    """(header bytes, [(dtype, offset, count)] in data order = psnap's global parameter order, P)."""
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        h = json.loads(fh.read(n))
    ents = sorted((e for k, e in h.items() if k != "__metadata__"), key=lambda e: e["data_offsets"][0])
    for e in ents:
        if e["dtype"] not in DTYPES:
            raise SystemExit(f"{path}: dtype {e['dtype']} not handled")
    parts = [(e["dtype"], 8 + n + e["data_offsets"][0], int(np.prod(e["shape"], dtype=np.int64))) for e in ents]
    return parts, sum(p[2] for p in parts)


def read_snapshot(path, parts, out):
    """One dump into the f32 vector out (length P)."""
    with open(path, "rb") as fh:
        buf = fh.read()
    pos = 0
    for dt, off, cnt in parts:
        v = np.frombuffer(buf, dtype=DTYPES[dt], count=cnt, offset=off)
        if dt == "BF16":
            out[pos:pos + cnt] = (v.astype(np.uint32) << 16).view(np.float32)
        else:
            out[pos:pos + cnt] = v
        pos += cnt


def load_matrix(folder):
    files = dump_files(folder)
    parts, P = layout(files[0])
    X = np.empty((P, len(files)), dtype=np.float32)
    col = np.empty(P, dtype=np.float32)
    for s, f in enumerate(files):
        read_snapshot(f, parts, col)
        X[:, s] = col
    return X


def unit_rows(X, dtype):
    """Rows centred and scaled to unit norm in dtype (in place when X already has it); constant or non-finite rows
    dropped. Returns (Z, global index of each kept row)."""
    Z = X if X.dtype == dtype else X.astype(dtype)
    Z -= Z.mean(axis=1, dtype=np.float64, keepdims=True).astype(dtype)
    norm = np.sqrt(np.einsum("ij,ij->i", Z, Z, dtype=np.float64))
    keep = np.isfinite(norm) & (norm > 0)
    Z /= np.where(keep, norm, 1.0).astype(dtype)[:, None]
    if not keep.all():
        Z = Z[keep]
    return Z, np.flatnonzero(keep)


def top_per_row(R, k):
    """Column positions of the k largest values of every row of R, shape (rows, k), unsorted."""
    if R.shape[1] <= k:
        return np.broadcast_to(np.arange(R.shape[1]), R.shape).copy()
    return np.argpartition(R, -k, axis=1)[:, -k:]


def numpy_similar(Z, qrows):
    """Top-50 rows of Z (best first, ties to the lower index) for each query row: the product with the queries in
    blocks of 65,536 rows, computed as Q @ Z_b.T so that each query's scores are contiguous for argpartition, and a
    running top 50 per query."""
    Q = Z[qrows]
    best_r = np.empty((len(qrows), 0))
    best_i = np.empty((len(qrows), 0), dtype=np.int64)
    for b in range(0, Z.shape[0], BLOCK):
        R = Q @ Z[b:b + BLOCK].T                            # (queries, block)
        sel = top_per_row(R, TOP)
        cand_r = np.concatenate([best_r, np.take_along_axis(R, sel, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, sel + b], axis=1)
        keep = top_per_row(cand_r, TOP)
        best_r, best_i = np.take_along_axis(cand_r, keep, axis=1), np.take_along_axis(cand_i, keep, axis=1)
    order = np.lexsort((best_i, -best_r), axis=1)
    return np.take_along_axis(best_i, order, axis=1)        # (queries, 50)

# --------------------------------------------------------------------------------------------------- peers (child)

def child(a):
    """One peer measurement in this process; prints one JSON line."""
    t0 = time.perf_counter()
    X = load_matrix(a.dumps)
    res = {"load_s": time.perf_counter() - t0, "rss_after_load_mib": maxrss_mib(), "shape": list(X.shape)}
    queries = [int(q) for q in open(a.queries_file)] if a.queries_file else []
    mode, times, out = a.child, [], {}

    def timed(fn):
        for _ in range(a.repeat):
            t = time.perf_counter()
            r = fn()
            times.append(time.perf_counter() - t)
        return r

    if mode == "load":
        timed(lambda: None)
    elif mode == "sklearn_pca":
        from sklearn.decomposition import PCA
        pca = timed(lambda: PCA(n_components=8, svd_solver="full").fit(X.T))
        out["explained"] = pca.explained_variance_ratio_.tolist()
    elif mode == "numpy_eigh":
        def eig():
            C = X.astype(np.float64)
            C -= C.mean(axis=1, keepdims=True)
            w = np.linalg.eigh(C.T @ C)[0][::-1]
            return w / w.sum()
        out["explained"] = timed(eig)[:8].tolist()
    elif mode in ("numpy_similar", "faiss_similar"):
        def search():
            Z, idx = unit_rows(X, np.float64 if mode == "numpy_similar" else np.float32)
            qrows = np.searchsorted(idx, queries)
            if mode == "numpy_similar":
                return idx[numpy_similar(Z, qrows)]
            import faiss
            index = faiss.IndexFlatIP(Z.shape[1])
            index.add(Z)
            return idx[index.search(Z[qrows], TOP)[1]]
        for i in range(a.repeat):
            if i and mode == "faiss_similar":                 # the f32 unit rows were made in X, in place
                X = None
                X = load_matrix(a.dumps)
            t = time.perf_counter()
            hits = search()
            times.append(time.perf_counter() - t)
        out["hits"] = hits[:, :TOP].tolist()
    elif mode in ("faiss_kmeans", "sklearn_kmeans"):
        Z, _ = unit_rows(X, np.float32)
        del X
        per_iter = []
        def km():
            if mode == "faiss_kmeans":                      # iteration_stats[i].time: seconds since train() began
                import faiss
                k = faiss.Kmeans(Z.shape[1], a.k, niter=a.iterations, seed=1, max_points_per_centroid=Z.shape[0] + 1)
                k.train(Z)
                st = [s["time"] for s in k.iteration_stats]
                per_iter.append((st[-1] - st[0]) / (len(st) - 1) if len(st) > 1 else st[0])
                return float(k.obj[-1]), a.iterations
            from sklearn.cluster import KMeans
            k = KMeans(n_clusters=a.k, init="k-means++", n_init=1, max_iter=a.iterations, tol=0, algorithm="lloyd",
                       random_state=1).fit(Z)
            return float(k.inertia_), int(k.n_iter_)
        out["objective"], out["n_iter"] = timed(km)
        if mode == "sklearn_kmeans":                        # Lloyd alone, from the same k-means++ centres
            from sklearn.cluster import KMeans, kmeans_plusplus
            centres = kmeans_plusplus(Z, a.k, random_state=1)[0]
            for _ in range(a.repeat):
                t = time.perf_counter()
                k = KMeans(n_clusters=a.k, init=centres, n_init=1, max_iter=a.iterations, tol=0, algorithm="lloyd").fit(Z)
                per_iter.append((time.perf_counter() - t) / k.n_iter_)
        out["per_iteration_s"] = statistics.median(per_iter)
    else:
        raise SystemExit(f"unknown child mode {mode}")
    res.update(out, compute_s=statistics.median(times), times_s=times, rss_mib=maxrss_mib())
    print(json.dumps(res))


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

# --------------------------------------------------------------------------------------------------- driver

def run_psnap(args, repeat):
    """Median wall time (perf_counter around the child; %e kept too), largest peak RSS, last stdout."""
    walls, elapsed, rss = [], [], []
    for _ in range(repeat):
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + args, capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        if p.returncode != 0:
            return {"cmd": args, "error": f"exit {p.returncode}: {p.stderr.strip()[-800:]}"}
        e, m = p.stderr.strip().splitlines()[-1].split()
        elapsed.append(float(e))
        rss.append(int(m) / 1024)
    return {"cmd": args, "time_s": statistics.median(walls), "walls_s": walls, "time_elapsed_s": elapsed,
            "rss_mib": max(rss), "stdout": p.stdout}


def run_child(mode, dumps, qfile, a):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--dumps", dumps, "--repeat", str(a.repeat),
           "--k", str(a.k), "--iterations", str(a.iterations)] + (["--queries-file", qfile] if qfile else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"mode": mode, "error": f"exit {p.returncode}: {p.stderr.strip()[-800:]}"}
    return dict(json.loads(p.stdout.strip().splitlines()[-1]), mode=mode)


def pick_queries(files, P, n):
    """G = 12345 mod P (or the next parameter that moves) and n seeded random parameters whose first and last values
    differ (so they are not constant)."""
    parts, _ = layout(files[0])
    first, last = np.empty(P, np.float32), np.empty(P, np.float32)
    read_snapshot(files[0], parts, first)
    read_snapshot(files[-1], parts, last)
    moves = np.flatnonzero((first != last) & np.isfinite(first) & np.isfinite(last))
    g = int(moves[np.searchsorted(moves, 12345 % P) % len(moves)])
    rng = np.random.default_rng(SEED)
    qs = np.sort(rng.choice(moves, size=min(n, len(moves)), replace=False))
    return g, [int(q) for q in qs]


def warm(paths):
    for p in paths:
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


def overlap(a, b):
    return len(set(a) & set(b)) / max(1, len(a))


def bench_run(name, dumps, run, a, tmp):
    psnap = a.psnap
    files = dump_files(dumps)
    _, P = layout(files[0])
    g, queries = pick_queries(files, P, a.queries)
    qfile, gfile = os.path.join(tmp, f"{name}-queries.txt"), os.path.join(tmp, f"{name}-query.txt")
    open(qfile, "w").write("\n".join(map(str, queries)) + "\n")
    open(gfile, "w").write(f"{g}\n")
    warm(files + [run])
    info = subprocess.run([psnap, "info", run], capture_output=True, text=True).stdout
    res = {"name": name, "dumps": dumps, "run": run, "parameters": P, "snapshots": len(files), "global": g,
           "queries": len(queries), "k": a.k, "iterations": a.iterations, "psnap_info": info.splitlines()[:8]}
    m = re.search(r"\(([\d,]+) parameters\)", info), re.search(r"^snapshots\s+(\d+)", info, re.M)
    if not all(m) or (int(m[0][1].replace(",", "")), int(m[1][1])) != (P, len(files)):
        print(f"[{name}] warning: {run} does not look like {dumps} converted (psnap info disagrees)", file=sys.stderr)
        res["warning"] = "psnap info disagrees with the dumps on parameters or snapshots"
    print(f"[{name}] P={P:,} S={len(files)} G={g}", file=sys.stderr)
    mom = os.path.join(tmp, "bench-mom.psnap")
    cmds = {
        "verify": ["verify", run],
        "modes": ["modes", run, "-k", "8"],
        "similar1": ["similar", run, "--global", str(g), "--top", str(TOP)],
        "similarQ": ["similar", run, "--queries", qfile, "--top", str(TOP), "--json"],
        "groups0": ["groups", run, "-k", str(a.k), "--iterations", "0", "--tolerance", "0"],
        "groupsN": ["groups", run, "-k", str(a.k), "--iterations", str(a.iterations), "--tolerance", "0"],
        "moments": ["moments", run, "--stats", "moments", "-o", mom, "--force"],
    }
    ps = {}
    for key, c in cmds.items():
        print(f"[{name}] psnap {' '.join(c[:1] + c[2:])}", file=sys.stderr)
        ps[key] = run_psnap([psnap] + c, a.repeat)
    out = {k: dict(v) for k, v in ps.items()}
    for v in out.values():
        v.pop("stdout", None)
    res["psnap"] = out
    t = {k: v.get("time_s") for k, v in ps.items()}
    if t["groupsN"] and t["groups0"] is not None:
        res["psnap"]["groups_per_iteration_s"] = (t["groupsN"] - t["groups0"]) / a.iterations
    div = lambda x, y: x / y if x and y else None
    res["derived"] = {"modes_speed_vs_verify": div(t["verify"], t["modes"]),
                      "similar1_speed_vs_verify": div(t["verify"], t["similar1"]),
                      "similarQ_over_similar1": div(t["similarQ"], t["similar1"]),
                      "groups_iteration_over_verify": div(res["psnap"].get("groups_per_iteration_s"), t["verify"]),
                      "moments_over_verify": div(t["moments"], t["verify"])}
    peers = {}
    if a.skip_peers:
        res["checks"] = checks(ps, peers)
        return res
    for mode, q in [("load", None), ("sklearn_pca", None), ("numpy_eigh", None), ("numpy_similar", gfile),
                    ("numpy_similar", qfile), ("faiss_similar", gfile), ("faiss_similar", qfile)]:
        key = mode + ("" if q is None else ("1" if q == gfile else "Q"))
        print(f"[{name}] peer {key}", file=sys.stderr)
        peers[key] = run_child(mode, dumps, q, a)
    for mode in ("faiss_kmeans", "sklearn_kmeans"):
        print(f"[{name}] peer {mode}", file=sys.stderr)
        peers[mode] = run_child(mode, dumps, None, a)
    res["checks"] = checks(ps, peers)
    for v in peers.values():
        if isinstance(v, dict):
            v.pop("hits", None)
    res["peers"] = peers
    return res


def checks(ps, peers):
    """Do the tools agree? Explained-variance ratios, top-50 overlaps, k-means objectives (Σ squared distance)."""
    c = {}
    if "stdout" in ps["modes"]:
        ev = [float(m.group(1)) / 100 for m in re.finditer(r"^\d+\s+\S+\s+([\d.]+) %", ps["modes"]["stdout"], re.M)][:8]
        for key in ("sklearn_pca", "numpy_eigh"):
            if "explained" in peers.get(key, {}):
                c[f"modes_vs_{key}_max_abs_diff_explained"] = float(np.max(np.abs(np.array(ev) - peers[key]["explained"][:len(ev)])))
    if "stdout" in ps["similar1"]:
        top1 = [int(m.group(1)) for m in re.finditer(r"^\d+\s+\S+\s+(\d+)\s", ps["similar1"]["stdout"], re.M)]
        for key in ("numpy_similar1", "faiss_similar1"):
            if "hits" in peers.get(key, {}):
                c[f"similar1_top{TOP}_overlap_{key}"] = overlap(top1, peers[key]["hits"][0])
    if "stdout" in ps["similarQ"]:
        js = json.loads(ps["similarQ"]["stdout"])["queries"]
        tops = [[h["global"] for h in q["hits"]] for q in js]
        for key in ("numpy_similarQ", "faiss_similarQ"):
            if len(peers.get(key, {}).get("hits", [])) == len(tops):
                c[f"similarQ_mean_top{TOP}_overlap_{key}"] = float(np.mean([overlap(x, y) for x, y in zip(tops, peers[key]["hits"])]))
    for key in ("groups0", "groupsN"):
        m = re.search(r"objective ([\d.e+-]+)", ps[key].get("stdout", ""))
        if m:
            c[f"psnap_{key}_objective"] = float(m.group(1))
    return c

# --------------------------------------------------------------------------------------------------- report

def fmt_t(x):
    return "—" if x is None else (f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s")


def fmt_m(x):
    return "—" if x is None else f"{x:,.0f} MiB"


def table(r, a):
    ps, pe = r["psnap"], r.get("peers", {})
    it = a.iterations
    gi = ps.get("groups_per_iteration_s")
    P = lambda k: (ps[k].get("time_s"), ps[k].get("rss_mib"))
    E = lambda k, t="compute_s": (pe[k].get(t), pe[k].get("rss_mib")) if k in pe else (None, None)
    rows = [
        ("decode everything: `verify` vs load X from the dumps", P("verify"), "load X (f32) from safetensors", E("load", "load_s")),
        ("`modes -k 8`", P("modes"), 'sklearn PCA(8, svd_solver="full") on X.T', E("sklearn_pca")),
        ("`modes -k 8`", P("modes"), "numpy f64 centred Gram + eigh", E("numpy_eigh")),
        (f"`similar --global {r['global']} --top {TOP}`", P("similar1"), "numpy f64 unit rows, Z @ z, argpartition", E("numpy_similar1")),
        (f"`similar --global {r['global']} --top {TOP}`", P("similar1"), "faiss IndexFlatIP f32 (add + search)", E("faiss_similar1")),
        (f"`similar --queries` ({r['queries']})", P("similarQ"), "numpy Q @ Z_b.T, blocks of 65,536 rows", E("numpy_similarQ")),
        (f"`similar --queries` ({r['queries']})", P("similarQ"), "faiss IndexFlatIP f32 (add + search)", E("faiss_similarQ")),
        (f"`groups -k {a.k}` 0 iterations", P("groups0"), None, (None, None)),
        (f"`groups -k {a.k}` {it} iterations", P("groupsN"), f"faiss Kmeans niter={it}", E("faiss_kmeans")),
        (f"`groups -k {a.k}` {it} iterations", P("groupsN"), f"sklearn KMeans lloyd max_iter={it}", E("sklearn_kmeans")),
        ("`groups` one iteration", (gi, None), "faiss Kmeans one iteration", E("faiss_kmeans", "per_iteration_s")[:1] + (None,)),
        ("`groups` one iteration", (gi, None), "sklearn KMeans one iteration", E("sklearn_kmeans", "per_iteration_s")[:1] + (None,)),
        ("`moments --stats moments -o`", P("moments"), None, (None, None)),
    ]
    lines = [f"## {r['name']}: {r['parameters']:,} parameters × {r['snapshots']} snapshots",
             f"`{r['dumps']}` · `{r['run']}`", "",
             "| measurement | psnap time | psnap RSS | peer | peer time | peer RSS | ratio |", "|---|---|---|---|---|---|---|"]
    for m, (pt, pr), peer, (et, er) in rows:
        ratio = f"{et / pt:.2f}×" if et and pt else "—"
        lines.append(f"| {m} | {fmt_t(pt)} | {fmt_m(pr)} | {peer or '—'} | {fmt_t(et)} | {fmt_m(er)} | {ratio} |")
    errs = [f"- psnap `{k}`: {v['error']}" for k, v in ps.items() if isinstance(v, dict) and "error" in v]
    errs += [f"- peer `{k}`: {v['error']}" for k, v in pe.items() if isinstance(v, dict) and "error" in v]
    d = r["derived"]
    f = lambda x, u="×": "—" if x is None else f"{x:.2f}{u}"
    lines += ["", "psnap against its own decode (`verify`): " + "; ".join([
        f"modes speed {f(d['modes_speed_vs_verify'])}", f"similar (1 query) speed {f(d['similar1_speed_vs_verify'])}",
        f"t({r['queries']} queries) / t(1 query) {f(d['similarQ_over_similar1'])}",
        f"groups iteration / verify {f(d['groups_iteration_over_verify'])}", f"moments / verify {f(d['moments_over_verify'])}"]) + "."]
    if r.get("checks"):
        lines += ["", "Checks: " + "; ".join(f"{k} = {v:.6g}" for k, v in r["checks"].items()) + "."]
        for k in ("faiss_kmeans", "sklearn_kmeans"):
            o = pe.get(k, {}).get("objective")
            if o is not None:
                lines[-1] = lines[-1][:-1] + f"; {k} objective = {o:.6g} ({pe[k]['n_iter']} iterations)."
    if r.get("warning"):
        errs.append(f"- {r['warning']}")
    if errs:
        lines += ["", "Errors and warnings:"] + errs
    return "\n".join(lines)


def environment(a):
    import scipy, sklearn
    try:
        import faiss
        fv = faiss.__version__
    except ImportError:
        fv = "not installed"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    ver = subprocess.run([a.psnap, "--version"], capture_output=True, text=True).stdout.strip()
    try:
        from threadpoolctl import threadpool_info
        pools = "; ".join(f"{i['internal_api']} {i.get('version') or '-'} ×{i['num_threads']} in "
                          f"{os.path.basename(i['filepath']).split('-')[0]}" for i in threadpool_info())
    except ImportError:
        pools = "unknown"
    return {"utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "thread_pools": pools,
            "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "psnap": f"{a.psnap} ({ver})", "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__, "faiss-cpu": fv}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--psnap", default="psnap")
    ap.add_argument("--run", action="append", default=[], help="NAME=DUMPS_DIR:RUN.psnap (repeatable)")
    ap.add_argument("--out", help="output prefix: writes PREFIX.md and PREFIX.json")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats per measurement (median)")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dumps", help=argparse.SUPPRESS)
    ap.add_argument("--queries-file", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    if not a.run or not a.out:
        ap.error("--run and --out are required")
    a.psnap = os.path.abspath(a.psnap) if os.path.exists(a.psnap) else shutil.which(a.psnap) or a.psnap
    env = environment(a)
    tmp = tempfile.mkdtemp(prefix="bench-analysis-")
    try:
        runs = []
        for spec in a.run:
            name, rest = spec.split("=", 1)
            dumps, run = rest.rsplit(":", 1)
            runs.append(bench_run(name, dumps, run, a, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + ".json", "w") as fh:
        json.dump({"environment": env, "settings": {"queries": a.queries, "k": a.k, "iterations": a.iterations,
                   "repeat": a.repeat, "top": TOP, "seed": SEED, "skip_peers": a.skip_peers}, "runs": runs}, fh, indent=1)
    head = [f"# psnap analysis commands against numpy, scikit-learn and faiss", "",
            f"{env['utc']} · nproc {env['nproc']} · {env['cpu']} · psnap {env['psnap']} · Python {env['python']}, "
            f"numpy {env['numpy']}, scipy {env['scipy']}, scikit-learn {env['scikit-learn']}, faiss-cpu {env['faiss-cpu']}", "",
            f"Thread pools: {env['thread_pools']}", "",
            f"Command: `{' '.join(os.path.relpath(sys.argv[0]) if i == 0 else x for i, x in enumerate(sys.argv))}`", "",
            f"Each measurement in its own process; psnap: median wall of {a.repeat} runs, peak RSS from `/usr/bin/time`; "
            f"peers: compute time (median of {a.repeat} after one load of X from the dumps) and the process's peak RSS, X "
            "included. Peer times exclude loading X (first row). ratio = peer time / psnap time (above 1: psnap faster). "
            f"k-means: K = {a.k} on centred unit rows, {a.iterations} iterations. One iteration: psnap "
            f"(t_{a.iterations} − t_0) / {a.iterations}; faiss from its iteration_stats; sklearn a Lloyd-only fit from "
            "k-means++ centres / n_iter_ (sklearn may stop early at convergence).", ""]
    with open(a.out + ".md", "w") as fh:
        fh.write("\n".join(head + [table(r, a) + "\n" for r in runs]))
    print(f"wrote {a.out}.md and {a.out}.json", file=sys.stderr)


if __name__ == "__main__":
    main()
