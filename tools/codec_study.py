#!/usr/bin/env python3
"""ParamSnap codec study: lossless compression of parameter trajectories.

Reads the shared safetensors runs, builds per-tensor arrays V[param, snapshot] of raw bit
patterns, cuts them into tiles (B params x all snapshots, parameter-major) and measures the
total compression ratio of several codec chains:

    [xor | sub] -> split (byte planes) -> [bytedelta] -> zstd(L)

Ratio = total raw bytes / total encoded bytes (a tile is stored raw if encoding does not
shrink it; no container/tile-index overhead is counted). Every chain is round-trip checked.

Usage: python3 tools/codec_study.py [--data /work/shared/data] [--quick]
Needs numpy and zstandard. Analysis only; writes nothing.
"""
import argparse
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import numpy as np
import zstandard as zstd

REPEATS = 3
DTYPES = {"F32": np.uint32, "BF16": np.uint16, "F16": np.uint16}

RUNS = [
    ("tiny-gpt f32", "tiny-gpt", "step-*.safetensors"),
    ("tiny-gpt bf16", "tiny-gpt-bf16", "step-*.safetensors"),
    ("mlp-digits f32", "mlp-digits", "epoch-*.safetensors"),
]

# name -> (delta kind, bytedelta, split)
CHAINS = {
    "plain": (None, False, False),
    "split": (None, False, True),
    "xor+split": ("xor", False, True),
    "sub+split": ("sub", False, True),
    "split+bd": (None, True, True),
    "xor+split+bd": ("xor", True, True),
    "sub+split+bd": ("sub", True, True),
}


