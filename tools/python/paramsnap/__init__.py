"""ParamSnap from Python: read .psnap training runs through the native library (the same decoder, checksums and errors
as the `psnap` command).

    import paramsnap
    run = paramsnap.open("run.psnap")        # memory-mapped: only the index and metadata are read
    run.tensors                              # names, dtypes, shapes
    run.snapshots                            # a pandas DataFrame (step, epoch, time, every metadata key), else a list
    w = run["fc1.weight"]                    # array-like of shape (*shape, snapshots)
    w[3, 17]                                 # one parameter's trajectory
    w[:, :5, -1]                             # reads only the blocks of parameters it needs
    run.snapshot(10)                         # {name: array} of one snapshot (as_torch=True for torch tensors)

    with paramsnap.Writer("run.psnap") as w:  # while training: no intermediate checkpoint files
        w.append(model.state_dict(), step=step, metadata={"loss": loss})

Values keep their dtype (f32, f16, f64); bf16 comes as `ml_dtypes.bfloat16` when ml_dtypes is installed, else as
float32 (exact) with `bf16="float32"`, or as its raw uint16 bit patterns with `bf16="bits"`.
"""
import json
import math
import operator
import warnings

import numpy as np

from . import _native
from ._native import DamagedRunError, Error, OutOfRangeError, UnknownTensorError

__all__ = ["open", "Run", "TensorArray", "Writer", "Error", "DamagedRunError", "UnknownTensorError", "OutOfRangeError"]

_lib = None
_DTYPES = {"f32": np.dtype("<f4"), "f16": np.dtype("<f2"), "f64": np.dtype("<f8"), "bf16": np.dtype("<u2")}
# Parameters read per native call when gathering a selection (bounds the scratch memory: × snapshots × element size).
_CHUNK = 1 << 16


def _library():
    global _lib
    if _lib is None:
        _lib, _ = _native.load()
    return _lib


def open(path, bf16=None):
    """Opens the run at `path`. `bf16`: None (ml_dtypes.bfloat16 if installed, else raw bits with a warning-free
    uint16 view), "float32" (widened, exact) or "bits" (uint16 bit patterns)."""
    return Run(path, bf16=bf16)


class Tensor:
    """A tensor of the run: name, dtype (the file's: f32, f16, bf16, f64), shape, parameter count."""

    def __init__(self, index, d):
        self.index, self.name, self.dtype, self.shape, self.size = index, d["name"], d["dtype"], tuple(d["shape"]), d["parameters"]

    def __repr__(self):
        return f"Tensor({self.name!r}, {self.dtype}, shape={self.shape})"


