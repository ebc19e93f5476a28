// The length-preserving stages of §5 (xor, sub, linpred, split, bytedelta) over raw buffers, by element width.
import PSnapFormat

/// Pure byte transforms used by the codec chain. All pointers are caller-owned and sized by the caller.
enum Transforms {
    // MARK: temporal (§5 stages 1, 2): element p·S+s against p·S+s−1

    @inline(__always)
    static func temporalEncode<T: FixedWidthInteger & UnsignedInteger>(_ p: UnsafeMutablePointer<T>, params: Int, snapshots: Int, xor: Bool) {
        guard snapshots > 1 else { return }
        for q in 0..<params {
            let row = p + q * snapshots
            var s = snapshots - 1
            // Backwards, so each step still sees the original previous value.
            if xor {
                while s >= 1 { row[s] ^= row[s &- 1]; s &-= 1 }
            } else {
                while s >= 1 { row[s] = row[s] &- row[s &- 1]; s &-= 1 }
            }
        }
    }

    @inline(__always)
    static func temporalDecode<T: FixedWidthInteger & UnsignedInteger>(_ p: UnsafeMutablePointer<T>, params: Int, snapshots: Int, xor: Bool) {
        guard snapshots > 1 else { return }
        for q in 0..<params {
            let row = p + q * snapshots
            var prev = row[0]
            if xor {
                for s in 1..<snapshots { prev ^= row[s]; row[s] = prev }
            } else {
                for s in 1..<snapshots { prev = prev &+ row[s]; row[s] = prev }
            }
        }
    }

    static func temporal(_ buf: UnsafeMutableRawPointer, elementSize: Int, params: Int, snapshots: Int, xor: Bool, encode: Bool) {
        switch elementSize {
        case 2:
            let p = buf.assumingMemoryBound(to: UInt16.self)
            encode ? temporalEncode(p, params: params, snapshots: snapshots, xor: xor) : temporalDecode(p, params: params, snapshots: snapshots, xor: xor)
        case 4:
            let p = buf.assumingMemoryBound(to: UInt32.self)
            encode ? temporalEncode(p, params: params, snapshots: snapshots, xor: xor) : temporalDecode(p, params: params, snapshots: snapshots, xor: xor)
        case 8:
            let p = buf.assumingMemoryBound(to: UInt64.self)
            encode ? temporalEncode(p, params: params, snapshots: snapshots, xor: xor) : temporalDecode(p, params: params, snapshots: snapshots, xor: xor)
        default:
            preconditionFailure("element size \(elementSize)")
        }
    }

    // MARK: linear prediction (§5 stage 5): order-2 temporal prediction on order-preserving integers, zigzag residuals

    /// §5 `linpred` map from a bit pattern to its order-preserving integer (and back: the map is an involution).
    @inline(__always)
    static func monotone<T: FixedWidthInteger & UnsignedInteger>(_ u: T) -> T {
        u ^ ((u &>> (T.bitWidth &- 1)) &* (T.max &>> 1))
    }

