// Whole-file rewrites on one sink (spec §10 compaction, §8.2 repair): a new file in the compact layout, written under a
// temporary name, published and renamed; also the one-pass writer of converters and the CompactTileSink's support.
import Foundation
import PSnapFormat
@_spi(Internals) import PSnapCodec

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

extension SnapshotWriter {
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
        try ShardedRun.refuseFolder(input, command: "compact")
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
        try ShardedRun.refuseFolder(input, command: "repair")
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
        var report = CommitReport(snapshots: snapshots.count, rewrittenFrom: 0, builds: 1)
        if !snapshots.isEmpty {
            var builder = TileBuilder(layout: w.layout, chain: w.header.codecChain, first: 0, oldCount: old == nil ? 0 : snapshots.count,
                                      old: old, staged: source, workers: opts.workers, batchBytes: max(1 << 20, opts.memoryBudget / 8))
            builder.minMatch = opts.zstdMinMatch
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
