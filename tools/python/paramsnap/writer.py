"""The training writer from Python: snapshots of a model's parameters appended to a .psnap run while it trains, with
the library's commit protocol (a commit is durable when it returns; a killed process loses only what was staged).

    with paramsnap.Writer("run.psnap", memory="1GiB") as w:
        for step in ...:
            ...
            if step % 100 == 0:
                w.append(model.state_dict(), step=step, epoch=epoch, metadata={"loss": loss, "lr": lr})

Tensors are torch tensors or numpy arrays (float32, float16, bfloat16, float64), passed to the library without an
intermediate file (a CPU tensor's own memory when it is contiguous). The first append fixes the run's tensors; an
existing run is resumed (the same tensors required) unless `overwrite=True`.
"""
import ctypes
import json
import re
import time as _time

import numpy as np

from . import _native

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def _bytes(memory):
    if isinstance(memory, int):
        return memory
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", str(memory))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"memory={memory!r}: a byte count or e.g. '512MiB', '1GiB'")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _array(name, x):
    """(dtype name in the file, a contiguous numpy array holding the raw values) for a torch tensor or an array."""
    mod = type(x).__module__
    if mod.startswith("torch"):
        import torch
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        kinds = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64"}
        if t.dtype not in kinds:
            raise TypeError(f"tensor '{name}' has dtype {t.dtype}: float32, float16, bfloat16 or float64")
        kind = kinds[t.dtype]
        a = t.view(torch.int16).numpy().view(np.uint16) if kind == "bf16" else t.numpy()
        return kind, a, tuple(t.shape)
    a = np.asarray(x)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    if a.dtype.name == "bfloat16":
        kind = "bf16"
    else:
        kind = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16", np.dtype(np.float64): "f64"}.get(a.dtype)
        if kind is None:
            raise TypeError(f"tensor '{name}' has dtype {a.dtype}: float32, float16, bfloat16 or float64")
    return kind, np.ascontiguousarray(a), a.shape


def _number(v):
    """A metadata number as the format writes it: finite as is, NaN and infinities as "nan", "inf", "-inf"."""
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _int64(v, what):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{what}={v!r}: an integer")
    v = int(v)
    if not -(1 << 63) <= v < (1 << 63):
        raise ValueError(f"{what}={v}: outside the 64-bit range")
    return v


