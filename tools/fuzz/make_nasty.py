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


def build(block_size, tensors, snapshots, tiles, chain=b"", extra=None):
    """A one-commit file with an empty codec chain: tiles = [(tensor, block, first, count, raw bytes)]."""
    h = bytearray(b"\x89PSNAP\r\n" + struct.pack("<HHIQ", 1, 0, 64, block_size) + chain.ljust(8, b"\0") + struct.pack("<i", 3) + bytes(20) + bytes(8))
    put(h, 56, xxh64(bytes(h[:56])))
    data, index = bytearray(), bytearray()
    for t, b, first, count, raw in tiles:
        off = 64 + len(data)
        data += raw
        index += struct.pack("<IIQQQQQQQ", t, 1, b, first, count, off, len(raw), len(raw), xxh64(raw))
    meta = json.dumps(dict({"tensors": tensors, "snapshots": snapshots}, **(extra or {})), separators=(",", ":")).encode()
    io = 64 + len(data)
    mo = io + len(index)
    params = 0
    for t in tensors:
        n = 1
        for d in t["shape"]:
            n *= d
        params += n
    f = bytearray(b"PSNAPFTR" + struct.pack("<HHI", 1, 0, 128) + struct.pack("<11Q", 0, 0, io, len(index), xxh64(bytes(index)), mo, len(meta),
                  xxh64(meta), len(snapshots), len(tiles), params) + bytes(8) + bytes(8) + b"PSNAPEND")
    put(f, 112, xxh64(bytes(f[:112])))
    return h + data + index + meta + f


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


# Valid by §6 (each block covers every snapshot) but block 0 and block 1 cut their segments differently (§10 says a
# writer keeps them aligned; a reader does not check): a resumed writer must not trust block 0's segments blindly.
snaps3 = [{"step": k, "time": k} for k in range(3)]
cases["misaligned-segments.psnap"] = build(1, [{"name": "w", "dtype": "f32", "shape": [2]}], snaps3,
                                           [(0, 0, 0, 2, f32(1, 2)), (0, 0, 2, 1, f32(3)), (0, 1, 0, 1, f32(10)), (0, 1, 1, 2, f32(20, 30))],
                                           extra={"format": "psnap"})
# §7: only "tensors" and "snapshots" are required ("format" SHOULD be there; readers ignore it).
cases["minimal-metadata.psnap"] = build(4, [{"name": "w", "dtype": "f32", "shape": [2]}], snaps3[:1], [(0, 0, 0, 1, f32(1, 2))])
os.makedirs(out, exist_ok=True)
for name, data in sorted(cases.items()):
    with open(os.path.join(out, "nasty-" + name), "wb") as fh:
        fh.write(bytes(data))
    print(name, len(data))
