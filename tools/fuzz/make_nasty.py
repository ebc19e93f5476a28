#!/usr/bin/env python3
"""Writes the hand-made nasty inputs of fixtures/fuzz-regressions (checksums recomputed, so the reader's own
checks must refuse them): usage tools/fuzz/make_nasty.py [OUT_DIR]. Needs numpy + zstandard (tools/setup-deps)."""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from psnap_reader import xxh64  # noqa: E402

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "fixtures", "fuzz-regressions")
golden = os.path.join(root, "fixtures", "golden")


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def put(b, o, v):
    struct.pack_into("<Q", b, o, v & (2**64 - 1))


def fix(b):
    """Header checksum; for the footer in the last 128 bytes: tile, index, metadata and footer checksums."""
    put(b, 56, xxh64(bytes(b[:56])))
    f = len(b) - 128
    io, il, mo, ml = u64(b, f + 32), u64(b, f + 40), u64(b, f + 56), u64(b, f + 64)
    n = len(b)
    if io + il <= n and il % 64 == 0:
        for e in range(io, io + il, 64):
            off, ln = u64(b, e + 32), u64(b, e + 40)
            if off + ln <= n:
                put(b, e + 56, xxh64(bytes(b[off:off + ln])))
        put(b, f + 48, xxh64(bytes(b[io:io + il])))
    if mo + ml <= n:
        put(b, f + 72, xxh64(bytes(b[mo:mo + ml])))
    put(b, f + 112, xxh64(bytes(b[f:f + 112])))
    return b


def load(name):
    with open(os.path.join(golden, name), "rb") as fh:
        return bytearray(fh.read())


def entry(b, i):
    return u64(b, len(b) - 128 + 32) + 64 * i


def with_metadata(b, meta, snapshots=None, params=None):
    f = len(b) - 128
    mo = u64(b, f + 56)
    j = meta if isinstance(meta, bytes) else json.dumps(meta, separators=(",", ":")).encode()
    nb = bytearray(b[:mo]) + j + b[f:]
    nf = len(nb) - 128
    put(nb, nf + 64, len(j))
    if snapshots is not None:
        put(nb, nf + 80, snapshots)
    if params is not None:
        put(nb, nf + 96, params)
    return nb


cases = {}
b = load("segments.psnap")
cases["truncated-191.psnap"] = b[:191]
cases["truncated-mid.psnap"] = b[: len(b) // 2]
b = load("dtypes.psnap"); put(b, entry(b, 0) + 48, 2**31 - 1); cases["raw-length-cap.psnap"] = fix(b)
b = load("dtypes.psnap"); put(b, entry(b, 0) + 24, 2**63); cases["snapshot-count-huge.psnap"] = fix(b)
b = load("dtypes.psnap"); put(b, entry(b, 0) + 32, 2**64 - 8); cases["offset-wraps.psnap"] = fix(b)
for g in ("chains.psnap", "compacted.psnap", "dtypes.psnap", "segments.psnap"):
    # Two live tiles of equal raw length sharing their stored bytes (the index rules of §6 do not forbid it).
    b = load(g)
    n = u64(b, len(b) - 128 + 88)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)
             if u64(b, entry(b, i) + 48) == u64(b, entry(b, j) + 48) and u64(b, entry(b, i) + 40) > 64]
    if pairs:
        i, j = pairs[0]
        for o in (32, 40):
            put(b, entry(b, j) + o, u64(b, entry(b, i) + o))
        struct.pack_into("<I", b, entry(b, j) + 4, struct.unpack_from("<I", b, entry(b, i) + 4)[0])
        cases["tiles-share-bytes-" + g] = fix(b)
b = load("compacted.psnap")
# zstdplanes plane descriptor 0 of tile 0 claiming 2^62 bytes.
put(b, u64(b, entry(b, 0) + 32), 2**62)
cases["plane-descriptor-huge.psnap"] = fix(b)
b = load("segments.psnap")
cases["shape-overflow.psnap"] = fix(with_metadata(b, {"tensors": [{"name": "a", "dtype": "f32", "shape": [2**62, 4]}], "snapshots": []}, 0, 0))
cases["blocks-beyond-tiles.psnap"] = fix(with_metadata(b, {"tensors": [{"name": "a", "dtype": "f32", "shape": [2**24, 2**24]}],
                                                          "snapshots": [{"step": 0, "time": 0}]}, 1, 2**48))
cases["deep-json.psnap"] = fix(with_metadata(b, b"[" * 5000 + b"]" * 5000, 0, 0))
b = load("chains.psnap")
# Tile 0 (compressed, any stored length is allowed) claiming every byte from the header to the index: it overlaps the other
# live tiles, so the live tile bytes add up to more than the file holds.
put(b, entry(b, 0) + 32, 64)
put(b, entry(b, 0) + 40, u64(b, len(b) - 128 + 32) - 64)
cases["tile-overlaps-others.psnap"] = fix(b)
os.makedirs(out, exist_ok=True)
for name, data in sorted(cases.items()):
    with open(os.path.join(out, "nasty-" + name), "wb") as fh:
        fh.write(bytes(data))
    print(name, len(data))
