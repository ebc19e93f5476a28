// The 128-byte commit footer (spec §8): encode, decode and the structural checks of §8.

/// §8 Footer: ends each commit and points at its tile index and metadata.
public struct Footer: Equatable, Sendable {
    public var commitSequence: UInt64
    public var previousFooterOffset: UInt64
    public var indexOffset: UInt64
    public var indexLength: UInt64
    public var indexChecksum: UInt64
    public var metadataOffset: UInt64
    public var metadataLength: UInt64
    public var metadataChecksum: UInt64
    public var snapshotCount: UInt64
    public var tileCount: UInt64
    public var parameterCount: UInt64

    public init(commitSequence: UInt64, previousFooterOffset: UInt64, indexOffset: UInt64, indexLength: UInt64,
                indexChecksum: UInt64, metadataOffset: UInt64, metadataLength: UInt64, metadataChecksum: UInt64,
                snapshotCount: UInt64, tileCount: UInt64, parameterCount: UInt64) {
        self.commitSequence = commitSequence
        self.previousFooterOffset = previousFooterOffset
        self.indexOffset = indexOffset
        self.indexLength = indexLength
        self.indexChecksum = indexChecksum
        self.metadataOffset = metadataOffset
        self.metadataLength = metadataLength
        self.metadataChecksum = metadataChecksum
        self.snapshotCount = snapshotCount
        self.tileCount = tileCount
        self.parameterCount = parameterCount
    }

    /// The footer's 128 bytes.
    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Spec.footerSize)
        w.raw(Spec.footerMagic)
        w.u16(Spec.majorVersion); w.u16(Spec.minorVersion); w.u32(UInt32(Spec.footerSize))
        for v in [commitSequence, previousFooterOffset, indexOffset, indexLength, indexChecksum,
                  metadataOffset, metadataLength, metadataChecksum, snapshotCount, tileCount, parameterCount] {
            w.u64(v)
        }
        w.zeros(8)
        w.u64(XXH64.hash(w.bytes))
        w.raw(Spec.footerEndMagic)
        return w.bytes
    }

    /// Decodes the footer stored at file offset `at` (buffer = exactly its 128 bytes) and checks the
    /// self-contained rules of §8 (magics, versions, checksum, offsets consistent with `at`).
    public static func decode(_ buf: UnsafeRawBufferPointer, at offset: UInt64) throws(FormatError) -> Footer {
        guard buf.count == Spec.footerSize else { throw .badFooter(offset: offset, reason: "needs \(Spec.footerSize) bytes, got \(buf.count)") }
        let r = ByteReader(base: buf)
        guard r.bytes(0, 8) == Spec.footerMagic else { throw .badFooter(offset: offset, reason: "bad magic") }
        guard r.bytes(120, 8) == Spec.footerEndMagic else { throw .badFooter(offset: offset, reason: "bad end magic") }
        let sum = XXH64.hash(UnsafeRawBufferPointer(rebasing: buf[0..<Spec.footerChecksummed]))
        let stored = r.u64(Spec.footerChecksummed)
        guard sum == stored else {
            throw .badFooter(offset: offset, reason: "checksum mismatch (expected 0x\(String(stored, radix: 16)), got 0x\(String(sum, radix: 16)))")
        }
        guard r.u16(8) == Spec.majorVersion else { throw .unsupportedMajorVersion(r.u16(8)) }
        guard r.u32(12) == UInt32(Spec.footerSize) else { throw .badFooter(offset: offset, reason: "footerSize \(r.u32(12))") }
        let f = Footer(commitSequence: r.u64(16), previousFooterOffset: r.u64(24), indexOffset: r.u64(32),
                       indexLength: r.u64(40), indexChecksum: r.u64(48), metadataOffset: r.u64(56),
                       metadataLength: r.u64(64), metadataChecksum: r.u64(72), snapshotCount: r.u64(80),
                       tileCount: r.u64(88), parameterCount: r.u64(96))
        func bad(_ why: String) -> FormatError { .badFooter(offset: offset, reason: why) }
        // §11 caps first: a footer past one is damage whatever else it says.
        guard f.indexLength <= Spec.maxIndexBytes else { throw bad("index of \(f.indexLength) bytes exceeds the cap") }
        guard f.metadataLength <= Spec.maxMetadataBytes else { throw bad("metadata of \(f.metadataLength) bytes exceeds the cap") }
        guard f.snapshotCount <= Spec.maxSnapshots else { throw bad("snapshot count \(f.snapshotCount) exceeds the cap") }
        guard Checked.add(f.metadataOffset, f.metadataLength) == offset else { throw bad("metadata does not end at the footer") }
        guard Checked.add(f.indexOffset, f.indexLength) == f.metadataOffset else { throw bad("index does not end where metadata starts") }
        guard Checked.mul(f.tileCount, UInt64(Spec.tileIndexEntrySize)) == f.indexLength else { throw bad("indexLength \(f.indexLength) != 64 × tileCount \(f.tileCount)") }
        guard f.indexOffset >= UInt64(Spec.headerSize) else { throw bad("index offset \(f.indexOffset) inside the file header") }
        guard f.previousFooterOffset == 0 || (f.previousFooterOffset >= UInt64(Spec.headerSize) && f.previousFooterOffset < f.indexOffset) else {
            throw bad("previous footer offset \(f.previousFooterOffset) out of range")
        }
        return f
    }
}
