#!/usr/bin/env python3
# Independent .psnap reader, written from spec/FORMAT.md alone (section numbers below refer to it).
"""Usage: psnap_reader.py FILE (--dump | --trajectory TENSOR INDEX) [--no-verify]
Module: open_psnap(path) -> Psnap with .tensors, .snapshots, .trajectory(name, i), .tensor_at(name, k).
Errors raise PsnapError; the command line prints "error: ..." and exits 65."""
import json
import signal
import struct
import sys

import numpy as np
import zstandard

M64 = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc, lane):
    acc = (acc + lane * P2) & M64
    return (((acc << 31) | (acc >> 33)) & M64) * P1 & M64


def xxh64(data, seed=0):
    """XXH64 (the hash used by every checksum of the format, §3, §6, §8)."""
    data, n, i = memoryview(data).cast("B"), len(data), 0
    if n >= 32:
        v1, v2, v3, v4 = (seed + P1 + P2) & M64, (seed + P2) & M64, seed, (seed - P1) & M64
        end = n - n % 32
        for a, b, c, d in struct.iter_unpack("<4Q", data[:end]):
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & M64
        for v in (v1, v2, v3, v4):
            h = ((h ^ _round(0, v)) * P1 + P4) & M64
        i = end
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h = (_rotl(h ^ _round(0, int.from_bytes(data[i:i + 8], "little")), 27) * P1 + P4) & M64
        i += 8
    if i + 4 <= n:
        h = (_rotl(h ^ (int.from_bytes(data[i:i + 4], "little") * P1 & M64), 23) * P2 + P3) & M64
        i += 4
    for byte in data[i:]:
        h = _rotl(h ^ (byte * P5 & M64), 11) * P1 & M64
    h = (h ^ (h >> 33)) * P2 & M64
    h = (h ^ (h >> 29)) * P3 & M64
    return h ^ (h >> 32)


class PsnapError(Exception):
    pass


class UsageError(PsnapError):     # unknown tensor or index: the caller's mistake, not the file's
    pass


def _check(cond, msg):
    if not cond:
        raise PsnapError(msg)


HEADER = struct.Struct("<8sHHIQ8si20sQ")                 # §3, 64 bytes
FOOTER = struct.Struct("<8sHHIQQQQQQQQQQQ8sQ8s")         # §8, 128 bytes
ENTRY = struct.Struct("<IIQQQQQQQ")                       # §6, 64 bytes
STAGES = {1: "xor", 2: "sub", 3: "split", 4: "bytedelta", 5: "linpred", 6: "lead", 16: "zstd", 17: "zstdplanes", 18: "lenrans"}  # §5
TERMINAL = (16, 17, 18)
DTYPES = {"f32": (4, "<f4"), "f16": (2, "<f2"), "bf16": (2, "<u2"), "f64": (8, "<f8")}  # §1.2
UINT = {2: "<u2", 4: "<u4", 8: "<u8"}
# §11 sanity caps
MAX_TENSORS, MAX_DIMS, MAX_NAME, MAX_META = 1 << 24, 16, 4096, 1 << 30
MAX_INDEX, MAX_SNAPSHOTS, MAX_RAW, MAX_B = 1 << 40, 1 << 32, (1 << 31) - 1, 1 << 24


def _footer_problem(buf, f, size):
    """Returns (None, fields) if the footer at offset f is valid per §8, else (reason, None)."""
    if f < 64 or f + 128 > size:
        return "out of range", None
    (mg, major, _minor, fsize, _seq, prev, ioff, ilen, ick, moff, mlen, mck, snaps, tiles,
     _params, _res, fck, emg) = fields = FOOTER.unpack_from(buf, f)
    if mg != b"PSNAPFTR" or emg != b"PSNAPEND":
        return "bad magic", None
    if major != 1 or fsize != 128:   # minor version: accepted like the header's (§3, see report)
        return f"version {major} / footerSize {fsize} not supported", None
    if xxh64(buf[f:f + 112]) != fck:
        return "footer checksum mismatch", None
    if not (moff + mlen == f and ioff + ilen == moff and ilen == 64 * tiles and ioff >= 64
            and prev < ioff and (prev == 0 or prev >= 64)):
        return "inconsistent offsets", None
    if ilen > MAX_INDEX or mlen > MAX_META or snaps > MAX_SNAPSHOTS:   # §11
        return "exceeds a sanity cap", None
    if xxh64(buf[ioff:moff]) != ick:
        return "index checksum mismatch", None
    if xxh64(buf[moff:f]) != mck:
        return "metadata checksum mismatch", None
    return None, fields


