// The training writer (spec §9, §10): create or resume a file, stage snapshots, commit segments with merging, compact.
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Foundation

/// Options of the training writer.
public struct WriterOptions: Sendable {
    /// B, parameters per block (power of two). Fixed when the file is created. nil: the appending writer's rule
    /// (§4.1, `Spec.appendBlockSize`: 1024 for f32, 2048 for bf16 and f16, 512 for f64).
    public var blockSize: Int? = nil
    /// Codec chain of a new file.
    public var chain: CodecChain = .default
    /// The shortest match zstd may take in tiles of 2-byte values (`ZSTD_c_minMatch`, 3…7; 0: the level's own): a writer's
    /// choice, not recorded in the file (§5, RATIONALE §A.9). Default `Spec.zstdMinMatch`; other tiles take the level's own.
    public var zstdMinMatch: Int32 = Spec.zstdMinMatch
    /// Snapshots staged before a segment is committed automatically.
    public var snapshotsPerSegment: Int = 16
    /// Memory budget in bytes: half for staged snapshots (beyond it they spill to a file beside the output),
    /// the rest for encoding batches.
    public var memoryBudget: Int = 1 << 30
    /// Worker threads for encoding.
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Tiered merging of small trailing segments (§10).
    public var merge: Bool = true
    /// §10 space bound: after a one-snapshot commit the run's live bytes stay within this many times what
    /// `compact` would make of it, merging further than the tiered plan when needed (nil: the tiered plan alone).
    /// 1.2 keeps what `du` reports within 1.25× (the rest: partly used filesystem blocks).
    public var spaceBound: Double? = Spec.defaultSpaceBound
    /// Store the segments after the first anchored to snapshot 0 (§5.2; chains starting with linpred). False writes
    /// the layout of writers before anchored tiles (kept for the golden fixtures of that layout).
    public var anchorSegments: Bool = true
    /// Return dead space to the filesystem after each commit (§9 "Space": hole punching).
    public var reclaimSpace: Bool = true
    /// File-level attributes of a new file.
    public var attributes: [String: MetaValue]? = nil
    /// Replace an existing file on create.
    public var overwrite: Bool = false
    /// Progress callback (raw bytes done, total) during long commits.
    public var progress: (@Sendable (UInt64, UInt64) -> Void)? = nil

    public init() {}
}

/// What one commit did.
public struct CommitReport: Sendable, Equatable {
    /// New snapshots published.
    public var snapshots: Int = 0
    /// First snapshot of the tiles written (below the new snapshots when older segments were merged).
    public var rewrittenFrom: Int = 0
    public var tilesWritten: Int = 0
    public var rawBytes: UInt64 = 0
    public var storedBytes: UInt64 = 0
    /// Bytes appended to the file, tiles + index + metadata + footer.
    public var bytesAppended: UInt64 = 0
    /// Dead bytes returned to the filesystem after the commit (§9 "Space": holes punched).
    public var bytesReclaimed: UInt64 = 0
    /// Times the new segment was built: 2 or more when a built segment failed the §10 space bound and was built
    /// again from an earlier start (the earlier attempts are punched out).
    public var builds: Int = 0
}

/// Appends snapshots to a `.psnap` file with bounded memory. One writer per file (an exclusive lock).
public final class SnapshotWriter {
    public let path: String
    public let header: FileHeader
    public let layout: RunLayout
    public internal(set) var metadata: FileMetadata
    public internal(set) var tiles: [TileIndexEntry]
    /// Committed segments (§10).
    public internal(set) var segments: [Range<Int>]
    public internal(set) var lastCommit = CommitReport()
    /// Bytes a resumed file had after its last footer (a torn tail), cut off at open.
    public internal(set) var truncatedBytes: UInt64 = 0
    public var options: WriterOptions

    var file: WritableFile?
    var end: UInt64
    var lastFooterOffset: UInt64
    /// The newest commit's footer (nil only before the first commit of a new file).
    var lastFooter: Footer?
    var commitSequence: UInt64
    var staging: Staging
    var stagedInfos: [SnapshotInfo] = []
    var reclaimer = SpaceReclaimer()

    /// Snapshots committed so far.
    public var committedSnapshots: Int { segments.last?.upperBound ?? 0 }
    /// Snapshots staged and not yet committed.
    public var stagedSnapshots: Int { stagedInfos.count }

