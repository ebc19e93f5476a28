// §5 stage 18 `lenrans`: each element coded as its bit length (rANS, context = the row's two previous bit lengths),
// its sign bit (rANS, context = previous sign and bit length) and its remaining low bits raw, in row groups that
// decode on their own (a single trajectory inflates one group, not the tile).

/// Why a `lenrans` payload could not be decoded (wrapped into `TileCodecError.lenrans`).
struct LenRansError: Error { let message: String; init(_ m: String) { message = m } }

/// Pure byte-layout coder for stage 18 (spec §5.1). Scratch lives in the instance: not thread-safe, one per codec.
final class LenRans {
    static let probBits: UInt32 = 12
    static let probScale: UInt32 = 1 << 12
    static let ransLow: UInt32 = 1 << 23
    /// Writer's default rows per group (spec: any 1...65535).
    static let defaultGroupRows = 32

    // Decoder tables (rebuilt per tile): symbol lookup per context, frequencies and starts per context and symbol.
    private var lut: UnsafeMutablePointer<UInt8>
    private var freq: UnsafeMutablePointer<UInt32>
    private var cum: UnsafeMutablePointer<UInt32>
    private var signP: UnsafeMutablePointer<UInt32>
    // Encoder scratch: counts, reversed rANS bytes, raw bits.
    private var scratch: UnsafeMutableRawBufferPointer = .init(start: nil, count: 0)

    /// Largest element size (bytes) and the alphabet/context counts it implies.
    static let maxSymbols = 65, maxContexts = 66

    init() {
        lut = .allocate(capacity: Self.maxContexts * Int(Self.probScale))
        freq = .allocate(capacity: Self.maxContexts * Self.maxSymbols)
        cum = .allocate(capacity: Self.maxContexts * Self.maxSymbols)
        signP = .allocate(capacity: 3 * Self.maxSymbols)
        lut.initialize(repeating: 0, count: Self.maxContexts * Int(Self.probScale))
    }

    deinit { lut.deallocate(); freq.deallocate(); cum.deallocate(); signP.deallocate(); scratch.deallocate() }

    @inline(__always) static func bitLength(_ z: UInt64) -> Int { 64 &- z.leadingZeroBitCount }

    // MARK: encode

