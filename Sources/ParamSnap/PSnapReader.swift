// The memory-mapped reader (spec §8.1 open, §6 index checks): trajectories, blocks, snapshots, parallel scans.
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Foundation

/// Reads a `.psnap` file through a read-only memory map. The index is parsed once at open; every
/// size and offset from the file is checked before use. Safe to use from many threads.
public final class PSnapReader: @unchecked Sendable {
    public let path: String
    /// The mapped file (of a sharded run: its first opened shard's).
    @_spi(Internals) public let file: MappedFile
    /// Of a sharded run (spec/SHARDS.md), the shard reader holding each tile: tile i is in shards[tileFile[i]]
    /// (empty for one file: every tile is in `file`).
    let tileFile: [UInt32]
    /// A sharded run's manifest and the readers of the shards opened (nil and empty for one file).
    public let manifest: ShardManifest?
    public let shards: [PSnapReader]
    /// The files holding the tiles.
    @_spi(Internals) public var files: [MappedFile] { shards.isEmpty ? [file] : shards.map(\.file) }
    /// The file name of opened shard k.
    public func shardName(_ k: Int) -> String { URL(fileURLWithPath: shards[k].path).lastPathComponent }
    /// Whether this reads a sharded run (a folder, spec/SHARDS.md).
    public var isSharded: Bool { manifest != nil }
    /// Of a sharded run opened for some tensors only: which tensors' shards were opened (nil: all).
    public let opened: [Bool]?

    /// Refuses a tensor whose shards this reader did not open.
    @inline(__always)
    public func requireOpened(_ t: Int) throws(ReaderError) {
        if let opened, t >= 0, t < opened.count, !opened[t] { throw .tensorNotOpened(tensors[t].name) }
    }
    public let header: FileHeader
    public let footer: Footer
    /// File offset of the newest valid footer.
    public let footerOffset: UInt64
    public let metadata: FileMetadata
    /// Live tiles, sorted by (tensor, block, firstSnapshot).
    public let tiles: [TileIndexEntry]
    public let layout: RunLayout
    /// Bytes after the newest valid footer (a torn tail), ignored (§8.1).
    public let ignoredBytes: UInt64
    /// Whether tile checksums are verified on every read.
    public let verifyChecksums: Bool
    /// Index into `tiles` of each global block's first tile, plus `tiles.count` at the end.
    package let blockFirstTile: [Int]
    private let pool: CodecPool
    private let cache: TileCache

    /// Default size of the inflated-tile cache used by trajectory and tensor reads (scans bypass it).
    public static let defaultCacheBytes = 64 << 20
    /// Bytes of inflated tiles kept for repeated point reads (trajectories, tensor at a snapshot); 0 turns it off.
    public var cacheBytes: Int {
        get { cache.budget }
        set { cache.budget = max(0, newValue) }
    }
    /// Cache hits and misses so far (for benchmarks and `--stats`).
    public var cacheStats: (hits: Int, misses: Int) { (cache.hits, cache.misses) }

    public var tensors: [TensorInfo] { metadata.tensors }
    public var snapshots: [SnapshotInfo] { metadata.snapshots }
    public var snapshotCount: Int { metadata.snapshots.count }
    public var parameterCount: Int { layout.parameterCount }