    /// §5 anchored tiles: each parameter's values as order-preserving integers minus (`add`: plus) the parameter's
    /// anchor (its value at snapshot 0), modulo 2^W. `buf` holds `params × snapshots` elements, parameter-major;
    /// `anchor` one element per parameter.
    static func anchor(_ buf: UnsafeMutableRawPointer, elementSize e: Int, params P: Int, snapshots S: Int, anchor: UnsafeRawPointer, add: Bool) {
        // Wrapping index arithmetic: P·S·e is a tile's size, so it cannot overflow, and the checks cost more than the
        // work in one-snapshot tiles (an append's), where this pass ran at ~4 ns per element.
        func run<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) {
            let align = MemoryLayout<T>.alignment
            if Int(bitPattern: buf) % align == 0, Int(bitPattern: anchor) % align == 0 {
                // Typed passes the compiler vectorises (the unaligned loop below took a fifth of a merge's time).
                let b = buf.assumingMemoryBound(to: T.self), a = anchor.assumingMemoryBound(to: T.self)
                if S == 1 {
                    // One-snapshot tiles (an append's, the commonest case): one flat pass.
                    for p in 0..<P {
                        let m = monotone(T(littleEndian: b[p])), x = monotone(T(littleEndian: a[p]))
                        b[p] = monotone(add ? m &+ x : m &- x).littleEndian
                    }
                    return
                }
                for p in 0..<P {
                    let x = monotone(T(littleEndian: a[p]))
                    let row = b + p &* S
                    if add {
                        for s in 0..<S { row[s] = monotone(monotone(T(littleEndian: row[s])) &+ x).littleEndian }
                    } else {
                        for s in 0..<S { row[s] = monotone(monotone(T(littleEndian: row[s])) &- x).littleEndian }
                    }
                }
                return
            }
            var o = 0
            for p in 0..<P {
                let a = monotone(T(littleEndian: anchor.loadUnaligned(fromByteOffset: p &* e, as: T.self)))
                for _ in 0..<S {
                    let m = monotone(T(littleEndian: buf.loadUnaligned(fromByteOffset: o, as: T.self)))
                    buf.storeBytes(of: monotone(add ? m &+ a : m &- a).littleEndian, toByteOffset: o, as: T.self)
                    o &+= e
                }
            }
        }
        switch e {
        case 1: run(UInt8.self)
        case 2: run(UInt16.self)
        case 4: run(UInt32.self)
        default: run(UInt64.self)
        }
    }

    @inline(__always)
    static func zigzag<T: FixedWidthInteger & UnsignedInteger>(_ r: T) -> T {
        (r &<< 1) ^ (0 &- (r &>> (T.bitWidth &- 1)))
    }

    @inline(__always)
    static func unzigzag<T: FixedWidthInteger & UnsignedInteger>(_ z: T) -> T {
        (z &>> 1) ^ (0 &- (z & 1))
    }

    /// §5 `linpred`, encoding, per parameter row: r(0) = m(0), r(1) = m(1) − m(0), r(s) = m(s) − 2·m(s−1) + m(s−2)
    /// (order-2 prediction: the previous step repeated), stored as zigzag(r), from `src` into `dst` (`src` is left holding
    /// the order-preserving integers). In passes the compiler vectorises rather than the recurrence row by row (RATIONALE
    /// §C.7): the monotone map; the order-2 residual of the flat array, right for every element but the first two of each
    /// row; those two per row. Same bits, several times faster on the short rows of merges.
    /// With `anchor` (§5.2 anchored tiles: one little-endian bit pattern per parameter, any alignment), the residuals of
    /// the values minus the anchor in the order-preserving integers: only each row's first residual changes (a constant
    /// per row cancels in the differences), so the anchor costs one subtraction per row, not a pass over the tile.
    static func linpredEncode<T: FixedWidthInteger & UnsignedInteger>(from src: UnsafeMutablePointer<T>, to dst: UnsafeMutablePointer<T>,
                                                                      params: Int, snapshots S: Int, anchor: UnsafeRawPointer? = nil) {
        let n = params &* S
        guard n > 0 else { return }
        let e = MemoryLayout<T>.size
        @inline(__always) func a(_ p: Int) -> T {
            guard let anchor else { return 0 }
            return monotone(T(littleEndian: anchor.loadUnaligned(fromByteOffset: p &* e, as: T.self)))
        }
        if S == 1 {
            // One-snapshot tiles (an append's): every element is a row's first. An aligned anchor is read as typed values
            // (9 % of an append's CPU against unaligned loads, RATIONALE §C.7).
            if let anchor, Int(bitPattern: anchor) % MemoryLayout<T>.alignment == 0 {
                let x = anchor.assumingMemoryBound(to: T.self)
                for i in 0..<n { dst[i] = zigzag(monotone(src[i]) &- monotone(T(littleEndian: x[i]))) }
            } else {
                for i in 0..<n { dst[i] = zigzag(monotone(src[i]) &- a(i)) }
            }
            return
        }
        for i in 0..<n { src[i] = monotone(src[i]) }
        if n > 2 {
            for i in 2..<n { dst[i] = zigzag(src[i] &- src[i &- 1] &- (src[i &- 1] &- src[i &- 2])) }
        }
        var r0 = 0, p = 0
        while r0 < n {
            dst[r0] = zigzag(src[r0] &- a(p))
            dst[r0 &+ 1] = zigzag(src[r0 &+ 1] &- src[r0])
            r0 &+= S
            p &+= 1
        }
    }

    /// `linpredEncode(from:to:)` by element size.
    static func linpredEncode(from src: UnsafeMutableRawPointer, to dst: UnsafeMutableRawPointer, elementSize: Int, params: Int, snapshots: Int,
                              anchor: UnsafeRawPointer? = nil) {
        switch elementSize {
        case 2: linpredEncode(from: src.assumingMemoryBound(to: UInt16.self), to: dst.assumingMemoryBound(to: UInt16.self), params: params, snapshots: snapshots, anchor: anchor)
        case 4: linpredEncode(from: src.assumingMemoryBound(to: UInt32.self), to: dst.assumingMemoryBound(to: UInt32.self), params: params, snapshots: snapshots, anchor: anchor)
        case 8: linpredEncode(from: src.assumingMemoryBound(to: UInt64.self), to: dst.assumingMemoryBound(to: UInt64.self), params: params, snapshots: snapshots, anchor: anchor)
        default: preconditionFailure("element size \(elementSize)")
        }
    }

    /// §5 `linpred`, decoding, in three passes over the rows (the first and last vectorised by the compiler):
    /// unzigzag; `integrateRows`; the monotone map back to bit patterns. Twice as fast as the direct recurrence
    /// m(s) = r(s) + 2·m(s−1) − m(s−2) in one loop (RATIONALE §A.5), same bits.
    @inline(__always)
    static func linpredDecode<T: FixedWidthInteger & UnsignedInteger>(_ p: UnsafeMutablePointer<T>, params: Int, snapshots S: Int) {
        let n = params * S
        for i in 0..<n { p[i] = unzigzag(p[i]) }
        integrateRows(p, params: params, snapshots: S)
        for i in 0..<n { p[i] = monotone(p[i]) }
    }

    /// `linpredDecode`'s middle pass, in place, row by row, on unzigzagged residuals r: m(0) = r(0), and with the
    /// step d(s) = m(s) − m(s−1), the prediction m(s−1) + d(s−1) means d(s) = d(s−1) + r(s) (d(0) = 0) and
    /// m(s) = m(s−1) + d(s): two running sums, each a one-cycle dependency (the direct form chains three
    /// operations). Modulo 2^bits, so exactly the encoder's inverse.
    @inline(__always)
    static func integrateRows<T: FixedWidthInteger & UnsignedInteger>(_ w: UnsafeMutablePointer<T>, params: Int, snapshots S: Int) {
        guard S > 1 else { return }
        for q in 0..<params {
            let row = w + q &* S
            var m = row[0], d: T = 0
            var s = 1
            while s < S {
                d &+= row[s]; m &+= d
                row[s] = m
                s &+= 1
            }
        }
    }

    /// `linpredDecode` in place, by element size.
    static func linpredDecode(_ buf: UnsafeMutableRawPointer, elementSize: Int, params: Int, snapshots: Int) {
        switch elementSize {
        case 2: linpredDecode(buf.assumingMemoryBound(to: UInt16.self), params: params, snapshots: snapshots)
        case 4: linpredDecode(buf.assumingMemoryBound(to: UInt32.self), params: params, snapshots: snapshots)
        case 8: linpredDecode(buf.assumingMemoryBound(to: UInt64.self), params: params, snapshots: snapshots)
        default:
            preconditionFailure("element size \(elementSize)")
        }
    }

    // MARK: leading column first (§5 stage 6)

    /// `lead`: element (p, 0) of each of the `params` rows first, then every row's elements 1..<S, parameter-major.
    static func lead(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, params P: Int, snapshots S: Int, elementSize e: Int, encode: Bool) {
        func run<T>(_: T.Type) {
            let s = src.assumingMemoryBound(to: T.self), d = dst.assumingMemoryBound(to: T.self)
            if S == 1 {
                // A one-snapshot tile (an append's): the permutation is the identity.
                d.update(from: s, count: P)
                return
            }
            if S <= 16 {
                // Short rows (appends and the merges of a few snapshots): element by element, not a copy call per row.
                for p in 0..<P {
                    let row = p &* S, rest = P &+ p &* (S &- 1)
                    if encode {
                        d[p] = s[row]
                        for k in 1..<S { d[rest &+ k &- 1] = s[row &+ k] }
                    } else {
                        d[row] = s[p]
                        for k in 1..<S { d[row &+ k] = s[rest &+ k &- 1] }
                    }
                }
                return
            }
            for p in 0..<P {
                let row = p * S, rest = P + p * (S - 1)
                if encode {
                    d[p] = s[row]
                    (d + rest).update(from: s + row + 1, count: S - 1)
                } else {
                    d[row] = s[p]
                    (d + row + 1).update(from: s + rest, count: S - 1)
                }
            }
        }
        guard S > 0 else { return }
        switch e {
        case 1: run(UInt8.self)
        case 2: run(UInt16.self)
        case 4: run(UInt32.self)
        case 8: run(UInt64.self)
        default: preconditionFailure("element size \(e)")
        }
    }

    /// Where element (p, s) of a P × S tile lies after `lead` (the identity without it).
    @inline(__always) static func leadIndex(_ p: Int, _ s: Int, params P: Int, snapshots S: Int, lead: Bool) -> Int {
        guard lead else { return p * S + s }
        return s == 0 ? p : P + p * (S - 1) + s - 1
    }

    // MARK: byte-plane split (§5 stage 3)

    static func split(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, count n: Int, elementSize e: Int) {
        let s = src.assumingMemoryBound(to: UInt8.self)
        let d = dst.assumingMemoryBound(to: UInt8.self)
        switch e {
        case 4:
            let w = src.assumingMemoryBound(to: UInt32.self)
            let p0 = d, p1 = d + n, p2 = d + 2 * n, p3 = d + 3 * n
            for i in 0..<n {
                let v = UInt32(littleEndian: w[i])
                p0[i] = UInt8(truncatingIfNeeded: v)
                p1[i] = UInt8(truncatingIfNeeded: v &>> 8)
                p2[i] = UInt8(truncatingIfNeeded: v &>> 16)
                p3[i] = UInt8(truncatingIfNeeded: v &>> 24)
            }
        case 2:
            let w = src.assumingMemoryBound(to: UInt16.self)
            let p0 = d, p1 = d + n
            for i in 0..<n {
                let v = UInt16(littleEndian: w[i])
                p0[i] = UInt8(truncatingIfNeeded: v)
                p1[i] = UInt8(truncatingIfNeeded: v &>> 8)
            }
        default:
            for k in 0..<e {
                let pk = d + k * n
                for i in 0..<n { pk[i] = s[i &* e &+ k] }
            }
        }
    }

    static func unsplit(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, count n: Int, elementSize e: Int) {
        let s = src.assumingMemoryBound(to: UInt8.self)
        let d = dst.assumingMemoryBound(to: UInt8.self)
        switch e {
        case 4:
            let w = dst.assumingMemoryBound(to: UInt32.self)
            let p0 = s, p1 = s + n, p2 = s + 2 * n, p3 = s + 3 * n
            for i in 0..<n {
                let v = UInt32(p0[i]) | (UInt32(p1[i]) &<< 8) | (UInt32(p2[i]) &<< 16) | (UInt32(p3[i]) &<< 24)
                w[i] = v.littleEndian
            }
        case 2:
            let w = dst.assumingMemoryBound(to: UInt16.self)
            let p0 = s, p1 = s + n
            for i in 0..<n { w[i] = (UInt16(p0[i]) | (UInt16(p1[i]) &<< 8)).littleEndian }
        default:
            for k in 0..<e {
                let pk = s + k * n
                for i in 0..<n { d[i &* e &+ k] = pk[i] }
            }
        }
    }

    // MARK: bytedelta (§5 stage 4)
    //
    // SWAR: eight bytes per UInt64, lane-wise arithmetic modulo 256 with no carries between lanes.

    static let lo7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
    static let hi1: UInt64 = 0x8080_8080_8080_8080
    @inline(__always) static func laneAdd(_ a: UInt64, _ b: UInt64) -> UInt64 { ((a & lo7) &+ (b & lo7)) ^ ((a ^ b) & hi1) }
    @inline(__always) static func laneSub(_ a: UInt64, _ b: UInt64) -> UInt64 { ((a | hi1) &- (b & lo7)) ^ ((a ^ ~b) & hi1) }

    static func byteDeltaEncode(_ buf: UnsafeMutableRawPointer, count n: Int, elementSize e: Int) {
        let b = buf.assumingMemoryBound(to: UInt8.self)
        for k in 0..<e {
            let p = b + k * n
            var prev: UInt8 = 0
            var i = 0
            while i &+ 8 <= n {
                let x = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                // Previous byte of each lane: x shifted up one lane, the last byte of the previous word in lane 0.
                let shifted = (x &<< 8) | UInt64(prev)
                prev = UInt8(truncatingIfNeeded: x &>> 56)
                UnsafeMutableRawPointer(p + i).storeBytes(of: laneSub(x, shifted).littleEndian, as: UInt64.self)
                i &+= 8
            }
            while i < n { let v = p[i]; p[i] = v &- prev; prev = v; i &+= 1 }
        }
    }

    static func byteDeltaDecode(_ buf: UnsafeMutableRawPointer, count n: Int, elementSize e: Int) {
        let b = buf.assumingMemoryBound(to: UInt8.self)
        for k in 0..<e {
            let p = b + k * n
            var acc: UInt8 = 0
            var i = 0
            while i &+ 8 <= n {
                var x = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                // In-word prefix sums (log-step), then add the running total to every lane.
                x = laneAdd(x, x &<< 8)
                x = laneAdd(x, x &<< 16)
                x = laneAdd(x, x &<< 32)
                x = laneAdd(x, UInt64(acc) &* 0x0101_0101_0101_0101)
                acc = UInt8(truncatingIfNeeded: x &>> 56)
                UnsafeMutableRawPointer(p + i).storeBytes(of: x.littleEndian, as: UInt64.self)
                i &+= 8
            }
            while i < n { acc = acc &+ p[i]; p[i] = acc; i &+= 1 }
        }
    }

    /// Sum modulo 256 of bytes `p[0..<n]` (the bytedelta prefix needed to decode from position n).
    static func byteSum(_ p: UnsafePointer<UInt8>, count n: Int) -> UInt8 {
        var acc: UInt64 = 0
        var i = 0
        // Byte pairs widened to 16-bit lanes, so lane sums cannot carry into each other; the multiply by
        // 0x0001_0001_0001_0001 gathers a word's four lane sums (≤ 1020) in its top 16 bits.
        let m: UInt64 = 0x00FF_00FF_00FF_00FF
        while i &+ 8 <= n {
            let x = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
            acc &+= (((x & m) &+ ((x &>> 8) & m)) &* 0x0001_0001_0001_0001) &>> 48
            i &+= 8
        }
        var r = UInt8(truncatingIfNeeded: acc)
        while i < n { r = r &+ p[i]; i &+= 1 }
        return r
    }
}