    /// Encodes `params × snapshots` unsigned elements (`T`) into `out`; nil when the result would not be smaller than
    /// `limit` bytes (the caller then stores the tile raw).
    func encode<T: FixedWidthInteger & UnsignedInteger>(_ src: UnsafePointer<T>, as _: T.Type, params P: Int, snapshots S: Int,
                                                      groupRows G: Int, into out: UnsafeMutableRawBufferPointer, limit: Int) -> Int? {
        let A = T.bitWidth + 1, C = T.bitWidth + 2
        let count = P * S
        // Counts of bit lengths per context and of signs per (previous sign, bit length).
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: C * A + 3 * A * 2)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: C * A + 3 * A * 2)
        let signCounts = counts + C * A
        for p in 0..<P {
            let row = src + p * S
            var n1 = -1, n2 = -1, q = 0
            for s in 0..<S {
                let z = UInt64(row[s])
                let n = Self.bitLength(z)
                counts[(max(n1, n2) &+ 1) &* A &+ n] &+= 1
                if n >= 2 { signCounts[(q &* A &+ n) &* 2 &+ Int(z & 1)] &+= 1 }
                n2 = n1; n1 = n; q = 1 &+ Int(z & 1)
            }
        }
        // Normalised frequencies (sum 2^12 per used context) and sign probabilities.
        let f = UnsafeMutablePointer<UInt32>.allocate(capacity: C * A + C * A + 3 * A)
        defer { f.deallocate() }
        let cm = f + C * A, sp = f + 2 * C * A
        for c in 0..<C { Self.normalise(counts + c * A, A, into: f + c * A) }
        for c in 0..<C { var acc: UInt32 = 0; for s in 0..<A { cm[c * A + s] = acc; acc &+= f[c * A + s] } }
        for i in 0..<(3 * A) {
            let c0 = signCounts[2 * i], c1 = signCounts[2 * i + 1]
            if c0 + c1 == 0 { sp[i] = 0; continue }
            let p = (Double(c1) + 0.5) / (Double(c0 + c1) + 1) * Double(Self.probScale)
            sp[i] = UInt32(min(max(p.rounded(), 1), Double(Self.probScale - 1)))
        }
        // Header: group rows, tables.
        var w = PayloadWriter(out, limit: limit)
        w.u16(UInt16(G))
        for c in 0..<C {
            let row = f + c * A
            guard let lo = (0..<A).first(where: { row[$0] != 0 }) else { w.u8(0); continue }
            let hi = (0..<A).last(where: { row[$0] != 0 })!
            w.u8(UInt8(hi - lo + 1)); w.u8(UInt8(lo))
            for s in lo...hi { w.varint(UInt64(row[s])) }
        }
        for n in 2..<A { for q in 0..<3 { w.varint(UInt64(sp[q * A + n])) } }
        // Groups: encode each into scratch (rANS bytes backwards, raw bits forwards), then directory, then payloads.
        let groups = (P + G - 1) / G
        let maxGroupValues = min(G, P) * S
        let need = groups * 16 + maxGroupValues * 4 + 8 + maxGroupValues * (T.bitWidth / 8 + 1) + 8 + count * (4 + T.bitWidth / 8) + groups * 8 + 64
        if scratch.count < need { scratch.deallocate(); scratch = .allocate(byteCount: need, alignment: 64) }
        let dir = scratch.baseAddress!.assumingMemoryBound(to: Int.self)           // 2 lengths per group
        let ransTmp = scratch.baseAddress! + groups * 16                          // one group's rANS bytes
        let ransCap = maxGroupValues * 4 + 8
        let rawTmp = ransTmp + ransCap                                             // one group's raw bits
        let payload = rawTmp + maxGroupValues * (T.bitWidth / 8 + 1) + 8         // all groups, back to back
        var payloadLen = 0
        for g in 0..<groups {
            let r0 = g * G, r1 = min(P, r0 + G)
            // Raw bits, forwards.
            var bits = BitWriter(rawTmp)
            for p in r0..<r1 {
                let row = src + p * S
                for s in 0..<S {
                    let z = UInt64(row[s])
                    let n = Self.bitLength(z)
                    if n >= 3 { bits.put((z &>> 1) & ((1 &<< UInt64(n &- 2)) &- 1), n &- 2) }
                }
            }
            let rawLen = bits.finish()
            // rANS, backwards: for each value, sign (if any) then bit length, so the decoder reads length first.
            var x = Self.ransLow
            var ptr = ransTmp + ransCap
            var p = r1 - 1
            while p >= r0 {
                let row = src + p * S
                var s = S - 1
                while s >= 0 {
                    let z = UInt64(row[s])
                    let n = Self.bitLength(z)
                    let n1 = s >= 1 ? Self.bitLength(UInt64(row[s - 1])) : -1
                    let n2 = s >= 2 ? Self.bitLength(UInt64(row[s - 2])) : -1
                    if n >= 2 {
                        let q = s >= 1 ? 1 + Int(UInt64(row[s - 1]) & 1) : 0
                        let p1 = sp[q * A + n]
                        if z & 1 == 1 { Self.put(&x, &ptr, start: 0, freq: p1) } else { Self.put(&x, &ptr, start: p1, freq: Self.probScale - p1) }
                    }
                    let c = max(n1, n2) + 1
                    Self.put(&x, &ptr, start: cm[c * A + n], freq: f[c * A + n])
                    s -= 1
                }
                p -= 1
            }
            ptr -= 4
            ptr.storeBytes(of: x.littleEndian, as: UInt32.self)
            let ransLen = ransTmp + ransCap - ptr
            (payload + payloadLen).copyMemory(from: ptr, byteCount: ransLen)
            (payload + payloadLen + ransLen).copyMemory(from: rawTmp, byteCount: rawLen)
            payloadLen += ransLen + rawLen
            dir[2 * g] = ransLen; dir[2 * g + 1] = rawLen
            if w.count + payloadLen >= limit { return nil }
        }
        for g in 0..<groups { w.varint(UInt64(dir[2 * g])); w.varint(UInt64(dir[2 * g + 1])) }
        w.bytes(UnsafeRawPointer(payload), payloadLen)
        return w.overflow ? nil : w.count
    }

    @inline(__always)
    static func put(_ x: inout UInt32, _ ptr: inout UnsafeMutableRawPointer, start: UInt32, freq: UInt32) {
        let xMax = ((ransLow >> probBits) << 8) &* freq
        while x >= xMax { ptr -= 1; ptr.storeBytes(of: UInt8(truncatingIfNeeded: x), as: UInt8.self); x >>= 8 }
        x = ((x / freq) << probBits) &+ (x % freq) &+ start
    }

    /// Scales `counts` (A entries) to frequencies summing to 2^12, every non-zero count at least 1; all zero stays zero.
    static func normalise(_ counts: UnsafePointer<Int>, _ A: Int, into f: UnsafeMutablePointer<UInt32>) {
        var total = 0
        for s in 0..<A { total += counts[s] }
        if total == 0 { for s in 0..<A { f[s] = 0 }; return }
        var sum: Int = 0, largest = 0
        for s in 0..<A {
            let c = counts[s]
            if c == 0 { f[s] = 0; continue }
            let v = max(1, Int((Double(c) * Double(probScale) / Double(total)).rounded()))
            f[s] = UInt32(v); sum += v
            if c > counts[largest] || counts[largest] == 0 { largest = s }
        }
        var diff = Int(probScale) - sum
        // Put the rounding error on the most frequent symbols, never below 1.
        while diff != 0 {
            var best = -1
            for s in 0..<A where f[s] > 1 || (diff > 0 && f[s] > 0) {
                if best < 0 || f[s] > f[best] { best = s }
            }
            let step = diff > 0 ? diff : max(diff, 1 - Int(f[best]))
            f[best] = UInt32(Int(f[best]) + step)
            diff -= step
        }
    }

    // MARK: decode

    /// Parsed header of a payload: where each group's rANS and raw bytes are.
    struct Layout {
        var groupRows: Int
        var groups: [(rans: Range<Int>, raw: Range<Int>)]
    }

    /// Reads the tables into this instance and the group directory (every length checked against the payload).
    func parse(_ src: UnsafeRawBufferPointer, bitWidth W: Int, params P: Int) throws(LenRansError) -> Layout {
        let A = W + 1, C = W + 2
        var r = PayloadReader(src)
        let G = Int(try r.u16())
        guard G >= 1 else { throw LenRansError("group of 0 rows") }
        for c in 0..<C {
            let n = Int(try r.u8())
            let base = c * A
            for s in 0..<A { freq[base + s] = 0; cum[base + s] = 0 }
            if n == 0 { continue }
            let lo = Int(try r.u8())
            guard lo + n <= A else { throw LenRansError("context \(c): symbols \(lo)..<\(lo + n) outside 0..<\(A)") }
            var acc: UInt32 = 0
            for s in lo..<(lo + n) {
                let v = try r.varint()
                guard v <= UInt64(Self.probScale) - UInt64(acc) else { throw LenRansError("context \(c): frequencies exceed \(Self.probScale)") }
                freq[base + s] = UInt32(v); cum[base + s] = acc; acc += UInt32(v)
            }
            guard acc == Self.probScale else { throw LenRansError("context \(c): frequencies sum to \(acc), expected \(Self.probScale)") }
            let l = lut + c * Int(Self.probScale)
            for s in lo..<(lo + n) where freq[base + s] > 0 {
                (l + Int(cum[base + s])).update(repeating: UInt8(s), count: Int(freq[base + s]))
            }
        }
        for i in 0..<(3 * A) { signP[i] = 0 }
        for n in 2..<A {
            for q in 0..<3 {
                let v = try r.varint()
                guard v < UInt64(Self.probScale) else { throw LenRansError("sign probability \(v) ≥ \(Self.probScale)") }
                signP[q * A + n] = UInt32(v)
            }
        }
        let groups = (P + G - 1) / G
        var lens: [(Int, Int)] = []
        lens.reserveCapacity(groups)
        for _ in 0..<groups {
            let a = try r.varint(), b = try r.varint()
            guard a <= UInt64(src.count), b <= UInt64(src.count) else { throw LenRansError("group length \(max(a, b)) exceeds the tile") }
            lens.append((Int(a), Int(b)))
        }
        var at = r.offset
        var out: [(rans: Range<Int>, raw: Range<Int>)] = []
        out.reserveCapacity(groups)
        for (g, (a, b)) in lens.enumerated() {
            guard a >= 4 else { throw LenRansError("group \(g): \(a) rANS bytes (at least 4)") }
            guard a + b <= src.count - at else { throw LenRansError("group \(g) overruns the tile (\(src.count) bytes)") }
            out.append((at..<(at + a), (at + a)..<(at + a + b)))
            at += a + b
        }
        guard at == src.count else { throw LenRansError("\(src.count - at) bytes after the last group") }
        return Layout(groupRows: G, groups: out)
    }

    /// Decodes group `g` (rows g·G ..< min(P, (g+1)·G)) into `dst` (its rows, parameter-major).
    func decodeGroup<T: FixedWidthInteger & UnsignedInteger>(_ src: UnsafeRawBufferPointer, _ layout: Layout, group g: Int,
                                                           params P: Int, snapshots S: Int, into dst: UnsafeMutablePointer<T>) throws(LenRansError) {
        let A = T.bitWidth + 1
        let rows = min(P, (g + 1) * layout.groupRows) - g * layout.groupRows
        let (rr, br) = layout.groups[g]
        let base = src.baseAddress!
        var pos = rr.lowerBound + 4
        let end = rr.upperBound
        var x = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: rr.lowerBound, as: UInt32.self))
        var bits = BitReader(base + br.lowerBound, count: br.count)
        let mask = Self.probScale - 1
        for p in 0..<rows {
            let row = dst + p * S
            var n1 = -1, n2 = -1, q = 0
            for s in 0..<S {
                let c = max(n1, n2) &+ 1
                let slot = x & mask
                let n = Int(lut[c &* Int(Self.probScale) &+ Int(slot)])
                let fq = n < A ? freq[c &* A &+ n] : 0
                guard fq != 0 else { throw LenRansError("group \(g), row \(p), snapshot \(s): context \(c) has no code for its slot") }
                x = fq &* (x >> Self.probBits) &+ slot &- cum[c &* A &+ n]
                while x < Self.ransLow {
                    guard pos < end else { throw LenRansError("group \(g): rANS stream ends early") }
                    x = (x << 8) | UInt32(base.load(fromByteOffset: pos, as: UInt8.self)); pos &+= 1
                }
                var z: UInt64
                if n >= 2 {
                    let p1 = signP[q &* A &+ n]
                    guard p1 != 0 else { throw LenRansError("group \(g), row \(p), snapshot \(s): no sign probability for length \(n)") }
                    let sl = x & mask
                    let sign: UInt64 = sl < p1 ? 1 : 0
                    x = sign == 1 ? p1 &* (x >> Self.probBits) &+ sl : (Self.probScale &- p1) &* (x >> Self.probBits) &+ sl &- p1
                    while x < Self.ransLow {
                        guard pos < end else { throw LenRansError("group \(g): rANS stream ends early") }
                        x = (x << 8) | UInt32(base.load(fromByteOffset: pos, as: UInt8.self)); pos &+= 1
                    }
                    z = (1 &<< UInt64(n &- 1)) | sign
                    if n >= 3 {
                        guard let mid = bits.get(n &- 2) else { throw LenRansError("group \(g): raw bits end early") }
                        z |= mid &<< 1
                    }
                } else {
                    z = UInt64(n)
                }
                row[s] = T(truncatingIfNeeded: z)
                n2 = n1; n1 = n; q = 1 &+ Int(z & 1)
            }
        }
        guard pos == end, x == Self.ransLow else { throw LenRansError("group \(g): rANS stream does not end where its length says") }
        guard bits.exhausted else { throw LenRansError("group \(g): \(br.count) raw-bit bytes, more than the values use") }
    }
}

