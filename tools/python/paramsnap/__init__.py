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
import ctypes
import math
import operator
import warnings

import numpy as np

from . import _native
from ._native import DamagedRunError, Error, OutOfRangeError, UnknownTensorError, is_int
from .passes import Passes

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


def open(path, bf16=None, tensors=None):
    """Opens the run at `path` (a .psnap file or a sharded run's folder). `bf16`: None (ml_dtypes.bfloat16 if
    installed, else raw bits with a warning-free uint16 view), "float32" (widened, exact) or "bits" (uint16 bit
    patterns). `tensors`: of a sharded run, open only the shards holding these tensors (names); the others cannot be
    read through this handle (what a distributed task does: it reads its shards' indexes, not every shard's)."""
    return Run(path, bf16=bf16, tensors=tensors)


class Tensor:
    """A tensor of the run: name, dtype (the file's: f32, f16, bf16, f64), shape, parameter count."""

    def __init__(self, index, d):
        self.index, self.name, self.dtype, self.shape, self.size = index, d["name"], d["dtype"], tuple(d["shape"]), d["parameters"]

    def __repr__(self):
        return f"Tensor({self.name!r}, {self.dtype}, shape={self.shape})"


class Run(Passes, _native.Closing):
    """An open .psnap run (see the module's help). Use as a context manager, or call close()."""

    def __init__(self, path, bf16=None, tensors=None):
        if bf16 not in (None, "float32", "bits"):
            raise ValueError(f"bf16={bf16!r}: None, 'float32' or 'bits'")
        self._bf16 = bf16
        self._lib = _library()
        h = ctypes.c_void_p()
        if tensors is None:
            _native.call(self._lib.psnap_open, str(path).encode(), ctypes.byref(h))
        else:
            import json as _json
            _native.call(self._lib.psnap_open_tensors, str(path).encode(), _json.dumps([str(n) for n in tensors]).encode(), ctypes.byref(h))
        self._h = h
        self._info = _native.call_json(self._lib, self._lib.psnap_describe, self._h)
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
    def storage(self):
        """Sizes in bytes, named as `snapinfo --json` names them: fileBytes, committedBytes, rawBytes and storedBytes
        (of the live tiles), deadBytes (replaced tiles and old commits), allocatedBytes (the space on disk, present
        when the writer returned dead space to the filesystem as holes, else None)."""
        s = dict(self._info["storage"])
        s.setdefault("allocatedBytes", None)
        return s

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
        raw = np.empty(self.snapshot_count, dtype=_DTYPES[t.dtype])
        _native.call(self._lib.psnap_read_trajectory, self._handle(), t.index, p, raw.ctypes.data_as(ctypes.c_void_p), raw.nbytes)
        return self._convert(t, raw)

    def snapshot(self, k, tensors=None, as_torch=False):
        """Snapshot `k` (negative from the end): {name: array of the tensor's shape}, for `tensors` (default all)."""
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
        self.dtype = run._out_dtype(tensor)

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
            if is_int(k):
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
        if isinstance(key, tuple) and len(key) == len(shape) and shape and all(is_int(k) for k in key):
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
        out = np.empty((flat.size, len(ssel)), dtype=self.dtype)
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


def _index(k, what):
    """An integer index (any int type; not a bool or a float), as a Python int."""
    if not is_int(k):
        raise TypeError(f"{what} {k!r}: an integer")
    return operator.index(k)



from .writer import Writer  # noqa: E402