class Writer(_native.Closing):
    """Appends snapshots to the run at `path` (see the module's help). `memory`: the library's budget (staged
    snapshots beyond half of it spill to a file beside the run); `snapshots_per_segment`: snapshots staged before an
    automatic commit (1: every append is durable when it returns); `block_size`: parameters per block of a new run;
    `space_bound`: after a one-snapshot commit the run's live bytes stay within this many times its compact size,
    merging more than the tiered plan when needed (spec §10; None: the tiered plan alone, fewer bytes rewritten)."""

    def __init__(self, path, memory="1GiB", snapshots_per_segment=16, block_size=None, overwrite=False, resume=True,
                 attributes=None, workers=None, space_bound=1.2):
        from . import _library
        self._lib = _library()
        self.path = str(path)
        if _bytes(memory) >= 1 << 62:
            raise ValueError(f"memory={memory!r}: too large")
        if attributes:
            attributes = {str(k): (v if isinstance(v, str) else _number(float(v))) for k, v in attributes.items()}
        self._options = {"memoryBytes": _bytes(memory), "snapshotsPerSegment": int(snapshots_per_segment),
                         "overwrite": bool(overwrite), "resume": bool(resume)}
        if block_size is not None:
            self._options["blockSize"] = int(block_size)
        if workers is not None:
            self._options["workers"] = int(workers)
        if space_bound is None:
            self._options["spaceBound"] = 0
        else:
            b = float(space_bound)
            if not 1.05 <= b <= 100:   # Spec.spaceBoundRange
                raise ValueError(f"space_bound={space_bound!r}: a ratio from 1.05 to 100, or None")
            self._options["spaceBound"] = b
        if attributes:
            self._options["attributes"] = attributes
        self._h = None
        self._order = None
        self._layout = None
        self._closed = False
        self.committed = 0

    def _open(self, arrays):
        tensors = [{"name": n, "dtype": k, "shape": list(s)} for n, (k, a, s) in arrays.items()]
        h = ctypes.c_void_p()
        _native.call(self._lib.psnap_writer_open, self.path.encode(), json.dumps(tensors).encode(),
                     json.dumps(self._options).encode(), ctypes.byref(h))
        self._h = h
        declared = _native.call_json(self._lib, self._lib.psnap_writer_tensors, self._h)
        self._order = [t["name"] for t in declared]
        self._layout = {t["name"]: (t["dtype"], tuple(t["shape"])) for t in declared}

    def append(self, tensors, step, epoch=None, time=None, metadata=None):
        """Stages one snapshot: `tensors` maps names to torch tensors or numpy arrays (e.g. `model.state_dict()`;
        non-float entries such as integer buffers are refused by name: pass only the parameters)."""
        if self._closed:
            raise _native.Error(f"{self.path}: the writer is closed")
        arrays = {}
        for n, x in tensors.items():
            name = str(n)
            if name in arrays:
                raise ValueError(f"tensor name '{name}' given twice")
            if "\x00" in name:
                raise ValueError(f"tensor name {name!r}: a name holds no NUL")
            arrays[name] = _array(name, x)
        step = _int64(step, "step")
        if self._h is None:
            self._open(arrays)
        missing = [n for n in self._order if n not in arrays]
        extra = [n for n in arrays if n not in set(self._order)]
        if missing or extra:
            raise _native.Error(f"{self.path}: the snapshot's tensors differ from the run's: "
                                f"{'missing ' + repr(missing[:3]) if missing else ''}{' ' if missing and extra else ''}"
                                f"{'not in the run ' + repr(extra[:3]) if extra else ''}")
        for name, (kind, a, shape) in arrays.items():
            want = self._layout.get(name)
            if want is not None and (kind, tuple(shape)) != want:
                raise ValueError(f"{self.path}: tensor '{name}' is {kind} {tuple(shape)}; the run holds {want[0]} {want[1]}")
        meta = {}
        for k, v in (metadata or {}).items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise TypeError(f"metadata '{k}': a number or a string, not {type(v).__name__}")
            meta[str(k)] = v if isinstance(v, str) else _number(float(v))
        t = float(_time.time() if time is None else time)
        if not np.isfinite(t):
            raise ValueError(f"time={time!r}: a finite number of seconds")
        info = {"step": step, "time": t}
        if epoch is not None:
            e = float(epoch)
            if not np.isfinite(e):
                raise ValueError(f"epoch={epoch!r}: a finite number")
            info["epoch"] = e
        if meta:
            info["metadata"] = meta
        n = len(self._order)
        ptrs = (ctypes.c_void_p * n)()
        sizes = (ctypes.c_int64 * n)()
        keep = []
        for i, name in enumerate(self._order):
            a = arrays[name][1]
            keep.append(a)
            ptrs[i] = a.ctypes.data if a.nbytes else None
            sizes[i] = a.nbytes
        _native.call(self._lib.psnap_writer_append, self._h, json.dumps(info).encode(), ptrs, sizes, n)
        del keep

    def commit(self):
        """Commits the staged snapshots (durable when it returns); returns the snapshots the run holds."""
        if self._h is None:
            return self.committed
        c = ctypes.c_int64()
        _native.call(self._lib.psnap_writer_commit, self._h, ctypes.byref(c))
        self.committed = c.value
        return self.committed

    def close(self):
        """Commits what is staged and closes the run."""
        self._closed = True
        if self._h is not None:
            h, self._h = self._h, None
            _native.call(self._lib.psnap_writer_close, h)