class Run(_native.Closing):
    """An open .psnap run (see the module's help). Use as a context manager, or call close()."""

    def __init__(self, path, bf16=None):
        import ctypes
        lib = _library()
        self._lib = lib
        h = ctypes.c_void_p()
        _native.call(lib.psnap_open, str(path).encode(), ctypes.byref(h))
        self._h = h
        out = ctypes.c_void_p()
        _native.call(lib.psnap_describe, self._h, ctypes.byref(out))
        try:
            self._info = json.loads(ctypes.string_at(out.value).decode("utf-8"))
        finally:
            lib.psnap_free(out)
        self.path = str(path)
        self.tensors = [Tensor(i, t) for i, t in enumerate(self._info["tensors"])]
        self._by_name = {t.name: t for t in self.tensors}
        self.snapshot_count = self._info["snapshotCount"]
        self.block_size = self._info["blockSize"]
        self.attributes = self._info.get("attributes") or {}
        #: Bytes after the newest valid commit (a torn tail left by a killed writer, or a truncated copy): not part
        #: of the run, which is what its newest valid commit holds.
        self.ignored_bytes = self._info.get("ignoredBytes", 0)
        if self.ignored_bytes:
            warnings.warn(f"{self.path}: {self.ignored_bytes:,} bytes after the newest valid commit are ignored (a torn tail "
                          f"left by a killed writer, or a truncated copy); the run is its newest commit: "
                          f"{self.snapshot_count} snapshots", stacklevel=3)
        if bf16 not in (None, "float32", "bits"):
            raise ValueError(f"bf16={bf16!r}: None, 'float32' or 'bits'")
        self._bf16 = bf16

    # -- lifetime
    def close(self):
        if getattr(self, "_h", None) is not None and self._h.value:
            self._lib.psnap_close(self._h)
            self._h = None

    def _handle(self):
        if self._h is None:
            raise Error(f"{self.path}: the run is closed")
        return self._h

    # -- description
    @property
    def snapshots(self):
        """The snapshots: index, step, epoch, time and every metadata key; a pandas DataFrame when pandas is installed."""
        rows = []
        for s in self._info["snapshots"]:
            row = {"index": s["index"], "step": s["step"], "epoch": s.get("epoch"), "time": s.get("time")}
            for k, v in (s.get("metadata") or {}).items():
                # A metadata key named like a column keeps its own column ("meta.step"), not the snapshot's.
                row[f"meta.{k}" if k in ("index", "step", "epoch", "time") or k.startswith("meta.") else k] = _meta(v)
            rows.append(row)
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows).set_index("index")

    @property
    def steps(self):
        return np.array([s["step"] for s in self._info["snapshots"]], dtype=np.int64)

    def __repr__(self):
        return (f"<paramsnap.Run {self.path!r}: {len(self.tensors)} tensors, {self._info['parameterCount']:,} parameters, "
                f"{self.snapshot_count} snapshots>")

    def __contains__(self, name):
        return name in self._by_name

    def __iter__(self):
        return iter(t.name for t in self.tensors)

    def _tensor(self, name):
        if isinstance(name, Tensor):
            return name
        t = self._by_name.get(name)
        if t is None:
            import ctypes
            if "\x00" in str(name):
                raise UnknownTensorError(f"no tensor named {name!r} (a name holds no NUL)")
            i = ctypes.c_int64()
            # The library's error names the closest names.
            _native.call(self._lib.psnap_tensor_index, self._handle(), str(name).encode(), ctypes.byref(i))
            t = self.tensors[i.value]
        return t

    # -- reading
    def __getitem__(self, name):
        """The tensor `name` as an array-like of shape (*shape, snapshots)."""
        return TensorArray(self, self._tensor(name))

    def _out_dtype(self, t):
        if t.dtype != "bf16":
            return _DTYPES[t.dtype]
        if self._bf16 == "bits":
            return np.dtype("<u2")
        if self._bf16 == "float32":
            return np.dtype("<f4")
        try:
            import ml_dtypes
            return np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            raise Error(f"tensor '{t.name}' is bf16: install ml_dtypes, or open with bf16='float32' (exact) or bf16='bits'")

    def _convert(self, t, raw):
        """Raw little-endian values (a uint16 array for bf16) as the caller's dtype."""
        if t.dtype != "bf16":
            return raw
        if self._bf16 == "bits":
            return raw
        if self._bf16 == "float32":
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.view(self._out_dtype(t))

    def trajectories(self, name, start=0, stop=None):
        """Parameters [start, stop) of tensor `name` (flat, row-major), every snapshot: an array (stop − start, S)."""
        import ctypes
        t = self._tensor(name)
        stop = t.size if stop is None else stop
        if not (0 <= start <= stop <= t.size):
            raise OutOfRangeError(f"parameters {start}..<{stop} of tensor '{t.name}' out of range (it has {t.size})")
        raw = np.empty((stop - start, self.snapshot_count), dtype=_DTYPES[t.dtype])
        if raw.size:
            _native.call(self._lib.psnap_read_trajectories, self._handle(), t.index, start, stop,
                         raw.ctypes.data_as(ctypes.c_void_p), raw.nbytes)
        return self._convert(t, raw)

    def _trajectory(self, t, p):
        import ctypes
        raw = np.empty(self.snapshot_count, dtype=_DTYPES[t.dtype])
        _native.call(self._lib.psnap_read_trajectory, self._handle(), t.index, p, raw.ctypes.data_as(ctypes.c_void_p), raw.nbytes)
        return self._convert(t, raw)

    def snapshot(self, k, tensors=None, as_torch=False):
        """Snapshot `k` (negative from the end): {name: array of the tensor's shape}, for `tensors` (default all)."""
        import ctypes
        S = self.snapshot_count
        k = _index(k, "snapshot")
        if not -S <= k < S:
            raise OutOfRangeError(f"snapshot {k} out of range (the run has {S})")
        k = k % S
        out = {}
        if isinstance(tensors, str):
            tensors = [tensors]
        for name in (tensors if tensors is not None else [t.name for t in self.tensors]):
            t = self._tensor(name)
            raw = np.empty(t.size, dtype=_DTYPES[t.dtype])
            if raw.size:
                _native.call(self._lib.psnap_read_snapshot, self._handle(), t.index, k, raw.ctypes.data_as(ctypes.c_void_p), raw.nbytes)
            if as_torch:
                import torch
                if t.dtype == "bf16":
                    a = torch.from_numpy(raw.view(np.int16).copy()).view(torch.bfloat16).reshape(t.shape)
                else:
                    a = torch.from_numpy(raw.copy()).reshape(t.shape)
            else:
                a = self._convert(t, raw).reshape(t.shape)
            out[t.name] = a
        return out