# ----------------------------------------------------------------------------- loading
def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (hlen,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = DTYPES[info["dtype"]]
        a, b = info["data_offsets"]
        arr = np.frombuffer(buf, dtype=np.dtype(dt).newbyteorder("<"), count=(b - a) // np.dtype(dt).itemsize,
                            offset=base + a)
        out[name] = (arr, info["dtype"], tuple(info["shape"]))
    return out


def load_run(folder, pattern):
    files = sorted(glob.glob(os.path.join(folder, pattern)))
    snaps = [read_safetensors(p) for p in files]
    names = sorted(snaps[0].keys())
    tensors = {}
    for n in names:
        # V[param, snapshot], C-contiguous -> param-major layout
        tensors[n] = np.ascontiguousarray(np.stack([s[n][0] for s in snaps], axis=1).astype(snaps[0][n][0].dtype.newbyteorder("=")))
    return files, tensors


# ----------------------------------------------------------------------------- transforms
def delta_encode(V, kind):
    if kind is None:
        return V
    D = V.copy()
    if kind == "xor":
        D[:, 1:] = V[:, 1:] ^ V[:, :-1]
    else:  # sub, wraps mod 2^bits
        D[:, 1:] = V[:, 1:] - V[:, :-1]
    return D


def delta_decode(D, kind):
    if kind is None:
        return D
    if kind == "xor":
        return np.bitwise_xor.accumulate(D, axis=1)
    return np.cumsum(D, axis=1, dtype=D.dtype)  # integer wrap-around is the inverse of sub


def tile_planes(D, p0, p1, bd):
    """Tile rows p0:p1 of D -> planes array (nbytes, n) uint8 (split [+ bytedelta])."""
    t = D[p0:p1]
    nb = t.dtype.itemsize
    planes = t.reshape(-1).view(np.uint8).reshape(-1, nb).T  # plane k = LE byte k
    if bd:
        out = np.empty_like(planes)
        out[:, 0] = planes[:, 0]
        np.subtract(planes[:, 1:], planes[:, :-1], out=out[:, 1:])
        return out
    return np.ascontiguousarray(planes)


def untile_planes(planes, bd, dtype, n_params, S):
    if bd:
        planes = np.cumsum(planes, axis=1, dtype=np.uint8)
    vals = np.ascontiguousarray(planes.T).view(dtype).reshape(n_params, S)
    return vals


def encode_tiles(tensors, chain, B):
    """Yield (tensor name, p0, p1, payload bytes) for every tile, plus transform time."""
    kind, bd, split = CHAINS[chain]
    tiles = []
    t0 = time.perf_counter()
    for name, V in tensors.items():
        D = delta_encode(V, kind)
        P = V.shape[0]
        for p0 in range(0, P, B):
            p1 = min(P, p0 + B)
            if split:
                payload = tile_planes(D, p0, p1, bd).tobytes()
            else:
                payload = D[p0:p1].tobytes()
            tiles.append((name, p0, p1, payload))
    return tiles, time.perf_counter() - t0


def compress_tiles(tiles, level, time_it=False):
    c = zstd.ZstdCompressor(level=level, write_checksum=False, threads=0)
    frames = []
    enc = 0
    t0 = time.perf_counter()
    for (_, _, _, payload) in tiles:
        frames.append(c.compress(payload))
    tc = time.perf_counter() - t0
    for f, (_, _, _, payload) in zip(frames, tiles):
        enc += min(len(f), len(payload))
    return frames, enc, tc


def decompress_tiles(frames, tiles):
    d = zstd.ZstdDecompressor()
    t0 = time.perf_counter()
    out = [d.decompress(f) for f in frames]
    td = time.perf_counter() - t0
    return out, td


def verify_roundtrip(tensors, chain, tiles, payloads):
    kind, bd, split = CHAINS[chain]
    t0 = time.perf_counter()
    by_tensor = {}
    for (name, p0, p1, _), payload in zip(tiles, payloads):
        by_tensor.setdefault(name, []).append((p0, p1, payload))
    for name, V in tensors.items():
        S = V.shape[1]
        D = np.empty_like(V)
        for p0, p1, payload in by_tensor[name]:
            n = p1 - p0
            if split:
                planes = np.frombuffer(payload, np.uint8).reshape(V.dtype.itemsize, n * S)
                D[p0:p1] = untile_planes(planes, bd, V.dtype, n, S)
            else:
                D[p0:p1] = np.frombuffer(payload, V.dtype).reshape(n, S)
        if not np.array_equal(delta_decode(D, kind), V):
            raise AssertionError(f"round trip failed: {chain} {name}")
    return time.perf_counter() - t0


def per_plane(tiles, nb, level, raw_fallback):
    """Each byte plane of each tile as its own zstd frame. Returns (enc bytes, per-plane enc, per-plane raw)."""
    c = zstd.ZstdCompressor(level=level, write_checksum=False, threads=0)
    enc_k = np.zeros(nb, dtype=np.int64)
    raw_k = np.zeros(nb, dtype=np.int64)
    total = 0
    for (_, _, _, payload) in tiles:
        n = len(payload) // nb
        tile_enc = 0
        for k in range(nb):
            plane = payload[k * n:(k + 1) * n]
            e = len(c.compress(plane))
            if raw_fallback:
                e = min(e, n)
            enc_k[k] += e
            raw_k[k] += n
            tile_enc += e
        total += min(tile_enc, len(payload))
    return total, enc_k, raw_k


def cli_zstd3(files):
    data = b"".join(open(p, "rb").read() for p in files)
    if shutil.which("zstd"):
        r = subprocess.run(["zstd", "-3", "-q", "-c", "-T1"], input=data, stdout=subprocess.PIPE, check=True)
        cli = len(r.stdout)
    else:
        cli = None
    py = len(zstd.ZstdCompressor(level=3).compress(data))
    return len(data), cli, py


# ----------------------------------------------------------------------------- driver
def fmt(x, d=3):
    return f"{x:.{d}f}"


def study_run(label, folder, pattern, quick):
    t_run = time.perf_counter()
    files, tensors = load_run(folder, pattern)
    S = len(files)
    P = sum(V.shape[0] for V in tensors.values())
    nb = next(iter(tensors.values())).dtype.itemsize
    raw_total = P * S * nb
    print(f"\n## {label}\n")
    print(f"{len(tensors)} tensors, {P:,} params x {S} snapshots x {nb} B = {raw_total:,} raw bytes "
          f"({raw_total / 1e6:.1f} MB)\n")

    B = 4096
    levels_of = {c: ([1, 3] if c == "plain" else ([1, 3] if quick else [1, 3, 9])) for c in CHAINS}
    ratio = {}
    timing = {}
    xform = {}
    frames_l3 = {}
    tiles_b4096 = {}
    for chain in CHAINS:
        tiles, t_enc = encode_tiles(tensors, chain, B)
        tiles_b4096[chain] = tiles
        for L in levels_of[chain]:
            frames, enc, tc = compress_tiles(tiles, L)
            _, td = decompress_tiles(frames, tiles)
            if L in (1, 3):  # timing: best of REPEATS (single thread, python loop over tiles)
                for _ in range(REPEATS - 1):
                    tc = min(tc, compress_tiles(tiles, L)[2])
                    td = min(td, decompress_tiles(frames, tiles)[1])
            ratio[(chain, L)] = raw_total / enc
            timing[(chain, L)] = (raw_total / 1e6 / tc, raw_total / 1e6 / td)
            if L == 3:
                frames_l3[chain] = frames
        # losslessness check (decompress level-3 frames and invert the whole chain)
        payloads, _ = decompress_tiles(frames_l3[chain], tiles)
        t_dec = verify_roundtrip(tensors, chain, tiles, payloads)
        xform[chain] = (raw_total / 1e6 / max(t_enc, 1e-9), raw_total / 1e6 / max(t_dec, 1e-9))

    # table 1: ratios
    print(f"### Total ratio, B={B} (raw / encoded; higher is better)\n")
    print("| chain | L1 | L3 | L9 | zstd comp MB/s L1 / L3 | zstd decomp MB/s L1 / L3 | numpy transform enc / dec+verify MB/s |")
    print("|---|---|---|---|---|---|---|")
    for chain in CHAINS:
        cells = [fmt(ratio[(chain, L)]) if (chain, L) in ratio else "–" for L in (1, 3, 9)]
        c1, d1 = timing[(chain, 1)]
        c3, d3 = timing[(chain, 3)]
        print(f"| {chain} | {' | '.join(cells)} | {c1:.0f} / {c3:.0f} | {d1:.0f} / {d3:.0f} | "
              f"{xform[chain][0]:.0f} / {xform[chain][1]:.0f} |")

    # reference: plain zstd -3 on concatenated files
    nraw, cli, py = cli_zstd3(files)
    print(f"\nReference: concatenated {S} original files = {nraw:,} bytes; "
          f"`zstd -3 -T1` ratio {fmt(nraw / cli) if cli else 'n/a'} "
          f"(python zstandard L3, one frame: {fmt(nraw / py)}).\n")

    # B sweep for best 2 chains at level 3
    cand = [c for c in CHAINS if c != "plain"]
    best2 = sorted(cand, key=lambda c: -ratio[(c, 3)])[:2]
    Bs = [256, 1024, 4096, 16384, 65536]
    print("### Tile size sweep, level 3 (best 2 chains at B=4096/L3)\n")
    print("| chain | " + " | ".join(f"B={b}" for b in Bs) + " |")
    print("|---|" + "---|" * len(Bs))
    for chain in best2:
        cells = []
        for b in Bs:
            tiles = tiles_b4096[chain] if b == 4096 else encode_tiles(tensors, chain, b)[0]
            _, enc, _ = compress_tiles(tiles, 3)
            cells.append(fmt(raw_total / enc))
        print(f"| {chain} | " + " | ".join(cells) + " |")

    # per-plane frames for the best chain
    best = best2[0]
    tiles = tiles_b4096[best]
    one_frame = raw_total / sum(min(len(f), len(t[3])) for f, t in zip(frames_l3[best], tiles))
    pp_enc, enc_k, raw_k = per_plane(tiles, nb, 3, raw_fallback=False)
    pp_enc_fb, enc_k_fb, _ = per_plane(tiles, nb, 3, raw_fallback=True)
    print(f"\n### Per-plane zstd frames, {best}, B=4096, L3\n")
    print(f"- one frame per tile: {fmt(one_frame)}; one frame per plane: {fmt(raw_total / pp_enc)}; "
          f"per plane with raw fallback per plane: {fmt(raw_total / pp_enc_fb)}")
    print("- per-plane ratio (plane 0 = least significant byte): " +
          ", ".join(f"p{k} {raw_k[k] / enc_k[k]:.2f}" for k in range(nb)) +
          "; share of encoded bytes: " +
          ", ".join(f"p{k} {100 * enc_k_fb[k] / enc_k_fb.sum():.0f}%" for k in range(nb)))

    # bit-level facts that explain the numbers
    changed = sum(int(np.count_nonzero(V[:, 1:] != V[:, :-1])) for V in tensors.values())
    print(f"- values that change between consecutive snapshots: "
          f"{100 * changed / (P * (S - 1)):.1f}%")
    print(f"\n(run time {time.perf_counter() - t_run:.1f} s)")
    return ratio


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--quick", action="store_true", help="skip level 9")
    args = ap.parse_args()
    print(f"# ParamSnap codec study (numpy {np.__version__}, zstandard {zstd.__version__}, "
          f"libzstd {'.'.join(map(str, zstd.ZSTD_VERSION))})")
    t0 = time.perf_counter()
    for label, sub, pattern in RUNS:
        study_run(label, os.path.join(args.data, sub), pattern, args.quick)
    print(f"\nTotal time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
