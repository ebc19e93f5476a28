// `psnap moments` over the snapshot axis (spec/MOMENTS.md §3): one streaming scan, per-segment states merged, a .psnap out.
import Foundation
@_spi(Internals) import ParamSnap
@_spi(Internals) import PSnapCodec

/// Options of a per-parameter moments pass.
public struct TrajectoryMomentsOptions: Sendable {
    /// Estimators (default scipy's population conventions).
    public var convention: MomentConvention = .population
    /// NaN/Inf handling.
    public var policy: NonFinitePolicy = .propagate
    /// Tensors to include (indices into the input's tensors; nil: all).
    public var tensors: [Int]? = nil
    /// Snapshots of the input to use (nil: all).
    public var snapshots: Range<Int>? = nil
    /// dtype of the output tensors: `.f32` (default) or `.f64`.
    public var outputDType: DType = .f32
    /// Worker threads (each holds a block's states: no more are started than there are tiles to scan).
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Called with (raw bytes scanned, raw bytes to scan) as the scan goes, from the workers.
    public var progress: (@Sendable (UInt64, UInt64) -> Void)? = nil
    /// Memory budget of the output writer (bytes).
    public var memoryBudget: Int = 256 << 20
    /// Replace an existing output.
    public var overwrite = false
    /// The statistics to write (output snapshots in `TrajectoryStatistic.allCases` order; duplicates ignored).
    /// Leaving out min/argmin/max/argmax and path_length/step_autocorr skips their computation.
    public var statistics: [TrajectoryStatistic] = TrajectoryStatistic.allCases
    /// Codec chain of the output file. Statistics are not a time series, so no temporal stage: byte planes and zstd.
    public var outputChain: CodecChain = TrajectoryMoments.defaultOutputChain

    /// Defaults: population conventions, NaN propagates, all tensors and snapshots, f32 output.
    public init() {}
}

/// What a moments pass did.
public struct TrajectoryMomentsReport: Sendable {
    /// Parameters and snapshots used, raw bytes of the input tiles decoded, segments merged.
    public var parameters = 0
    public var snapshots = 0
    public var rawBytes: UInt64 = 0
    public var segments = 0
    /// Bytes of the output file.
    public var outputBytes: UInt64 = 0
    /// The statistics written, in output snapshot order.
    public var statistics: [TrajectoryStatistic] = []
}

/// Problems of a moments pass that are the caller's (bad options) or the file's (bad layout).
public enum MomentsError: Error, CustomStringConvertible, Sendable, Equatable {
    case badSnapshotRange(String, count: Int)
    case noTensorSelected(pattern: String)
    case outputDType(DType)
    case tileOffSegments(tile: String)
    case noStatistic
    case io(String)

    public var description: String {
        switch self {
        case .badSnapshotRange(let r, let c): return "snapshot range \(r) is empty or outside 0..<\(c)"
        case .noTensorSelected(let p): return "no tensor matches '\(p)'"
        case .outputDType(let d): return "output dtype must be f32 or f64, not \(d.rawValue)"
        case .tileOffSegments(let t): return "\(t) does not start on a segment boundary of the file's first block (spec §10)"
        case .noStatistic: return "no statistic selected"
        case .io(let m): return m
        }
    }
}

/// Computes every `TrajectoryStatistic` of every selected parameter over the snapshot axis, in one pass over the tiles
/// (`PSnapReader.scan`), and writes them as a `.psnap` whose "snapshots" are the statistics.
///
/// Memory stays bounded independently of the run size: a compact file's tiles are finalised as they come; for a
/// multi-segment file each tile's per-parameter `TrajectoryState`s go to a spill file beside the output until the
/// block's last segment arrives, then are merged in snapshot order. Each finished block's statistics go into its
/// output tile, which a `CompactTileSink` encodes and appends as soon as its input blocks are in (MOMENTS.md §3).
public enum TrajectoryMoments {
    /// The statistics written, in output snapshot order.
    public static let statistics = TrajectoryStatistic.allCases
    /// The output's default chain (spec/MOMENTS.md §3): split, zstdplanes at level 1.
    public static let defaultOutputChain = try! CodecChain(stages: [.split, .zstdPlanes], zstdLevel: 1)

