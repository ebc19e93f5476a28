"""Loading libparamsnap.so (the Swift library's C ABI, Sources/ParamSnapC) and declaring its functions for ctypes."""
import ctypes
import json
import os

_ERR = 4096


class Closing:
    """A context manager that closes itself (also when collected): for the run and the writer."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Error(Exception):
    """An error of the native library, with its message (which names what and where)."""


class DamagedRunError(Error):
    """The run's data is damaged: a checksum, a tile that does not decode, a malformed file."""


class UnknownTensorError(Error, KeyError):
    """No tensor has that name (the message suggests the closest)."""

    def __str__(self):
        return self.args[0] if self.args else ""


class OutOfRangeError(Error, IndexError):
    """An index outside the tensor or the run."""


def _candidates():
    env = os.environ.get("PARAMSNAP_LIB")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libparamsnap.so")
    # Run from the repository (or installed editable): the SwiftPM build folder above.
    d = here
    for _ in range(6):
        d = os.path.dirname(d)
        for config in ("release", "debug"):
            yield os.path.join(d, ".build", config, "libparamsnap.so")


def load():
    tried = []
    for path in _candidates():
        if os.path.exists(path):
            lib = ctypes.CDLL(path)
            _declare(lib)
            return lib, path
        tried.append(path)
    raise ImportError("paramsnap: libparamsnap.so not found (tried " + ", ".join(tried) + "). Build it with "
                      "`swift build -c release --product paramsnap` in the ParamSnap repository, or set PARAMSNAP_LIB "
                      "to its path; `tools/python/install` builds it and installs the package with it.")


def _declare(lib):
    c_err = [ctypes.c_char_p, ctypes.c_ssize_t]
    lib.psnap_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)] + c_err
    lib.psnap_open.restype = ctypes.c_int32
    lib.psnap_open_tensors.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)] + c_err
    lib.psnap_open_tensors.restype = ctypes.c_int32
    lib.psnap_close.argtypes = [ctypes.c_void_p]
    lib.psnap_close.restype = None
    lib.psnap_describe.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)] + c_err
    lib.psnap_describe.restype = ctypes.c_int32
    lib.psnap_free.argtypes = [ctypes.c_void_p]
    lib.psnap_free.restype = None
    lib.psnap_tensor_index.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)] + c_err
    lib.psnap_tensor_index.restype = ctypes.c_int32
    lib.psnap_read_trajectories.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                                            ctypes.c_int64] + c_err
    lib.psnap_read_trajectories.restype = ctypes.c_int32
    lib.psnap_read_trajectory.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64] + c_err
    lib.psnap_read_trajectory.restype = ctypes.c_int32
    vp = ctypes.c_void_p
    lib.psnap_writer_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(vp)] + c_err
    lib.psnap_writer_open.restype = ctypes.c_int32
    lib.psnap_writer_tensors.argtypes = [vp, ctypes.POINTER(vp)] + c_err
    lib.psnap_writer_tensors.restype = ctypes.c_int32
    lib.psnap_writer_append.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(vp), ctypes.POINTER(ctypes.c_int64), ctypes.c_int64] + c_err
    lib.psnap_writer_append.restype = ctypes.c_int32
    lib.psnap_writer_commit.argtypes = [vp, ctypes.POINTER(ctypes.c_int64)] + c_err
    lib.psnap_writer_commit.restype = ctypes.c_int32
    lib.psnap_writer_close.argtypes = [vp] + c_err
    lib.psnap_writer_close.restype = ctypes.c_int32
    lib.psnap_pass.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(vp)] + c_err
    lib.psnap_pass.restype = ctypes.c_int32
    lib.psnap_read_snapshot.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64] + c_err
    lib.psnap_read_snapshot.restype = ctypes.c_int32


def is_int(k):
    """An integer of any Python or numpy type, not a bool."""
    import numpy as np
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


def call_json(lib, fn, *args):
    """Calls a native function that answers a malloc'd JSON string (its last argument before the error buffer)."""
    out = ctypes.c_void_p()
    call(fn, *args, ctypes.byref(out))
    try:
        return json.loads(ctypes.string_at(out.value).decode("utf-8"))
    finally:
        lib.psnap_free(out)


def call(fn, *args):
    """Calls a native function with an error buffer; raises the library's error on a non-zero code."""
    buf = ctypes.create_string_buffer(_ERR)
    code = fn(*args, buf, _ERR)
    if code != 0:
        msg = buf.value.decode("utf-8", "replace")
        if code == 1:
            raise (UnknownTensorError if msg.startswith("no tensor") else OutOfRangeError if "out of range" in msg else Error)(msg)
        if code == 2:
            raise DamagedRunError(msg)
        if code == 3:
            raise OSError(msg)
        raise Error(msg)