# -- the analysis passes (native, all cores, streaming)

def _select(run, include):
    """Tensor names matching the glob(s) in `include` (None: every tensor)."""
    if include is None:
        return None
    import fnmatch
    pats = [include] if isinstance(include, str) else list(include)
    names = [t.name for t in run.tensors if any(fnmatch.fnmatchcase(t.name, p) for p in pats)]
    if not names:
        raise UnknownTensorError(f"no tensor matches {pats}")
    return names


_INT_OPTIONS = {"k": (1, 1 << 20), "top": (1, 1 << 30), "iterations": (0, 1 << 20), "seed": (0, (1 << 64) - 1),
                "width": (1, 1 << 20), "height": (1, 1 << 20), "removeModes": (0, 1 << 20), "workers": (1, 1024)}


def _pass(run, request):
    import ctypes
    for key, (lo, hi) in _INT_OPTIONS.items():
        v = request.get(key)
        if v is not None and (not _is_int(v) or not lo <= int(v) <= hi):
            raise ValueError(f"{key}={v!r}: an integer in {lo} … {hi}")
        if v is not None:
            request[key] = int(v)
    if request.get("statistics") is not None and len(set(request["statistics"])) != len(request["statistics"]):
        raise ValueError(f"stats={request['statistics']}: a statistic named twice")
    for key in ("queries", "range"):
        v = request.get(key)
        if v is not None and not np.isfinite(np.asarray(v, dtype=np.float64)).all():
            raise ValueError(f"{key}: NaN or infinity (a query is a trajectory of finite values; a range is two finite numbers)")
    out = ctypes.c_void_p()
    _native.call(run._lib.psnap_pass, run._handle(), json.dumps({k: v for k, v in request.items() if v is not None}).encode(), ctypes.byref(out))
    try:
        return json.loads(ctypes.string_at(out.value).decode("utf-8"))
    finally:
        run._lib.psnap_free(out)


def _per_tensor(path, bf16=None):
    """A per-parameter output file (moments, groups, fit) read whole: ({tensor: array (*shape, columns)}, column names)."""
    with Run(path) as f:
        names = [s.get("statistic", str(s["index"])) for s in (f.snapshots.reset_index().to_dict("records") if hasattr(f.snapshots, "reset_index") else f.snapshots)]
        return {t.name: np.asarray(f[t.name]).astype(np.float64, copy=False) for t in f.tensors}, names


def _temp_output(run):
    import os
    import tempfile
    fd, path = tempfile.mkstemp(suffix=".psnap", dir=os.path.dirname(os.path.abspath(run.path)) if os.access(os.path.dirname(os.path.abspath(run.path)), os.W_OK) else None)
    os.close(fd)
    os.remove(path)
    return path


