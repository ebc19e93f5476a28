#!/usr/bin/env python3
# ParamSnap against the tools a user would pick instead (zarr, blosc2, HDF5, pcodec, fpzip, raw .npy, the safetensors
# folder, zstd).
"""Usage (through run.sh, which makes the venv and the release builds):
  peers.py bench --psnap BIN --probe BIN [--data DIR[:DIR…]] [--runs tiny-gpt,tiny-gpt-bf16,mlp-digits,synthetic]
                 [--gib 1] [--repeat 3] [--work /tmp/psnap-peers] [--out results] [--contenders a,b,…]
  peers.py worker ACTION CONTENDER RUNDIR      (internal: one measurement in a fresh process, one JSON line out)

Every contender stores the same run: each tensor flattened to n parameters, as a parameter-major array
[n, snapshots] with chunks of (B parameters × all snapshots), B = ParamSnap's block size for the run (FORMAT §4.1:
a tile of up to 256 KiB; --chunk B forces one size), so chunks match ParamSnap's tiles (one segment). bf16 runs are stored as their uint16 bit patterns
(numpy has no bf16), losslessly.
"""
import argparse
import bisect
import datetime
import glob
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SLAB = 65536          # parameters gathered / scanned per step (whole chunks: every chunk size divides it)


def psnap_block(S, itemsize, tile=262144):
    """ParamSnap's block size for a converted run (spec/FORMAT.md §4.1, Spec.compactBlockSize): the largest power of
    two B with B * S * itemsize <= 256 KiB, within 64 ... 4096. The chunked contenders use the same chunk."""
    b = 64
    while b * 2 <= 4096 and b * 2 * max(1, S) * itemsize <= tile:
        b *= 2
    return b
N_TRAJ = 1000         # random trajectories per latency measurement
WARMUP = 100
N_TENSOR = 20         # repeats of the one-tensor-at-one-snapshot read inside one process
SEED = 20261129

CONTENDERS = [
    # name, label, description
    ("psnap", "ParamSnap (default chain)", "psnap convert; linpred + lead + split + zstdplanes, L3 (L9 for 2-byte runs), zstd matches of 7 bytes or more, B auto (tiles up to 256 KiB, spec §4.1)"),
    ("psnap_prev", "ParamSnap, previous default", "psnap convert --min-match 0 (the default until 2026-12-05: zstd's own shortest match at each level)"),
    ("psnap_lenrans", "ParamSnap, linpred + lenrans", "psnap convert --codec linpred,lenrans; B auto (tiles up to 256 KiB, spec §4.1), groups of 32 parameters"),
    ("psnap_v1", "ParamSnap, split + bytedelta + zstdplanes", "psnap convert --codec split,bytedelta,zstdplanes (the first default); B auto (tiles up to 256 KiB, spec §4.1)"),
    ("psnap_xor", "ParamSnap, xor + split + zstd", "psnap convert --codec xor,split,zstd (the temporal XOR first proposed); B auto (tiles up to 256 KiB, spec §4.1)"),
    ("zarr_zstd", "zarr v3, zstd", "ZstdCodec(level=3)"),
    ("zarr_shuf_zstd", "zarr v3, shuffle + zstd", "Shuffle(elementsize) + ZstdCodec(level=3)"),
    ("blosc2_shuf", "blosc2, shuffle + zstd", "b2nd, ZSTD L3, SHUFFLE, 2 threads"),
    ("blosc2_bytedelta", "blosc2, shuffle + bytedelta + zstd", "b2nd, ZSTD L3, SHUFFLE + BYTEDELTA, 2 threads"),
    ("h5_gzip", "HDF5, shuffle + gzip", "h5py chunked, shuffle + gzip level 4 (h5py default)"),
    ("h5_zstd", "HDF5, shuffle + zstd", "h5py chunked, shuffle + hdf5plugin.Zstd(clevel=3)"),
    ("pcodec", "pcodec, automatic config", "pcodec.standalone.simple_compress of each chunk flattened row-major (each "
     "parameter's trajectory in turn), ChunkConfig() defaults: level 8, automatic mode and delta; bf16 as uint16 bit "
     "patterns (integer modes); chunks packed in one file + an offset index"),
    ("fpzip", "fpzip, lossless", "fpzip.compress(chunk [B, S] as 2-D, precision=0); f32 only; chunks packed in one file "
     "+ an offset index"),
    ("npy_pmajor", "raw .npy, parameter-major", "one [P, S] .npy, numpy memmap"),
    ("npy_smajor", "raw .npy, snapshot-major", "one [S, P] .npy, numpy memmap"),
    ("safetensors", "safetensors folder (the input)", "the dumps as they are; safetensors.safe_open / memmap"),
    ("zstd_cli", "zstd -3 -T2 of the files", "cat dumps | zstd -3 -T2 (one stream)"),
]
LABEL = {c[0]: c[1] for c in CONTENDERS}
# ParamSnap contenders: the codec chain each converts with (None: the default).
PSNAP_CHAINS = {"psnap": None, "psnap_prev": None, "psnap_lenrans": "linpred,lenrans", "psnap_v1": "split,bytedelta,zstdplanes",
                "psnap_xor": "xor,split,zstd"}
DESC = {c[0]: c[2] for c in CONTENDERS}


# ----------------------------------------------------------------------------------------------- run description