    /// Runs the pass on `reader` and writes `outputPath`.
    @discardableResult
    public static func run(reader: PSnapReader, outputPath: String, options: TrajectoryMomentsOptions = .init()) throws -> TrajectoryMomentsReport {
        try MomentsPass(reader: reader, outputPath: outputPath, options: options).run()
    }
}

/// One run of the per-parameter pass: the output's geometry, the sink, the spill file and the per-worker scratch,
/// and what each scanned tile does to them.
final class MomentsPass: @unchecked Sendable {
    let reader: PSnapReader
    let outputPath: String
    let options: TrajectoryMomentsOptions
    let range: Range<Int>
    /// Selected tensors in file order; each input tensor's index in the output and first block among the selected.
    let selected: [Int]
    let outIndex: [Int], selBlockOffset: [Int]
    let parameters: Int, blocks: Int
    /// Segments overlapping the range (§10: every block shares the boundaries), by first snapshot.
    let segs: [Range<Int>]
    let segIndex: [Int: Int]
    let K: Int
    /// The chosen statistics and their indices into the 15 values `statistics(into:)` writes.
    let chosen: [TrajectoryStatistic], pick: [Int]
    let needExtrema: Bool, needSteps: Bool
    /// Output tiles gather `merge` input blocks of B parameters: `outB` parameters (MOMENTS.md §3).
    let outB: Int, merge: Int, outSize: Int
    /// Only count and moments wanted, one segment: no state is kept, a finite row goes straight from its sum and
    /// centred sums to the statistics (the same arithmetic as the state's path, so the same bits).
    let momentsOnly: Bool
    let stride = MemoryLayout<TrajectoryState>.stride
    private var sink: CompactTileSink!
    private var spill: ScratchFile?
    private let staging = OutputStaging()
    private var scratch: [WorkerScratch] = []
    /// Tiles seen per selected block (multi-segment files only), and raw bytes decoded.
    private var arrived: [Int32] = []
    private let lock = NSLock()
    private var rawTotal: UInt64 = 0

    init(reader: PSnapReader, outputPath: String, options: TrajectoryMomentsOptions) throws {
        guard options.outputDType == .f32 || options.outputDType == .f64 else { throw MomentsError.outputDType(options.outputDType) }
        try OutputPath.check(output: outputPath, inputs: [reader.path], force: options.overwrite)
        let range = options.snapshots ?? 0..<reader.snapshotCount
        guard range.lowerBound >= 0, range.upperBound <= reader.snapshotCount, !range.isEmpty else {
            throw MomentsError.badSnapshotRange("\(range.lowerBound):\(range.upperBound)", count: reader.snapshotCount)
        }
        self.reader = reader; self.outputPath = outputPath; self.options = options; self.range = range
        let layout = reader.layout
        selected = (options.tensors ?? Array(reader.tensors.indices)).sorted()
        var outIdx = [Int](repeating: -1, count: reader.tensors.count), blockOffs = outIdx
        var P = 0, nb = 0
        for (k, t) in selected.enumerated() {
            outIdx[t] = k; blockOffs[t] = nb
            P += layout.parameterCounts[t]; nb += layout.blockCounts[t]
        }
        outIndex = outIdx; selBlockOffset = blockOffs; parameters = P; blocks = nb
        segs = reader.segments.filter { $0.overlaps(range) }
        segIndex = Dictionary(uniqueKeysWithValues: segs.enumerated().map { ($0.element.lowerBound, $0.offset) })
        K = max(1, segs.count)
        let c = TrajectoryMoments.statistics.enumerated().filter { options.statistics.contains($0.element) }
        guard !c.isEmpty else { throw MomentsError.noStatistic }
        chosen = c.map(\.element); pick = c.map(\.offset)
        needExtrema = chosen.contains { [.min, .argmin, .max, .argmax].contains($0) }
        needSteps = chosen.contains { [.pathLength, .stepAutocorrelation].contains($0) }
        outSize = options.outputDType.size
        // A tile of B parameters × a few statistics is small (4 KiB for B = 256 and 4 f32 statistics), and zstd's fixed
        // cost per plane was 15 % of the pass: output B is the FORMAT §4.1 rule for the output's own geometry, never
        // below the input's.
        outB = max(layout.blockSize, Spec.compactBlockSize(snapshots: chosen.count, elementSize: outSize))
        merge = outB / layout.blockSize
        momentsOnly = K == 1 && chosen.allSatisfy { [.count, .mean, .variance, .std, .skewness, .kurtosis].contains($0) }
    }