    init(path: String, file: WritableFile, header: FileHeader, metadata: FileMetadata, tiles: [TileIndexEntry],
                 segments: [Range<Int>], end: UInt64, lastFooterOffset: UInt64, commitSequence: UInt64, options: WriterOptions) {
        self.path = path; self.file = file; self.header = header; self.metadata = metadata
        self.layout = RunLayout(tensors: metadata.tensors, blockSize: Int(header.blockSize))
        self.tiles = tiles; self.segments = segments; self.end = end
        self.lastFooterOffset = lastFooterOffset; self.commitSequence = commitSequence; self.options = options
        self.staging = Staging(path: path, tensors: metadata.tensors, memoryBudget: options.memoryBudget / 2)
    }

    /// Creates a new file declaring `tensors`, and commits it empty (§9: a new file is valid at once).
    public static func create(path: String, tensors: [TensorInfo], options: WriterOptions = WriterOptions()) throws -> SnapshotWriter {
        let B = options.blockSize ?? Spec.appendBlockSize(tensors)
        guard B >= 1, Spec.isValidBlockSize(UInt64(B)) else {
            throw FormatError.badHeaderField("blockSize \(B) is not a power of two in 1...\(Spec.maxBlockSize)")
        }
        let meta = FileMetadata(tensors: tensors, attributes: options.attributes)
        try meta.validate()
        let header = FileHeader(blockSize: UInt64(B), codecChain: options.chain)
        let file = try WritableFile(path: path, create: true, overwrite: options.overwrite)
        try file.truncate(to: 0)
        try file.write(header.encode(), at: 0)
        let w = SnapshotWriter(path: path, file: file, header: header, metadata: meta, tiles: [], segments: [],
                               end: UInt64(Spec.headerSize), lastFooterOffset: 0, commitSequence: 0, options: options)
        try w.publish(newTiles: [], keepBefore: 0, report: CommitReport())
        WritableFile.syncDirectory(of: path)
        return w
    }

    /// Reopens `path` to append (training resumed). A torn tail after the newest commit is cut off.
    /// With `expecting`, a different tensor layout is refused, naming the first difference.
    public static func open(path: String, expecting tensors: [TensorInfo]? = nil, options: WriterOptions = WriterOptions()) throws -> SnapshotWriter {
        try ShardedRun.refuseFolder(path, command: "append")
        let file = try WritableFile(path: path, create: false)
        let reader = try PSnapReader(path: path, verifyChecksums: true)
        if let tensors, let diff = Self.firstDifference(file: reader.tensors, given: tensors) {
            throw IOError.layoutMismatch(diff)
        }
        var opts = options
        opts.blockSize = Int(reader.header.blockSize)
        opts.chain = reader.header.codecChain
        let w = SnapshotWriter(path: path, file: file, header: reader.header, metadata: reader.metadata, tiles: reader.tiles,
                               segments: reader.segments, end: reader.committedSize, lastFooterOffset: reader.footerOffset,
                               commitSequence: reader.footer.commitSequence + 1, options: opts)
        w.lastFooter = reader.footer
        if reader.ignoredBytes > 0 {
            try file.truncate(to: reader.committedSize)
            try file.sync()
            w.truncatedBytes = reader.ignoredBytes
        }
        return w
    }