    /// Opens the newest commit of `path` (§8.1). A torn tail after it is ignored and reported (`ignoredBytes`);
    /// a damaged newest commit throws `FormatError.damagedCommit` (never a silent fall-back to an older one).
    /// `verifyChecksums` checks each tile's XXH64 as it is read. A folder is opened as a sharded run
    /// (spec/SHARDS.md): the run its manifest and shards make.
    /// `tensors`: of a sharded run, open only the shards holding these tensors (the run's layout and global indices
    /// stay the whole run's; reading another tensor throws `tensorNotOpened`). A task of a distributed pass opens so
    /// the shards it reads, not every shard's index. Ignored for one file.
    public convenience init(path: String, verifyChecksums: Bool = true, tensors: [String]? = nil) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            let run = try ShardedRun.open(folder: path, verifyChecksums: verifyChecksums, only: tensors)
            self.init(path: path, sharded: run, verifyChecksums: verifyChecksums)
            return
        }
        let (file, header, commit) = try Self.openNewest(path: path)
        self.init(path: path, file: file, header: header, commit: commit, verifyChecksums: verifyChecksums)
    }

    /// A sharded run read as one (spec/SHARDS.md §4): the first opened shard's header and footer stand for the run's.
    convenience init(path: String, sharded run: ShardedRun.Opened, verifyChecksums: Bool) {
        let first = run.shards[0]
        self.init(path: path, file: first.file, header: first.header, footer: first.footer, footerOffset: first.footerOffset,
                  ignoredBytes: run.shards.reduce(0) { $0 + $1.ignoredBytes }, metadata: run.metadata, layout: run.layout, tiles: run.tiles,
                  blockFirstTile: run.blockFirstTile, sharded: (run.manifest, run.shards, run.tileFile, run.opened), verifyChecksums: verifyChecksums)
    }

    /// Attempts at opening the newest commit while a writer keeps publishing newer ones (then the space of the
    /// commit being opened may be returned under the reader; after the last attempt the reader goes on as it is).
    static let openAttempts = 20

    /// §9 readers: the newest commit, with a shared lock on its footer's first byte held for as long as the mapping
    /// lives. A writer returns the space of tiles only older commits use when no such lock lies below its newest
    /// footer, and only after publishing that footer; so once the lock is taken, the commit is safe if it was still
    /// the newest at that moment. If a newer one appeared meanwhile (or the commit read as damaged while the file
    /// grew: its space may have been returned between the footer and the index), the reader opens again.
    static func openNewest(path: String) throws -> (MappedFile, FileHeader, Commit) {
        var file = try MappedFile(path: path, keepDescriptor: true)
        var attempt = 1
        while true {
            let grew = { (f: MappedFile) in (f.currentSize() ?? UInt64(f.bytes.count)) != UInt64(f.bytes.count) }
            let header = try Self.header(of: file)
            let commit: Commit
            do {
                commit = try CommitSearch.newest(file.bytes, blockSize: Int(header.blockSize))
            } catch {
                guard attempt < openAttempts, grew(file) else { throw error }
                attempt += 1
                file = try MappedFile(path: path, keepDescriptor: true)
                continue
            }
            file.lockShared(at: commit.footerOffset)
            guard attempt < openAttempts, grew(file) else { return (file, header, commit) }
            // Only the newest footer record's place is needed here (not the whole commit loaded again).
            let again = try MappedFile(path: path, keepDescriptor: true)
            if CommitSearch.newestRecord(again.bytes) == Int(commit.footerOffset) { return (file, header, commit) }
            attempt += 1
            file = again
        }
    }

    /// Opens a given commit of `path` (found by `CommitSearch.survey` or rebuilt by `FooterSalvage`: repair).
    convenience init(path: String, file: MappedFile, header: FileHeader, commit: Commit, verifyChecksums: Bool) {
        // Saturating: a footer rebuilt by repair may have been cut short by the end of the file.
        let end = commit.footerOffset + UInt64(Spec.footerSize)
        self.init(path: path, file: file, header: header, footer: commit.footer, footerOffset: commit.footerOffset,
                  ignoredBytes: UInt64(file.bytes.count) > end ? UInt64(file.bytes.count) - end : 0, metadata: commit.metadata,
                  layout: commit.layout, tiles: commit.tiles, blockFirstTile: commit.blockFirstTile, sharded: nil, verifyChecksums: verifyChecksums)
    }

    private init(path: String, file: MappedFile, header: FileHeader, footer: Footer, footerOffset: UInt64, ignoredBytes: UInt64,
                 metadata: FileMetadata, layout: RunLayout, tiles: [TileIndexEntry], blockFirstTile: [Int],
                 sharded: (manifest: ShardManifest, shards: [PSnapReader], tileFile: [UInt32], opened: [Bool]?)?, verifyChecksums: Bool) {
        self.path = path
        self.file = file
        self.header = header
        self.footer = footer
        self.footerOffset = footerOffset
        self.ignoredBytes = ignoredBytes
        self.metadata = metadata
        self.layout = layout
        self.tiles = tiles
        self.blockFirstTile = blockFirstTile
        manifest = sharded?.manifest
        shards = sharded?.shards ?? []
        tileFile = sharded?.tileFile ?? []
        opened = sharded?.opened
        self.verifyChecksums = verifyChecksums
        pool = CodecPool(chain: header.codecChain)
        cache = TileCache(budget: PSnapReader.defaultCacheBytes, tiles: tiles.count)
    }

    /// §3: the header of a mapped file.
    static func header(of file: MappedFile) throws -> FileHeader {
        let buf = file.bytes
        guard buf.count >= Spec.headerSize else { throw FormatError.fileTooShort(size: UInt64(buf.count)) }
        return try FileHeader.decode(UnsafeRawBufferPointer(rebasing: buf[0..<Spec.headerSize]))
    }

    // MARK: tiles

    /// A human name for tile `i`, used in errors.
    public func tileName(_ i: Int) -> String {
        let x = tiles[i]
        let name = x.tensor < UInt32(tensors.count) ? tensors[Int(x.tensor)].name : "?"
        let shard = tileFile.isEmpty ? "" : " in shard \(shardName(Int(tileFile[i])))"
        return "tile \(i) (tensor '\(name)', block \(x.block), snapshots \(x.firstSnapshot)..<\(x.firstSnapshot + x.snapshotCount))\(shard)"
    }

    /// Stored bytes of tile `i` (bounds checked at open).
    @_spi(Internals) public func storedBytes(_ i: Int) -> UnsafeRawBufferPointer {
        let x = tiles[i]
        return UnsafeRawBufferPointer(rebasing: fileOf(tile: i).bytes[Int(x.offset)..<Int(x.offset + x.storedLength)])
    }

    /// The mapped file holding tile `i`.
    @_spi(Internals) public func fileOf(tile i: Int) -> MappedFile { tileFile.isEmpty ? file : shards[Int(tileFile[i])].file }

    /// Checks tile `i`'s checksum.
    @_spi(Internals) public func verifyTile(_ i: Int) throws(FormatError) {
        let x = tiles[i]
        let h = XXH64.hash(storedBytes(i))
        guard h == x.checksum else { throw .tileChecksumMismatch(tile: tileName(i), offset: x.offset, expected: x.checksum, actual: h) }
    }

    /// Decodes tile `i` into `out` (exactly `rawLength` bytes), using `codec`; `checked`: the caller has just
    /// verified the tile's checksum (else it is verified here when `verifyChecksums`).
    /// `anchor`: the block's `anchorValues`, when the caller has them already.
    @_spi(Internals) public func decodeTile(_ i: Int, into out: UnsafeMutableRawBufferPointer, codec: TileCodec, checked: Bool = false,
                                            anchor known: [UInt8]? = nil) throws(FormatError) {
        let x = tiles[i]
        if verifyChecksums && !checked { try verifyTile(i) }
        let t = Int(x.tensor)
        var anchor: [UInt8] = []
        if x.anchored { if let known { anchor = known } else { anchor = try anchorValues(ofTile: i, codec: codec) } }
        let params = layout.blockParams(tensor: t, block: Int(x.block))
        do {
            try codec.decode(storedBytes(i), storedRaw: x.storedRaw, into: out, elementSize: tensors[t].dtype.size,
                             params: params, snapshots: Int(x.snapshotCount))
        } catch {
            throw .tileDecode(tile: tileName(i), reason: "\(error)")
        }
        if x.anchored {
            anchor.withUnsafeBytes { TileCodec.unanchor(out.baseAddress!, elementSize: tensors[t].dtype.size, params: params, snapshots: Int(x.snapshotCount), anchor: $0.baseAddress!) }
        }
    }

    /// Refuses anchored tile `i` in a file whose chain cannot anchor (§5.2), naming it.
    func requireAnchorable(_ i: Int) throws(FormatError) {
        guard header.codecChain.anchorable else {
            throw .tileDecode(tile: tileName(i), reason: "anchored, but the codec chain does not start with linpred")
        }
    }

    /// The values at snapshot 0 of the block of tile `i` (one element per parameter), what an anchored tile is stored
    /// relative to (§5): the first column of the block's first tile, which is never anchored. With `lead` that
    /// column is a short prefix of each plane.
    @_spi(Internals) public func anchorValues(ofTile i: Int, codec: TileCodec) throws(FormatError) -> [UInt8] {
        let x = tiles[i]
        let t = Int(x.tensor), b = Int(x.block)
        let j = tileRange(tensor: t, block: b).lowerBound
        let y = tiles[j]
        let e = tensors[t].dtype.size, params = layout.blockParams(tensor: t, block: b), S = Int(y.snapshotCount)
        try requireAnchorable(i)
        var out = [UInt8](repeating: 0, count: params * e)
        if verifyChecksums { try verifyTile(j) }
        do {
            let lead = codec.chain.stages.contains(.lead)
            if let planes = try codec.inflate(storedBytes(j), storedRaw: y.storedRaw, elementSize: e, params: params, snapshots: S,
                                              keep: false, prefix: lead ? params : nil) {
                out.withUnsafeMutableBytes { codec.decodeFirstColumn(planes, into: $0.baseAddress!, elementSize: e, params: params, snapshots: S) }
            } else {
                let full = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, Int(y.rawLength)), alignment: 64)
                defer { full.deallocate() }
                try codec.decode(storedBytes(j), storedRaw: y.storedRaw, into: UnsafeMutableRawBufferPointer(rebasing: full[0..<Int(y.rawLength)]),
                                 elementSize: e, params: params, snapshots: S)
                out.withUnsafeMutableBytes { o in
                    for p in 0..<params { (o.baseAddress! + p * e).copyMemory(from: full.baseAddress! + p * S * e, byteCount: e) }
                }
            }
        } catch {
            throw .tileDecode(tile: tileName(j), reason: "\(error)")
        }
        return out
    }

    /// Tiles of block `block` of tensor `tensor`, in snapshot order.
    public func tileRange(tensor: Int, block: Int) -> Range<Int> {
        if blockFirstTile.isEmpty { return 0..<0 }
        let g = layout.blockOffsets[tensor] + block
        return blockFirstTile[g]..<blockFirstTile[g + 1]
    }

    /// Tile `i` inflated (cached): nil when the cache is off, the tile is stored raw, or its chain needs a full decode.
    /// A miss verifies the checksum (when `verifyChecksums`) before the tile enters the cache.
    /// A tile asked for a second time after entering the cache is decoded whole and kept decoded (then a row is a copy
    /// and a snapshot column a strided gather); the first touches only inflate, so random reads of a big run do not
    /// pay for decoding tiles they will not see again.
    func inflated(_ i: Int, codec: TileCodec, params: Int) throws(FormatError) -> InflatedTile? {
        let x = tiles[i]
        guard cache.budget > 0 else { return nil }
        if let (hit, uses) = cache.get(i) {
            if hit.final || uses < 1 || Int(x.rawLength) > cache.budget / 4 { return hit }
            let full = codec.decodeFully(hit, elementSize: tensors[Int(x.tensor)].dtype.size, params: params, snapshots: Int(x.snapshotCount))
            cache.put(i, full)
            return full
        }
        guard !x.storedRaw, codec.rowDecodable, cache.touch(i) else { return nil }
        if verifyChecksums { try verifyTile(i) }
        let t: InflatedTile?
        do {
            t = try codec.inflate(storedBytes(i), storedRaw: false, elementSize: tensors[Int(x.tensor)].dtype.size, params: params,
                                  snapshots: Int(x.snapshotCount), keep: true)
        } catch {
            throw .tileDecode(tile: tileName(i), reason: "\(error)")
        }
        if let t { cache.put(i, t) }
        return t
    }

    func withCodec<R>(_ body: (TileCodec) throws -> R) rethrows -> R {
        let c = pool.take()
        defer { pool.give(c) }
        return try body(c)
    }

    // MARK: addressing

    /// Index of the tensor called `name` (the same UTF-8 bytes: names are not Unicode-normalised, §1.1); the error
    /// suggests the closest names.
    public func tensorIndex(named name: String) throws(ReaderError) -> Int {
        guard let i = tensors.firstIndex(where: { TensorName.same($0.name, name) }) else {
            throw .noSuchTensor(name, suggestions: NameSuggestion.closest(to: name, in: tensors.map(\.name)))
        }
        return i
    }

    /// One parameter's full trajectory as raw little-endian bit patterns (snapshotCount × element size bytes).
    public func trajectoryBytes(tensor t: Int, index p: Int) throws -> [UInt8] {
        guard t >= 0, t < tensors.count else { throw ReaderError.tensorOutOfRange(t, count: tensors.count) }
        try requireOpened(t)
        guard p >= 0, p < layout.parameterCounts[t] else {
            throw ReaderError.parameterOutOfRange(tensor: tensors[t].name, index: p, count: layout.parameterCounts[t])
        }
        let e = tensors[t].dtype.size
        let b = p / layout.blockSize, q = p % layout.blockSize
        let params = layout.blockParams(tensor: t, block: b)
        var out = [UInt8](repeating: 0, count: snapshotCount * e)
        try withCodec { codec in
            for i in tileRange(tensor: t, block: b) {
                let x = tiles[i]
                let S = Int(x.snapshotCount)
                try out.withUnsafeMutableBytes { o in
                    let dst = o.baseAddress! + Int(x.firstSnapshot) * e
                    // An anchored tile's row is relative to the parameter's value at snapshot 0, already in `out`
                    // (the block's first tile comes first and is never anchored).
                    if x.anchored { try requireAnchorable(i) }
                    defer { if x.anchored { TileCodec.unanchor(dst, elementSize: e, params: 1, snapshots: S, anchor: o.baseAddress!) } }
                    if let planes = try inflated(i, codec: codec, params: params) {
                        codec.decodeRow(planes, row: q, into: dst, elementSize: e, snapshots: S)
                        return
                    }
                    if verifyChecksums { try verifyTile(i) }
                    do {
                        try codec.decodeRow(storedBytes(i), storedRaw: x.storedRaw, row: q, into: dst, elementSize: e, params: params, snapshots: S)
                    } catch {
                        throw FormatError.tileDecode(tile: tileName(i), reason: "\(error)")
                    }
                }
            }
        }
        return out
    }

    /// One parameter's trajectory as Doubles (exact for every dtype).
    public func trajectory(tensor t: Int, index p: Int) throws -> [Double] {
        let bytes = try trajectoryBytes(tensor: t, index: p)
        return bytes.withUnsafeBytes { ValueConversion.toDoubles($0, dtype: tensors[t].dtype) }
    }

    /// By tensor name and flat (row-major) index.
    public func trajectory(tensor name: String, index p: Int) throws -> [Double] {
        try trajectory(tensor: tensorIndex(named: name), index: p)
    }

    /// By tensor name and multi-index.
    public func trajectory(tensor name: String, multiIndex: [Int]) throws -> [Double] {
        let t = try tensorIndex(named: name)
        guard let p = layout.flatIndex(tensor: t, multiIndex: multiIndex) else {
            throw ReaderError.badMultiIndex(tensor: name, index: multiIndex, shape: tensors[t].shape)
        }
        return try trajectory(tensor: t, index: p)
    }

    /// By global parameter index (§1).
    public func trajectory(global g: Int) throws -> [Double] {
        guard let (t, p) = layout.locate(global: g) else { throw ReaderError.globalOutOfRange(g, count: parameterCount) }
        return try trajectory(tensor: t, index: p)
    }

    /// Trajectories of parameters `range` of tensor `t` as a row-major [parameters × snapshots] matrix.
    public func trajectories(tensor t: Int, range: Range<Int>) throws -> [Double] {
        var out = [Double](repeating: 0, count: range.count * snapshotCount)
        let S = snapshotCount
        try out.withUnsafeMutableBufferPointer { o in
            try forEachTrajectoryPart(tensor: t, range: range) { p, f, s, src in
                let dtype = tensors[t].dtype
                ValueConversion.toDoubles(UnsafeRawBufferPointer(start: src, count: s * dtype.size), dtype: dtype,
                                          into: UnsafeMutableBufferPointer(rebasing: o[(p * S + f)..<(p * S + f + s)]))
            }
        }
        return out
    }

    /// Trajectories of parameters `range` of tensor `t` as raw little-endian bit patterns, row-major
    /// [parameters × snapshots] (each value `dtype.size` bytes), into `out` (exactly that many bytes).
    public func trajectoriesBytes(tensor t: Int, range: Range<Int>, into out: UnsafeMutableRawBufferPointer) throws {
        let S = snapshotCount
        guard t >= 0, t < tensors.count else { throw ReaderError.tensorOutOfRange(t, count: tensors.count) }
        let e = tensors[t].dtype.size
        precondition(out.count == range.count * S * e, "an output of parameters × snapshots values")
        try forEachTrajectoryPart(tensor: t, range: range) { p, f, s, src in
            (out.baseAddress! + (p * S + f) * e).copyMemory(from: src, byteCount: s * e)
        }
    }

    /// Decodes the tiles holding parameters `range` of tensor `t`; `body(p, first, count, values)` gets each
    /// parameter's part of each tile: its row p (from the range's start), its first snapshot and snapshot count, and
    /// the raw values.
    func forEachTrajectoryPart(tensor t: Int, range: Range<Int>, _ body: (Int, Int, Int, UnsafeRawPointer) -> Void) throws {
        guard t >= 0, t < tensors.count else { throw ReaderError.tensorOutOfRange(t, count: tensors.count) }
        guard range.lowerBound >= 0, range.upperBound <= layout.parameterCounts[t] else {
            throw ReaderError.parameterOutOfRange(tensor: tensors[t].name, index: range.upperBound - 1, count: layout.parameterCounts[t])
        }
        guard !range.isEmpty else { return }
        try requireOpened(t)
        let e = tensors[t].dtype.size, B = layout.blockSize
        try withCodec { codec in
            for b in (range.lowerBound / B)...((range.upperBound - 1) / B) {
                let p0 = max(range.lowerBound, b * B), p1 = min(range.upperBound, (b + 1) * B)
                for i in tileRange(tensor: t, block: b) {
                    let x = tiles[i]
                    let s = Int(x.snapshotCount), f = Int(x.firstSnapshot)
                    let scratch = codec.rawScratch(Int(x.rawLength))
                    try decodeTile(i, into: scratch, codec: codec)
                    for p in p0..<p1 { body(p - range.lowerBound, f, s, UnsafeRawPointer(scratch.baseAddress! + (p - b * B) * s * e)) }
                }
            }
        }
    }

    /// Tensor `t` at snapshot `k` as raw little-endian bytes in row-major order (rebuilds a checkpoint tensor).
    public func tensorBytes(tensor t: Int, snapshot k: Int) throws -> [UInt8] {
        guard t >= 0, t < tensors.count else { throw ReaderError.tensorOutOfRange(t, count: tensors.count) }
        guard k >= 0, k < snapshotCount else { throw ReaderError.snapshotOutOfRange(k, count: snapshotCount) }
        try requireOpened(t)
        let e = tensors[t].dtype.size
        let n = layout.parameterCounts[t]
        var out = [UInt8](repeating: 0, count: n * e)
        let B = layout.blockSize
        // The tile holding snapshot k in each block (segments are sorted; blocks have few tiles).
        let covering = (0..<layout.blockCounts[t]).map { b in
            tileRange(tensor: t, block: b).first { Int(tiles[$0].firstSnapshot) + Int(tiles[$0].snapshotCount) > k }
        }
        guard n > 0 else { return out }
        // Through the cache only when those tiles fit in half of it; a bigger tensor would only churn it.
        let need = covering.reduce(0) { $0 &+ ($1.map { Int(tiles[$0].rawLength) } ?? 0) }
        let workers = min(ProcessInfo.processInfo.activeProcessorCount, covering.count / 4)
        if need > cache.budget / 2 && workers >= 2 {
            // A big tensor decodes every tile it touches: the parallel scan over those tiles, one column gathered from each.
            try out.withUnsafeMutableBytes { o in
                let base = Unshared(o.baseAddress!)
                try scan(tiles: covering.compactMap { $0 }, workers: workers) { tile, _ in
                    let col = k - tile.firstSnapshot, s = tile.snapshots
                    let dst = base.value + tile.firstParameter * e, src = tile.raw.baseAddress!
                    for p in 0..<tile.parameters { (dst + p * e).copyMemory(from: src + (p * s + col) * e, byteCount: e) }
                }
            }
            return out
        }
        try withCodec { codec in
            try out.withUnsafeMutableBytes { o in
                for (b, tile) in covering.enumerated() {
                    guard let i = tile else { continue }
                    let x = tiles[i]
                    let s = Int(x.snapshotCount), col = k - Int(x.firstSnapshot)
                    let params = layout.blockParams(tensor: t, block: b)
                    let dst = o.baseAddress! + b * B * e
                    if need <= cache.budget / 2, let planes = try inflated(i, codec: codec, params: params) {
                        codec.decodeColumn(planes, column: col, into: dst, elementSize: e, params: params, snapshots: s)
                        if x.anchored {
                            // The cached planes own their bytes: decoding the anchor (in the codec's scratch) leaves them be.
                            let anchor = try anchorValues(ofTile: i, codec: codec)
                            anchor.withUnsafeBytes { TileCodec.unanchor(dst, elementSize: e, params: params, snapshots: 1, anchor: $0.baseAddress!) }
                        }
                        continue
                    }
                    let scratch = codec.rawScratch(Int(x.rawLength))
                    try decodeTile(i, into: scratch, codec: codec)
                    let src = scratch.baseAddress!
                    for p in 0..<params { (dst + p * e).copyMemory(from: src + (p * s + col) * e, byteCount: e) }
                }
            }
        }
        return out
    }

    /// Tensor `name` at snapshot `k`, raw bytes.
    public func tensorBytes(tensor name: String, snapshot k: Int) throws -> [UInt8] {
        try tensorBytes(tensor: tensorIndex(named: name), snapshot: k)
    }

    // MARK: summaries

    /// Snapshot ranges of the file's segments (from the first block that exists).
    public var segments: [Range<Int>] {
        guard !blockFirstTile.isEmpty, let g = (0..<layout.totalBlocks).first else { return snapshotCount > 0 ? [0..<snapshotCount] : [] }
        return (blockFirstTile[g]..<blockFirstTile[g + 1]).map {
            Int(tiles[$0].firstSnapshot)..<Int(tiles[$0].firstSnapshot + tiles[$0].snapshotCount)
        }
    }

    /// Bytes of live tiles (saturating: overlapping tiles of a hostile index cannot make it trap).
    public var liveTileBytes: UInt64 { tiles.reduce(0) { Checked.add($0, $1.storedLength) ?? .max } }
    /// Bytes of the newest commit's index, metadata and footer.
    public var liveMetaBytes: UInt64 {
        isSharded ? shards.reduce(0) { $0 + $1.liveMetaBytes } : footer.indexLength + footer.metadataLength + UInt64(Spec.footerSize)
    }
    /// Raw bytes of the live tiles (parameters × snapshots × element sizes; saturating like `liveTileBytes`).
    public var liveRawBytes: UInt64 { tiles.reduce(0) { Checked.add($0, $1.rawLength) ?? .max } }
    /// The file's length as mapped at open (of a sharded run: the shards' sum).
    public var fileBytes: UInt64 { files.reduce(0) { $0 + UInt64($1.bytes.count) } }
    /// Committed file size (up to the newest footer's end).
    public var committedSize: UInt64 { isSharded ? shards.reduce(0) { $0 + $1.committedSize } : footerOffset + UInt64(Spec.footerSize) }
    /// Disk space the file occupies (allocated blocks, what `du` reports) when it is smaller than the file by at least
    /// one filesystem block: a writer returned dead space as holes (§9 "Space"). Nil otherwise (or if unknown).
    public var allocatedBytes: UInt64? {
        if isSharded {
            let each = shards.map { $0.allocatedBytes }
            return each.contains { $0 != nil } ? zip(each, shards).reduce(0) { $0 + ($1.0 ?? $1.1.fileBytes) } : nil
        }
        guard let (allocated, size, block) = file.allocation() else { return nil }
        return allocated + max(4096, block) <= size ? allocated : nil
    }
    /// Committed bytes over live bytes (§10: what merging costs until `psnap compact`); 1 for a compact file.
    public var writeAmplification: Double {
        Double(committedSize) / Double(max(1, committedSize - deadBytes))
    }

    /// Committed bytes that no live structure references: replaced tiles and old commits' index/metadata/footers (§10).
    /// §6 does not forbid live tiles that share or overlap stored bytes, so their sum can exceed the committed
    /// bytes: then nothing is counted as dead (0) instead of the subtraction trapping.
    public var deadBytes: UInt64 {
        if isSharded { return shards.reduce(0) { $0 + $1.deadBytes } }
        let total = committedSize - UInt64(Spec.headerSize)
        guard let used = Checked.add(liveTileBytes, liveMetaBytes), used <= total else { return 0 }
        return total - used
    }
}