// MARK: fused bytedelta + unsplit / split + bytedelta (the default chain's hot loops)

extension Transforms {
    /// Undoes `bytedelta` and `split` in one pass: planes (E × n bytes, delta-coded) in `src` → interleaved
    /// elements in `dst`. Same result as `byteDeltaDecode` then `unsplit`, one memory pass instead of three.
    static func byteDeltaUnsplit(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, count n: Int, elementSize e: Int) {
        guard e == 4 || e == 2 else {
            let tmp = UnsafeMutableRawPointer.allocate(byteCount: n * e, alignment: 64)
            defer { tmp.deallocate() }
            tmp.copyMemory(from: src, byteCount: n * e)
            byteDeltaDecode(tmp, count: n, elementSize: e)
            unsplit(from: tmp, to: dst, count: n, elementSize: e)
            return
        }
        let s = src.assumingMemoryBound(to: UInt8.self)
        var acc = (UInt8(0), UInt8(0), UInt8(0), UInt8(0))
        @inline(__always) func prefix(_ x0: UInt64, _ a: inout UInt8) -> UInt64 {
            var x = laneAdd(x0, x0 &<< 8)
            x = laneAdd(x, x &<< 16)
            x = laneAdd(x, x &<< 32)
            x = laneAdd(x, UInt64(a) &* 0x0101_0101_0101_0101)
            a = UInt8(truncatingIfNeeded: x &>> 56)
            return x
        }
        var i = 0
        if e == 4 {
            let out = dst.assumingMemoryBound(to: UInt32.self)
            while i &+ 8 <= n {
                let x0 = prefix(UInt64(littleEndian: UnsafeRawPointer(s + i).loadUnaligned(as: UInt64.self)), &acc.0)
                let x1 = prefix(UInt64(littleEndian: UnsafeRawPointer(s + (n &+ i)).loadUnaligned(as: UInt64.self)), &acc.1)
                let x2 = prefix(UInt64(littleEndian: UnsafeRawPointer(s + (2 &* n &+ i)).loadUnaligned(as: UInt64.self)), &acc.2)
                let x3 = prefix(UInt64(littleEndian: UnsafeRawPointer(s + (3 &* n &+ i)).loadUnaligned(as: UInt64.self)), &acc.3)
                let v0 = SIMD8<UInt32>(truncatingIfNeeded: unsafeBitCast(x0, to: SIMD8<UInt8>.self))
                let v1 = SIMD8<UInt32>(truncatingIfNeeded: unsafeBitCast(x1, to: SIMD8<UInt8>.self))
                let v2 = SIMD8<UInt32>(truncatingIfNeeded: unsafeBitCast(x2, to: SIMD8<UInt8>.self))
                let v3 = SIMD8<UInt32>(truncatingIfNeeded: unsafeBitCast(x3, to: SIMD8<UInt8>.self))
                let v = v0 | (v1 &<< 8) | (v2 &<< 16) | (v3 &<< 24)
                UnsafeMutableRawPointer(out + i).storeBytes(of: v, as: SIMD8<UInt32>.self)
                i &+= 8
            }
            while i < n {
                acc.0 = acc.0 &+ s[i]; acc.1 = acc.1 &+ s[n &+ i]; acc.2 = acc.2 &+ s[2 &* n &+ i]; acc.3 = acc.3 &+ s[3 &* n &+ i]
                out[i] = (UInt32(acc.0) | UInt32(acc.1) &<< 8 | UInt32(acc.2) &<< 16 | UInt32(acc.3) &<< 24).littleEndian
                i &+= 1
            }
        } else {
            let out = dst.assumingMemoryBound(to: UInt16.self)
            while i &+ 8 <= n {
                let x0 = prefix(UInt64(littleEndian: UnsafeRawPointer(s + i).loadUnaligned(as: UInt64.self)), &acc.0)
                let x1 = prefix(UInt64(littleEndian: UnsafeRawPointer(s + (n &+ i)).loadUnaligned(as: UInt64.self)), &acc.1)
                let v0 = SIMD8<UInt16>(truncatingIfNeeded: unsafeBitCast(x0, to: SIMD8<UInt8>.self))
                let v1 = SIMD8<UInt16>(truncatingIfNeeded: unsafeBitCast(x1, to: SIMD8<UInt8>.self))
                UnsafeMutableRawPointer(out + i).storeBytes(of: v0 | (v1 &<< 8), as: SIMD8<UInt16>.self)
                i &+= 8
            }
            while i < n {
                acc.0 = acc.0 &+ s[i]; acc.1 = acc.1 &+ s[n &+ i]
                out[i] = (UInt16(acc.0) | UInt16(acc.1) &<< 8).littleEndian
                i &+= 1
            }
        }
    }
}