def parse_safetensors_header(path):
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        h = json.loads(fh.read(n))
    return 8 + n, h


def describe_run(name, files):
    """Tensors in the order of their data in the first file (ParamSnap's order), flattened."""
    base, h = parse_safetensors_header(files[0])
    tensors = []
    for tname, e in h.items():
        if tname == "__metadata__":
            continue
        if e["dtype"] not in ("F32", "BF16"):
            raise SystemExit(f"{tname}: dtype {e['dtype']} not handled by the peer benchmark")
        n = int(np.prod(e["shape"])) if e["shape"] else 1
        tensors.append({"name": tname, "dtype": e["dtype"], "shape": e["shape"], "n": n, "begin": e["data_offsets"][0]})
    tensors.sort(key=lambda t: t["begin"])
    off = 0
    for i, t in enumerate(tensors):
        t["key"] = f"t{i:03d}"
        t["offset"] = off          # first global parameter index
        off += t["n"]
    esize = {"F32": 4, "BF16": 2}
    dts = {t["dtype"] for t in tensors}
    if len(dts) != 1:
        raise SystemExit("mixed dtypes not handled")
    dtype = dts.pop()
    P, S = off, len(files)
    return {"name": name, "files": files, "tensors": tensors, "parameters": P, "snapshots": S, "dtype": dtype,
            "np_dtype": "<f4" if dtype == "F32" else "<u2", "itemsize": esize[dtype],
            "raw_bytes": P * S * esize[dtype], "file_bytes": sum(os.path.getsize(f) for f in files)}


# ----------------------------------------------------------------------------------------------- helpers

def peak_rss_mib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return -1.0


