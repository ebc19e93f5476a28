// The reader's parallel scan: every tile decoded once, on all cores, as a [parameters × snapshots] block.
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Foundation

/// One decoded tile handed to a scan body. Valid only during the call.
public struct TileBlock {
    /// Position of the tile in the reader's index.
    public let tileIndex: Int
    public let tensor: Int
    public let block: Int
    /// Flat index (in the tensor) of the block's first parameter.
    public let firstParameter: Int
    public let parameters: Int
    public let firstSnapshot: Int
    public let snapshots: Int
    public let dtype: DType
    /// Raw bit patterns, parameter-major: element `p·snapshots + s`.
    public let raw: UnsafeRawBufferPointer

    /// The values as Doubles into `dst` (parameters × snapshots, row-major).
    public func values(into dst: UnsafeMutableBufferPointer<Double>) {
        ValueConversion.toDoubles(raw, dtype: dtype, into: dst)
    }
}

extension PSnapReader {
    /// Decodes every live tile (optionally only of `tensors`) on `workers` threads, in file order, calling
    /// `body(tile, worker)`; each worker has its own scratch. The first error stops the scan and is rethrown.
    /// `progress(done, total)` (raw bytes of the scanned tiles) is called after each tile, from the workers.
    public func scan(tensors selected: Set<Int>? = nil, workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                     progress: (@Sendable (UInt64, UInt64) -> Void)? = nil,
                     _ body: @escaping @Sendable (TileBlock, Int) throws -> Void) throws {
        if opened != nil { for t in selected ?? Set(tensors.indices) { try requireOpened(t) } }
        var order = Array(tiles.indices)
        if let selected { order = order.filter { selected.contains(Int(tiles[$0].tensor)) } }
        // File order (of each shard in turn, for a sharded run): sequential reads.
        if tileFile.isEmpty {
            order.sort { tiles[$0].offset < tiles[$1].offset }
        } else {
            order.sort { (tileFile[$0], tiles[$0].offset) < (tileFile[$1], tiles[$1].offset) }
        }
        try scan(tiles: order, workers: workers, progress: progress, body)
    }

    /// Raw bytes of the live tiles of `selected` tensors (all when nil): the `total` a scan's progress counts to.
    public func scanBytes(tensors selected: Set<Int>? = nil) -> UInt64 {
        tiles.reduce(0) { selected?.contains(Int($1.tensor)) == false ? $0 : $0 &+ $1.rawLength }
    }

    /// Decodes the tiles `jobs` (indices into `tiles`, in that order) on `workers` threads, as `scan(tensors:)` does.
    @_spi(Internals) public func scan(tiles jobs: [Int], workers: Int, progress: (@Sendable (UInt64, UInt64) -> Void)? = nil,
              _ body: @escaping @Sendable (TileBlock, Int) throws -> Void) throws {
        let counter = ProgressCounter(total: progress == nil ? 0 : jobs.reduce(UInt64(0)) { $0 &+ tiles[$1].rawLength }, report: progress)
        // A streaming pass: resident memory bounded by each worker's scratch, not by the file.
        try parallelForEach(count: jobs.count, workers: workers, state: { ScanWorker(self, worker: $0) }, { w, k in
            let worker = w.worker
            try w.decode(jobs[k], counter: counter) { try body($0, worker) }
        }, finish: { $0.release.flush() })
    }

    /// `scan(tiles:)` whose tiles each produce a part, merged by `merge` in the order of `jobs` whichever worker finishes
    /// first (`parallelOrderedReduce`): a floating-point reduction over tiles then gives the same bits for any worker
    /// count, and for a sharded run holding the same tiles.
    @_spi(Internals) public func scanOrdered<Part: Sendable>(tiles jobs: [Int], workers: Int, progress: (@Sendable (UInt64, UInt64) -> Void)? = nil,
                                                            _ body: (TileBlock) throws -> Part, merge: (Part) -> Void) throws {
        let counter = ProgressCounter(total: progress == nil ? 0 : jobs.reduce(UInt64(0)) { $0 &+ tiles[$1].rawLength }, report: progress)
        try parallelOrderedReduce(count: jobs.count, workers: workers, state: { ScanWorker(self, worker: $0) }, { w, k in
            try w.decode(jobs[k], counter: counter, body)
        }, merge: merge, finish: { $0.release.flush() })
    }
}