    /// The first difference between the file's tensors and `given`, or nil when equal (names compared as bytes).
    public static func firstDifference(file: [TensorInfo], given: [TensorInfo]) -> String? {
        let byName = Dictionary(given.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for t in file {
            guard let g = byName[t.key] else { return "tensor '\(t.name)' is in the file but missing from the snapshot" }
            if g.dtype != t.dtype { return "tensor '\(t.name)' has dtype \(g.dtype.rawValue), the file has \(t.dtype.rawValue)" }
            if g.shape != t.shape { return "tensor '\(t.name)' has shape \(g.shape), the file has \(t.shape)" }
        }
        let names = Set(file.map(\.key))
        if let extra = given.first(where: { !names.contains($0.key) }) { return "tensor '\(extra.name)' is not in the file" }
        if given.count != file.count { return "the snapshot names a tensor twice" }
        return nil
    }

    // MARK: appending

    /// Stages one snapshot: `buffers[i]` holds tensor i's raw little-endian values (its declared dtype and size).
    /// Commits automatically when `snapshotsPerSegment` snapshots are staged.
    public func append(_ info: SnapshotInfo, buffers: [UnsafeRawBufferPointer]) throws {
        guard file != nil else { throw IOError.closed }
        guard info.time.isFinite, info.epoch?.isFinite ?? true else {
            throw IOError.badSnapshot("time \(info.time) and epoch \(info.epoch.map { String($0) } ?? "-") must be finite numbers")
        }
        guard buffers.count == layout.tensors.count else {
            throw IOError.badSnapshot("\(buffers.count) buffers for \(layout.tensors.count) tensors")
        }
        for (i, b) in buffers.enumerated() {
            let want = layout.parameterCounts[i] * layout.tensors[i].dtype.size
            guard b.count == want else {
                throw IOError.badSnapshot("tensor '\(layout.tensors[i].name)': \(b.count) bytes, expected \(want) (\(layout.parameterCounts[i]) × \(layout.tensors[i].dtype.rawValue))")
            }
        }
        try staging.add(buffers)
        stagedInfos.append(info)
        if stagedInfos.count >= options.snapshotsPerSegment { try commit() }
    }

    /// Stages one snapshot given as tensor name → raw bytes (every declared tensor exactly once). Names are keyed
    /// by their bytes (`["w": bytes]` works as a literal).
    public func append(_ info: SnapshotInfo, tensors: [TensorName: [UInt8]]) throws {
        var arrays: [[UInt8]] = []
        for t in layout.tensors {
            guard let b = tensors[t.key] else { throw IOError.badSnapshot("tensor '\(t.name)' missing") }
            arrays.append(b)
        }
        if tensors.count != layout.tensors.count {
            let names = Set(layout.tensors.map(\.key))
            let extra = tensors.keys.sorted().first { !names.contains($0) }?.string ?? "?"
            throw IOError.badSnapshot("tensor '\(extra)' is not in the file")
        }
        try Self.withBuffers(arrays) { try append(info, buffers: $0) }
    }

    /// Calls `body` with raw views of `arrays` (for `append(_:buffers:)`).
    public static func withBuffers<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        var ptrs: [UnsafeRawBufferPointer] = []
        func go(_ i: Int) throws -> R {
            if i == arrays.count { return try body(ptrs) }
            return try arrays[i].withUnsafeBytes { b in ptrs.append(b); return try go(i + 1) }
        }
        return try go(0)
    }

    /// Publishes every staged snapshot as one segment (merging trailing segments per §10), durably.
    @discardableResult
    public func commit() throws -> CommitReport {
        guard file != nil else { throw IOError.closed }
        guard !stagedInfos.isEmpty else { lastCommit = CommitReport(); return lastCommit }
        let source = try staging.source()
        try commitSegment(stagedInfos, from: source)
        stagedInfos.removeAll()
        staging.reset()
        return lastCommit
    }

    /// Appends `infos.count` snapshots whose data `source` provides (nothing may be staged), as one commit —
    /// merging trailing segments per §10. Zero-copy for memory-mapped dumps (`psnap append`).
    @discardableResult
    public func commit(appending infos: [SnapshotInfo], from source: SnapshotSource) throws -> CommitReport {
        guard file != nil else { throw IOError.closed }
        precondition(stagedInfos.isEmpty, "commit() staged snapshots first")
        precondition(source.count == infos.count, "one source snapshot per SnapshotInfo")
        for info in infos where !(info.time.isFinite && (info.epoch?.isFinite ?? true)) {
            throw IOError.badSnapshot("time \(info.time) and epoch \(info.epoch.map { String($0) } ?? "-") must be finite numbers")
        }
        guard !infos.isEmpty else { lastCommit = CommitReport(); return lastCommit }
        try commitSegment(infos, from: source)
        return lastCommit
    }

