// dtype casts for `convert --dtype`: exact widening, round-to-nearest-even narrowing that keeps NaNs.
@_spi(Internals) import ParamSnap
import Foundation

/// dtype casts for `--dtype`: widening is exact; narrowing rounds to nearest even and keeps NaNs NaN (quiet).
package enum DTypeCast {
    /// Whether casting `from` → `to` can change values.
    package static func isLossy(from: DType, to: DType) -> Bool {
        switch (from, to) {
        case _ where from == to: return false
        case (.f16, .f32), (.f16, .f64), (.bf16, .f32), (.bf16, .f64), (.f32, .f64): return false
        default: return true
        }
    }

    /// float32 bits → bfloat16 bits, round to nearest even; NaNs stay NaN (quiet bit set).
    @inline(__always) package static func bf16(fromF32Bits b: UInt32) -> UInt16 {
        if b & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: b >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    /// float64 → bfloat16 with a single rounding (round-to-odd to float32 first, then nearest even).
    @inline(__always) static func bf16(fromDouble d: Double) -> UInt16 {
        var f = Float(d)
        if !d.isNaN, Double(f) != d {
            if abs(Double(f)) > abs(d) { f = Float(bitPattern: f.bitPattern &- 1) }  // toward zero (magnitude − 1 ulp)
            f = Float(bitPattern: f.bitPattern | 1)
        }
        return bf16(fromF32Bits: f.bitPattern)
    }

    /// Converts `count` little-endian elements of `from` at `src` into `to` at `dst`.
    package static func convert(_ src: UnsafeRawPointer, from: DType, to: DType, count: Int, into dst: UnsafeMutableRawPointer) {
        if from == to { dst.copyMemory(from: src, byteCount: count * from.size); return }
        @inline(__always) func f32(_ i: Int) -> Float {
            switch from {
            case .f32: return Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self)))
            case .bf16: return Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))) &<< 16)
            case .f16: return Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))))
            case .f64: return Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self))))
            }
        }
        if from == .f64 {
            for i in 0..<count {
                let d = Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self)))
                switch to {
                case .f32: (dst + i &* 4).storeBytes(of: Float(d).bitPattern.littleEndian, as: UInt32.self)
                case .f16: (dst + i &* 2).storeBytes(of: Float16(d).bitPattern.littleEndian, as: UInt16.self)
                case .bf16: (dst + i &* 2).storeBytes(of: bf16(fromDouble: d).littleEndian, as: UInt16.self)
                case .f64: break
                }
            }
            return
        }
        switch to {
        case .f32: for i in 0..<count { (dst + i &* 4).storeBytes(of: f32(i).bitPattern.littleEndian, as: UInt32.self) }
        case .f64: for i in 0..<count { (dst + i &* 8).storeBytes(of: Double(f32(i)).bitPattern.littleEndian, as: UInt64.self) }
        case .f16: for i in 0..<count { (dst + i &* 2).storeBytes(of: Float16(f32(i)).bitPattern.littleEndian, as: UInt16.self) }
        case .bf16: for i in 0..<count { (dst + i &* 2).storeBytes(of: bf16(fromF32Bits: f32(i).bitPattern).littleEndian, as: UInt16.self) }
        }
    }

    /// The quiet-NaN bit pattern of `dtype`, little-endian (fills tensors absent from a snapshot).
    package static func nanBytes(_ dtype: DType) -> [UInt8] {
        switch dtype {
        case .f32: return withUnsafeBytes(of: UInt32(0x7FC0_0000).littleEndian) { Array($0) }
        case .f16: return withUnsafeBytes(of: UInt16(0x7E00).littleEndian) { Array($0) }
        case .bf16: return withUnsafeBytes(of: UInt16(0x7FC0).littleEndian) { Array($0) }
        case .f64: return withUnsafeBytes(of: UInt64(0x7FF8_0000_0000_0000).littleEndian) { Array($0) }
        }
    }
}
