// The training writer (spec §9, §10): create or resume a file, stage snapshots, commit segments with merging, compact.
import Foundation

/// Options of the training writer.
public struct WriterOptions: Sendable {
    /// B, parameters per block (power of two). Fixed when the file is created.
    public var blockSize: Int = Spec.defaultBlockSize
    /// Codec chain of a new file.
    public var chain: CodecChain = .default
    /// Snapshots staged before a segment is committed automatically.
    public var snapshotsPerSegment: Int = 16
    /// Memory budget in bytes: half for staged snapshots (beyond it they spill to a file beside the output),
    /// the rest for encoding batches.
    public var memoryBudget: Int = 1 << 30
    /// Worker threads for encoding.
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Tiered merging of small trailing segments (§10).
    public var merge: Bool = true
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
}

/// What `SnapshotWriter.repair` did.
public struct RepairReport: Sendable {
    /// Snapshots in the repaired copy.
    public var snapshots: Int
    /// Tiles that failed their checksum or decode (stored as NaN with `skipDamaged`).
    public var damagedTiles: [TileDamage]
    /// Bytes after the commit kept (a torn tail, or damaged commits discarded on request).
    public var droppedTailBytes: UInt64
    /// How a damaged newest footer was rebuilt (§8.2), if it was.
    public var recoveredFooter: String?
    /// The damaged commits given up (`discardDamagedCommits`), if any.
    public var discardedCommits: String?
}

/// Appends snapshots to a `.psnap` file with bounded memory. One writer per file (an exclusive lock).
public final class SnapshotWriter {
    public let path: String
    public let header: FileHeader
    public let layout: RunLayout
    public private(set) var metadata: FileMetadata
    public private(set) var tiles: [TileIndexEntry]
    /// Committed segments (§10).
    public private(set) var segments: [Range<Int>]
    public private(set) var lastCommit = CommitReport()
    /// Bytes a resumed file had after its last footer (a torn tail), cut off at open.
    public private(set) var truncatedBytes: UInt64 = 0
    public var options: WriterOptions

    private var file: WritableFile?
    private var end: UInt64
    private var lastFooterOffset: UInt64
    private var commitSequence: UInt64
    private var staging: Staging
    private var stagedInfos: [SnapshotInfo] = []

    /// Snapshots committed so far.
    public var committedSnapshots: Int { segments.last?.upperBound ?? 0 }
    /// Snapshots staged and not yet committed.
    public var stagedSnapshots: Int { stagedInfos.count }

    private init(path: String, file: WritableFile, header: FileHeader, metadata: FileMetadata, tiles: [TileIndexEntry],
                 segments: [Range<Int>], end: UInt64, lastFooterOffset: UInt64, commitSequence: UInt64, options: WriterOptions) {
        self.path = path; self.file = file; self.header = header; self.metadata = metadata
        self.layout = RunLayout(tensors: metadata.tensors, blockSize: Int(header.blockSize))
        self.tiles = tiles; self.segments = segments; self.end = end
        self.lastFooterOffset = lastFooterOffset; self.commitSequence = commitSequence; self.options = options
        self.staging = Staging(path: path, tensors: metadata.tensors, memoryBudget: options.memoryBudget / 2)
    }