/// Misuse of the reader API (bad names and indices); file problems are `FormatError`s.
public enum ReaderError: Error, Equatable, CustomStringConvertible, Sendable {
    case noSuchTensor(String, suggestions: [String] = [])
    case tensorOutOfRange(Int, count: Int)
    case parameterOutOfRange(tensor: String, index: Int, count: Int)
    case globalOutOfRange(Int, count: Int)
    case snapshotOutOfRange(Int, count: Int)
    case badMultiIndex(tensor: String, index: [Int], shape: [Int])
    case noSuchStep(Int64, first: Int64?, last: Int64?)
    case oneTensorPerNpy(selected: Int)
    case tensorNotOpened(String)

    public var description: String {
        switch self {
        case .noSuchTensor(let n, let near): return "no tensor named '\(n)'\(NameSuggestion.hint(near))"
        case .tensorOutOfRange(let t, let c): return "tensor \(t) out of range (the file has \(c))"
        case .parameterOutOfRange(let n, let i, let c): return "parameter \(i) out of range for tensor '\(n)' (\(c) parameters)"
        case .globalOutOfRange(let g, let c): return "global parameter \(g) out of range (the file has \(c))"
        case .snapshotOutOfRange(let k, let c): return "snapshot \(k) out of range (the file has \(c))"
        case .noSuchStep(let s, let a, let b): return "no snapshot has step \(s) (steps \(a.map { "\($0)" } ?? "-")…\(b.map { "\($0)" } ?? "-"))"
        case .tensorNotOpened(let n): return "tensor '\(n)' is in shards this reader did not open (it was opened for some tensors only)"
        case .oneTensorPerNpy(let n): return "a .npy file holds one tensor and \(n) are selected: use --include NAME, a .npz, or a folder"
        case .badMultiIndex(let n, let i, let s): return "index \(i) does not fit tensor '\(n)' of shape \(s)"
        }
    }
}

/// A lock-protected pool of codecs, so concurrent reader calls each get their own scratch.
final class CodecPool: @unchecked Sendable {
    let chain: CodecChain
    private var free: [TileCodec] = []
    private let lock = NSLock()
    init(chain: CodecChain) { self.chain = chain }
    func take() -> TileCodec {
        lock.lock(); defer { lock.unlock() }
        return free.popLast() ?? TileCodec(chain: chain)
    }
    func give(_ c: TileCodec) {
        lock.lock(); defer { lock.unlock() }
        if free.count < 64 { free.append(c) }
    }
}

extension ReaderError: ParamSnapError {
    public var kind: ErrorKind { .usage }
}