def tree_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def fsync_tree(path):
    paths = [path] if os.path.isfile(path) else [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def warm(path):
    paths = [path] if os.path.isfile(path) else [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for p in paths:
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


class Dumps:
    """The safetensors files of a run, memory-mapped: tensor t of snapshot k as a flat numpy array."""

    def __init__(self, run):
        self.run = run
        self.maps = []
        for f in run["files"]:
            base, h = parse_safetensors_header(f)
            mm = np.memmap(f, dtype=np.uint8, mode="r")
            self.maps.append((mm, base, h))

    def tensor(self, k, t):
        mm, base, h = self.maps[k]
        e = h[t["name"]]
        a, b = e["data_offsets"]
        return mm[base + a: base + b].view(self.run["np_dtype"])

    def gather(self, t, a, b):
        """Parameters [a, b) of tensor t at every snapshot: [b − a, S] (parameter-major)."""
        out = np.empty((b - a, self.run["snapshots"]), dtype=self.run["np_dtype"])
        for k in range(self.run["snapshots"]):
            out[:, k] = self.tensor(k, t)[a:b]
        return out

    def snapshot_bytes(self, k):
        mm, base, h = self.maps[k]
        return mm[base: base + self.run["parameters"] * self.run["itemsize"]]


def to_f64(x, dtype):
    if dtype == "BF16":
        return (x.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return x.astype(np.float64)


EPS = np.finfo(np.float64).eps


def moments(X, dtype):
    """mean, variance, skewness, kurtosis of each row of X [n, S] (scipy conventions: ddof = 0, bias=True,
    Fisher kurtosis, NaN when m2 ≤ (ε·mean)² as scipy), two passes in f64."""
    X = to_f64(X, dtype)
    mean = X.mean(axis=1)
    D = X - mean[:, None]
    D2 = D * D
    m2 = D2.mean(axis=1)
    m3 = (D2 * D).mean(axis=1)
    m4 = (D2 * D2).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = m3 / m2 ** 1.5
        kurt = m4 / (m2 * m2) - 3.0
    degenerate = m2 <= (EPS * mean) ** 2
    skew[degenerate] = np.nan
    kurt[degenerate] = np.nan
    return np.stack([mean, m2, skew, kurt])


# ----------------------------------------------------------------------------------------------- contenders

class Chunked:
    """A store of one [n, S] array per tensor, chunks (min(B, n), S) with B = ParamSnap's block size for the run."""

    def __init__(self, name, run, path):
        self.name, self.run, self.path = name, run, path
        self.S = run["snapshots"]

    def chunks(self, t):
        return (min(self.run["chunk"], t["n"]), self.S)

    # write: create(t) returns an object supporting a[a:b, :] = block
    def write(self, dumps):
        self.begin_write()
        for t in self.run["tensors"]:
            arr = self.create(t)
            for a in range(0, t["n"], SLAB):
                b = min(t["n"], a + SLAB)
                arr[a:b, :] = dumps.gather(t, a, b)
        self.end_write()

    def begin_write(self):
        pass

    def end_write(self):
        pass

    def trajectory(self, t, i):
        return self.arrays[t["key"]][i, :]

    def tensor_at(self, t, k):
        return self.arrays[t["key"]][:, k]

    def scan(self):
        for t in self.run["tensors"]:
            arr = self.arrays[t["key"]]
            for a in range(0, t["n"], SLAB):
                b = min(t["n"], a + SLAB)
                yield t, a, arr[a:b, :]


class Zarr(Chunked):
    def begin_write(self):
        import zarr
        from zarr.codecs import Shuffle, ZstdCodec
        self.root = zarr.open_group(zarr.storage.LocalStore(self.path), mode="w", zarr_format=3)
        self.compressors = [ZstdCodec(level=3)]
        if self.name == "zarr_shuf_zstd":
            self.compressors = [Shuffle(elementsize=self.run["itemsize"]), ZstdCodec(level=3)]

    def create(self, t):
        return self.root.create_array(t["key"], shape=(t["n"], self.S), chunks=self.chunks(t), dtype=self.run["np_dtype"],
                                      compressors=self.compressors, filters=None, fill_value=0)

    def open(self):
        import zarr
        root = zarr.open_group(zarr.storage.LocalStore(self.path, read_only=True), mode="r")
        self.arrays = {t["key"]: root[t["key"]] for t in self.run["tensors"]}


class Blosc2(Chunked):
    def cparams(self):
        import blosc2
        filters = [blosc2.Filter.SHUFFLE] + ([blosc2.Filter.BYTEDELTA] if self.name == "blosc2_bytedelta" else [])
        return blosc2.CParams(codec=blosc2.Codec.ZSTD, clevel=3, typesize=self.run["itemsize"], nthreads=2,
                              filters=filters, filters_meta=[0] * len(filters))

    def begin_write(self):
        os.makedirs(self.path, exist_ok=True)

    def create(self, t):
        import blosc2
        return blosc2.empty(shape=(t["n"], self.S), dtype=self.run["np_dtype"], chunks=self.chunks(t),
                            urlpath=os.path.join(self.path, t["key"] + ".b2nd"), mode="w", cparams=self.cparams(),
                            dparams=blosc2.DParams(nthreads=2))

    def open(self):
        import blosc2
        self.arrays = {t["key"]: blosc2.open(os.path.join(self.path, t["key"] + ".b2nd"), mode="r")
                       for t in self.run["tensors"]}


class HDF5(Chunked):
    def begin_write(self):
        import h5py
        self.f = h5py.File(self.path, "w")

    def create(self, t):
        if self.name == "h5_gzip":
            kw = dict(compression="gzip", compression_opts=4, shuffle=True)
        else:
            import hdf5plugin
            kw = dict(shuffle=True, **hdf5plugin.Zstd(clevel=3))
        return self.f.create_dataset(t["key"], shape=(t["n"], self.S), dtype=self.run["np_dtype"], chunks=self.chunks(t), **kw)

    def end_write(self):
        self.f.close()

    def open(self):
        import h5py
        import hdf5plugin  # noqa: F401  (registers the zstd filter)
        self.f = h5py.File(self.path, "r")
        self.arrays = {t["key"]: self.f[t["key"]] for t in self.run["tensors"]}


class NpyParamMajor(Chunked):
    def write(self, dumps):
        mm = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.run["np_dtype"],
                                       shape=(self.run["parameters"], self.S))
        for t in self.run["tensors"]:
            for a in range(0, t["n"], SLAB):
                b = min(t["n"], a + SLAB)
                mm[t["offset"] + a: t["offset"] + b, :] = dumps.gather(t, a, b)
        mm.flush()
        del mm

    def open(self):
        self.mm = np.load(self.path, mmap_mode="r")

    def trajectory(self, t, i):
        return np.array(self.mm[t["offset"] + i, :])

    def tensor_at(self, t, k):
        return np.array(self.mm[t["offset"]: t["offset"] + t["n"], k])

    def scan(self):
        for t in self.run["tensors"]:
            for a in range(0, t["n"], SLAB):
                b = min(t["n"], a + SLAB)
                yield t, a, self.mm[t["offset"] + a: t["offset"] + b, :]


class NpySnapMajor(Chunked):
    def write(self, dumps):
        mm = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.run["np_dtype"],
                                       shape=(self.S, self.run["parameters"]))
        for k in range(self.S):
            mm[k, :] = dumps.snapshot_bytes(k).view(self.run["np_dtype"])
        mm.flush()
        del mm

    def open(self):
        self.mm = np.load(self.path, mmap_mode="r")

    def trajectory(self, t, i):
        return np.array(self.mm[:, t["offset"] + i])

    def tensor_at(self, t, k):
        return np.array(self.mm[k, t["offset"]: t["offset"] + t["n"]])

    def scan(self):
        for t in self.run["tensors"]:
            for a in range(0, t["n"], SLAB):
                b = min(t["n"], a + SLAB)
                yield t, a, self.mm[:, t["offset"] + a: t["offset"] + b].T


class SafetensorsFolder(Chunked):
    """The dumps themselves: safetensors.safe_open for f32 (numpy has no bf16: bf16 through a memmap)."""

    def open(self):
        self.dumps = Dumps(self.run)
        self.handles = None
        if self.run["dtype"] == "F32":
            from safetensors import safe_open
            self.handles = [safe_open(f, framework="numpy") for f in self.run["files"]]

    def trajectory(self, t, i):
        if self.handles is None:
            return np.array([self.dumps.tensor(k, t)[i] for k in range(self.S)])
        idx = np.unravel_index(i, t["shape"]) if t["shape"] else ()
        sl = tuple(slice(j, j + 1) for j in idx)
        return np.concatenate([h.get_slice(t["name"])[sl].reshape(-1) for h in self.handles])

    def tensor_at(self, t, k):
        if self.handles is None:
            return np.array(self.dumps.tensor(k, t))
        return self.handles[k].get_tensor(t["name"])

    def scan(self):
        for t in self.run["tensors"]:
            for a in range(0, t["n"], SLAB):
                b = min(t["n"], a + SLAB)
                yield t, a, self.dumps.gather(t, a, b)


class PackedChunks(Chunked):
    """Codecs with no store format of their own (pcodec, fpzip): each (B × S) chunk compressed on its own, the blobs
    of all tensors concatenated in <path>/chunks.bin, their byte offsets in <path>/index.npy (one int64 per chunk
    boundary, all tensors in order). A read maps chunks.bin and decompresses the chunks it needs."""

    def compress(self, X):
        if self.name == "pcodec":
            from pcodec import ChunkConfig, standalone
            return standalone.simple_compress(np.ascontiguousarray(X).reshape(-1), ChunkConfig())
        import fpzip
        return fpzip.compress(np.ascontiguousarray(X), precision=0, order="C")

    def decompress(self, blob, rows):
        if self.name == "pcodec":
            from pcodec import standalone
            out = standalone.simple_decompress(blob)
        else:
            import fpzip
            out = fpzip.decompress(blob, order="C")
        return np.asarray(out).reshape(rows, self.S)

    def write(self, dumps):
        os.makedirs(self.path, exist_ok=True)
        offsets, pos = [0], 0
        B = self.run["chunk"]
        with open(os.path.join(self.path, "chunks.bin"), "wb") as fh:
            for t in self.run["tensors"]:
                for a in range(0, t["n"], SLAB):
                    b = min(t["n"], a + SLAB)
                    X = dumps.gather(t, a, b)
                    for c in range(0, b - a, B):
                        blob = self.compress(X[c: c + B])
                        fh.write(blob)
                        pos += len(blob)
                        offsets.append(pos)
        np.save(os.path.join(self.path, "index.npy"), np.asarray(offsets, dtype=np.int64))

    def open(self):
        self.data = np.memmap(os.path.join(self.path, "chunks.bin"), dtype=np.uint8, mode="r")
        self.index = np.load(os.path.join(self.path, "index.npy"))
        B = self.run["chunk"]
        self.first_chunk, k = {}, 0
        for t in self.run["tensors"]:
            self.first_chunk[t["key"]] = k
            k += -(-t["n"] // B)

    def chunk(self, t, c):
        """Rows [c·B, min((c+1)·B, n)) of tensor t: [rows, S]."""
        B = self.run["chunk"]
        j = self.first_chunk[t["key"]] + c
        return self.decompress(self.data[self.index[j]: self.index[j + 1]].tobytes(), min(B, t["n"] - c * B))

    def trajectory(self, t, i):
        B = self.run["chunk"]
        return self.chunk(t, i // B)[i % B]

    def tensor_at(self, t, k):
        B = self.run["chunk"]
        return np.concatenate([self.chunk(t, c)[:, k] for c in range(-(-t["n"] // B))])

    def scan(self):
        B = self.run["chunk"]
        for t in self.run["tensors"]:
            for a in range(0, t["n"], SLAB):
                b = min(t["n"], a + SLAB)
                yield t, a, np.concatenate([self.chunk(t, c) for c in range(a // B, -(-b // B))])


IMPL = {"zarr_zstd": Zarr, "zarr_shuf_zstd": Zarr, "blosc2_shuf": Blosc2, "blosc2_bytedelta": Blosc2,
        "h5_gzip": HDF5, "h5_zstd": HDF5, "npy_pmajor": NpyParamMajor, "npy_smajor": NpySnapMajor,
        "safetensors": SafetensorsFolder, "pcodec": PackedChunks, "fpzip": PackedChunks}
STORE_NAME = {"zarr_zstd": "zarr_zstd.zarr", "zarr_shuf_zstd": "zarr_shuf_zstd.zarr", "blosc2_shuf": "blosc2_shuf",
              "blosc2_bytedelta": "blosc2_bytedelta", "h5_gzip": "h5_gzip.h5", "h5_zstd": "h5_zstd.h5",
              "npy_pmajor": "pmajor.npy", "npy_smajor": "smajor.npy"}


def store_path(rundir, c):
    return os.path.join(rundir, "stores", STORE_NAME.get(c, c))


# ----------------------------------------------------------------------------------------------- worker (child process)

def worker(action, c, rundir):
    run = json.load(open(os.path.join(rundir, "run.json")))
    path = store_path(rundir, c)
    impl = IMPL[c](c, run, path)
    tensors = run["tensors"]
    starts = [t["offset"] for t in tensors]
    out = {}
    if action == "write":
        dumps = Dumps(run)
        if os.path.exists(path):
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
        t0 = time.perf_counter()
        impl.write(dumps)
        fsync_tree(path)
        out["seconds"] = time.perf_counter() - t0
        out["bytes"] = tree_bytes(path)
    elif action == "traj":
        warm(path) if c != "safetensors" else [warm(f) for f in run["files"]]
        impl.open()
        idx = [int(x) for x in open(os.path.join(rundir, "indices.txt")).read().split()]
        sink = 0.0

        def one(g):
            ti = bisect.bisect_right(starts, g) - 1
            t = tensors[ti]
            return impl.trajectory(t, g - t["offset"])
        for g in idx[:WARMUP]:
            one(g)
        lat = []
        for g in idx:
            t1 = time.perf_counter_ns()
            v = one(g)
            lat.append((time.perf_counter_ns() - t1) / 1e3)
            assert v.shape == (run["snapshots"],), (v.shape, g)
            sink += float(v[-1])
        out["p50_us"] = float(np.percentile(lat, 50))
        out["p99_us"] = float(np.percentile(lat, 99))
    elif action == "tensor":
        warm(path) if c != "safetensors" else [warm(f) for f in run["files"]]
        impl.open()
        t = next(x for x in tensors if x["name"] == run["probe_tensor"])
        k = run["probe_snapshot"]
        ref = Dumps(run).tensor(k, t)
        v = impl.tensor_at(t, k)
        assert np.array_equal(np.asarray(v).reshape(-1).view(np.uint8), np.asarray(ref).view(np.uint8)), "tensor bytes differ"
        lat = []
        for _ in range(N_TENSOR if run["raw_bytes"] < 2**29 else 5):
            t1 = time.perf_counter_ns()
            impl.tensor_at(t, k)
            lat.append((time.perf_counter_ns() - t1) / 1e3)
        out["p50_us"] = float(np.median(lat))
    elif action == "moments":
        # The file's pages are read from the page cache (warm), as for psnap moments.
        warm(path) if c != "safetensors" else [warm(f) for f in run["files"]]
        keep = os.environ.get("PEERS_KEEP_MOMENTS")
        res = {t["key"]: np.empty((4, t["n"])) for t in tensors} if keep else None
        t0 = time.perf_counter()
        impl.open()
        for t, a, X in impl.scan():
            m = moments(np.asarray(X), run["dtype"])
            if keep:
                res[t["key"]][:, a:a + m.shape[1]] = m
        out["seconds"] = time.perf_counter() - t0
        if keep:
            np.savez(keep, **res)
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


# ----------------------------------------------------------------------------------------------- orchestrator

def run_child(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (stdout, wall seconds, peak RSS MiB of the child and its descendants).
    (os.wait4's ru_maxrss would be floored at this orchestrator's own RSS: Linux carries the pre-exec high-water mark.)"""
    rss_file = f"/tmp/psnap-peers-rss-{os.getpid()}"
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    rss = int(open(rss_file).read().split()[-1]) / 1024
    os.unlink(rss_file)
    return p.stdout, wall, rss


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def available():
    """Contender → None if its Python packages import, else the error."""
    need = {"zarr_zstd": ["zarr"], "zarr_shuf_zstd": ["zarr", "numcodecs"], "blosc2_shuf": ["blosc2"],
            "blosc2_bytedelta": ["blosc2"], "h5_gzip": ["h5py"], "h5_zstd": ["h5py", "hdf5plugin"],
            "pcodec": ["pcodec"], "fpzip": ["fpzip"], "npy_pmajor": [], "npy_smajor": [], "safetensors": ["safetensors"], "psnap": [], "psnap_prev": [], "psnap_lenrans": [], "psnap_v1": [], "psnap_xor": [], "zstd_cli": []}
    out = {}
    for c, mods in need.items():
        err = None
        for m in mods:
            try:
                __import__(m)
            except Exception as e:  # noqa: BLE001
                err = f"import {m}: {e}"
        out[c] = err
    if shutil.which("zstd") is None:
        out["zstd_cli"] = "no zstd on PATH"
    return out


def versions():
    v = {"python": platform.python_version()}
    for m in ["numpy", "scipy", "zarr", "numcodecs", "blosc2", "h5py", "hdf5plugin", "zstandard", "safetensors", "pcodec",
              "fpzip"]:
        try:
            mod = __import__(m)
            v[m] = getattr(mod, "__version__", None) or str(getattr(mod, "version", "?"))
        except Exception:  # noqa: BLE001
            v[m] = None
    try:
        import h5py
        v["hdf5"] = h5py.version.hdf5_version
        import blosc2
        v["c-blosc2"] = blosc2.blosclib_version
    except Exception:  # noqa: BLE001
        pass
    v["zstd_cli"] = subprocess.run(["zstd", "--version"], capture_output=True, text=True).stdout.strip()
    v["swift"] = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[0]
    return v


def machine():
    mem = open("/proc/meminfo").readline().split()[1]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(int(mem) / 2**20, 1), "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg()}


def bench_run(a, run, rundir, avail, contenders):
    S, P, raw = run["snapshots"], run["parameters"], run["raw_bytes"]
    big = raw >= 2**29  # the synthetic run: the slow measurements once
    reps_slow = 1 if big else a.repeat
    res = {}
    for c in contenders:
        psnap_file = store_path(rundir, c) + ".psnap"
        codec = (["--codec", PSNAP_CHAINS[c]] if PSNAP_CHAINS.get(c) else []) + (["--min-match", "0"] if c == "psnap_prev" else [])
        r = {"label": LABEL[c], "how": DESC[c]}
        res[c] = r
        if c == "fpzip" and run["dtype"] != "F32" and not avail.get(c):
            avail = dict(avail, fpzip="fpzip compresses float32/float64 only (bf16 has no type it reads)")
        if avail.get(c):
            r["unavailable"] = avail[c]
            log(f"  {c}: unavailable ({avail[c]})")
            continue
        try:
            [warm(f) for f in run["files"]]
            log(f"  {c} …")
            py = [sys.executable, os.path.abspath(__file__), "worker"]
            if c in PSNAP_CHAINS:
                w = []
                for _ in range(reps_slow):
                    if os.path.exists(psnap_file):
                        os.unlink(psnap_file)
                    _, wall, rss = run_child([a.psnap, "convert", run["dumps_dir"], "-o", psnap_file, "--quiet",
                                              "--block-size", str(run["chunk"])] + codec)
                    w.append((wall, rss))
                r["write_s"] = med([x[0] for x in w]); r["write_rss_mib"] = max(x[1] for x in w)
                r["bytes"] = os.path.getsize(psnap_file)
                tr = [json.loads(run_child([a.probe, "traj", psnap_file, os.path.join(rundir, "indices.txt")])[0])
                      for _ in range(a.repeat)]
                r["traj_p50_us"] = med([x["p50_us"] for x in tr]); r["traj_p99_us"] = med([x["p99_us"] for x in tr])
                te = [json.loads(run_child([a.probe, "tensor", psnap_file, run["probe_tensor"], str(run["probe_snapshot"]),
                                               "--n", "5" if big else str(N_TENSOR)])[0])
                      for _ in range(a.repeat)]
                r["tensor_us"] = med([x["p50_us"] for x in te])
                mo = []
                for _ in range(reps_slow):
                    warm(psnap_file)
                    # The same four statistics every contender computes (mean, variance, skewness, kurtosis).
                    out, wall, rss = run_child([a.psnap, "moments", psnap_file, "-o", os.path.join(rundir, "moments.psnap"),
                                                "--force", "--json", "--stats", "moments"])
                    mo.append((json.loads(out)["seconds"], wall, rss))
                r["moments_s"] = med([x[0] for x in mo]); r["moments_wall_s"] = med([x[1] for x in mo])
                r["moments_rss_mib"] = max(x[2] for x in mo)
                if not big and c == "psnap":
                    npy = os.path.join(rundir, "psnap-moments-npy")
                    shutil.rmtree(npy, ignore_errors=True)
                    run_child([a.psnap, "moments", psnap_file, "--f64", "--npy", npy])
            elif c == "zstd_cli":
                zf = store_path(rundir, "zstd_cli") + ".zst"
                files = " ".join(run["files"])
                w = []
                for _ in range(reps_slow):
                    _, wall, rss = run_child(["bash", "-c", f"cat {files} | zstd -3 -T2 -q -c > {zf} && sync {zf}"])
                    w.append((wall, rss))
                r["write_s"] = med([x[0] for x in w]); r["write_rss_mib"] = max(x[1] for x in w)
                r["bytes"] = os.path.getsize(zf)
                warm(zf)
                d = [run_child(["bash", "-c", f"zstd -d -q -c {zf} > /dev/null"])[1] for _ in range(a.repeat)]
                r["decompress_all_s"] = med(d)
                os.unlink(zf)
            else:
                if c == "safetensors":
                    r["bytes"] = run["file_bytes"]
                else:
                    w = [run_child(py + ["write", c, rundir]) for _ in range(reps_slow)]
                    js = [json.loads(x[0]) for x in w]
                    r["write_s"] = med([j["seconds"] for j in js]); r["write_rss_mib"] = max(x[2] for x in w)
                    r["bytes"] = js[-1]["bytes"]
                tr = [json.loads(run_child(py + ["traj", c, rundir])[0]) for _ in range(a.repeat)]
                r["traj_p50_us"] = med([x["p50_us"] for x in tr]); r["traj_p99_us"] = med([x["p99_us"] for x in tr])
                te = [json.loads(run_child(py + ["tensor", c, rundir])[0]) for _ in range(a.repeat)]
                r["tensor_us"] = med([x["p50_us"] for x in te])
                mo = []
                for i in range(reps_slow):
                    env = dict(os.environ)
                    if not big and i == reps_slow - 1:
                        env["PEERS_KEEP_MOMENTS"] = os.path.join(rundir, f"moments-{c}.npz")
                    out, wall, rss = run_child(py + ["moments", c, rundir], env=env)
                    mo.append((json.loads(out)["seconds"], wall, rss))
                r["moments_s"] = med([x[0] for x in mo]); r["moments_wall_s"] = med([x[1] for x in mo])
                r["moments_rss_mib"] = max(x[2] for x in mo)
            r["ratio"] = raw / r["bytes"]
            if r.get("write_s"):
                r["write_mb_s"] = raw / r["write_s"] / 1e6
            if r.get("moments_s"):
                r["moments_mb_s"] = raw / r["moments_s"] / 1e6
            log(f"    {json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k not in ('label', 'how')})}")
        except Exception as e:  # noqa: BLE001
            r["error"] = str(e)[-1500:]
            log(f"    {c} FAILED: {r['error']}")
        finally:
            if c not in ("psnap", "safetensors"):
                p = store_path(rundir, c) + (".psnap" if c in PSNAP_CHAINS else "")
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                elif os.path.exists(p):
                    os.unlink(p)
    if not big:
        res["_agreement"] = check_agreement(run, rundir, [c for c in contenders if c not in PSNAP_CHAINS and c != "zstd_cli"])
    return res


def check_agreement(run, rundir, contenders):
    """Every contender's mean, variance, skewness and kurtosis against ParamSnap's (`psnap moments --f64`).
    A value agrees when |x − ref| ≤ 1e-9·|ref| + 1e-12·scale (scale: the largest |value| of that statistic in the
    tensor; the absolute term only matters for values near 0), NaN matching NaN."""
    npy = os.path.join(rundir, "psnap-moments-npy")
    STAT_ROWS = {"mean": 1, "variance": 2, "skewness": 4, "kurtosis": 5}
    out = {}
    ref = {}
    for t in run["tensors"]:
        cand = glob.glob(os.path.join(npy, "*.npy"))
        match = [p for p in cand if os.path.basename(p)[:-4] in (t["name"], t["name"].replace("/", "_"))]
        if not match:
            return {"error": f"no psnap moments npy for {t['name']} in {npy}"}
        m = np.load(match[0])
        ref[t["key"]] = np.stack([m[STAT_ROWS[s]].astype(np.float64) for s in STAT_ROWS])
    for c in contenders:
        f = os.path.join(rundir, f"moments-{c}.npz")
        if not os.path.exists(f):
            out[c] = {"checked": False}
            continue
        got = np.load(f)
        worst, frac, bad, n = 0.0, 0.0, 0, 0
        for t in run["tensors"]:
            R, G = ref[t["key"]], got[t["key"]]
            for j in range(4):
                r, g = R[j], G[j]
                nan_r, nan_g = np.isnan(r), np.isnan(g)
                bad += int(np.sum(nan_r != nan_g))
                ok = ~nan_r & ~nan_g
                scale = np.max(np.abs(r[ok])) if ok.any() else 0.0
                err = np.abs(g[ok] - r[ok])
                tol = 1e-9 * np.abs(r[ok]) + 1e-12 * scale
                bad += int(np.sum(err > tol))
                if err.size:
                    frac = max(frac, float(np.max(err / np.maximum(tol, 1e-300))))
                    big_ = np.abs(r[ok]) >= 1e-6 * scale
                    if big_.any():
                        worst = max(worst, float(np.max(err[big_] / np.abs(r[ok][big_]))))
                n += r.size
        out[c] = {"checked": True, "values": n, "mismatches": bad, "max_rel_err": worst, "max_err_over_tol": frac}
        os.unlink(f)
    return out


def fmt(x, digits=0):
    if x is None:
        return "–"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def write_markdown(results, path):
    L = ["# ParamSnap against the alternatives", "",
         f"Generated by `tools/bench/peers/run.sh` on {results['date']}. Machine: {results['machine']['cores']} cores "
         f"({results['machine']['cpu']}), {results['machine']['memory_gib']} GiB RAM; load average at start "
         f"{', '.join(f'{x:.2f}' for x in results['machine']['loadavg_at_start'])}. Medians of {results['repeat']} "
         "repeats (write and moments on the synthetic run: 1). Versions: "
         + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v) + ".", "",
         "Columns: ratio = raw tensor bytes / stored bytes (apparent file sizes); write = raw MB/s from the warm "
         "safetensors folder to the durable (fsynced) store; trajectory = one random parameter over all snapshots, "
         "in-process, warm page cache, 1000 random parameters (p50 / p99 µs); tensor = the largest tensor at the middle "
         "snapshot, in-process (µs, median of 20; 5 on the synthetic run); moments = full-scan mean, variance, skewness, kurtosis of every "
         "parameter, raw MB/s (ParamSnap: `psnap moments --stats moments`, the same 4 statistics, on both cores; others: numpy f64, one thread); "
         "RSS = peak resident set of the write / moments process (MiB, includes mapped page-cache pages). "
         "× = contender / ParamSnap (for latencies: contender time / ParamSnap time, so > 1 means ParamSnap is faster).", ""]
    for rname, rr in results["runs"].items():
        info = rr["run"]
        L += [f"## {rname}", "",
              f"{info['snapshots']} snapshots × {info['parameters']:,} {info['dtype']} parameters, "
              f"{info['raw_bytes'] / 1e6:,.1f} MB raw{(' — ' + info['note']) if info.get('note') else ''}; "
              f"chunks of {info.get('chunk', 1024)} parameters × all snapshots.", "",
              "| contender | ratio | write MB/s | trajectory p50 / p99 µs | tensor µs | moments MB/s | RSS write / moments MiB |",
              "|---|---|---|---|---|---|---|"]
        ps = rr["contenders"].get("psnap", {})
        for c, r in rr["contenders"].items():
            if c.startswith("_"):
                continue
            if r.get("unavailable") or r.get("error"):
                L.append(f"| {r['label']} | {'unavailable: ' + r['unavailable'] if r.get('unavailable') else 'failed: ' + r['error'][:120]} |||||")
                continue

            def rel(key, inverse=False):
                if c == "psnap" or not r.get(key) or not ps.get(key):
                    return ""
                x = ps[key] / r[key] if inverse else r[key] / ps[key]
                return f" ({x:.2f}×)"
            traj = "–"
            if r.get("traj_p50_us") is not None:
                traj = f"{fmt(r['traj_p50_us'])} / {fmt(r['traj_p99_us'])}{rel('traj_p50_us')}"
            elif r.get("decompress_all_s"):
                traj = f"whole stream: {r['decompress_all_s'] * 1e3:,.0f} ms"
            L.append(f"| {'**' + r['label'] + '**' if c == 'psnap' else r['label']} | {fmt(r.get('ratio'), 3)}{rel('ratio')} | "
                     f"{fmt(r.get('write_mb_s'))}{rel('write_mb_s')} | {traj} | "
                     f"{fmt(r.get('tensor_us'))}{rel('tensor_us')} | {fmt(r.get('moments_mb_s'))}{rel('moments_mb_s')} | "
                     f"{fmt(r.get('write_rss_mib'))} / {fmt(r.get('moments_rss_mib'))} |")
        ag = rr["contenders"].get("_agreement")
        if ag:
            L.append("")
            if "error" in ag:
                L.append(f"Moments agreement: not checked ({ag['error']}).")
            else:
                parts = [f"{LABEL[c]}: {v['mismatches']} of {v['values']:,} (largest rel. err. {v['max_rel_err']:.1e}, "
                         f"largest error {100 * v.get('max_err_over_tol', 0):.2g} % of the tolerance)"
                         for c, v in ag.items() if v.get("checked")]
                L.append("Moments agreement with `psnap moments --f64` (mean, variance, skewness, kurtosis of every "
                         "parameter; tolerance |Δ| ≤ 1e-9·|ref| + 1e-12·max|stat| per tensor, NaN = NaN; relative errors "
                         "over values ≥ 1e-6·max|stat|), mismatches: " + "; ".join(parts) + ".")
        L.append("")
    L += ["Contenders: " + "; ".join(f"{LABEL[c]}: {DESC[c]}" for c, _, _ in CONTENDERS) + ". Chunked stores hold one "
          "[parameters, snapshots] array per tensor, chunked like ParamSnap's tiles: B parameters × all snapshots, B = "
          "ParamSnap's block size for the run (spec/FORMAT.md §4.1: a tile of up to 256 KiB), unless --chunk is given.", ""]
    open(path, "w").write("\n".join(L))


def bench(a):
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    avail = available()
    contenders = [c for c, _, _ in CONTENDERS if not a.contenders or c in a.contenders.split(",")]
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
               "versions": versions(), "repeat": a.repeat, "chunk_parameters": a.chunk or "per run (FORMAT §4.1)", "trajectories": N_TRAJ,
               "contenders": {c: {"label": LABEL[c], "how": DESC[c]} for c in contenders}, "runs": {}}
    for rname in a.runs.split(","):
        rundir = os.path.join(a.work, rname)
        shutil.rmtree(rundir, ignore_errors=True)
        os.makedirs(os.path.join(rundir, "stores"))
        note = ""
        if rname == "synthetic":
            dd = os.path.join(a.work, "synthetic-dumps")
            shutil.rmtree(dd, ignore_errors=True)
            log(f"generating the synthetic run ({a.gib} GiB) …")
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_synthetic_dumps.py"), dd, "--gib", str(a.gib),
                            "--snapshots", "64"], check=True, stdout=sys.stderr)
            note = f"tools/make_synthetic_dumps.py --gib {a.gib} --snapshots 64"
        else:
            # --data may list several folders (a:b:c); a run is taken from the first that holds it.
            dirs = a.data.split(":")
            dd = next((os.path.join(d, rname) for d in dirs if os.path.isdir(os.path.join(d, rname))),
                      os.path.join(dirs[0], rname))
        files = sorted(glob.glob(os.path.join(dd, "*.safetensors")))
        run = describe_run(rname, files)
        run["dumps_dir"] = dd
        run["note"] = note
        run["chunk"] = a.chunk or psnap_block(run["snapshots"], run["itemsize"])
        big = max(run["tensors"], key=lambda t: t["n"])
        run["probe_tensor"], run["probe_snapshot"] = big["name"], run["snapshots"] // 2
        json.dump(run, open(os.path.join(rundir, "run.json"), "w"))
        rng = np.random.default_rng(SEED)
        open(os.path.join(rundir, "indices.txt"), "w").write(
            "\n".join(str(x) for x in rng.integers(0, run["parameters"], N_TRAJ)) + "\n")
        log(f"{rname}: {run['snapshots']} × {run['parameters']:,} {run['dtype']}, {run['raw_bytes'] / 1e6:.1f} MB raw")
        res = bench_run(a, run, rundir, avail, contenders)
        info = {k: run[k] for k in ("snapshots", "parameters", "dtype", "raw_bytes", "file_bytes", "probe_tensor",
                                    "probe_snapshot", "note", "chunk")}
        info["tensors"] = len(run["tensors"])
        results["runs"][rname] = {"run": info, "contenders": res}
        shutil.rmtree(rundir, ignore_errors=True)
        if rname == "synthetic":
            shutil.rmtree(dd, ignore_errors=True)
        tag = a.tag or "latest"
        json.dump(results, open(os.path.join(a.out, f"{tag}.json"), "w"), indent=1)
        write_markdown(results, os.path.join(a.out, f"{tag}.md"))
    log(f"results: {a.out}/{a.tag or 'latest'}.md and .json")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["bench"])
    ap.add_argument("--psnap", required=True)
    ap.add_argument("--probe", required=True)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"),
                    help="folder of the runs, or several separated by ':' (each run from the first that holds it)")
    ap.add_argument("--runs", default="tiny-gpt,tiny-gpt-bf16,mlp-digits,synthetic")
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", default="/tmp/psnap-peers")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--contenders", default="")
    ap.add_argument("--tag", default="")
    ap.add_argument("--chunk", type=int, default=0, help="parameters per chunk of the chunked contenders and ParamSnap's "
                    "--block-size (default: ParamSnap's automatic block size for each run)")
    bench(ap.parse_args())


if __name__ == "__main__":
    main()