def _newest_record(buf, size):
    """§8.1: offset of the newest footer record, or None."""
    start = buf.rfind(b"PSNAPFTR", 64, size)                 # a start magic (a record cut short by EOF too)
    end = buf.rfind(b"PSNAPEND", 64 + 120, size)           # an end magic with the record's start >= 64
    cands = [p for p in (start, end - 120 if end >= 0 else -1) if p >= 64]
    return max(cands) if cands else None


def _strict_json(text, where):
    def bad_constant(c):
        raise PsnapError(f"{where}: non-JSON constant {c}")
    try:
        return json.loads(text.decode("utf-8"), parse_constant=bad_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise PsnapError(f"{where}: invalid JSON ({e})") from None


class Tensor:
    def __init__(self, i, obj, B):
        where = f"metadata tensor {i}"
        _check(isinstance(obj, dict), f"{where}: not an object")
        self.name, self.dtype, self.shape = obj.get("name"), obj.get("dtype"), obj.get("shape")
        _check(isinstance(self.name, str) and 1 <= len(self.name.encode()) <= MAX_NAME,
               f"{where}: name missing, empty or longer than {MAX_NAME} bytes")
        _check(self.dtype in DTYPES, f"{where} '{self.name}': unknown dtype {self.dtype!r}")
        _check(isinstance(self.shape, list) and len(self.shape) <= MAX_DIMS and all(
            type(d) is int and d >= 0 for d in self.shape), f"{where} '{self.name}': bad shape")
        self.count = 1
        for d in self.shape:
            self.count *= d
        _check(self.count < 1 << 63, f"{where} '{self.name}': parameter count exceeds 63 bits")
        self.esize, self.np_dtype = DTYPES[self.dtype]
        self.blocks = -(-self.count // B)                  # §4: last block may be shorter
        self.tiles = [[] for _ in range(self.blocks)]      # per block: entries in segment order


class Psnap:
    def __init__(self, path, verify=True):
        with open(path, "rb") as fh:
            self.buf = buf = fh.read()
        self.verify, size = verify, len(buf)
        # §8.1 step 1 / §3: the header
        _check(size >= 64, f"file is {size} bytes, shorter than the 64-byte header")
        magic, major, _minor, hsize, B, chain, self.zstd_level, _res, hck = HEADER.unpack_from(buf)
        _check(magic == b"\x89PSNAP\r\n", "header: bad magic at offset 0")
        _check(major == 1, f"header: unknown major version {major} at offset 8")
        _check(xxh64(buf[:56]) == hck, "header: checksum mismatch at offset 56")
        _check(hsize == 64, f"header: headerSize {hsize} at offset 12, expected 64")
        _check(1 <= B <= MAX_B and B & (B - 1) == 0, f"header: bad blockSize {B} at offset 16")
        self.block_size, self.chain = B, list(chain.split(b"\0")[0])
        for i, s in enumerate(self.chain):               # §5: known stages, terminal last
            _check(s in STAGES, f"header: unknown codec stage {s} at offset {24 + i}")
            _check(s not in TERMINAL or i == len(self.chain) - 1,
                   f"header: terminal codec stage '{STAGES[s]}' is not last (offset {24 + i})")
        # §8.1 steps 2-5: the newest footer record (128 bytes starting with the footer magic or ending with the
        # end magic) is the newest commit and must be valid; bytes after it hold no record (a torn tail)
        _check(size >= 192, f"file is {size} bytes: too short to hold a commit")
        f = _newest_record(buf, size)
        _check(f is not None, "no valid commit (no footer record)")
        reason, found = _footer_problem(buf, f, size)
        _check(found is not None, f"damaged commit at offset {f}: {reason} (a footer record is never a torn tail)")
        self.footer_offset, self.ignored_bytes = f, size - (f + 128)
        (_m, _a, _b, _c, self.commit_sequence, _p, ioff, ilen, _ick, moff, _ml, _mck,
         self.snapshot_count, tile_count, param_count, _r, _fck, _e) = found
        self._read_metadata(buf[moff:f], param_count)
        self._read_index(buf, ioff, tile_count)

    def _read_metadata(self, raw, param_count):     # §7
        meta = _strict_json(raw, "metadata")
        _check(isinstance(meta, dict), "metadata: not a JSON object")
        tensors, snaps = meta.get("tensors"), meta.get("snapshots")
        _check(isinstance(tensors, list) and len(tensors) <= MAX_TENSORS,
               "metadata: 'tensors' missing or not a list (or too many)")
        _check(isinstance(snaps, list) and all(isinstance(s, dict) for s in snaps),
               "metadata: 'snapshots' missing or not a list of objects")
        self.tensors = [Tensor(i, t, self.block_size) for i, t in enumerate(tensors)]
        self.by_name = {t.name: t for t in self.tensors}
        _check(len(self.by_name) == len(self.tensors), "metadata: duplicate tensor names")
        total = sum(t.count for t in self.tensors)
        _check(total < 1 << 63, "metadata: total parameter count exceeds 63 bits")
        _check(total == param_count,
               f"metadata: {total} parameters, footer parameterCount says {param_count}")
        _check(len(snaps) == self.snapshot_count,
               f"metadata: {len(snaps)} snapshots, footer snapshotCount says {self.snapshot_count}")
        self.snapshots, self.metadata = snaps, meta

    def _read_index(self, buf, ioff, tile_count):    # §6 validity rules
        B, S_all, last = self.block_size, self.snapshot_count, None
        for n in range(tile_count):
            e = ENTRY.unpack_from(buf, ioff + 64 * n)
            tensor, flags, block, first, scount, off, stored, raw, _ck = e
            at = f"tile {n} (index entry at offset {ioff + 64 * n})"
            _check(tensor < len(self.tensors), f"{at}: tensor {tensor} out of range")
            t = self.tensors[tensor]
            at = f"tile {n} (tensor '{t.name}', block {block}, snapshots {first}..<{first + scount})"
            _check(flags & ~3 == 0, f"{at}: reserved flag bits set ({flags:#x})")
            _check(not flags & 2 or (first > 0 and not flags & 1 and self.chain[:1] == [5]),
                   f"{at}: anchored, but at snapshot 0, stored raw, or under a chain not starting with linpred")
            _check(block < t.blocks, f"{at}: block out of range ({t.blocks} blocks)")
            _check(scount >= 1 and first + scount <= S_all, f"{at}: segment outside 0..<{S_all}")
            _check(raw == self._params(t, block) * scount * t.esize and raw <= MAX_RAW,
                   f"{at}: bad rawLength {raw}")
            _check(not flags & 1 or stored == raw, f"{at}: storedRaw but storedLength != rawLength")
            _check(off >= 64 and off + stored <= ioff, f"{at}: stored bytes at offset {off}"
                   f" length {stored} not between the header and the index at {ioff}")
            key = (tensor, block, first)
            _check(last is None or key > last, f"{at}: index not sorted by (tensor, block, first)")
            last, segs = key, t.tiles[block]
            expect = segs[-1][4] + segs[-1][5] if segs else 0
            _check(first == expect, f"{at}: segment should start at snapshot {expect}")
            segs.append((n,) + e)
        for t in self.tensors:                           # coverage of [0, snapshotCount)
            for b, segs in enumerate(t.tiles):
                end = segs[-1][4] + segs[-1][5] if segs else 0
                _check(end == S_all, f"tensor '{t.name}' block {b}: tiles cover snapshots "
                       f"0..<{end}, expected 0..<{S_all}")

    def _params(self, t, block):
        return min(self.block_size, t.count - block * self.block_size)

    def _tile(self, t, entry):
        """Raw tile (§4) of one index entry, as a (params, S) array of unsigned bit patterns."""
        n, _ti, flags, block, first, S, off, stored_len, raw_len, ck = entry
        at = f"tile {n} (tensor '{t.name}', block {block}, snapshots {first}..<{first + S})"
        stored = self.buf[off:off + stored_len]
        if self.verify:
            got = xxh64(stored)
            _check(got == ck, f"{at}: checksum mismatch (expected {ck:#018x}, got {got:#018x})"
                   f" at offset {off}")
        E, P = t.esize, self._params(t, block)
        data = stored if flags & 1 else self._decode(stored, raw_len, E, P, S, f"{at} at offset {off}")
        u = np.frombuffer(data, UINT[E]).reshape(P, S)
        if flags & 2:   # §5.2 anchored: add back the block's snapshot-0 values, as order-preserving integers
            anchor = self._tile(t, t.tiles[block][0])[:, 0]
            with np.errstate(over="ignore"):
                u = _monotone(_monotone(u, E) + _monotone(anchor, E)[:, None], E)
        return u

    def _decode(self, buf, raw_len, E, P, S, at):   # §5: stages last to first
        N = raw_len // E
        try:
            for stage in reversed(self.chain):
                if stage == 16:
                    buf = _unzstd(buf, raw_len, at)
                    continue
                if stage == 17:
                    buf = _unzstdplanes(buf, raw_len, E, at)
                    continue
                if stage == 18:
                    buf = _unlenrans(buf, E, P, S, at)
                    continue
                _check(len(buf) == raw_len, f"{at}: {len(buf)} bytes where {raw_len} expected")
                if stage in (1, 2):            # xor / sub: running xor / sum along snapshots
                    a = np.frombuffer(buf, UINT[E]).reshape(P, S)
                    a = np.bitwise_xor.accumulate(a, axis=1) if stage == 1 else np.cumsum(
                        a, axis=1, dtype=UINT[E])
                elif stage == 5:               # linpred: order-2 prediction on order-preserving ints, zigzag
                    a = _unlinpred(np.frombuffer(buf, UINT[E]).reshape(P, S), E)
                elif stage == 6:               # lead: elements (p, 0) first, then (p, s ≥ 1) parameter-major
                    flat = np.frombuffer(buf, UINT[E])
                    a = np.empty((P, S), UINT[E])
                    a[:, 0] = flat[:P]
                    a[:, 1:] = flat[P:].reshape(P, S - 1)
                elif stage == 3:               # split: byte k of element i is at k·N + i
                    a = np.frombuffer(buf, np.uint8).reshape(E, N).T
                else:                          # bytedelta: per-plane running byte sum mod 256
                    a = np.cumsum(np.frombuffer(buf, np.uint8).reshape(E, N), axis=1, dtype=np.uint8)
                buf = np.ascontiguousarray(a).tobytes()
        except zstandard.ZstdError as e:
            raise PsnapError(f"{at}: zstd error: {e}") from None
        _check(len(buf) == raw_len, f"{at}: decoded {len(buf)} bytes, rawLength is {raw_len}")
        return buf

    def _tensor(self, name):
        if name not in self.by_name:
            raise UsageError(f"no tensor named '{name}'")
        return self.by_name[name]

    def tensor_bits(self, name):
        """All values of a tensor as a (count, snapshotCount) array of bit patterns."""
        t = self._tensor(name)
        out = np.zeros((t.count, self.snapshot_count), UINT[t.esize])
        for b, segs in enumerate(t.tiles):
            for e in segs:
                out[b * self.block_size:b * self.block_size + self._params(t, b),
                    e[4]:e[4] + e[5]] = self._tile(t, e)
        return out

    def tensor_float64(self, name):
        """All values of a tensor as a (count, snapshotCount) float64 array (exact for every dtype; bf16 widened)."""
        t = self._tensor(name)
        bits = self.tensor_bits(name)
        if t.dtype == "bf16":
            return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return bits.view(t.np_dtype).astype(np.float64)

    def tensor_at(self, name, k):
        """Raw little-endian bytes of tensor `name` at snapshot k, row-major."""
        _check(0 <= k < self.snapshot_count, f"snapshot {k} out of range 0..<{self.snapshot_count}")
        return np.ascontiguousarray(self.tensor_bits(name)[:, k]).tobytes()

    def trajectory(self, name, index):
        """Values of one parameter (flat row-major index) at every snapshot; bf16 as uint16."""
        t = self._tensor(name)
        if not 0 <= index < t.count:
            raise UsageError(f"tensor '{name}': index {index} out of range 0..<{t.count}")
        b, p = divmod(index, self.block_size)
        row = [self._tile(t, e)[p] for e in t.tiles[b]]
        bits = np.concatenate(row) if row else np.zeros(0, UINT[t.esize])
        return bits.view(t.np_dtype)


def _monotone(u, E):
    """§5 linpred's order-preserving map (its own inverse): the magnitude bits flipped when the sign bit is set."""
    U = np.dtype(UINT[E]).type
    return u ^ ((u >> U(8 * E - 1)) * U((1 << (8 * E - 1)) - 1))


def _unlinpred(z, E):
    """§5 stage 5 decode: r = unzigzag(z); m(s) = r(s) + 2·m(s−1) − m(s−2) with m(−1) = m(0) (mod 2^W);
    the bit pattern is m with its magnitude bits flipped when the sign bit is set."""
    W = 8 * E
    U = np.dtype(UINT[E]).type
    top = U(W - 1)
    r = (z >> U(1)) ^ (U(0) - (z & U(1)))
    m = np.empty_like(r)
    P, S = r.shape
    m1 = np.zeros(P, U)
    m2 = np.zeros(P, U)
    with np.errstate(over="ignore"):
        for s in range(S):
            if s == 0:
                m[:, 0] = r[:, 0]
                m1 = m[:, 0].copy(); m2 = m1.copy()
                continue
            m[:, s] = r[:, s] + m1 + (m1 - m2)
            m2 = m1; m1 = m[:, s].copy()
    mask = U((1 << (W - 1)) - 1)
    return m ^ ((m >> top) * mask)


def _unzstd(data, n, at):
    """One zstd frame whose decoded size must be n (§5 stage 16)."""
    size = zstandard.frame_content_size(data)
    _check(size in (-1, n), f"{at}: zstd frame content size {size}, expected {n}")
    d = zstandard.ZstdDecompressor().decompressobj()
    out = d.decompress(data)
    _check(d.eof and not d.unused_data, f"{at}: not exactly one complete zstd frame")
    _check(len(out) == n, f"{at}: zstd frame decoded to {len(out)} bytes, expected {n}")
    return out


def _unlenrans(data, E, P, S, at):
    """§5.1 stage 18: bit lengths and signs by rANS under row contexts, low bits raw, in row groups."""
    W = 8 * E
    A, C = W + 1, W + 2
    pos = 0

    def u8():
        nonlocal pos
        _check(pos < len(data), f"{at}: lenrans header ends at byte {pos}")
        pos += 1
        return data[pos - 1]

    def varint():
        v = 0
        for i in range(9):
            b = u8()
            v |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                return v
        raise PsnapError(f"{at}: lenrans varint longer than 9 bytes")

    G = u8() | u8() << 8
    _check(G >= 1, f"{at}: lenrans group of 0 rows")
    tables = []                                      # per context: None or list of (freq, cum) by symbol
    for c in range(C):
        count = u8()
        if count == 0:
            tables.append(None)
            continue
        lo = u8()
        _check(lo + count <= A, f"{at}: lenrans context {c} symbols outside 0..{A - 1}")
        fr = [0] * A
        for k in range(count):
            fr[lo + k] = varint()
        _check(sum(fr) == 4096, f"{at}: lenrans context {c} frequencies sum to {sum(fr)}")
        cum, acc = [0] * A, 0
        for k in range(A):
            cum[k], acc = acc, acc + fr[k]
        tables.append((fr, cum))
    sign = {}
    for n in range(2, A):
        for q in range(3):
            v = varint()
            _check(v < 4096, f"{at}: lenrans sign probability {v}")
            sign[(q, n)] = v
    NG = (P + G - 1) // G
    lens = [(varint(), varint()) for _ in range(NG)]
    _check(sum(a + b for a, b in lens) == len(data) - pos, f"{at}: lenrans groups do not end at the tile's end")
    out = np.zeros((P, S), dtype=UINT[E])
    for g, (ra, rb) in enumerate(lens):
        _check(ra >= 8 and ra % 2 == 0, f"{at}: lenrans group {g} has {ra} rANS bytes")
        rans, raw = data[pos:pos + ra], data[pos + ra:pos + ra + rb]
        pos += ra + rb
        x = list(struct.unpack_from("<2I", rans, 0))
        rp, bitpos = 8, 0

        def dec(k, f, cm):
            nonlocal rp
            slot = x[k] & 4095
            x[k] = f * (x[k] >> 12) + slot - cm
            if x[k] < 1 << 16:
                _check(rp + 2 <= len(rans), f"{at}: lenrans group {g} rANS stream ends early")
                x[k] = (x[k] << 16) | struct.unpack_from("<H", rans, rp)[0]
                rp += 2

        rows = list(range(g * G, min(P, (g + 1) * G)))
        for i in range(0, len(rows), 2):
            pair = rows[i:i + 2]
            hist = {p: [-1, -1, 0] for p in pair}     # n(s-1), n(s-2), q
            for s in range(S):
                for k, p in enumerate(pair):
                    n1, n2, q = hist[p]
                    c = max(n1, n2) + 1
                    t = tables[c]
                    _check(t is not None, f"{at}: lenrans context {c} unused but needed")
                    fr, cum = t
                    slot = x[k] & 4095
                    n = next(sym for sym in range(A) if fr[sym] and cum[sym] <= slot < cum[sym] + fr[sym])
                    dec(k, fr[n], cum[n])
                    if n < 2:
                        z = n
                    else:
                        p1 = sign[(q, n)]
                        _check(p1 > 0, f"{at}: lenrans sign context ({q}, {n}) unused but needed")
                        if (x[k] & 4095) < p1:
                            sg = 1
                            dec(k, p1, 0)
                        else:
                            sg = 0
                            dec(k, 4096 - p1, p1)
                        mid = 0
                        for b in range(n - 2):
                            _check(bitpos < 8 * len(raw), f"{at}: lenrans group {g} raw bits end early")
                            mid |= ((raw[bitpos >> 3] >> (bitpos & 7)) & 1) << b
                            bitpos += 1
                        z = (1 << (n - 1)) | (mid << 1) | sg
                    out[p, s] = z
                    hist[p] = [n, n1, 1 + (z & 1)]
        _check(x == [1 << 16, 1 << 16] and rp == len(rans), f"{at}: lenrans group {g} rANS stream does not end cleanly")
        _check((bitpos + 7) // 8 == len(raw), f"{at}: lenrans group {g} raw-bit byte count")
        _check(bitpos % 8 == 0 or raw[-1] >> (bitpos % 8) == 0, f"{at}: lenrans group {g} padding bits not zero")
    return out.tobytes()


def _unzstdplanes(data, raw_len, E, at):
    """E plane descriptors, then the planes, each raw or one zstd frame (§5 stage 17)."""
    N = raw_len // E
    _check(len(data) >= 8 * E, f"{at}: zstdplanes shorter than its {E} descriptors")
    desc, pos, planes = struct.unpack_from(f"<{E}Q", data), 8 * E, []
    _check(sum(d & ~(1 << 63) for d in desc) == len(data) - 8 * E,
           f"{at}: zstdplanes plane lengths do not add up to storedLength - {8 * E}")
    for k, d in enumerate(desc):
        length = d & ~(1 << 63)
        plane = data[pos:pos + length]
        if d >> 63:
            _check(length == N, f"{at}: raw plane {k} has length {length}, expected {N}")
        else:
            plane = _unzstd(plane, N, f"{at} plane {k}")
        planes.append(plane)
        pos += length
    return b"".join(planes)


def open_psnap(path, verify=True):
    return Psnap(path, verify)


def main(argv):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)     # quiet when piped into head
    args = [a for a in argv if a != "--no-verify"]
    if len(args) == 2 and args[1] == "--dump":
        mode = "dump"
    elif len(args) == 4 and args[1] == "--trajectory" and args[3].isdigit():
        mode = "trajectory"
    else:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 64
    try:
        r = open_psnap(args[0], verify="--no-verify" not in argv)
        if mode == "trajectory":
            t = r._tensor(args[2])
            for v in r.trajectory(args[2], int(args[3])).view(UINT[t.esize]):
                print(f"0x{int(v):0{2 * t.esize}x}")
            return 0
        tensors = []
        for t in r.tensors:
            bits = r.tensor_bits(t.name)
            tensors.append({"name": t.name, "dtype": t.dtype, "shape": t.shape, "snapshots": [
                np.ascontiguousarray(bits[:, k]).tobytes().hex() for k in range(r.snapshot_count)]})
        print(json.dumps({"snapshotCount": r.snapshot_count, "ignoredBytes": r.ignored_bytes,
                          "blockSize": r.block_size, "codec": [STAGES[s] for s in r.chain],
                          "snapshots": r.snapshots, "tensors": tensors}, sort_keys=True))
        return 0
    except PsnapError as e:
        print(f"error: {args[0]}: {e}", file=sys.stderr)
        return 64 if isinstance(e, UsageError) else 65
    except OSError as e:
        print(f"error: {args[0]}: {e.strerror}", file=sys.stderr)
        return 66 if isinstance(e, FileNotFoundError) else 74


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
