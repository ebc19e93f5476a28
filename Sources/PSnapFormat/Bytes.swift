// Little-endian byte encoding helpers and overflow-checked arithmetic for the pure layout layer.

/// Appends little-endian integers to a byte array.
package struct ByteWriter {
    package var bytes: [UInt8] = []
    package init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }
    package mutating func u8(_ v: UInt8) { bytes.append(v) }
    package mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    package mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    package mutating func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    package mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    package mutating func raw(_ v: [UInt8]) { bytes.append(contentsOf: v) }
    package mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
    /// Unsigned LEB128 (codec stage `lenrans`, §5.1).
    package mutating func varint(_ v: UInt64) { var v = v; while v >= 0x80 { bytes.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }; bytes.append(UInt8(v)) }
}

/// Reads little-endian integers from a buffer whose length the caller has already checked.
package struct ByteReader {
    package let base: UnsafeRawBufferPointer
    package init(base: UnsafeRawBufferPointer) { self.base = base }
    @inline(__always) package func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
    @inline(__always) package func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
    @inline(__always) package func i32(_ o: Int) -> Int32 { Int32(littleEndian: base.loadUnaligned(fromByteOffset: o, as: Int32.self)) }
    @inline(__always) package func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
    package func bytes(_ o: Int, _ n: Int) -> [UInt8] { Array(base[o..<(o + n)]) }
}

/// Overflow-checked arithmetic on file-supplied values: nil on overflow.
package enum Checked {
    @inline(__always) package static func add(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (r, o) = a.addingReportingOverflow(b); return o ? nil : r
    }
    @inline(__always) package static func mul(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (r, o) = a.multipliedReportingOverflow(by: b); return o ? nil : r
    }
}