/// Little-endian writer into a fixed buffer; stops writing (and sets `overflow`) at `limit`.
struct PayloadWriter {
    let buf: UnsafeMutableRawBufferPointer
    let limit: Int
    var count = 0
    var overflow = false
    init(_ b: UnsafeMutableRawBufferPointer, limit: Int) { buf = b; self.limit = min(limit, b.count) }
    mutating func u8(_ v: UInt8) { guard count < limit else { overflow = true; return }; buf[count] = v; count += 1 }
    mutating func u16(_ v: UInt16) { u8(UInt8(v & 0xff)); u8(UInt8(v >> 8)) }
    mutating func varint(_ v: UInt64) { var v = v; while v >= 0x80 { u8(UInt8(v & 0x7f) | 0x80); v >>= 7 }; u8(UInt8(v)) }
    mutating func bytes(_ p: UnsafeRawPointer, _ n: Int) {
        guard n <= limit - count else { overflow = true; return }
        (buf.baseAddress! + count).copyMemory(from: p, byteCount: n); count += n
    }
}

/// Bounds-checked little-endian reader over a payload.
struct PayloadReader {
    let buf: UnsafeRawBufferPointer
    var offset = 0
    init(_ b: UnsafeRawBufferPointer) { buf = b }
    mutating func u8() throws(LenRansError) -> UInt8 {
        guard offset < buf.count else { throw LenRansError("header ends at byte \(offset)") }
        defer { offset += 1 }
        return buf[offset]
    }
    mutating func u16() throws(LenRansError) -> UInt16 { let a = try u8(), b = try u8(); return UInt16(a) | UInt16(b) << 8 }
    /// LEB128, at most 9 bytes (63 bits).
    mutating func varint() throws(LenRansError) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<9 {
            let b = try u8()
            v |= UInt64(b & 0x7f) << (7 * UInt64(i))
            if b & 0x80 == 0 { return v }
        }
        throw LenRansError("varint longer than 9 bytes at byte \(offset)")
    }
}

