"""Passes on a Dask cluster: one task per group of tensors, each running the native pass on its part of the run.

    import paramsnap.dask
    from distributed import Client
    client = Client("tcp://scheduler:8786")             # or Client(LocalCluster(...)); None: dask's current scheduler
    m = paramsnap.dask.moments("run.psnap", stats=["mean", "variance"], client=client)

Every worker must see the run at the same path (a shared filesystem) and have the paramsnap package. Per-parameter
statistics do not depend on which other parameters a task reads, so the answer is the single-process `Run.moments`
answer, bit for bit. Progress: `distributed.progress` on a cluster, `dask.diagnostics.ProgressBar` otherwise.
With `output=FOLDER` each task writes its part as a moments file and nothing large crosses the scheduler (the way
to run it on big runs). Only moments are distributed so far, by tensors of one file; a tensor is never split.
"""
import glob as _glob

import paramsnap


def tensor_groups(path, parts):
    """The run's tensors cut into at most `parts` groups of about equal parameter counts, in file order."""
    with paramsnap.open(path) as r:
        sizes = [(t.name, max(1, t.size)) for t in r.tensors]
    total = sum(n for _, n in sizes)
    groups, cur, acc = [], [], 0
    for name, n in sizes:
        cur.append(name)
        acc += n
        if acc * parts >= total * (len(groups) + 1) and len(groups) < parts - 1:
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


def _moments_part(path, stats, names, output, overwrite):
    with paramsnap.open(path) as r:
        res = r.moments(stats=stats, include=[_glob.escape(n) for n in names], workers=1, output=output, overwrite=overwrite)
        if output is None:
            return res
        res.close()
        return output


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
    if parts is None:
        parts = 2 * len(client.scheduler_info()["workers"]) if client is not None else 8
    if not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts={parts!r}: a positive integer")
    with paramsnap.open(path) as r:
        names = r._select(include) if include is not None else [t.name for t in r.tensors]
    wanted = set(names)
    groups = [[n for n in g if n in wanted] for g in tensor_groups(path, parts)]
    groups = [g for g in groups if g]
    outs = [None] * len(groups) if output is None else [os.path.join(str(output), f"moments-{k:03d}.psnap") for k in range(len(groups))]
    tasks = [dask.delayed(_moments_part, pure=False)(path, list(stats) if stats else None, g, o, overwrite)
             for g, o in zip(groups, outs)]
    if client is not None:
        futures = client.compute(tasks)
        if progress:
            from distributed import progress as _progress
            _progress(futures)
        results = client.gather(futures)
    elif progress:
        from dask.diagnostics import ProgressBar
        with ProgressBar():
            results = dask.compute(*tasks)
    else:
        results = dask.compute(*tasks)
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