def _modes(self, k=5, on="values", include=None, workers=None):
    """The run's k principal trajectory modes (`psnap modes`): eigenvalues, explained variance ratios, modes (k × S)."""
    r = _pass(self, {"pass": "modes", "k": k, "on": on, "tensors": _select(self, include), "workers": workers})
    return {"eigenvalues": np.array(r["eigenvalues"]), "explained_variance_ratio": np.array(r["explainedVarianceRatio"]),
            "modes": np.array(r["modes"]), "parameters": r["parameters"], "non_finite": r["nonFinite"], "on": r["view"]}


def _similar(self, query, top=50, on="values", include=None, remove_modes=0, workers=None):
    """The `top` parameters whose trajectories correlate best with `query` (`psnap similar`, exact Pearson r): a query
    is (tensor name, index tuple or flat index) or a trajectory of S values (on="steps" takes its steps); a list of queries
    gives a list of answers. Each answer: a pandas DataFrame (tensor, index, r), else a list of dicts."""
    many = isinstance(query, list) and query and not isinstance(query[0], (int, float, np.floating, np.integer))
    qs = query if many else [query]
    series = []
    for q in qs:
        if isinstance(q, tuple) and len(q) == 2 and isinstance(q[0], str):
            name, idx = q
            t = self._tensor(name)
            flat = int(np.ravel_multi_index(idx, t.shape)) if isinstance(idx, tuple) else int(idx)
            series.append(self.trajectories(name, flat, flat + 1)[0].astype(np.float64).tolist())
        else:
            series.append(np.asarray(q, dtype=np.float64).tolist())
    r = _pass(self, {"pass": "similar", "queries": series, "top": top, "on": on, "tensors": _select(self, include),
                     "removeModes": remove_modes or None, "workers": workers})
    out = []
    for hits in r["hits"]:
        rows = [{"tensor": h["tensor"], "index": tuple(int(i) for i in np.unravel_index(h["index"], self._tensor(h["tensor"]).shape)),
                 "flat_index": h["index"], "r": h["r"]} for h in hits]
        try:
            import pandas as pd
            out.append(pd.DataFrame(rows, columns=["tensor", "index", "flat_index", "r"]))
        except ImportError:
            out.append(rows)
    return out if many else out[0]


def _moments(self, stats=None, include=None, output=None, overwrite=False, workers=None):
    """Per-parameter statistics of every trajectory (`psnap moments`, f64). With `output`, the file is kept and returned
    opened (lazy, for big runs); without, {statistic: {tensor: array of the tensor's shape}}."""
    path = output or _temp_output(self)
    r = _pass(self, {"pass": "moments", "statistics": list(stats) if stats else None, "tensors": _select(self, include),
                     "output": str(path), "overwrite": overwrite or output is None, "workers": workers})
    if output:
        return Run(path)
    try:
        arrays, names = _per_tensor(path)
    finally:
        import os
        os.path.exists(path) and os.remove(path)
    return {s: {t: a[..., i] for t, a in arrays.items()} for i, s in enumerate(r["statistics"])}


def _groups(self, k=16, on="values", include=None, iterations=25, seed=0, output=None, overwrite=False, workers=None):
    """k-means groups of trajectory shapes (`psnap groups`): centroids, sizes, rms distances, objective history, and
    each parameter's group and distance ({tensor: array}; −1 undefined, −2 NaN/inf). With `output` the per-parameter
    file is kept."""
    path = output or _temp_output(self)
    r = _pass(self, {"pass": "groups", "k": k, "on": on, "tensors": _select(self, include), "iterations": iterations, "seed": seed,
                     "output": str(path), "overwrite": overwrite or output is None, "workers": workers})
    try:
        arrays, _ = _per_tensor(path)
    finally:
        if not output:
            import os
            os.path.exists(path) and os.remove(path)
    return {"centroids": np.array(r["centroids"]), "sizes": np.array(r["sizes"]), "rms": np.array(r["rms"], dtype=float),
            "objective_history": np.array(r["objectiveHistory"]), "iterations": r["iterations"],
            "group": {t: a[..., 0].astype(np.int64) for t, a in arrays.items()}, "distance": {t: a[..., 1] for t, a in arrays.items()}}