    /// Creates a new file declaring `tensors`, and commits it empty (§9: a new file is valid at once).
    public static func create(path: String, tensors: [TensorInfo], options: WriterOptions = WriterOptions()) throws -> SnapshotWriter {
        let B = options.blockSize
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
    private func commitSegment(_ infos: [SnapshotInfo], from source: SnapshotSource) throws {
        guard let file else { throw IOError.closed }
        let staged = infos.count
        let oldEnd = committedSnapshots
        let newEnd = oldEnd + staged
        let mergeStart = options.merge ? Self.plannedMergeStart(segments: segments.map(\.count), staged: staged, oldEnd: oldEnd) : oldEnd
        var report = CommitReport(snapshots: staged, rewrittenFrom: mergeStart)
        let before = end, snapshotsBefore = metadata.snapshots.count
        var ok = false
        defer {
            if !ok {
                end = before
                metadata.snapshots.removeLast(metadata.snapshots.count - snapshotsBefore)
                try? file.truncate(to: before)
            }
        }
        let oldReader: PSnapReader? = mergeStart < oldEnd ? try PSnapReader(path: path, verifyChecksums: true) : nil
        if let r = oldReader, r.footerOffset != lastFooterOffset {
            throw FormatError.badFooter(offset: r.footerOffset, reason: "the file changed under the writer (newest footer expected at \(lastFooterOffset))")
        }
        var builder = TileBuilder(layout: layout, chain: header.codecChain, first: mergeStart, oldCount: oldEnd - mergeStart,
                                  old: oldReader, staged: source, workers: options.workers,
                                  batchBytes: max(1 << 20, options.memoryBudget / 8))
        builder.progress = options.progress
        let built = layout.parameterCount > 0 ? try builder.build(into: file, at: end) : BuildResult(end: end)
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

    /// §10 tiered merging: the first snapshot of the segment the staged snapshots end up in.
    public static func plannedMergeStart(segments: [Int], staged: Int, oldEnd: Int) -> Int {
        func tier(_ l: Int) -> Int { var t = 0, x = l; while x >= Spec.mergeFanout { x /= Spec.mergeFanout; t += 1 }; return t }
        var segs = segments + [staged]
        let F = Spec.mergeFanout
        while segs.count >= F {
            let tail = segs.suffix(F)
            let t0 = tier(tail.first!)
            guard tail.allSatisfy({ tier($0) == t0 }) else { break }
            let sum = tail.reduce(0, +)
            segs.removeLast(F)
            segs.append(sum)
        }
        return oldEnd + staged - segs.last!
    }

    /// §9 steps 2-5: fsync tiles, append index + metadata + footer, fsync.
    private func publish(newTiles: [TileIndexEntry], keepBefore: Int, report: CommitReport) throws {
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
        tiles = all
        end = footerOffset + UInt64(Spec.footerSize)
        lastFooterOffset = footerOffset
        commitSequence += 1
        lastCommit = report
    }

    /// Commits what is staged and releases the file.
    public func close() throws {
        guard file != nil else { return }
        try commit()
        file?.close()
        file = nil
        staging.discard()
    }

    // MARK: one-pass compact writing (converters, compaction)

    /// Writes a new file at `path` holding `snapshots` (their data from `source`, snapshot k = `snapshots[k]`) in
    /// the compact layout directly: one tile per block spanning all snapshots, streamed block by block with
    /// memory bounded by `options.memoryBudget`. Written under a temporary name beside `path`, fsynced, then
    /// renamed (never over an existing file unless `options.overwrite`).
    @discardableResult
    public static func writeCompact(path: String, tensors: [TensorInfo], snapshots: [SnapshotInfo], source: SnapshotSource,
                                    options: WriterOptions = WriterOptions()) throws -> CommitReport {
        precondition(source.count == snapshots.count, "one source snapshot per SnapshotInfo")
        return try writeNewCompact(path: path, tensors: tensors, snapshots: snapshots, old: nil, source: source, options: options)
    }

    /// Rewrites `input` so every block has one tile spanning all snapshots (§10), streaming block by block.
    /// The result is written under a temporary name beside `output`, fsynced, then renamed over `output`.
    /// `output == input` compacts in place: a symlink's target is rewritten (the link stays), keeping its mode and
    /// owner. Any other `output` must not be the input file (`OutputPath.check`). `blockSize`/`chain` default to the input's.
    @discardableResult
    public static func compact(input: String, output: String, blockSize: Int? = nil, chain: CodecChain? = nil,
                               options: WriterOptions = WriterOptions()) throws -> CommitReport {
        let target = output == input ? OutputPath.resolved(input) : output
        if output != input { try OutputPath.check(output: output, inputs: [input], force: true) }
        // Hold the writer lock on the input so no append runs while it is being rewritten.
        let inputLock = try WritableFile(path: input, create: false)
        defer { inputLock.close() }
        let reader = try PSnapReader(path: input, verifyChecksums: true)
        var opts = options
        opts.blockSize = blockSize ?? Int(reader.header.blockSize)
        opts.chain = chain ?? reader.header.codecChain
        opts.attributes = reader.metadata.attributes
        opts.overwrite = true
        return try writeNewCompact(path: target, tensors: reader.tensors, snapshots: reader.snapshots, old: reader, source: nil, options: opts)
    }

    /// Writes a repaired copy of `input` to `output` (never over `input`, nor over an existing file unless
    /// `options.overwrite`): the newest commit, its torn tail dropped, every intact tile copied; tiles that fail
    /// their checksum or decode make it fail with their names, unless `skipDamaged`, which stores them as NaN and
    /// lists them (tensor, parameters, snapshots) in the output's `attributes["repair.damaged"]` — nothing is
    /// guessed silently. A damaged newest commit (§8.1) is
    /// recovered when its index and metadata are intact (§8.2, `attributes["repair.footer"]`); otherwise the
    /// newest intact commit is kept only with `discardDamagedCommits`, which names the loss in
    /// `attributes["repair.discardedCommits"]`.
    @discardableResult
    public static func repair(input: String, output: String, skipDamaged: Bool, discardDamagedCommits: Bool = false,
                              options: WriterOptions = WriterOptions()) throws -> RepairReport {
        try OutputPath.check(output: output, inputs: [input], force: options.overwrite)
        var attributes: [String: MetaValue] = [:]
        let reader = try openForRepair(input, discardDamagedCommits: discardDamagedCommits, notes: &attributes)
        let damage = reader.verifyAll(workers: options.workers)
        if !damage.isEmpty && !skipDamaged {
            throw FormatError.damagedTiles(count: damage.count, list: damage.map { "tile \($0.tile) (tensor '\($0.tensor)', parameters \($0.parameters.lowerBound)..<\($0.parameters.upperBound), snapshots \($0.snapshots.lowerBound)..<\($0.snapshots.upperBound), offset \($0.offset))" }.joined(separator: "; "))
        }
        var opts = options
        opts.blockSize = Int(reader.header.blockSize)
        opts.chain = reader.header.codecChain
        attributes.merge(reader.metadata.attributes ?? [:]) { mine, _ in mine }
        if !damage.isEmpty {
            attributes["repair.damaged"] = .string(damage.map { "\($0.tensor)[\($0.parameters.lowerBound)..<\($0.parameters.upperBound)] snapshots \($0.snapshots.lowerBound)..<\($0.snapshots.upperBound)" }.joined(separator: "; "))
        }
        if reader.ignoredBytes > 0 { attributes["repair.droppedTailBytes"] = .number(Double(reader.ignoredBytes)) }
        opts.attributes = attributes.isEmpty ? nil : attributes
        _ = try writeNewCompact(path: output, tensors: reader.tensors, snapshots: reader.snapshots, old: reader, source: nil,
                                options: opts, skipDamaged: skipDamaged)
        func note(_ k: String) -> String? { if case .string(let v)? = attributes[k] { return v }; return nil }
        return RepairReport(snapshots: reader.snapshotCount, damagedTiles: damage, droppedTailBytes: reader.ignoredBytes,
                            recoveredFooter: note("repair.footer"), discardedCommits: note("repair.discardedCommits"))
    }

    /// The commit repair starts from: the newest one; else (§8.2) the newest damaged record's commit rebuilt;
    /// else, only when allowed, the newest intact commit. Adds what it did to `notes`.
    static func openForRepair(_ input: String, discardDamagedCommits: Bool, notes: inout [String: MetaValue]) throws -> PSnapReader {
        do {
            return try PSnapReader(path: input, verifyChecksums: true)
        } catch FormatError.damagedCommit(let offset, let reason, _, _) {
            let file = try MappedFile(path: input)
            let header = try PSnapReader.header(of: file)
            let B = Int(header.blockSize)
            let survey = CommitSearch.survey(file.bytes, blockSize: B)
            // Newest first: the first record whose commit can be rebuilt wins; newer damaged ones are lost.
            for (i, d) in survey.damaged.enumerated() {
                guard let salvaged = FooterSalvage.recover(file.bytes, record: Int(d.offset), blockSize: B) else { continue }
                guard i == 0 || discardDamagedCommits else { break }
                notes["repair.footer"] = .string(salvaged.note)
                if i > 0 { notes["repair.discardedCommits"] = .string(Self.lossNote(survey.damaged[0..<i])) }
                return PSnapReader(path: input, file: file, header: header, commit: salvaged.commit, verifyChecksums: true)
            }
            guard discardDamagedCommits, let intact = survey.intact else {
                throw FormatError.unrecoverableCommit(offset: offset, reason: reason,
                                                      intact: survey.intact.map { IntactCommit(($0.footerOffset, $0.footer.snapshotCount)) })
            }
            notes["repair.discardedCommits"] = .string(Self.lossNote(survey.damaged[...]))
            return PSnapReader(path: input, file: file, header: header, commit: intact, verifyChecksums: true)
        }
    }

    private static func lossNote(_ records: ArraySlice<CommitSearch.DamagedRecord>) -> String {
        records.map { "footer record at offset \($0.offset): \($0.reason)" }.joined(separator: "; ")
    }

    /// The one-segment file of `snapshots`, from an old file's tiles or from a snapshot source: temp name (removed
    /// on failure or a signal), build, publish (fsynced), rename. A replaced file's mode and owner are kept.
    private static func writeNewCompact(path: String, tensors: [TensorInfo], snapshots: [SnapshotInfo], old: PSnapReader?,
                                        source: SnapshotSource?, options: WriterOptions, skipDamaged: Bool = false) throws -> CommitReport {
        if !options.overwrite && FileManager.default.fileExists(atPath: path) { throw IOError.exists(path: path) }
        var opts = options
        opts.overwrite = false   // a new file (O_EXCL): never written through whatever was at the temporary name
        let tmp = TempFile(beside: path, .output)
        var ok = false
        defer { if ok { tmp.release() } else { tmp.remove() } }
        let w = try SnapshotWriter.create(path: tmp.path, tensors: tensors, options: opts)
        try w.adoptAttributes(of: path)
        var report = CommitReport(snapshots: snapshots.count, rewrittenFrom: 0)
        if !snapshots.isEmpty {
            var builder = TileBuilder(layout: w.layout, chain: w.header.codecChain, first: 0, oldCount: old == nil ? 0 : snapshots.count,
                                      old: old, staged: source, workers: opts.workers, batchBytes: max(1 << 20, opts.memoryBudget / 8))
            builder.progress = opts.progress
            if skipDamaged { builder.onDamagedTile = { _, _ in } }
            let built = w.layout.parameterCount > 0 ? try builder.build(into: w.file!, at: w.end) : BuildResult(end: w.end)
            w.end = built.end
            w.metadata.snapshots = snapshots
            report.tilesWritten = built.entries.count
            report.rawBytes = built.rawBytes
            report.storedBytes = built.storedBytes
            try w.publishCompact(entries: built.entries, snapshots: snapshots, report: report)
        }
        try w.closeAndRename(to: path, overwrite: options.overwrite)
        ok = true
        return report
    }
}

// MARK: caller-encoded compact files (CompactTileSink)

extension SnapshotWriter {
    /// Writes `stored` at the end of the file (not published until `publishCompact`) and returns its offset.
    /// The caller serialises calls.
    func appendUnpublished(_ stored: UnsafeRawBufferPointer) throws -> UInt64 {
        guard let file else { throw IOError.closed }
        let at = end
        try file.write(stored, at: at)
        end += UInt64(stored.count)
        return at
    }

    /// Publishes `entries` (one tile per block, spanning `snapshots`, at least one) as the file's single segment.
    func publishCompact(entries: [TileIndexEntry], snapshots: [SnapshotInfo], report: CommitReport) throws {
        metadata.snapshots = snapshots
        try publish(newTiles: entries, keepBefore: 0, report: report)
        segments = [0..<snapshots.count]
    }

    /// Gives the file being written the mode and owner of the file at `path` it will replace (`OutputPath`).
    func adoptAttributes(of path: String) throws {
        guard let file else { throw IOError.closed }
        try OutputPath.adoptAttributes(of: path, fd: file.fd)
    }

    /// Closes a file written under a temporary name and renames it to `path` (never over an existing file unless
    /// `overwrite`), then makes the rename durable. The one end of every "temp name, build, publish, rename" writer.
    func closeAndRename(to path: String, overwrite: Bool) throws {
        file?.close()
        file = nil
        if !overwrite && FileManager.default.fileExists(atPath: path) { throw IOError.exists(path: path) }
        guard rename(self.path, path) == 0 else { throw IOError.rename(from: self.path, to: path, errno: errno) }
        WritableFile.syncDirectory(of: path)
    }
}

/// Staged snapshots: in memory up to a budget, then in a spill file beside the output (§10 bounded memory).
final class Staging {
    let output: String
    let spillPath: String
    private var spillFile: TempFile?
    let snapshotBytes: Int
    let memoryBudget: Int
    private var memory: [UnsafeMutableRawBufferPointer] = []
    private var spill: WritableFile?
    private var spilled = 0

    /// Byte offset of each tensor inside a staged snapshot (tensors concatenated in file order).
    let tensorOffsets: [Int]

    init(path: String, tensors: [TensorInfo], memoryBudget: Int) {
        self.output = path
        self.spillPath = TempFiles.path(beside: path, .staging)
        var o = [0]
        for t in tensors { o.append(o.last! + (t.parameterCount ?? 0) * t.dtype.size) }
        self.tensorOffsets = o
        self.snapshotBytes = o.last!
        self.memoryBudget = memoryBudget
    }

    var count: Int { memory.count + spilled }

    func add(_ buffers: [UnsafeRawBufferPointer]) throws {
        if (memory.count + 1) * snapshotBytes <= memoryBudget && spilled == 0 {
            let a = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, snapshotBytes), alignment: 64)
            var o = 0
            for b in buffers where b.count > 0 {
                (a.baseAddress! + o).copyMemory(from: b.baseAddress!, byteCount: b.count)
                o += b.count
            }
            memory.append(a)
        } else {
            if spill == nil {
                spillFile = TempFile(beside: output, .staging)
                spill = try WritableFile(path: spillPath, create: true)
            }
            var o = UInt64(spilled) * UInt64(snapshotBytes)
            for b in buffers where b.count > 0 {
                try spill!.write(b, at: o)
                o += UInt64(b.count)
            }
            spilled += 1
        }
    }

