// A new one-segment (compact) file whose tiles the caller builds, one per block, in any order and from any thread.
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Foundation

/// Writes a compact `.psnap` (§10: one tile per block spanning all snapshots) from tiles the caller produces: a pass
/// that computes each block's values itself (`psnap moments`) encodes and appends them as it goes, instead of
/// staging the whole output and writing it afterwards. Written under a temporary name beside `path`, published
/// (fsynced) and renamed by `finish`; removed if the sink is dropped unfinished or a signal ends the process. A
/// replaced file's mode and owner are kept.
public final class CompactTileSink: @unchecked Sendable {
    public let path: String
    public let snapshots: [SnapshotInfo]
    public var layout: RunLayout { writer.layout }
    public var chain: CodecChain { writer.header.codecChain }
    private let tmp: TempFile
    private let overwrite: Bool
    private let writer: SnapshotWriter
    private let lock = NSLock()
    private var entries: [TileIndexEntry] = []
    private var added: [Bool]
    private var report: CommitReport
    private var done = false

    /// Creates the temporary file for `tensors` × `snapshots` (refuses an existing `path` unless `options.overwrite`).
    public init(path: String, tensors: [TensorInfo], snapshots: [SnapshotInfo], options: WriterOptions) throws {
        if !options.overwrite && FileManager.default.fileExists(atPath: path) { throw IOError.exists(path: path) }
        self.path = path
        self.snapshots = snapshots
        overwrite = options.overwrite
        let tmp = TempFile(beside: path, .output)
        self.tmp = tmp
        var o = options
        o.overwrite = false   // a new file (O_EXCL): never written through whatever was at the temporary name
        do {
            let w = try SnapshotWriter.create(path: tmp.path, tensors: tensors, options: o)
            try w.adoptAttributes(of: path)
            writer = w
        } catch {
            tmp.remove()
            throw error
        }
        added = [Bool](repeating: false, count: writer.layout.blockCounts.reduce(0, +))
        report = CommitReport(snapshots: snapshots.count, rewrittenFrom: 0, builds: 1)
    }

    deinit { if !done { tmp.remove() } }

    /// Encodes block `block` of tensor `tensor` from `raw` (the block's parameters × all snapshots, parameter-major,
    /// little-endian) with `codec` (a `TileCodec` of `chain`, one per thread) and appends it.
    @_spi(Internals) public func add(tensor t: Int, block b: Int, raw: UnsafeRawBufferPointer, codec: TileCodec) throws {
        let e = layout.tensors[t].dtype.size, params = layout.blockParams(tensor: t, block: b), S = snapshots.count
        precondition(raw.count == params * S * e, "raw tile of \(raw.count) bytes, expected \(params * S * e)")
        let (stored, storedRaw) = codec.encode(raw, elementSize: e, params: params, snapshots: S)
        let checksum = XXH64.hash(stored)
        lock.lock()
        defer { lock.unlock() }
        let g = layout.blockOffsets[t] + b
        precondition(!done && !added[g], "tile (\(t), \(b)) added twice or after finish")
        let offset = try writer.appendUnpublished(stored)
        added[g] = true
        entries.append(TileIndexEntry(tensor: UInt32(t), flags: storedRaw ? Spec.flagStoredRaw : 0, block: UInt64(b),
                                      firstSnapshot: 0, snapshotCount: UInt64(S), offset: offset,
                                      storedLength: UInt64(stored.count), rawLength: UInt64(raw.count), checksum: checksum))
        report.rawBytes += UInt64(raw.count)
        report.storedBytes += UInt64(stored.count)
    }

    /// Sets a file attribute before `finish` publishes the file (a pass whose summary is known only at its end).
    public func setAttribute(_ key: String, _ value: MetaValue) {
        lock.lock()
        defer { lock.unlock() }
        precondition(!done, "setAttribute after finish")
        writer.metadata.attributes = (writer.metadata.attributes ?? [:]).merging([key: value]) { $1 }
    }

    /// Publishes the file (every block must have its tile) and renames it to `path`.
    @discardableResult
    public func finish() throws -> CommitReport {
        lock.lock()
        defer { lock.unlock() }
        precondition(!done, "finish called twice")
        if let missing = added.firstIndex(of: false) {
            throw IOError.incomplete("\(path): block \(missing) of \(added.count) has no tile")
        }
        report.tilesWritten = entries.count
        if !snapshots.isEmpty { try writer.publishCompact(entries: entries, snapshots: snapshots, report: report) }
        try writer.closeAndRename(to: path, overwrite: overwrite)
        tmp.release()
        done = true
        return report
    }
}
