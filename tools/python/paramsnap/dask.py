"""Passes on a Dask cluster: one task per group of tensors, each running the native pass on its part of the run.

    import paramsnap.dask
    from distributed import Client
    client = Client("tcp://scheduler:8786")             # or Client(LocalCluster(...)); None: dask's current scheduler
    m = paramsnap.dask.moments("run.psnap", stats=["mean", "variance"], client=client)

    modes = paramsnap.dask.modes("run.psnap", k=5, client=client)
    hits = paramsnap.dask.similar("run.psnap", ("fc1.weight", (3, 7)), top=20, client=client)
    g = paramsnap.dask.groups("run.psnap", k=16, client=client)
    f = paramsnap.dask.fit("run.psnap", families=["linear", "exp", "logistic"], client=client)
    c = paramsnap.dask.chart("run.psnap", client=client)

Every worker must see the run at the same path (a shared filesystem) and have the paramsnap package. Each answer is
the single-process one (`Run.moments`, `Run.modes`, `Run.similar`, `Run.groups`, `Run.fit`, `Run.chart`), bit for bit:
- moments: per-parameter statistics do not depend on which other parameters a task reads; one task per group of
  tensors. With `output=FOLDER` each task writes its part as a moments file and nothing large crosses the scheduler.
- modes: the library sums the Gram matrix in fixed partitions of the selection (64 chunks of blocks each) and adds
  the partitions in order from zero; a task computes a run of partitions, the client adds them in the same order
  and the library decomposes the sum, so the cut into tasks changes no bit.
- similar: a parameter's correlation with the query depends on its block alone; one task per group of tensors
  keeps its top hits and the client keeps the best of all, ties to the lower place in the selection, as the
  library does.
- groups: every pass split by the same partitions as modes (64 chunks of blocks): the seeding sample is the
  tasks' samples in order, each Lloyd pass's sums the partitions' added in order from zero; the library seeds
  (k-means++) and updates the centroids between passes. The summary, not each parameter's group.
- fit: per-parameter laws, one task per group of tensors; `modes:K` families get the mode shapes computed on the
  cluster first.
- chart: the value range computed once (as the library does), each task counts its tensors over it, the counts
  are added (integers).
Progress: `distributed.progress` on a cluster, `dask.diagnostics.ProgressBar` otherwise. A run is a file or a sharded
run's folder (spec/SHARDS.md: the tasks are then cut along the shards); a tensor's blocks are split between tasks
only by the partitions of modes and groups.
"""
import glob as _glob

import paramsnap


def tensor_groups(path, parts, names=None):
    """The run's tensors (or the selected `names`) cut into at most `parts` groups of about equal parameter counts,
    in file order. A sharded run (a folder, spec/SHARDS.md) is cut along its shards: a group is the tensors of one
    shard or of consecutive shards (a tensor split over shards goes with its first part), so a task opens few shard
    files."""
    with paramsnap.open(path) as r:
        wanted = None if names is None else set(names)
        sizes = [(t.name, max(1, t.size)) for t in r.tensors if wanted is None or t.name in wanted]
    shard_of = _shard_of_tensor(path)
    total = sum(n for _, n in sizes)
    groups, cur, acc = [], [], 0
    for i, (name, n) in enumerate(sizes):
        cur.append(name)
        acc += n
        # A sharded run's group ends only where the next tensor starts another shard.
        boundary = shard_of is None or i + 1 == len(sizes) or shard_of[sizes[i + 1][0]] != shard_of[name]
        if boundary and acc * parts >= total * (len(groups) + 1) and len(groups) < parts - 1:
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


def _shard_of_tensor(path):
    """{tensor name: the shard holding its first part} of a sharded run; None for one file."""
    import json
    import os
    manifest = os.path.join(path, "manifest.json")
    if not os.path.isdir(path) or not os.path.isfile(manifest):
        return None
    with open(manifest) as f:
        m = json.load(f)
    first = {}
    for s, shard in enumerate(m["shards"]):
        for p in shard["parts"]:
            if p["start"] == 0:
                first[m["tensors"][p["tensor"]]["name"]] = s
    return first


def _open_for(path, names):
    """The run for a task reading tensors `names` (None: all): of a sharded run, only the shards holding them."""
    return paramsnap.open(path, tensors=names if names is not None and _shard_of_tensor(path) is not None else None)


