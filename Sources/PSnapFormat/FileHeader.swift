// The 64-byte file header (spec §3): encode and decode from plain buffers.

/// §3 File header.
public struct FileHeader: Equatable, Sendable {
    public var majorVersion: UInt16 = Spec.majorVersion
    public var minorVersion: UInt16 = Spec.minorVersion
    /// B, parameters per block.
    public var blockSize: UInt64
    /// Stage ids in encoding order.
    public var codecChain: CodecChain

    public init(blockSize: UInt64, codecChain: CodecChain) {
        self.blockSize = blockSize
        self.codecChain = codecChain
    }

    /// The header's 64 bytes.
    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Spec.headerSize)
        w.raw(Spec.headerMagic)
        w.u16(majorVersion); w.u16(minorVersion)
        w.u32(UInt32(Spec.headerSize))
        w.u64(blockSize)
        var slots = [UInt8](repeating: 0, count: Spec.maxChainStages)
        for (i, s) in codecChain.stages.enumerated() { slots[i] = s.rawValue }
        w.raw(slots)
        w.i32(codecChain.zstdLevel)
        w.zeros(20)
        let sum = XXH64.hash(w.bytes)
        w.u64(sum)
        return w.bytes
    }

    /// Decodes and checks a header from the first bytes of a file.
    public static func decode(_ buf: UnsafeRawBufferPointer) throws(FormatError) -> FileHeader {
        guard buf.count >= Spec.headerSize else { throw .fileTooShort(size: UInt64(buf.count)) }
        let r = ByteReader(base: buf)
        guard r.bytes(0, 8) == Spec.headerMagic else { throw .badHeaderMagic }
        let major = r.u16(8)
        guard major == Spec.majorVersion else { throw .unsupportedMajorVersion(major) }
        let sum = XXH64.hash(UnsafeRawBufferPointer(rebasing: buf[0..<Spec.headerChecksummed]))
        let stored = r.u64(Spec.headerChecksummed)
        guard sum == stored else { throw .headerChecksumMismatch(expected: stored, actual: sum) }
        guard r.u32(12) == UInt32(Spec.headerSize) else { throw .badHeaderField("headerSize \(r.u32(12)), expected \(Spec.headerSize)") }
        let b = r.u64(16)
        guard Spec.isValidBlockSize(b) else {
            throw .badHeaderField("blockSize \(b) is not a power of two in 1...\(Spec.maxBlockSize)")
        }
        var ids: [UInt8] = []
        var ended = false
        for i in 0..<Spec.maxChainStages {
            let id = r.u8(24 + i)
            if id == 0 { ended = true; continue }
            if ended { throw .invalidCodecChain("stage id \(id) after the terminating 0") }
            ids.append(id)
        }
        let chain = try CodecChain(ids: ids, zstdLevel: r.i32(32))
        var h = FileHeader(blockSize: b, codecChain: chain)
        h.minorVersion = r.u16(10)
        return h
    }
}

extension ByteReader {
    @inline(__always) func u8(_ o: Int) -> UInt8 { base[o] }
}