def _fit(self, families=("linear", "quadratic", "modes:5"), on="values", include=None, output=None, overwrite=False, workers=None):
    """Laws fitted to every trajectory (`psnap fit`, f64): {"families", "columns", "best" counts, "x", "values":
    {tensor: array (*shape, columns)}} (per family its coefficients, sse, r2, aic, bic; then best). With `output` the
    file is kept and "values" is not read."""
    path = output or _temp_output(self)
    r = _pass(self, {"pass": "fit", "families": list(families), "on": on, "tensors": _select(self, include),
                     "output": str(path), "overwrite": overwrite or output is None, "workers": workers})
    res = {"families": r["families"], "best": dict(zip(r["families"], r["best"])), "series": r["series"], "non_finite": r["nonFinite"],
           "x": np.array(r["x"])}
    if output:
        res["run"] = Run(path)
        return res
    try:
        res["values"], res["columns"] = _per_tensor(path)
    finally:
        import os
        os.path.exists(path) and os.remove(path)
    return res


def _chart(self, view="values", width=1000, height=500, include=None, range=None, workers=None):
    """The density chart's counts (`psnap chart`, spec/CHARTS.md): {"counts": uint64 (height, width), row 0 the lowest
    values; "lo", "hi", "below", "above" per column, "steps" of the points, "series", "constant", "non_finite"}."""
    r = _pass(self, {"pass": "chart", "view": view, "width": width, "height": height, "tensors": _select(self, include),
                     "range": list(range) if range is not None else None, "workers": workers})
    return {"counts": np.array(r["counts"], dtype=np.uint64).reshape(r["height"], r["width"]), "lo": r["lo"], "hi": r["hi"],
            "below": np.array(r["below"], dtype=np.uint64), "above": np.array(r["above"], dtype=np.uint64),
            "steps": np.array(r["pointSteps"]), "series": r["series"], "constant": r["constant"], "non_finite": r["nonFinite"]}


Run.modes = _modes
Run.similar = _similar
Run.moments = _moments
Run.groups = _groups
Run.fit = _fit
Run.chart = _chart


def _meta(v):
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    return v