/// A streaming pass's per-worker reader of whole blocks: every tile of a block (one per segment it was written in)
/// decoded with the worker's codec straight into a [parameters × snapshots] matrix of Doubles, checksums verified
/// as the reader does, and the file pages read dropped in batches (resident memory stays the worker's scratch, as in
/// `scan`). For passes that need whole trajectories block by block (the analysis passes), in any block order.
public struct BlockLoader {
    let reader: PSnapReader
    let codec: TileCodec
    var release: ResidentPageReleaser

    public init(_ reader: PSnapReader) {
        self.reader = reader
        codec = TileCodec(chain: reader.header.codecChain)
        release = ResidentPageReleaser(file: reader.file)
    }

    /// Block `b` of tensor `t` into `dst` (room for blockParams × snapshotCount Doubles); returns its parameter count.
    public mutating func load(tensor t: Int, block b: Int, into dst: UnsafeMutablePointer<Double>) throws -> Int {
        let layout = reader.layout, S = reader.snapshotCount
        try reader.requireOpened(t)
        let params = layout.blockParams(tensor: t, block: b), dtype = reader.tensors[t].dtype, e = dtype.size
        for i in reader.tileRange(tensor: t, block: b) {
            let x = reader.tiles[i]
            let s = Int(x.snapshotCount), f = Int(x.firstSnapshot)
            let scratch = codec.rawScratch(Int(x.rawLength))
            try reader.decodeTile(i, into: scratch, codec: codec)
            if s == S {
                ValueConversion.toDoubles(UnsafeRawBufferPointer(scratch), dtype: dtype, into: UnsafeMutableBufferPointer(start: dst, count: params * S))
            } else {
                for p in 0..<params {
                    ValueConversion.toDoubles(UnsafeRawBufferPointer(start: scratch.baseAddress! + p * s * e, count: s * e), dtype: dtype,
                                              into: UnsafeMutableBufferPointer(start: dst + p * S + f, count: s))
                }
            }
            release.done(Int(x.offset)..<Int(x.offset + x.storedLength), in: reader.fileOf(tile: i))
        }
        return params
    }

    /// Drops the pages still held (call when the worker is done).
    public mutating func flush() { release.flush() }
}

/// A scan worker's codec and page releaser: decodes a tile and hands it on as a `TileBlock`.
struct ScanWorker {
    let reader: PSnapReader
    let worker: Int
    let codec: TileCodec
    var release: ResidentPageReleaser

    init(_ reader: PSnapReader, worker: Int) {
        self.reader = reader; self.worker = worker
        codec = TileCodec(chain: reader.header.codecChain)
        release = ResidentPageReleaser(file: reader.file)
    }

    mutating func decode<R>(_ j: Int, counter: ProgressCounter, _ body: (TileBlock) throws -> R) throws -> R {
        let x = reader.tiles[j], layout = reader.layout
        let t = Int(x.tensor), b = Int(x.block)
        let scratch = codec.rawScratch(Int(x.rawLength))
        try reader.decodeTile(j, into: scratch, codec: codec)
        let r = try body(TileBlock(tileIndex: j, tensor: t, block: b, firstParameter: b * layout.blockSize,
                                   parameters: layout.blockParams(tensor: t, block: b),
                                   firstSnapshot: Int(x.firstSnapshot), snapshots: Int(x.snapshotCount),
                                   dtype: reader.tensors[t].dtype, raw: UnsafeRawBufferPointer(scratch)))
        release.done(Int(x.offset)..<Int(x.offset + x.storedLength), in: reader.fileOf(tile: j))
        counter.add(x.rawLength)
        return r
    }
}