    /// Writes the tiles for the new snapshots (and the segments merged with them), then publishes (§9).
    /// On failure (a full disk, say) the writer's state is rolled back: nothing committed is lost, the
    /// bytes written past the last commit are ignored by readers and cut off by the next writer.
    func commitSegment(_ infos: [SnapshotInfo], from source: SnapshotSource) throws {
        guard let file else { throw IOError.closed }
        let staged = infos.count
        let oldEnd = committedSnapshots
        let newEnd = oldEnd + staged
        // §10: the tiered plan, held to the space bound (one-snapshot commits); a new segment found too big when
        // built is built again, merged further (at most once per segment it could still merge).
        let bound = options.merge && staged == 1 ? options.spaceBound : nil
        let spaces = bound == nil ? [] : segmentSpaces()
        let fixed = bound == nil ? 0 : UInt64(Spec.headerSize + Spec.footerSize + metadata.encode().count)
        // `single`: the newest one-snapshot segment in the index, or the one noted by the writer that last built one
        // (§7 `spaceBoundSingle`) while no segment starts after it: a run whose tail was merged into one segment would
        // otherwise build a one-snapshot segment only to measure it (RATIONALE §C.7).
        let noted = metadata.spaceBoundSingle.flatMap { n -> UInt64? in
            guard n.bytes > 0, n.bytes <= end, n.snapshot >= 0, n.snapshot < oldEnd,
                  segments.allSatisfy({ $0.lowerBound <= n.snapshot }) else { return nil }   // a hint: anything else is ignored
            return n.bytes
        }
        let newestSingle = [spaces.last { $0.count == 1 }?.bytes, noted].compactMap { $0 }.max()
        var mergeStart = !options.merge ? oldEnd
            : bound == nil ? Self.plannedMergeStart(segments: segments.map(\.count), staged: staged, oldEnd: oldEnd)
            : Self.boundedMergeStart(segments: spaces, staged: staged, oldEnd: oldEnd, fixedBytes: fixed, single: newestSingle, bound: bound)
        let before = end, snapshotsBefore = metadata.snapshots.count, noteBefore = metadata.spaceBoundSingle
        var ok = false
        defer {
            if !ok {
                end = before
                metadata.snapshots.removeLast(metadata.snapshots.count - snapshotsBefore)
                metadata.spaceBoundSingle = noteBefore
                try? file.truncate(to: before)
            }
        }
        var built = BuildResult(end: end)
        var at = before, builds = 0
        while true {
            built = try buildTiles(from: source, first: mergeStart, oldEnd: oldEnd, at: at)
            builds += 1
            guard let bound, mergeStart > 0 else { break }
            let kept = Array(spaces[..<(segments.firstIndex { $0.lowerBound >= mergeStart } ?? segments.count)])
            let newBytes = built.storedBytes + UInt64(built.entries.count * Spec.tileIndexEntrySize)
            if mergeStart == oldEnd { metadata.spaceBoundSingle = SingleSegmentNote(snapshot: oldEnd, bytes: newBytes) }
            let single = max(newestSingle ?? 0, mergeStart == oldEnd ? newBytes : 0)
            if Self.fitsSpaceBound(kept: kept, newBytes: newBytes, fixedBytes: fixed, single: single, bound: bound) { break }
            let next = Self.boundedMergeStart(segments: spaces, staged: staged, oldEnd: oldEnd, fixedBytes: fixed, single: single,
                                              bound: bound, before: mergeStart)
            mergeStart = next < mergeStart ? next : 0   // always earlier; snapshot 0 ends the search
            // The next attempt goes after this one, never over it and never by shrinking the file: a reader opening
            // now may have mapped it to its current end. The bytes of this attempt are a gap the commit's space
            // reclaim punches out (§9 "Space").
            at = built.end
        }
        var report = CommitReport(snapshots: staged, rewrittenFrom: mergeStart)
        report.builds = builds
        end = built.end
        report.tilesWritten = built.entries.count
        report.rawBytes = built.rawBytes
        report.storedBytes = built.storedBytes
        metadata.snapshots.append(contentsOf: infos)
        try publish(newTiles: built.entries, keepBefore: mergeStart, report: report)
        ok = true
        segments = segments.filter { $0.upperBound <= mergeStart } + [mergeStart..<newEnd]
        lastCommit.bytesAppended = end - before
    }

    /// Writes the tiles of snapshots `first..<oldEnd` (decoded from the committed run) and the staged ones at `offset`.
    private func buildTiles(from source: SnapshotSource, first: Int, oldEnd: Int, at offset: UInt64) throws -> BuildResult {
        guard let file else { throw IOError.closed }
        // The committed run is read for the segments merged, and for the anchors of the new tiles (§5 anchored).
        let anchored = options.anchorSegments && first > 0 && header.codecChain.anchorable
        let oldReader: PSnapReader? = first < oldEnd || anchored ? try committedReader(fileBytes: offset) : nil
        var builder = TileBuilder(layout: layout, chain: header.codecChain, first: first, oldCount: oldEnd - first,
                                  old: oldReader, staged: source, workers: options.workers,
                                  batchBytes: max(1 << 20, options.memoryBudget / 8), anchorSegments: anchored)
        builder.minMatch = options.zstdMinMatch
        builder.progress = options.progress
        return layout.parameterCount > 0 ? try builder.build(into: file, at: offset) : BuildResult(end: offset)
    }