class TensorArray:
    """A tensor over the run's snapshots, shape (*tensor_shape, S): numpy-style indexing reads only the blocks of
    parameters the selection touches. Indices per dimension: an int, a slice, `...`, or a list/array of ints
    (lists select per dimension, as xarray's and zarr's orthogonal indexing, not numpy's pointwise)."""

    def __init__(self, run, tensor):
        self.run, self.tensor = run, tensor
        self.shape = tensor.shape + (run.snapshot_count,)
        self.ndim = len(self.shape)
        self.dtype = run._out_dtype(tensor) if tensor.dtype != "bf16" or run._bf16 else _bf16_dtype_or_bits()

    @property
    def size(self):
        return math.prod(self.shape)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"<paramsnap.TensorArray {self.tensor.name!r} shape={self.shape} dtype={self.dtype}>"

    def __array__(self, dtype=None, copy=None):
        a = self[...]
        return a.astype(dtype) if dtype is not None else a

    def _keys(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if Ellipsis in [k for k in key if k is Ellipsis]:
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        if len(key) > self.ndim:
            raise OutOfRangeError(f"too many indices for '{self.tensor.name}': {len(key)} for {self.ndim} dimensions {self.shape}")
        key = key + (slice(None),) * (self.ndim - len(key))
        sel, drop = [], []
        for d, (k, n) in enumerate(zip(key, self.shape)):
            if isinstance(k, (bool, np.bool_)) or k is None:
                raise IndexError(f"dimension {d}: indices are ints, slices, '...' or 1-D integer or boolean lists "
                                 f"(not {k!r}: no new axes, no boolean scalars)")
            if _is_int(k):
                k = operator.index(k)
                if not -n <= k < n:
                    raise OutOfRangeError(f"index {k} out of range for dimension {d} of '{self.tensor.name}' (size {n})")
                sel.append(np.array([k % n])); drop.append(True)
            elif isinstance(k, slice):
                sel.append(np.arange(n)[k]); drop.append(False)
            else:
                a = np.asarray(k)
                if a.size == 0:
                    a = a.astype(np.intp)
                if a.dtype == bool:
                    if a.shape != (n,):
                        raise OutOfRangeError(f"boolean index of shape {a.shape} for dimension {d} of size {n}")
                    a = np.nonzero(a)[0]
                if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
                    raise IndexError(f"dimension {d}: indices must be ints, slices, '...' or 1-D integer lists")
                if a.size and (a.min() < -n or a.max() >= n):
                    raise OutOfRangeError(f"index out of range for dimension {d} of '{self.tensor.name}' (size {n})")
                a = a.astype(np.intp)
                sel.append(a % n if a.size else a); drop.append(False)
        return sel, drop

    def __getitem__(self, key):
        # One parameter (every index an int): its trajectory through the reader's tile cache.
        shape = self.tensor.shape
        if isinstance(key, tuple) and len(key) == len(shape) and shape and all(_is_int(k) for k in key):
            flat = 0
            for d, (k, n) in enumerate(zip(key, shape)):
                k = operator.index(k)
                if not -n <= k < n:
                    raise OutOfRangeError(f"index {k} out of range for dimension {d} of '{self.tensor.name}' (size {n})")
                flat = flat * n + (k % n)
            return self.run._trajectory(self.tensor, flat)
        sel, drop = self._keys(key)
        pdims, ssel = sel[:-1], sel[-1]
        pshape = self.tensor.shape
        counts = [len(s) for s in pdims]
        if pshape:
            grids = np.ix_(*pdims) if pdims else ()
            flat = np.ravel_multi_index(grids, pshape).reshape(-1) if all(counts) else np.zeros(0, dtype=np.int64)
        else:
            flat = np.zeros(1, dtype=np.int64)
        S = self.run.snapshot_count
        out = np.empty((flat.size, len(ssel)), dtype=self.run._out_dtype(self.tensor) if self.tensor.dtype != "bf16" or self.run._bf16 else _bf16_dtype_or_bits())
        if flat.size and len(ssel):
            order = np.argsort(flat, kind="stable")
            sorted_flat = flat[order]
            # The blocks touched, read in runs of consecutive blocks of at most _CHUNK parameters.
            B = self.run.block_size
            blocks = np.unique(sorted_flat // B)
            runs = np.split(blocks, np.nonzero(np.diff(blocks) != 1)[0] + 1)
            for r in runs:
                for c0 in range(0, len(r), max(1, _CHUNK // B)):
                    part = r[c0:c0 + max(1, _CHUNK // B)]
                    p0, p1 = int(part[0]) * B, min(self.tensor.size, (int(part[-1]) + 1) * B)
                    rows = self.run.trajectories(self.tensor, p0, p1)
                    lo, hi = np.searchsorted(sorted_flat, [p0, p1])
                    pick = sorted_flat[lo:hi] - p0
                    whole = len(ssel) == S and np.array_equal(ssel, np.arange(S))
                    vals = rows[pick] if whole else rows[pick][:, ssel]
                    out[order[lo:hi]] = vals
        out = out.reshape(tuple(counts) + (len(ssel),))
        squeeze = tuple(d for d, x in enumerate(drop) if x)
        return out.squeeze(axis=squeeze) if squeeze else out


def _is_int(k):
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


def _index(k, what):
    """An integer index (any int type; not a bool or a float), as a Python int."""
    if not _is_int(k):
        raise TypeError(f"{what} {k!r}: an integer")
    return operator.index(k)


def _bf16_dtype_or_bits():
    try:
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    except ImportError:
        raise Error("bf16 tensor: install ml_dtypes, or open with bf16='float32' (exact) or bf16='bits'")


from .writer import Writer  # noqa: E402