    /// A view of all staged snapshots for the tile builder.
    func source() throws -> StagedView {
        let map = spilled > 0 ? try MappedFile(path: spillPath, length: UInt64(spilled) * UInt64(snapshotBytes)) : nil
        return StagedView(memory: memory, map: map, snapshotBytes: snapshotBytes, spilled: spilled, tensorOffsets: tensorOffsets)
    }

    deinit { discard() }

    func reset() {
        for m in memory { m.deallocate() }
        memory.removeAll()
        if spill != nil { try? spill!.truncate(to: 0) }
        spilled = 0
    }

    func discard() {
        for m in memory { m.deallocate() }
        memory.removeAll()
        if spill != nil { spill!.close(); spill = nil }
        spillFile?.remove()
        spillFile = nil
        spilled = 0
    }
}

/// Read-only view of staged snapshots.
struct StagedView: SnapshotSource, @unchecked Sendable {
    let memory: [UnsafeMutableRawBufferPointer]
    let map: MappedFile?
    let snapshotBytes: Int
    let spilled: Int
    let tensorOffsets: [Int]
    var count: Int { memory.count + spilled }
    func tensorBytes(snapshot k: Int, tensor t: Int) -> UnsafeRawPointer {
        if k < memory.count {
            return UnsafeRawPointer(memory[k].baseAddress!) + tensorOffsets[t]
        }
        return map!.bytes.baseAddress! + (k - memory.count) * snapshotBytes + tensorOffsets[t]
    }
    func releaseResidentPages() { map?.releaseResidentPages() }
}
