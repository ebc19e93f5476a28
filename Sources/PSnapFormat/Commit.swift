// One commit of a file, checked (spec §6 index rules, §7 metadata, §8 footer): pure checks over the file's bytes.

/// A commit: the footer and the tile index and metadata it points at, all checked against §6–§8.
public struct Commit: Sendable {
    /// File offset of the footer.
    public let footerOffset: UInt64
    public let footer: Footer
    public let metadata: FileMetadata
    /// Live tiles, sorted by (tensor, block, firstSnapshot).
    public let tiles: [TileIndexEntry]
    public let layout: RunLayout
    /// Index into `tiles` of each global block's first tile, plus `tiles.count` at the end.
    package let blockFirstTile: [Int]

    /// A commit a writer has just published, from what it knows (the index rules are checked again; nothing is parsed).
    package init(footer: Footer, at offset: UInt64, metadata: FileMetadata, tiles: [TileIndexEntry], layout: RunLayout) throws(FormatError) {
        self.init(footerOffset: offset, footer: footer, metadata: metadata, tiles: tiles, layout: layout,
                  blockFirstTile: try Commit.checkIndex(tiles, layout: layout, footer: footer))
    }

    private init(footerOffset: UInt64, footer: Footer, metadata: FileMetadata, tiles: [TileIndexEntry], layout: RunLayout, blockFirstTile: [Int]) {
        self.footerOffset = footerOffset; self.footer = footer; self.metadata = metadata
        self.tiles = tiles; self.layout = layout; self.blockFirstTile = blockFirstTile
    }

    /// Checks the commit whose footer (already decoded and checked by `Footer.decode`) lies at `offset` of `buf`:
    /// the index and metadata checksums (§8), the metadata (§7) and the index (§6). `checksums: false` skips
    /// the two checksums (footer salvage, which has proved them another way).
    public static func load(_ buf: UnsafeRawBufferPointer, footer f: Footer, at offset: UInt64, blockSize: Int,
                            checksums: Bool = true) throws(FormatError) -> Commit {
        // Footer.decode has checked that index and metadata end at the footer, which starts inside `buf` (a salvaged
        // footer may have been cut short by the end of the file).
        guard offset <= UInt64(buf.count), f.indexOffset <= f.metadataOffset, f.metadataOffset <= offset else {
            throw .badFooter(offset: offset, reason: "footer lies past the end of the file or its regions are out of order")
        }
        let index = UnsafeRawBufferPointer(rebasing: buf[Int(f.indexOffset)..<Int(f.metadataOffset)])
        let meta = UnsafeRawBufferPointer(rebasing: buf[Int(f.metadataOffset)..<Int(offset)])
        if checksums {
            let ih = XXH64.hash(index)
            guard ih == f.indexChecksum else { throw .indexChecksumMismatch(offset: f.indexOffset, expected: f.indexChecksum, actual: ih) }
            let mh = XXH64.hash(meta)
            guard mh == f.metadataChecksum else { throw .metadataChecksumMismatch(offset: f.metadataOffset, expected: f.metadataChecksum, actual: mh) }
        }
        let m = try FileMetadata.decode(meta)
        guard UInt64(m.snapshots.count) == f.snapshotCount else {
            throw .badMetadata("\(m.snapshots.count) snapshots listed, footer says \(f.snapshotCount)")
        }
        guard UInt64(m.parameterCount) == f.parameterCount else {
            throw .badMetadata("tensors hold \(m.parameterCount) parameters, footer says \(f.parameterCount)")
        }
        let layout = RunLayout(tensors: m.tensors, blockSize: blockSize)
        let tiles = TileIndex.decode(index)
        let first = try checkIndex(tiles, layout: layout, footer: f)
        return Commit(footerOffset: offset, footer: f, metadata: m, tiles: tiles, layout: layout, blockFirstTile: first)
    }

