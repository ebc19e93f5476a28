// Conversion of stored bit patterns (§1.2 dtypes) to Double, exact for every dtype.
import PSnapFormat

/// Widening of stored little-endian values to `Double` (exact: every f16, bf16 and f32 value is a Double).
@_spi(Internals) public enum ValueConversion {
    /// Converts `src` (elements of `dtype`) into `dst` (same count).
    @_spi(Internals) public static func toDoubles(_ src: UnsafeRawBufferPointer, dtype: DType, into dst: UnsafeMutableBufferPointer<Double>) {
        let n = src.count / dtype.size
        precondition(dst.count >= n, "destination too small")
        guard n > 0 else { return }
        let s = src.baseAddress!
        switch dtype {
        case .f32:
            for i in 0..<n { dst[i] = Double(Float(bitPattern: UInt32(littleEndian: s.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self)))) }
        case .f64:
            for i in 0..<n { dst[i] = Double(bitPattern: UInt64(littleEndian: s.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self))) }
        case .bf16:
            for i in 0..<n { dst[i] = Double(Float(bitPattern: UInt32(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))) &<< 16)) }
        case .f16:
            for i in 0..<n { dst[i] = Double(Float16(bitPattern: UInt16(littleEndian: s.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)))) }
        }
    }

    /// Converts `src` into a new array.
    @_spi(Internals) public static func toDoubles(_ src: UnsafeRawBufferPointer, dtype: DType) -> [Double] {
        let n = src.count / dtype.size
        return [Double](unsafeUninitializedCapacity: n) { buf, count in
            toDoubles(src, dtype: dtype, into: buf)
            count = n
        }
    }
}