    func run() throws -> TrajectoryMomentsReport {
        var report = TrajectoryMomentsReport(parameters: parameters, snapshots: range.count, segments: segs.count)
        report.statistics = chosen
        sink = try CompactTileSink(path: outputPath, tensors: selected.map { TensorInfo(name: reader.tensors[$0].name, dtype: options.outputDType, shape: reader.tensors[$0].shape) },
                                   snapshots: chosen.enumerated().map { SnapshotInfo(step: Int64($0.offset), time: 0, metadata: ["statistic": .string($0.element.rawValue)]) },
                                   options: writerOptions())
        let B = reader.layout.blockSize
        spill = K > 1 ? try ScratchFile(path: TempFile(beside: outputPath, .momentsState), size: UInt64(blocks) * UInt64(K) * UInt64(B) * UInt64(stride)) : nil
        defer { spill?.remove(); staging.discard() }
        arrived = [Int32](repeating: 0, count: max(1, blocks))
        let selectedSet = Set(selected)
        // Every worker allocates its scratch up front: never more workers than tiles to scan.
        let workers = max(1, min(options.workers, reader.tiles.reduce(0) { selectedSet.contains(Int($1.tensor)) ? $0 + 1 : $0 }))
        scratch = (0..<workers).map { _ in
            WorkerScratch(blockSize: B, snapshots: range.count, stats: pick.count, segments: K, outputChain: options.outputChain)
        }
        try reader.scan(tensors: selectedSet, workers: workers, progress: options.progress) { [self] tile, worker in
            try consume(tile, scratch[worker])
        }
        report.rawBytes = rawTotal
        try sink.finish()
        report.outputBytes = UInt64((try? FileManager.default.attributesOfItem(atPath: outputPath)[.size] as? Int).flatMap { $0 } ?? 0)
        return report
    }

    private func writerOptions() -> WriterOptions {
        var opts = WriterOptions()
        opts.blockSize = outB
        opts.chain = options.outputChain
        opts.workers = options.workers
        opts.memoryBudget = options.memoryBudget
        opts.overwrite = options.overwrite
        opts.attributes = [
            "content": .string("psnap moments: per-parameter statistics over the snapshot axis (spec/MOMENTS.md)"),
            "statistics": .string(chosen.map(\.rawValue).joined(separator: ",")),
            "convention": .string(options.convention.rawValue),
            "nonfinite": .string(options.policy.rawValue),
            "source": .string(reader.path),
            "source_snapshots": .string("\(range.lowerBound):\(range.upperBound)"),
            "index_base": .string("argmin/argmax are snapshot indices of the source file"),
        ]
        return opts
    }

    /// One scanned tile: each parameter's row to its state (or, moments only, straight to its statistics), then the
    /// block finished, or its states spilled until the block's last segment arrives.
    private func consume(_ tile: TileBlock, _ ws: WorkerScratch) throws {
        let f = tile.firstSnapshot, S = tile.snapshots
        let lo = Swift.max(f, range.lowerBound), hi = Swift.min(f + S, range.upperBound)
        guard lo < hi else { return }
        let e = tile.dtype.size, n = hi - lo
        let states = ws.states
        for p in 0..<tile.parameters {
            let row = UnsafeRawBufferPointer(start: tile.raw.baseAddress! + (p * S + (lo - f)) * e, count: n * e)
            ValueConversion.toDoubles(row, dtype: tile.dtype, into: UnsafeMutableBufferPointer(start: ws.row, count: n))
            let values = UnsafeBufferPointer(start: ws.row, count: n)
            guard momentsOnly else {
                states[p] = TrajectoryState(values: values, firstIndex: lo, policy: options.policy, extrema: needExtrema, steps: needSteps)
                continue
            }
            let sum = Fast.sum(ws.row, n)
            if sum.isFinite {
                ws.statValues[0] = Double(n)
                CentralMoments(twoPass: values, sum: sum).finiteStatistics(convention: options.convention, into: ws.statValues)
            } else {
                TrajectoryState(values: values, firstIndex: lo, policy: options.policy, extrema: false, steps: false)
                    .statistics(convention: options.convention, policy: options.policy, into: ws.statValues)
            }
            put(p, ws)
        }
        lock.lock(); rawTotal += UInt64(tile.parameters * n * e); lock.unlock()
        if momentsOnly { return try emit(params: tile.parameters, tensor: tile.tensor, block: tile.block, ws: ws) }
        if K == 1 { return try finish(states, params: tile.parameters, tensor: tile.tensor, block: tile.block, ws: ws) }
        guard let j = segIndex[f], segs[j].upperBound == f + S else {
            throw MomentsError.tileOffSegments(tile: reader.tileName(tile.tileIndex))
        }
        try spillOrMerge(tile, segment: j, ws: ws)
    }