def _part(path, request, opens=None):
    """One task: the library's pass `request` on the run at `path`, on one thread; its JSON answer. Of a sharded run it
    opens only the shards holding `opens` (the tensors its partitions read, as the client found them), else those of
    the request's tensors."""
    names = opens if opens is not None else (request.get("tensors") if "partitions" not in request else None)
    with _open_for(path, names) as r:
        return r._pass(dict(request, workers=1))


def _partition_tensors(r, path, request, ranges):
    """For each partition range, the tensors it reads (None for one file: a task opens the whole file anyway)."""
    if _shard_of_tensor(path) is None:
        return [None for _ in ranges]
    return [r._pass(dict(request, **{"pass": "partitionTensors", "partitions": [a, b]}))["tensors"] for a, b in ranges]


def _moments_part(path, stats, names, output, overwrite):
    with _open_for(path, names) as r:
        res = r.moments(stats=stats, include=[_glob.escape(n) for n in names], workers=1, output=output, overwrite=overwrite)
        if output is None:
            return res
        res.close()
        return output


def _parts(client, parts):
    if parts is None:
        parts = 2 * len(client.scheduler_info()["workers"]) if client is not None else 8
    if not isinstance(parts, int) or isinstance(parts, bool) or parts < 1:
        raise ValueError(f"parts={parts!r}: a positive integer")
    return parts


def _compute(tasks, client, progress):
    """The delayed `tasks`' results, in order, on `client` (else dask's current scheduler)."""
    import dask
    if client is not None:
        futures = client.compute(tasks)
        if progress:
            from distributed import progress as _progress
            _progress(futures)
        return client.gather(futures)
    if progress:
        from dask.diagnostics import ProgressBar
        with ProgressBar():
            return list(dask.compute(*tasks))
    return list(dask.compute(*tasks))