/// Raw bits, least significant first, packed from bit 0 of byte 0.
struct BitWriter {
    let base: UnsafeMutableRawPointer
    var acc: UInt64 = 0
    var n = 0
    var out = 0
    init(_ p: UnsafeMutableRawPointer) { base = p }
    @inline(__always) mutating func put(_ v: UInt64, _ k: Int) {
        if k > 32 { put(v & 0xffff_ffff, 32); put(v >> 32, k - 32); return }
        acc |= v << UInt64(n); n += k
        if n >= 32 { (base + out).storeBytes(of: UInt32(truncatingIfNeeded: acc).littleEndian, as: UInt32.self); out += 4; acc >>= 32; n -= 32 }
    }
    /// Flushes the last partial bytes (zero padded); returns the byte count.
    mutating func finish() -> Int {
        while n > 0 { (base + out).storeBytes(of: UInt8(truncatingIfNeeded: acc), as: UInt8.self); out += 1; acc >>= 8; n -= 8 }
        n = 0
        return out
    }
}

struct BitReader {
    let base: UnsafeRawPointer
    let count: Int
    var pos = 0
    var acc: UInt64 = 0
    var n = 0
    init(_ p: UnsafeRawPointer, count: Int) { base = p; self.count = count }
    /// `k` ≤ 62 bits, or nil past the end.
    @inline(__always) mutating func get(_ k: Int) -> UInt64? {
        if k > 32 {
            guard let lo = get(32), let hi = get(k - 32) else { return nil }
            return lo | hi << 32
        }
        if n < k {
            if count - pos >= 4 {
                acc |= UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: UInt32.self))) << UInt64(n)
                pos += 4; n += 32
            } else {
                while n < k && pos < count { acc |= UInt64(base.load(fromByteOffset: pos, as: UInt8.self)) << UInt64(n); pos += 1; n += 8 }
                if n < k { return nil }
            }
        }
        let v = acc & ((1 << UInt64(k)) - 1)
        acc >>= UInt64(k); n -= k
        return v
    }
    /// Every byte was used and the padding bits are zero.
    var exhausted: Bool { pos == count && n < 8 && acc == 0 }
}