    /// A multi-segment block: this segment's states to the spill file; the last segment in merges them all in snapshot
    /// order and finishes the block.
    private func spillOrMerge(_ tile: TileBlock, segment j: Int, ws: WorkerScratch) throws {
        let B = reader.layout.blockSize
        let g = selBlockOffset[tile.tensor] + tile.block
        let slotBytes = B * stride
        let blockStart = UInt64(g) * UInt64(K) * UInt64(slotBytes)
        try spill!.write(UnsafeRawBufferPointer(start: ws.states, count: tile.parameters * stride), at: blockStart + UInt64(j * slotBytes))
        lock.lock()
        arrived[g] += 1
        let complete = arrived[g] == Int32(K)
        lock.unlock()
        guard complete else { return }
        try spill!.read(into: UnsafeMutableRawBufferPointer(start: ws.blockStates, count: K * slotBytes), at: blockStart)
        for p in 0..<tile.parameters {
            var s = ws.blockStates[p]
            for jj in 1..<K { s.append(ws.blockStates[jj * B + p]) }
            ws.states[p] = s
        }
        try finish(ws.states, params: tile.parameters, tensor: tile.tensor, block: tile.block, ws: ws)
        spill!.dropCache(blockStart..<(blockStart + UInt64(K * slotBytes)))
    }

    /// Parameter p's chosen statistics (from the 15 in `ws.statValues`) into the block's output rows, which are
    /// parameter-major: a parameter's statistics are its "snapshots".
    private func put(_ p: Int, _ ws: WorkerScratch) {
        let nStats = pick.count
        for k in 0..<nStats {
            let v = ws.statValues[pick[k]]
            if options.outputDType == .f64 {
                ws.out.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: (p * nStats + k) * 8, as: UInt64.self)
            } else {
                ws.out.storeBytes(of: Float(v).bitPattern.littleEndian, toByteOffset: (p * nStats + k) * 4, as: UInt32.self)
            }
        }
    }

    /// Block `block`'s statistics (in `ws.out`) into output block block / merge; the output tile is encoded and added
    /// by whichever worker completes it (input blocks are consecutive rows of it).
    private func emit(params: Int, tensor t: Int, block: Int, ws: WorkerScratch) throws {
        let layout = reader.layout, B = layout.blockSize
        let rowBytes = pick.count * outSize
        let ob = block / merge
        let needed = Swift.min(merge, layout.blockCounts[t] - ob * merge)
        let outParams = Swift.min(outB, layout.parameterCounts[t] - ob * outB)
        let key = selBlockOffset[t] + ob * merge   // the output block's first input block, among the selected ones
        guard let full = staging.put(key: key, bytes: outB * rowBytes, at: (block % merge) * B * rowBytes,
                                     UnsafeRawBufferPointer(start: ws.out, count: params * rowBytes), needed: needed) else { return }
        defer { full.deallocate() }
        try sink.add(tensor: outIndex[t], block: ob, raw: UnsafeRawBufferPointer(start: full, count: outParams * rowBytes), codec: ws.codec)
    }

    /// Finalises `states` (params of one block) and hands the block's rows on.
    private func finish(_ states: UnsafeMutablePointer<TrajectoryState>, params: Int, tensor t: Int, block: Int, ws: WorkerScratch) throws {
        for p in 0..<params {
            states[p].statistics(convention: options.convention, policy: options.policy, into: ws.statValues)
            put(p, ws)
        }
        try emit(params: params, tensor: t, block: block, ws: ws)
    }
}