    /// Each committed segment's snapshots and the bytes of its tiles and their index entries (§10 space bound).
    func segmentSpaces() -> [SegmentSpace] {
        var bytes: [Int: UInt64] = [:]
        for x in tiles { bytes[Int(x.firstSnapshot), default: 0] += x.storedLength + UInt64(Spec.tileIndexEntrySize) }
        return segments.map { SegmentSpace(count: $0.count, bytes: bytes[$0.lowerBound] ?? 0) }
    }

    /// A reader of the newest commit built from what the writer knows (the file is mapped again, since it grew;
    /// its index and metadata are not parsed again). The writer holds the lock, so the file is the one it wrote.
    /// `fileBytes`: the file's length now (the committed end, or past it by a commit's earlier attempt).
    private func committedReader(fileBytes: UInt64) throws -> PSnapReader {
        let map = try MappedFile(path: path)
        guard let f = lastFooter, UInt64(map.bytes.count) == fileBytes else {
            throw FormatError.badFooter(offset: lastFooterOffset, reason: "the file changed under the writer (\(map.bytes.count) bytes, \(fileBytes) expected)")
        }
        let commit = try Commit(footer: f, at: lastFooterOffset, metadata: metadata, tiles: tiles, layout: layout)
        return PSnapReader(path: path, file: map, header: header, commit: commit, verifyChecksums: true)
    }

    /// §9 steps 2-5: fsync tiles, append index + metadata + footer, fsync.
    func publish(newTiles: [TileIndexEntry], keepBefore: Int, report: CommitReport) throws {
        guard let file else { throw IOError.closed }
        try file.sync()
        var all = tiles.filter { $0.firstSnapshot < UInt64(keepBefore) }
        all.append(contentsOf: newTiles)
        all.sort { ($0.tensor, $0.block, $0.firstSnapshot) < ($1.tensor, $1.block, $1.firstSnapshot) }
        let index = TileIndex.encode(all)
        let meta = metadata.encode()
        let indexOffset = end
        let metaOffset = indexOffset + UInt64(index.count)
        let footerOffset = metaOffset + UInt64(meta.count)
        let footer = Footer(commitSequence: commitSequence, previousFooterOffset: lastFooterOffset,
                            indexOffset: indexOffset, indexLength: UInt64(index.count), indexChecksum: XXH64.hash(index),
                            metadataOffset: metaOffset, metadataLength: UInt64(meta.count), metadataChecksum: XXH64.hash(meta),
                            snapshotCount: UInt64(metadata.snapshots.count), tileCount: UInt64(all.count),
                            parameterCount: UInt64(layout.parameterCount))
        var tail = index
        tail.append(contentsOf: meta)
        // The footer in a write of its own, after the index and metadata: a writer killed inside the first write
        // leaves no footer magic at all, so a footer record after the newest commit is always damage (§8.1).
        try file.write(tail, at: indexOffset)
        try file.write(footer.encode(), at: footerOffset)
        try file.sync()
        let previous = lastFooter.map { (indexOffset: $0.indexOffset, footerOffset: lastFooterOffset) }
        tiles = all
        end = footerOffset + UInt64(Spec.footerSize)
        lastFooterOffset = footerOffset
        lastFooter = footer
        commitSequence += 1
        lastCommit = report
        // A shard ahead of the others keeps its older commits' space: readers of the run may need them (SHARDS §3).
        if options.reclaimSpace && !ShardedRun.shardAhead(path: path, snapshots: metadata.snapshots.count) {
            lastCommit.bytesReclaimed = reclaimer.reclaim(fd: file.fd, tiles: all, indexOffset: indexOffset,
                                                          footerOffset: footerOffset, previous: previous)
        }
    }

    /// Commits what is staged and releases the file.
    public func close() throws {
        guard file != nil else { return }
        try commit()
        file?.close()
        file = nil
        staging.discard()
    }
}