extension Transforms {
    /// `split` then `bytedelta` in one pass: interleaved elements in `src` → delta-coded planes in `dst`.
    static func splitByteDelta(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, count n: Int, elementSize e: Int) {
        guard e == 4 || e == 2 else {
            split(from: src, to: dst, count: n, elementSize: e)
            byteDeltaEncode(dst, count: n, elementSize: e)
            return
        }
        let d = dst.assumingMemoryBound(to: UInt8.self)
        var prev = (UInt8(0), UInt8(0), UInt8(0), UInt8(0))
        @inline(__always) func delta(_ x: UInt64, _ p: inout UInt8) -> UInt64 {
            let shifted = (x &<< 8) | UInt64(p)
            p = UInt8(truncatingIfNeeded: x &>> 56)
            return laneSub(x, shifted)
        }
        var i = 0
        if e == 4 {
            while i &+ 8 <= n {
                let v = src.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<UInt32>.self)
                let b0 = unsafeBitCast(SIMD8<UInt8>(truncatingIfNeeded: v), to: UInt64.self)
                let b1 = unsafeBitCast(SIMD8<UInt8>(truncatingIfNeeded: v &>> 8), to: UInt64.self)
                let b2 = unsafeBitCast(SIMD8<UInt8>(truncatingIfNeeded: v &>> 16), to: UInt64.self)
                let b3 = unsafeBitCast(SIMD8<UInt8>(truncatingIfNeeded: v &>> 24), to: UInt64.self)
                UnsafeMutableRawPointer(d + i).storeBytes(of: delta(b0, &prev.0), as: UInt64.self)
                UnsafeMutableRawPointer(d + (n &+ i)).storeBytes(of: delta(b1, &prev.1), as: UInt64.self)
                UnsafeMutableRawPointer(d + (2 &* n &+ i)).storeBytes(of: delta(b2, &prev.2), as: UInt64.self)
                UnsafeMutableRawPointer(d + (3 &* n &+ i)).storeBytes(of: delta(b3, &prev.3), as: UInt64.self)
                i &+= 8
            }
            while i < n {
                let v = UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self))
                let b = (UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v &>> 8), UInt8(truncatingIfNeeded: v &>> 16), UInt8(truncatingIfNeeded: v &>> 24))
                d[i] = b.0 &- prev.0; d[n &+ i] = b.1 &- prev.1; d[2 &* n &+ i] = b.2 &- prev.2; d[3 &* n &+ i] = b.3 &- prev.3
                prev = b
                i &+= 1
            }
        } else {
            while i &+ 8 <= n {
                let v = src.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt16>.self)
                let b0 = unsafeBitCast(SIMD8<UInt8>(truncatingIfNeeded: v), to: UInt64.self)
                let b1 = unsafeBitCast(SIMD8<UInt8>(truncatingIfNeeded: v &>> 8), to: UInt64.self)
                UnsafeMutableRawPointer(d + i).storeBytes(of: delta(b0, &prev.0), as: UInt64.self)
                UnsafeMutableRawPointer(d + (n &+ i)).storeBytes(of: delta(b1, &prev.1), as: UInt64.self)
                i &+= 8
            }
            while i < n {
                let v = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
                let b = (UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v &>> 8))
                d[i] = b.0 &- prev.0; d[n &+ i] = b.1 &- prev.1
                prev.0 = b.0; prev.1 = b.1
                i &+= 1
            }
        }
    }
}