/// Output tiles being filled from several input blocks (moments pass): a buffer per output block, handed to the
/// worker that brings its last input block. Scans go in file order, so only a few are open at a time.
final class OutputStaging: @unchecked Sendable {
    private let lock = NSLock()
    private var open: [Int: (buffer: UnsafeMutableRawPointer, arrived: Int)] = [:]

    /// Copies `part` at `offset` of output block `key`'s buffer (`bytes` long); returns the buffer (now the caller's to
    /// deallocate) when this was its `needed`-th part, else nil.
    func put(key: Int, bytes: Int, at offset: Int, _ part: UnsafeRawBufferPointer, needed: Int) -> UnsafeMutableRawPointer? {
        lock.lock()
        let buffer = open[key]?.buffer ?? UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes), alignment: 64)
        if open[key] == nil { open[key] = (buffer, 0) }
        lock.unlock()
        if part.count > 0 { (buffer + offset).copyMemory(from: part.baseAddress!, byteCount: part.count) }
        lock.lock(); defer { lock.unlock() }
        open[key]!.arrived += 1
        guard open[key]!.arrived == needed else { return nil }
        open[key] = nil
        return buffer
    }

    /// Frees the buffers of output blocks left incomplete (a failed pass).
    func discard() {
        lock.lock(); defer { lock.unlock() }
        for (_, v) in open { v.buffer.deallocate() }
        open.removeAll()
    }
}

/// Per-worker buffers, allocated once.
final class WorkerScratch: @unchecked Sendable {
    let row: UnsafeMutablePointer<Double>
    let states: UnsafeMutablePointer<TrajectoryState>
    let blockStates: UnsafeMutablePointer<TrajectoryState>
    let statValues: UnsafeMutablePointer<Double>
    let out: UnsafeMutableRawPointer
    let codec: TileCodec
    init(blockSize B: Int, snapshots: Int, stats: Int, segments K: Int, outputChain: CodecChain) {
        codec = TileCodec(chain: outputChain)
        row = .allocate(capacity: max(1, snapshots))
        states = .allocate(capacity: B)
        states.initialize(repeating: TrajectoryState(), count: B)
        blockStates = .allocate(capacity: K > 1 ? K * B : 1)
        blockStates.initialize(repeating: TrajectoryState(), count: K > 1 ? K * B : 1)
        statValues = .allocate(capacity: TrajectoryStatistic.allCases.count)
        out = .allocate(byteCount: stats * B * 8, alignment: 64)
    }
    deinit { row.deallocate(); states.deallocate(); blockStates.deallocate(); statValues.deallocate(); out.deallocate() }
}

/// A temporary file written with pwrite/read with pread (page cache, not resident memory), removed at the end.
final class ScratchFile: @unchecked Sendable {
    let path: String
    private let watched: TempFile
    private var fd: Int32

    /// Creates `file` (removed at the end, or if a signal ends the process).
    init(path file: TempFile, size: UInt64) throws {
        path = file.path
        watched = file
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MomentsError.io("cannot create temporary file \(path): \(String(cString: strerror(errno)))") }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let m = String(cString: strerror(errno)); remove()
            throw MomentsError.io("cannot size temporary file \(path) to \(size) bytes: \(m)")
        }
    }

    func write(_ b: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try PositionalIO.write(b, to: fd, at: offset, path: path)
    }

    func read(into b: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try PositionalIO.read(into: b, from: fd, at: offset, path: path)
    }

    /// Tells the kernel the range is no longer needed (clean pages may be dropped from the cache).
    func dropCache(_ r: Range<UInt64>) { _ = posix_fadvise(fd, off_t(r.lowerBound), off_t(r.count), Int32(POSIX_FADV_DONTNEED)) }

    func remove() {
        if fd >= 0 { close(fd); fd = -1; watched.remove() }
    }

    deinit { remove() }
}

extension MomentsError: ParamSnapError {
    public var kind: ErrorKind {
        switch self {
        case .tileOffSegments: return .corruptData
        case .io: return .io(errno: nil)
        case .badSnapshotRange, .noTensorSelected, .outputDType, .noStatistic: return .usage
        }
    }
}