def modes(path, k=5, on="values", include=None, client=None, parts=None, progress=False):
    """`Run.modes` (the k principal trajectory modes) with the Gram matrix summed by Dask tasks: each task sums a
    run of the library's partitions of the selection, the client adds them in partition order and the library
    decomposes the sum. The same answer as one process, bit for bit, whatever `parts` (default: 2 per worker of
    `client`, else 8)."""
    import dask
    import numpy as np
    path = str(path)
    parts = _parts(client, parts)
    with paramsnap.open(path) as r:
        names = r._select(include)
        info = r._pass({"pass": "gram", "on": on, "tensors": names})
        count, d = info["partitions"], info["dimension"]
        cuts = sorted({count * i // parts for i in range(parts + 1)})
        ranges = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
        opens = _partition_tensors(r, path, {"of": "gram", "on": on, "tensors": names}, ranges)
    tasks = [dask.delayed(_part, pure=False)(path, {"pass": "gram", "on": on, "tensors": names, "partitions": [a, b]}, o)
             for (a, b), o in zip(ranges, opens)]
    total, rows, non_finite = np.zeros(d * d), 0, 0
    for res in _compute(tasks, client, progress):
        for g, n, f in zip(res["grams"], res["rows"], res["nonFinite"]):
            total = total + np.asarray(g, dtype=np.float64)
            rows += n
            non_finite += f
    with paramsnap.open(path) as r:
        res = r._pass({"pass": "modesFromGram", "on": on, "k": k, "gram": total.tolist(), "rows": rows, "nonFinite": non_finite})
    return {"eigenvalues": np.array(res["eigenvalues"]), "explained_variance_ratio": np.array(res["explainedVarianceRatio"]),
            "modes": np.array(res["modes"]), "parameters": res["parameters"], "non_finite": res["nonFinite"], "on": res["view"]}


def similar(path, query, top=50, on="values", include=None, remove_modes=0, client=None, parts=None, progress=False):
    """`Run.similar` (the `top` parameters whose trajectories correlate best with each query, exact Pearson r) as one
    Dask task per group of tensors, the best of every task's top hits kept (ties to the lower place in the
    selection). `query` as for `Run.similar`: (tensor name, index) or a trajectory, or a list of them. With
    `remove_modes=K` the selection's first K modes are computed first (`modes` above) and every task removes those.
    The answer is the single-process one, bit for bit."""
    import dask
    path = str(path)
    parts = _parts(client, parts)
    modes_given = None
    if remove_modes:
        modes_given = modes(path, k=remove_modes, on=on, include=include, client=client, parts=parts, progress=progress)["modes"].tolist()
    with paramsnap.open(path) as r:
        many, series = r._query_series(query)
        names = r._select(include)
        selected = names if names is not None else [t.name for t in r.tensors]
        sizes = {t.name: t.size for t in r.tensors}
        # Each tensor's place in the selection: ties go to the lower (tensor order, then flat index).
        place, offset = {}, 0
        for n in [t.name for t in r.tensors if t.name in set(selected)]:
            place[n] = offset
            offset += sizes[n]
        if not series:
            raise ValueError("similar: no query")
        groups = tensor_groups(path, parts, selected)
        tasks = [dask.delayed(_part, pure=False)(path, {"pass": "similar", "queries": series, "top": top, "on": on, "tensors": g,
                                                        "modes": modes_given}) for g in groups]
        results = _compute(tasks, client, progress)
        merged = []
        for q in range(len(series)):
            hits = [h for part in results for h in part["hits"][q]]
            hits.sort(key=lambda h: (-h["r"], place[h["tensor"]] + h["index"]))
            merged.append(hits[:top])
        out = r._similar_answers(merged)
    return out if many else out[0]


def groups(path, k=16, on="values", include=None, iterations=25, seed=0, tolerance=1e-6, client=None, parts=None, progress=False):
    """`Run.groups` (k-means of trajectory shapes) with every pass split into Dask tasks by the library's partitions
    of the selection: the seeding sample is the tasks' samples in order, each Lloyd pass's sums are the tasks'
    partition sums added in partition order from zero, and the library seeds (k-means++) and updates the centroids
    between passes. Returns the summary `Run.groups` gives, bit for bit ("centroids", "sizes", "rms",
    "objective_history", "iterations"), with "objective", "undefined", "non_finite" and "tensor_counts" ({tensor:
    members per group}); not each parameter's group (use `Run.groups` or `psnap groups -o` for that)."""
    import dask
    import math
    import numpy as np
    path = str(path)
    parts = _parts(client, parts)
    with paramsnap.open(path) as r:
        names = r._select(include)
        selected = names if names is not None else [t.name for t in r.tensors]
        plan = r._pass({"pass": "groupsPlan", "k": k, "on": on, "tensors": names, "seed": seed, "iterations": iterations})
        count, d, total = plan["partitions"], plan["dimension"], plan["parameters"]
        cuts = sorted({count * i // parts for i in range(parts + 1)})
        ranges = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
        opens = _partition_tensors(r, path, {"of": "groups", "k": k, "on": on, "tensors": names}, ranges)

        def sample(q):
            request = {"pass": "groupsSample", "k": k, "on": on, "tensors": names, "seed": seed, "q": q}
            res = _compute([dask.delayed(_part, pure=False)(path, dict(request, partitions=[a, b]), o) for (a, b), o in zip(ranges, opens)],
                           client, progress)
            return sum(t["valid"] for t in res), [x for t in res for x in t["sample"]]

        def lloyd(centroids, tensor_counts=False):
            request = {"pass": "groupsAssign", "k": k, "on": on, "tensors": names, "centroids": centroids, "tensorCounts": tensor_counts}
            res = _compute([dask.delayed(_part, pure=False)(path, dict(request, partitions=[a, b]), o) for (a, b), o in zip(ranges, opens)],
                           client, progress)
            merged = {"sums": np.zeros(k * d), "sizes": [0] * k, "objective": 0.0, "groupObjective": np.zeros(k), "undefined": 0, "nonFinite": 0,
                      "tensorCounts": [[0] * k for _ in selected] if tensor_counts else []}
            for task in res:
                for p in task:
                    merged["sums"] = merged["sums"] + np.asarray(p["sums"], dtype=np.float64)
                    merged["sizes"] = [x + y for x, y in zip(merged["sizes"], p["sizes"])]
                    merged["objective"] = merged["objective"] + p["objective"]
                    merged["groupObjective"] = merged["groupObjective"] + np.asarray(p["groupObjective"], dtype=np.float64)
                    merged["undefined"] += p["undefined"]
                    merged["nonFinite"] += p["nonFinite"]
                    for s, c in enumerate(p["tensorCounts"]):
                        if c:
                            merged["tensorCounts"][s] = [x + y for x, y in zip(merged["tensorCounts"][s], c)]
            merged["sums"] = merged["sums"].tolist()
            merged["groupObjective"] = merged["groupObjective"].tolist()
            return merged

        # The seeding sample (Groups.compute's first pass: kept with probability q by a hash of each parameter's place).
        q = 1.0 if total == 0 else min(1.0, plan["sampleTarget"] / total)
        valid, rows = sample(q)
        if len(rows) // d < k and valid >= k and q < 1:
            q = min(1.0, q * float(2 * k) / float(max(1, len(rows) // d)))
            valid, rows = sample(q)
        if valid == 0:
            raise ValueError("no parameter with finite values in the selection")
        if k > valid:
            raise ValueError(f"k={k}: more groups than the {valid} parameters with a shape")
        centroids = r._pass({"pass": "groupsSeed", "k": k, "on": on, "tensors": names, "sample": rows, "seed": seed})
        history = []
        for _ in range(iterations):
            part = lloyd(centroids)
            history.append(part["objective"])
            centroids = r._pass({"pass": "groupsUpdate", "k": k, "on": on, "tensors": names, "centroids": centroids, "part": part})
            if len(history) >= 2 and history[-2] - history[-1] <= tolerance * abs(history[-2]):
                break
        last = lloyd(centroids, tensor_counts=True)
    sizes = last["sizes"]
    rms = [math.sqrt(g / n) if n > 0 else float("nan") for g, n in zip(last["groupObjective"], sizes)]
    return {"centroids": np.array(centroids).reshape(k, d), "sizes": np.array(sizes), "rms": np.array(rms, dtype=float),
            "objective_history": np.array(history), "iterations": len(history), "objective": last["objective"],
            "undefined": last["undefined"], "non_finite": last["nonFinite"],
            "tensor_counts": {n: np.array(c) for n, c in zip(selected, last["tensorCounts"])}}


def _fit_part(path, families, on, names, modes, output, overwrite):
    with _open_for(path, names) as r:
        request = {"pass": "fit", "families": families, "on": on, "tensors": names, "modes": modes, "overwrite": overwrite, "workers": 1}
        answer, kept, arrays, columns = r._file_pass(request, output)
    if kept is not None:
        kept.close()
        return answer, output, None
    return answer, arrays, columns


def fit(path, families=("linear", "quadratic", "modes:5"), on="values", include=None, client=None, parts=None, progress=False,
        output=None, overwrite=False):
    """`Run.fit` (laws fitted to every trajectory) as one Dask task per group of tensors; the mode shapes a `modes:K`
    family needs are computed on the cluster first (`modes` above) and handed to every task. The same answer as one
    process, bit for bit: {"families", "best", "series", "non_finite", "x", "columns", "values"}.

    With `output` (a folder every worker can write, created if missing) each task writes its tensors' fits there
    (`fit-000.psnap`, …; the format of `psnap fit -o`) and "values" becomes "parts", {tensor: the opened part holding
    it}: nothing large crosses the scheduler."""
    import dask
    import os
    import numpy as np
    path = str(path)
    parts = _parts(client, parts)
    if output is not None:
        os.makedirs(output, exist_ok=True)
    families = list(families)
    ks = [int(f.split(":")[1]) for f in families if isinstance(f, str) and f.startswith("modes:") and f.split(":")[1].isdigit()]
    shapes = modes(path, k=max(ks), on=on, include=include, client=client, parts=parts, progress=progress)["modes"].tolist() if ks else None
    with paramsnap.open(path) as r:
        names = r._select(include) if include is not None else [t.name for t in r.tensors]
    groups = tensor_groups(path, parts, names)
    outs = [None] * len(groups) if output is None else [os.path.join(str(output), f"fit-{k:03d}.psnap") for k in range(len(groups))]
    results = _compute([dask.delayed(_fit_part, pure=False)(path, families, on, g, shapes, o, overwrite) for g, o in zip(groups, outs)],
                       client, progress)
    first = results[0][0]
    best = [0] * len(first["families"])
    series = non_finite = 0
    values = {}
    for g, (answer, arrays, _) in zip(groups, results):
        best = [a + b for a, b in zip(best, answer["best"])]
        series += answer["series"]
        non_finite += answer["nonFinite"]
        if output is None:
            values.update(arrays)
        else:
            part = paramsnap.open(arrays)
            values.update({n: part for n in g})
    res = {"families": first["families"], "best": dict(zip(first["families"], best)), "series": series, "non_finite": non_finite,
           "x": np.array(first["x"])}
    if output is None:
        res["columns"] = results[0][2]
        res["values"] = {n: values[n] for n in names}
    else:
        res["parts"] = {n: values[n] for n in names}
    return res


def chart(path, view="values", width=1000, height=500, include=None, range=None, client=None, parts=None, progress=False):
    """`Run.chart` (the density chart's counts) as one Dask task per group of tensors, all counted over one value
    range (given, else the run's default range, computed once as the library does: spec/CHARTS.md), then added. The
    same counts as one process, bit for bit."""
    import dask
    import numpy as np
    path = str(path)
    parts = _parts(client, parts)
    with paramsnap.open(path) as r:
        names = r._select(include) if include is not None else [t.name for t in r.tensors]
        if range is None:
            rr = r._pass({"pass": "chartRange", "view": view, "tensors": names})
            lo, hi = rr["lo"], rr["hi"]
        else:
            lo, hi = float(range[0]), float(range[1])
    groups = tensor_groups(path, parts, names)
    request = {"pass": "chart", "view": view, "width": width, "height": height, "range": [lo, hi]}
    results = _compute([dask.delayed(_part, pure=False)(path, dict(request, tensors=g)) for g in groups], client, progress)
    counts = np.zeros(height * width, dtype=np.uint64)
    below, above = np.zeros(width, dtype=np.uint64), np.zeros(width, dtype=np.uint64)
    series = constant = non_finite = 0
    for g in results:
        counts += np.array(g["counts"], dtype=np.uint64)
        below += np.array(g["below"], dtype=np.uint64)
        above += np.array(g["above"], dtype=np.uint64)
        series += g["series"]
        constant += g["constant"]
        non_finite += g["nonFinite"]
    return {"counts": counts.reshape(height, width), "lo": lo, "hi": hi, "below": below, "above": above,
            "steps": np.array(results[0]["pointSteps"]), "series": series, "constant": constant, "non_finite": non_finite}


def moments(path, stats=None, include=None, client=None, parts=None, progress=False, output=None, overwrite=False):
    """`Run.moments` (f64 statistics of every trajectory: {statistic: {tensor: array of the tensor's shape}}), computed
    as one Dask task per group of tensors. `include`: tensor name globs; `parts`: how many tasks (default: 2 per
    worker of `client`, else 8); `progress`: show Dask's progress bar.

    With `output` (a folder every worker can write, created if missing), each task writes its tensors' statistics
    as a moments file there (`moments-000.psnap`, …; the format of `psnap moments -o`) instead of sending them back,
    and the answer is {tensor: the opened part holding it} (read lazily, e.g. `parts[name]["fc1.weight"]`): for
    runs whose statistics do not fit in memory, and faster, since nothing large crosses the scheduler."""
    import dask
    import os
    path = str(path)
    if output is not None:
        os.makedirs(output, exist_ok=True)
    parts = _parts(client, parts)
    with paramsnap.open(path) as r:
        names = r._select(include) if include is not None else [t.name for t in r.tensors]
    groups = tensor_groups(path, parts, names)
    outs = [None] * len(groups) if output is None else [os.path.join(str(output), f"moments-{k:03d}.psnap") for k in range(len(groups))]
    tasks = [dask.delayed(_moments_part, pure=False)(path, list(stats) if stats else None, g, o, overwrite)
             for g, o in zip(groups, outs)]
    results = _compute(tasks, client, progress)
    if output is not None:
        opened = {}
        for g, p in zip(groups, results):
            part = paramsnap.open(p)
            for n in g:
                opened[n] = part
        return {n: opened[n] for n in names}
    out = {}
    for part in results:
        for s, per_tensor in part.items():
            out.setdefault(s, {}).update(per_tensor)
    # The tensors in file order, as the single-process answer.
    return {s: {n: d[n] for n in names if n in d} for s, d in out.items()}
