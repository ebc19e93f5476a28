// The pieces of the `lenrans` stage (spec §5.1): per-row context state, the frequency tables, and the bit and
// word streams a group is read from and written to.
import PSnapFormat

/// A row's context while decoding: its two previous bit lengths and previous sign (0 at the row's start).
struct RowState { var n1 = -1, n2 = -1, q = 0 }

/// The decoder's tables for one tile (pointers into `LenRans`'s storage).
struct Tables {
    let lut: UnsafeMutablePointer<UInt8>, freq: UnsafeMutablePointer<UInt32>, cum: UnsafeMutablePointer<UInt32>
    let signP: UnsafeMutablePointer<UInt32>
    let A: Int

    /// Decodes one value on state `x`: its bit length, its sign, its raw bits. Never traps and always ends: on
    /// damaged input it records why in `fail` (first failure kept) and goes on with a valid state.
    @_transparent
    func value(_ x: inout UInt32, _ st: inout RowState, _ pos: inout Int, _ end: Int, _ base: UnsafeRawPointer,
               _ bits: inout BitReader, _ fail: inout Failure) -> UInt64 {
        let mask = LenRans.probScale - 1
        let c = max(st.n1, st.n2) &+ 1
        let slot = x & mask
        var n = Int(lut[c &* Int(LenRans.probScale) &+ Int(slot)])
        let fq = n < A ? freq[c &* A &+ n] : 0
        if _slowPath(fq == 0) {
            fail.note(.noCode); n = 0; x = LenRans.ransLow
        } else {
            x = fq &* (x >> LenRans.probBits) &+ slot &- cum[c &* A &+ n]
        }
        Self.renormalise(&x, &pos, end, base, &fail)
        var z: UInt64
        if n >= 2 {
            var p1 = signP[st.q &* A &+ n]
            if _slowPath(p1 == 0) { fail.note(.noSign); p1 = 1 }
            let sl = x & mask
            // Branch-free: b = 1 when the slot falls in the sign-1 range [0, p1).
            let b = UInt32(truncatingIfNeeded: (UInt64(sl) &- UInt64(p1)) >> 63)
            let fs = (LenRans.probScale &- p1) &+ b &* (p1 &+ p1 &- LenRans.probScale)
            let start = (1 &- b) &* p1
            x = fs &* (x >> LenRans.probBits) &+ sl &- start
            Self.renormalise(&x, &pos, end, base, &fail)
            z = (1 &<< UInt64(n &- 1)) | UInt64(b)
            if n >= 3 {
                if let mid = bits.get(n &- 2) { z |= mid &<< 1 } else { fail.note(.rawShort) }
            }
        } else {
            z = UInt64(n)
        }
        st.n2 = st.n1; st.n1 = n; st.q = 1 &+ Int(z & 1)
        return z
    }

    /// Reads one 16-bit word when x fell below 2^16 (one is always enough), without a data-dependent branch.
    @_transparent
    static func renormalise(_ x: inout UInt32, _ pos: inout Int, _ end: Int, _ base: UnsafeRawPointer, _ fail: inout Failure) {
        let need = UInt32(truncatingIfNeeded: (UInt64(x) &- UInt64(LenRans.ransLow)) >> 63)
        var w: UInt32 = 0
        if _fastPath(end - pos >= 2) {
            w = UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: UInt16.self)))
        } else if need == 1 {
            fail.note(.ransShort); x = LenRans.ransLow; return
        }
        x = (x &<< (need &* 16)) | (w & (0 &- need))
        pos &+= Int(need &* 2)
    }
}

/// The first thing found wrong while decoding a group (reported once the row is done).
struct Failure {
    enum Code { case none, noCode, noSign, ransShort, rawShort }
    var code = Code.none
    @inline(__always) package mutating func note(_ c: Code) { if code == .none { code = c } }
    var message: String {
        switch code {
        case .none: return "no error"
        case .noCode: return "a bit-length slot falls in a context with no code"
        case .noSign: return "a sign falls in a context with no probability"
        case .ransShort: return "the rANS stream ends early"
        case .rawShort: return "the raw bits end early"
        }
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
    /// `k` ≤ 62 bits of `v` (higher bits zero). Not recursive, so it inlines into the encoder's loop.
    @inline(__always) mutating func put(_ v: UInt64, _ k: Int) {
        if _slowPath(k > 32) { add(v & 0xffff_ffff, 32); add(v &>> 32, k &- 32) } else { add(v, k) }
    }

    /// `k` ≤ 32 bits; at most 31 bits stay pending, so `acc` never overflows.
    @inline(__always) private mutating func add(_ v: UInt64, _ k: Int) {
        acc |= v &<< UInt64(n); n &+= k
        if n >= 32 { (base + out).storeBytes(of: UInt32(truncatingIfNeeded: acc).littleEndian, as: UInt32.self); out &+= 4; acc &>>= 32; n &-= 32 }
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
    /// Bits consumed so far.
    var pos = 0
    var overrun = false
    init(_ p: UnsafeRawPointer, count: Int) { base = p; self.count = count }
    /// `k` ≤ 62 bits, or nil past the end. Fast path: one unaligned 8-byte load, no data-dependent branch.
    @inline(__always) mutating func get(_ k: Int) -> UInt64? {
        let byte = pos >> 3
        if _fastPath(k <= 56 && count - byte >= 8) {
            let v = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: byte, as: UInt64.self)) >> UInt64(pos & 7)
            pos &+= k
            return v & ((1 &<< UInt64(k)) &- 1)
        }
        return slowGet(k)
    }

    @inline(never) mutating func slowGet(_ k: Int) -> UInt64? {
        guard k <= 8 * count - pos else { overrun = true; return nil }
        var v: UInt64 = 0
        for i in 0..<k {
            let b = pos + i
            v |= UInt64((base.load(fromByteOffset: b >> 3, as: UInt8.self) >> UInt8(b & 7)) & 1) << UInt64(i)
        }
        pos += k
        return v
    }

    /// Every byte was used and the padding bits are zero.
    var exhausted: Bool {
        guard !overrun, (pos + 7) >> 3 == count else { return false }
        if pos & 7 == 0 { return true }
        return base.load(fromByteOffset: count - 1, as: UInt8.self) >> UInt8(pos & 7) == 0
    }
}
