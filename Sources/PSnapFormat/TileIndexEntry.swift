// One 64-byte tile index entry (spec §6) and the tile index as a whole.

/// §6 Tile index entry.
public struct TileIndexEntry: Equatable, Sendable {
    public var tensor: UInt32
    public var flags: UInt32
    public var block: UInt64
    public var firstSnapshot: UInt64
    public var snapshotCount: UInt64
    public var offset: UInt64
    public var storedLength: UInt64
    public var rawLength: UInt64
    public var checksum: UInt64

    public init(tensor: UInt32, flags: UInt32, block: UInt64, firstSnapshot: UInt64, snapshotCount: UInt64,
                offset: UInt64, storedLength: UInt64, rawLength: UInt64, checksum: UInt64) {
        self.tensor = tensor; self.flags = flags; self.block = block
        self.firstSnapshot = firstSnapshot; self.snapshotCount = snapshotCount
        self.offset = offset; self.storedLength = storedLength; self.rawLength = rawLength; self.checksum = checksum
    }

    /// §6 flag bit 0.
    public var storedRaw: Bool { flags & Spec.flagStoredRaw != 0 }
    public var anchored: Bool { flags & Spec.flagAnchored != 0 }

    func encode(into w: inout ByteWriter) {
        w.u32(tensor); w.u32(flags); w.u64(block); w.u64(firstSnapshot); w.u64(snapshotCount)
        w.u64(offset); w.u64(storedLength); w.u64(rawLength); w.u64(checksum)
    }

    static func decode(_ r: ByteReader, at o: Int) -> TileIndexEntry {
        TileIndexEntry(tensor: r.u32(o), flags: r.u32(o + 4), block: r.u64(o + 8), firstSnapshot: r.u64(o + 16),
                       snapshotCount: r.u64(o + 24), offset: r.u64(o + 32), storedLength: r.u64(o + 40),
                       rawLength: r.u64(o + 48), checksum: r.u64(o + 56))
    }
}

/// §6 Tile index encoding.
public enum TileIndex {
    /// Encodes entries (already sorted) as the index bytes.
    public static func encode(_ entries: [TileIndexEntry]) -> [UInt8] {
        var w = ByteWriter(capacity: entries.count * Spec.tileIndexEntrySize)
        for e in entries { e.encode(into: &w) }
        return w.bytes
    }

    /// Decodes index bytes (length a multiple of 64, checked by the footer).
    public static func decode(_ buf: UnsafeRawBufferPointer) -> [TileIndexEntry] {
        let r = ByteReader(base: buf)
        let n = buf.count / Spec.tileIndexEntrySize
        var out: [TileIndexEntry] = []
        out.reserveCapacity(n)
        for i in 0..<n { out.append(TileIndexEntry.decode(r, at: i * Spec.tileIndexEntrySize)) }
        return out
    }
}
