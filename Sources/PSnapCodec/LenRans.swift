// §5 stage 18 `lenrans`: each element coded as its bit length (rANS, context = the row's two previous bit lengths),
// its sign bit (rANS, context = previous sign and bit length) and its remaining low bits raw, in row groups that
// decode on their own (a single trajectory inflates one group, not the tile).
import PSnapFormat

/// Why a `lenrans` payload could not be decoded (wrapped into `TileCodecError.lenrans`).
struct LenRansError: Error { let message: String; init(_ m: String) { message = m } }

/// Pure byte-layout coder for stage 18 (spec §5.1). Scratch lives in the instance: not thread-safe, one per codec.
final class LenRans {
    static let probBits: UInt32 = 12
    static let probScale: UInt32 = 1 << 12
    static let ransLow: UInt32 = 1 << 16
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
        let groups = (P + G - 1) / G
        let maxGroupValues = min(G, P) * S
        // Scratch: every element's bit length (computed once), one group's rANS bytes (≤ 4 per value + 2 states),
        // one group's raw bits, then all groups' payloads back to back (never more than `limit` + one group).
        let ransCap = maxGroupValues * 4 + 8
        let rawCap = maxGroupValues * (T.bitWidth / 8 + 1) + 8
        let need = count + ransCap + rawCap + limit + ransCap + rawCap
        if scratch.count < need { scratch.deallocate(); scratch = .allocate(byteCount: need, alignment: 64) }
        let lens = scratch.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ransTmp = scratch.baseAddress! + count
        let rawTmp = ransTmp + ransCap
        let payload = rawTmp + rawCap
        for i in 0..<count { lens[i] = UInt8(truncatingIfNeeded: Self.bitLength(UInt64(src[i]))) }
        // Counts of bit lengths per context and of signs per (previous sign, bit length).
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: C * A + 3 * A * 2)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: C * A + 3 * A * 2)
        let signCounts = counts + C * A
        for p in 0..<P {
            for s in 0..<S {
                let i = p * S + s, n = Int(lens[i])
                counts[Self.context(lens, i, s) &* A &+ n] &+= 1
                if n >= 2 { signCounts[(Self.signContext(src, i, s) &* A &+ n) &* 2 &+ Int(src[i] & 1)] &+= 1 }
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
        // Header: group rows, tables; the group directory follows once the groups are coded.
        var w = ByteWriter(capacity: 4 * C + 3 * A + 4 * groups)
        w.u16(UInt16(G))
        for c in 0..<C {
            let row = f + c * A
            guard let lo = (0..<A).first(where: { row[$0] != 0 }) else { w.u8(0); continue }
            let hi = (0..<A).last(where: { row[$0] != 0 })!
            w.u8(UInt8(hi - lo + 1)); w.u8(UInt8(lo))
            for s in lo...hi { w.varint(UInt64(row[s])) }
        }
        for n in 2..<A { for q in 0..<3 { w.varint(UInt64(sp[q * A + n])) } }
        var payloadLen = 0
        var lengths: [(rans: Int, raw: Int)] = []
        lengths.reserveCapacity(groups)
        for g in 0..<groups {
            let r0 = g * G, r1 = min(P, r0 + G)
            // Values go in pairs of rows (p, p+1), interleaved by snapshot: (p,0), (p+1,0), (p,1), … ; row p on rANS
            // state 0, row p+1 on state 1 (a lone last row: state 0). Raw bits, forwards, in that order.
            var bits = BitWriter(rawTmp)
            for p in stride(from: r0, to: r1, by: 2) {
                for s in 0..<S {
                    for i in stride(from: p * S + s, to: min(p + 2, r1) * S, by: S) where lens[i] >= 3 {
                        let k = Int(lens[i]) &- 2
                        bits.put((UInt64(src[i]) &>> 1) & ((1 &<< UInt64(k)) &- 1), k)
                    }
                }
            }
            let rawLen = bits.finish()
            // rANS, backwards: for each value, sign (if any) then bit length, so the decoder reads length first.
            var xs = (Self.ransLow, Self.ransLow)
            var ptr = ransTmp + ransCap
            for p in stride(from: r0, to: r1, by: 2).reversed() {
                for s in (0..<S).reversed() {
                    if p + 1 < r1 { putValue(&xs.1, &ptr, src, lens, (p + 1) * S + s, s, A, f, cm, sp) }
                    putValue(&xs.0, &ptr, src, lens, p * S + s, s, A, f, cm, sp)
                }
            }
            ptr -= 4
            ptr.storeBytes(of: xs.1.littleEndian, as: UInt32.self)
            ptr -= 4
            ptr.storeBytes(of: xs.0.littleEndian, as: UInt32.self)
            let ransLen = ransTmp + ransCap - ptr
            if w.bytes.count + payloadLen + ransLen + rawLen >= limit { return nil }
            (payload + payloadLen).copyMemory(from: ptr, byteCount: ransLen)
            (payload + payloadLen + ransLen).copyMemory(from: rawTmp, byteCount: rawLen)
            payloadLen += ransLen + rawLen
            lengths.append((ransLen, rawLen))
        }
        for l in lengths { w.varint(UInt64(l.rans)); w.varint(UInt64(l.raw)) }
        let total = w.bytes.count + payloadLen
        guard total < limit, total <= out.count else { return nil }
        w.bytes.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        (out.baseAddress! + w.bytes.count).copyMemory(from: payload, byteCount: payloadLen)
        return total
    }

    /// §5.1 length context of element `i` (snapshot `s` of its row): max of the two previous lengths, + 1.
    @inline(__always)
    static func context(_ lens: UnsafePointer<UInt8>, _ i: Int, _ s: Int) -> Int {
        max(s >= 1 ? Int(lens[i &- 1]) : -1, s >= 2 ? Int(lens[i &- 2]) : -1) &+ 1
    }

    /// §5.1 sign context q of element `i`: 0 at the row's start, else 1 + the previous element's sign bit.
    @inline(__always)
    static func signContext<T: FixedWidthInteger & UnsignedInteger>(_ src: UnsafePointer<T>, _ i: Int, _ s: Int) -> Int {
        s >= 1 ? 1 &+ Int(src[i &- 1] & 1) : 0
    }

    /// Pushes element `i` (sign first, then bit length: rANS runs backwards) onto state `x`.
    @inline(__always)
    func putValue<T: FixedWidthInteger & UnsignedInteger>(_ x: inout UInt32, _ ptr: inout UnsafeMutableRawPointer, _ src: UnsafePointer<T>,
                                                         _ lens: UnsafePointer<UInt8>, _ i: Int, _ s: Int, _ A: Int,
                                                         _ f: UnsafePointer<UInt32>, _ cm: UnsafePointer<UInt32>, _ sp: UnsafePointer<UInt32>) {
        let n = Int(lens[i])
        if n >= 2 {
            let p1 = sp[Self.signContext(src, i, s) &* A &+ n]
            if src[i] & 1 == 1 { Self.put(&x, &ptr, start: 0, freq: p1) } else { Self.put(&x, &ptr, start: p1, freq: Self.probScale - p1) }
        }
        let c = Self.context(lens, i, s)
        Self.put(&x, &ptr, start: cm[c &* A &+ n], freq: f[c &* A &+ n])
    }

    @inline(__always)
    static func store(_ z: UInt64, _ row: UnsafeMutableRawPointer, _ s: Int, _ e: Int) {
        switch e {
        case 4: (row + s &* 4).storeBytes(of: UInt32(truncatingIfNeeded: z), as: UInt32.self)
        case 2: (row + s &* 2).storeBytes(of: UInt16(truncatingIfNeeded: z), as: UInt16.self)
        case 8: (row + s &* 8).storeBytes(of: z, as: UInt64.self)
        default: (row + s).storeBytes(of: UInt8(truncatingIfNeeded: z), as: UInt8.self)
        }
    }

    @inline(__always)
    static func put(_ x: inout UInt32, _ ptr: inout UnsafeMutableRawPointer, start: UInt32, freq: UInt32) {
        // 16-bit renormalisation: x stays in [2^16, 2^32); at most one word per symbol.
        let xMax = UInt64((ransLow >> probBits) << 16) &* UInt64(freq)
        if UInt64(x) >= xMax { ptr -= 2; ptr.storeBytes(of: UInt16(truncatingIfNeeded: x).littleEndian, as: UInt16.self); x >>= 16 }
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
            guard a >= 8 else { throw LenRansError("group \(g): \(a) rANS bytes (at least 8)") }
            guard a + b <= src.count - at else { throw LenRansError("group \(g) overruns the tile (\(src.count) bytes)") }
            out.append((at..<(at + a), (at + a)..<(at + a + b)))
            at += a + b
        }
        guard at == src.count else { throw LenRansError("\(src.count - at) bytes after the last group") }
        return Layout(groupRows: G, groups: out)
    }

    /// Decodes group `g` (rows g·G ..< min(P, (g+1)·G)) into `dst` (its rows, parameter-major).
    func decodeGroup(_ src: UnsafeRawBufferPointer, _ layout: Layout, group g: Int, elementSize e: Int,
                     params P: Int, snapshots S: Int, into dst: UnsafeMutableRawPointer) throws(LenRansError) {
        let A = 8 * e + 1
        let rows = min(P, (g + 1) * layout.groupRows) - g * layout.groupRows
        let (rr, br) = layout.groups[g]
        let base = src.baseAddress!
        var pos = rr.lowerBound + 8
        let end = rr.upperBound
        var x0 = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: rr.lowerBound, as: UInt32.self))
        var x1 = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: rr.lowerBound + 4, as: UInt32.self))
        var bits = BitReader(base + br.lowerBound, count: br.count)
        let tables = Tables(lut: lut, freq: freq, cum: cum, signP: signP, A: A)
        var fail = Failure()
        var p = 0
        while p < rows {
            let row0 = dst + p * S * e
            var st0 = RowState(), st1 = RowState()
            if p + 1 < rows {
                let row1 = row0 + S * e
                for s in 0..<S {
                    Self.store(tables.value(&x0, &st0, &pos, end, base, &bits, &fail), row0, s, e)
                    Self.store(tables.value(&x1, &st1, &pos, end, base, &bits, &fail), row1, s, e)
                }
            } else {
                for s in 0..<S {
                    Self.store(tables.value(&x0, &st0, &pos, end, base, &bits, &fail), row0, s, e)
                }
            }
            if _slowPath(fail.code != .none) { throw LenRansError("group \(g), rows \(p)…\(min(p + 1, rows - 1)) of the group: \(fail.message)") }
            p += 2
        }
        guard pos == end, x0 == Self.ransLow, x1 == Self.ransLow else { throw LenRansError("group \(g): rANS stream does not end where its length says") }
        guard bits.exhausted else { throw LenRansError("group \(g): \(br.count) raw-bit bytes, more than the values use") }
    }
}
