"""xarray backend: `xr.open_dataset("run.psnap", engine="paramsnap")` (or a sharded run's folder) gives one DataArray per tensor with dims
(*tensor_dims, "snapshot") and the snapshots' step, epoch, time and metadata (loss, learning rate …) as coordinates.
Values are read lazily through the native library (outer indexing: only the blocks of parameters touched). With
`chunks={}` the arrays are Dask-backed in the preferred chunks: whole rows of the first dimension, every snapshot,
about `chunk_mb` MB each and a multiple of the run's block size of parameters when the rows allow (so a chunk decodes
whole tiles), not one task per tile.

Options: `bf16="float32"` (default: exact float32 for bf16 tensors; "bits" for the raw uint16), `chunk_mb=128`.
"""
import math
import os

import numpy as np
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

import paramsnap


_opened = {}


def _reopen(path, bf16, name):
    """A worker's array of tensor `name` (the run opened once per process): what a pickled array becomes."""
    run = _opened.get((path, bf16))
    if run is None:
        run = _opened[(path, bf16)] = paramsnap.open(path, bf16=bf16)
    return ParamSnapArray(run, next(t for t in run.tensors if t.name == name), bf16)


class ParamSnapArray(BackendArray):
    def __init__(self, run, tensor, bf16="float32"):
        self.run, self.tensor, self.bf16 = run, tensor, bf16
        self.array = run[tensor.name]
        self.shape = self.array.shape
        self.dtype = self.array.dtype

    def __reduce__(self):
        # Sent to a Dask worker by path (the native handle is not picklable): the worker opens the run itself, so every
        # worker must see the run at the same path.
        return (_reopen, (self.run.path, self.bf16, self.tensor.name))

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._raw)

    def _raw(self, key):
        return self.array[tuple(key)]


def _dims(name, ndim):
    return tuple(f"{name}/dim_{i}" for i in range(ndim)) + ("snapshot",)


def _chunk_rows(shape, S, itemsize, block, chunk_mb):
    """Rows of the first dimension per chunk: ~chunk_mb MB, a multiple of the block size in parameters when possible."""
    if not shape:
        return None
    inner = math.prod(shape[1:]) if len(shape) > 1 else 1
    row_bytes = max(1, inner * S * itemsize)
    rows = max(1, int(chunk_mb * 1e6 // row_bytes))
    # Align: rows × inner a multiple of the block size (a chunk then holds whole tiles).
    step = block // math.gcd(block, inner)
    rows = max(step, rows // step * step)
    return min(shape[0], rows)


class ParamSnapBackendEntrypoint(BackendEntrypoint):
    description = "ParamSnap .psnap training runs (one variable per tensor, dims (*tensor_dims, 'snapshot'))"
    url = "https://github.com/paramsnap/paramsnap"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "bf16", "chunk_mb")

    def guess_can_open(self, filename_or_obj):
        try:
            name = str(filename_or_obj)
            return name.endswith(".psnap") or os.path.isfile(os.path.join(name, "manifest.json"))   # or a sharded run
        except Exception:
            return False

    def open_dataset(self, filename_or_obj, *, drop_variables=None, bf16="float32", chunk_mb=128):
        import xarray as xr
        run = paramsnap.open(os.fspath(filename_or_obj), bf16=bf16)
        drop = set(drop_variables or ())
        variables = {}
        S = run.snapshot_count
        for t in run.tensors:
            if t.name in drop:
                continue
            data = indexing.LazilyIndexedArray(ParamSnapArray(run, t, bf16))
            v = xr.Variable(_dims(t.name, len(t.shape)), data, attrs={"dtype_in_file": t.dtype})
            rows = _chunk_rows(t.shape, S, v.dtype.itemsize, run.block_size, chunk_mb)
            pref = {"snapshot": S}
            for i, n in enumerate(t.shape):
                pref[f"{t.name}/dim_{i}"] = rows if i == 0 else n
            v.encoding["preferred_chunks"] = pref
            variables[t.name] = v
        frame = run.snapshots
        rows = frame.reset_index().to_dict("records") if hasattr(frame, "reset_index") else frame
        if "snapshot" in variables:
            raise ValueError(f"{run.path}: a tensor is named 'snapshot', the dimension of the snapshots")
        coords = {"snapshot": np.arange(S)}
        for key in (rows[0].keys() if rows else []):
            if key == "index":
                continue
            name = f"snapshot_{key}" if key in variables else key       # a tensor named like a coordinate keeps its name
            vals = [r.get(key) for r in rows]
            try:
                coords[name] = ("snapshot", np.array([np.nan if v is None else v for v in vals], dtype=float if key != "step" else np.int64))
            except (TypeError, ValueError):
                coords[name] = ("snapshot", np.array(["" if v is None else str(v) for v in vals], dtype=object))
        ds = xr.Dataset(variables, coords=coords, attrs={"source": run.path, **{k: str(v) for k, v in run.attributes.items()
                                                                             if isinstance(v, (str, int, float)) and len(str(v)) < 256}})
        ds.set_close(run.close)
        return ds