    /// §6 validity rules. Returns the first tile of each global block.
    static func checkIndex(_ tiles: [TileIndexEntry], layout: RunLayout, footer: Footer) throws(FormatError) -> [Int] {
        if footer.snapshotCount == 0 {
            // No snapshots, no tiles (however large the declared tensors are: nothing is allocated per block).
            guard tiles.isEmpty else { throw .badTileEntry(entry: 0, reason: "a file with no snapshots has no tiles") }
            return []
        }
        // Every block needs at least one tile, so a hostile metadata block cannot make us allocate more than the
        // index (which lies inside the file) justifies.
        guard layout.totalBlocks <= tiles.count else {
            throw .tileCoverage(tensor: layout.tensors.first?.name ?? "?", block: 0,
                                reason: "\(layout.totalBlocks) blocks declared but only \(tiles.count) tiles indexed")
        }
        var first = [Int](repeating: 0, count: layout.totalBlocks + 1)
        var i = 0
        for t in 0..<layout.tensors.count {
            for b in 0..<layout.blockCounts[t] {
                first[layout.blockOffsets[t] + b] = i
                i = try checkBlock(tiles, from: i, tensor: t, block: b, layout: layout, footer: footer)
            }
        }
        guard i == tiles.count else {
            let x = tiles[i]
            throw .badTileEntry(entry: UInt64(i), reason: "tensor \(x.tensor) block \(x.block) is out of order or does not exist")
        }
        first[layout.totalBlocks] = tiles.count
        return first
    }

    /// §6 rules for the tiles of one block, starting at entry `i`; returns the entry after them.
    private static func checkBlock(_ tiles: [TileIndexEntry], from start: Int, tensor t: Int, block b: Int, layout: RunLayout,
                                   footer: Footer) throws(FormatError) -> Int {
        let e = UInt64(layout.tensors[t].dtype.size)
        let snaps = footer.snapshotCount
        var next: UInt64 = 0
        var i = start
        let params = UInt64(layout.blockParams(tensor: t, block: b))
        while i < tiles.count, tiles[i].tensor == UInt32(t), tiles[i].block == UInt64(b) {
            let x = tiles[i]
            func bad(_ r: String) -> FormatError { .badTileEntry(entry: UInt64(i), reason: r) }
            guard x.flags & ~(Spec.flagStoredRaw | Spec.flagAnchored) == 0 else { throw bad("reserved flag bits set (0x\(String(x.flags, radix: 16)))") }
            guard !x.anchored || (x.firstSnapshot > 0 && !x.storedRaw) else {
                throw bad(x.storedRaw ? "anchored and stored raw" : "anchored tile at snapshot 0 (it would be its own anchor)")
            }
            guard x.firstSnapshot == next else {
                throw .tileCoverage(tensor: layout.tensors[t].name, block: UInt64(b),
                                    reason: x.firstSnapshot < next ? "tiles overlap at snapshot \(x.firstSnapshot)" : "no tile holds snapshots \(next)..<\(x.firstSnapshot)")
            }
            guard x.snapshotCount >= 1, let end = Checked.add(x.firstSnapshot, x.snapshotCount), end <= snaps else {
                throw bad("snapshots \(x.firstSnapshot)+\(x.snapshotCount) outside 0..<\(snaps)")
            }
            guard let raw = Checked.mul(params, x.snapshotCount).flatMap({ Checked.mul($0, e) }), raw == x.rawLength else {
                throw bad("rawLength \(x.rawLength) != \(params) params × \(x.snapshotCount) snapshots × \(e) bytes")
            }
            guard raw <= Spec.maxTileRawBytes else { throw bad("raw tile of \(raw) bytes exceeds the cap") }
            guard !x.storedRaw || x.storedLength == x.rawLength else { throw bad("stored raw but storedLength \(x.storedLength) != rawLength \(x.rawLength)") }
            guard x.offset >= UInt64(Spec.headerSize), let se = Checked.add(x.offset, x.storedLength), se <= footer.indexOffset else {
                throw bad("stored bytes \(x.offset)+\(x.storedLength) outside the data region 64..<\(footer.indexOffset)")
            }
            guard x.storedLength <= Spec.maxTileRawBytes else { throw bad("stored length \(x.storedLength) exceeds the cap") }
            next = end
            i += 1
        }
        guard next == snaps else {
            throw .tileCoverage(tensor: layout.tensors[t].name, block: UInt64(b), reason: "no tile holds snapshots \(next)..<\(snaps)")
        }
        return i
    }
}
