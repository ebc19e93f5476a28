// The principal trajectory modes (PCA over snapshots, as DLDR does in RAM): one streaming pass accumulates the S×S
// Gram matrix of the per-parameter-centred trajectories (or of their steps) with BLAS SYRK, per chunk of blocks, merged in order; then
// LAPACK's symmetric eigensolver. Memory: one block of trajectories and one S×S matrix per worker.
import Foundation
import Synchronization
import CBLAS
@_spi(Internals) import ParamSnap
@_spi(Internals) import PSnapCodec

/// What a trajectory is, for the modes: its values, or its steps (consecutive differences).
public enum TrajectoryView: String, Sendable, CaseIterable {
    case values, steps
}

/// The S×S Gram matrix of per-parameter-centred rows, in f64: mergeable (sum of parts), so any split of the
/// parameters (workers, tile ranges, shards) gives the same matrix up to rounding.
public struct GramAccumulator: Sendable {
    /// Row length (snapshots, or snapshots − 1 for steps).
    public let dimension: Int
    /// Upper triangle of Σ_p c_p c_pᵀ, row-major (the lower triangle is not kept up to date until `symmetric`).
    public private(set) var matrix: [Double]
    /// Rows added.
    public private(set) var rows: Int = 0
    /// Rows left out because they held a NaN or an infinity, or values so large their squares overflow f64.
    public private(set) var nonFiniteRows: Int = 0

    public init(dimension: Int) {
        _ = singleThreadedBLAS   // `add` calls BLAS from scan workers: one BLAS thread each
        self.dimension = dimension
        matrix = [Double](repeating: 0, count: dimension * dimension)
    }

    /// A matrix summed elsewhere (the partitions of a distributed pass): `matrix` d × d row-major, upper triangle used.
    public init(dimension: Int, matrix: [Double], rows: Int, nonFiniteRows: Int) {
        precondition(matrix.count == dimension * dimension, "a d × d matrix")
        self.dimension = dimension
        self.matrix = matrix
        self.rows = rows
        self.nonFiniteRows = nonFiniteRows
    }

    /// Adds `count` rows of `dimension` values (row-major in `rows`): each row is centred on its own mean; rows with a
    /// non-finite value, or whose squares overflow f64, are counted and left out.
    public mutating func add(rows buf: UnsafeMutableBufferPointer<Double>, count: Int) {
        let d = dimension
        guard d > 0, count > 0 else { return }
        var kept = 0
        for r in 0..<count {
            let dst = buf.baseAddress! + kept * d
            if kept != r { dst.update(from: buf.baseAddress! + r * d, count: d) }
            guard TrajectoryRows.centre(dst, count: d).isFinite else { nonFiniteRows += 1; continue }
            kept += 1
        }
        guard kept > 0 else { return }
        // G += Cᵀ C for the kept [kept × d] rows C (upper triangle).
        matrix.withUnsafeMutableBufferPointer { g in
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(d), Int32(kept), 1.0, buf.baseAddress!, Int32(d), 1.0, g.baseAddress!, Int32(d))
        }
        rows += kept
    }

    /// Adds another accumulator's rows.
    public mutating func merge(_ other: GramAccumulator) {
        precondition(other.dimension == dimension, "Gram matrices of one dimension")
        for i in 0..<matrix.count { matrix[i] += other.matrix[i] }
        rows += other.rows
        nonFiniteRows += other.nonFiniteRows
    }

    /// The full symmetric matrix (the lower triangle filled from the upper).
    public var symmetric: [Double] {
        var m = matrix
        let d = dimension
        for i in 0..<d { for j in 0..<i { m[i * d + j] = m[j * d + i] } }
        return m
    }
}

/// The principal modes of a run's trajectories.
public struct ModesResult: Sendable {
    public var view: TrajectoryView
    /// Snapshots of the run, and the length of a row (snapshots, or snapshots − 1 for steps).
    public var snapshots: Int
    public var dimension: Int
    /// Parameters whose rows entered the matrix, and those left out for holding NaN or infinity.
    public var parameters: Int
    public var nonFiniteParameters: Int
    /// All eigenvalues of the Gram matrix, largest first (Σ = total variance × rows).
    public var eigenvalues: [Double]
    /// The first k mode shapes (unit vectors of length `dimension`), sign fixed so the largest component is positive.
    public var modes: [[Double]]
    public init(view: TrajectoryView, snapshots: Int, dimension: Int, parameters: Int, nonFiniteParameters: Int, eigenvalues: [Double], modes: [[Double]]) {
        self.view = view; self.snapshots = snapshots; self.dimension = dimension; self.parameters = parameters
        self.nonFiniteParameters = nonFiniteParameters; self.eigenvalues = eigenvalues; self.modes = modes
    }

    /// eigenvalue / Σ eigenvalues, largest first (sklearn's `explained_variance_ratio_`).
    public var explainedVarianceRatio: [Double] {
        let total = eigenvalues.reduce(0) { $0 + max(0, $1) }
        return eigenvalues.map { total > 0 ? max(0, $0) / total : 0 }
    }
}

/// Errors of the analysis passes.
public enum AnalysisError: ParamSnapError, Equatable {
    case tooFewSnapshots(needed: Int, got: Int, view: TrajectoryView)
    case badComponentCount(Int, max: Int)
    case noParameters
    case eigensolver(info: Int32)
    case constantQuery(Int)
    /// Query i has `got` values; a query is a trajectory of `want` (one value per snapshot).
    case queryLength(Int, got: Int, want: Int)
    case selectionTooLarge(Int, max: Int)
    case badTop(Int)
    case badGroupCount(Int, max: Int?)
    case badIterations(Int)
    case noVaryingFeature
    case featuresMismatch(file: String, detail: String)

    public var kind: ErrorKind {
        switch self {
        case .tooFewSnapshots, .noParameters: return .corruptData
        case .badComponentCount: return .usage
        case .eigensolver: return .io(errno: nil)
        case .constantQuery, .queryLength, .selectionTooLarge, .badTop, .badGroupCount, .badIterations, .featuresMismatch: return .usage
        case .noVaryingFeature: return .corruptData
        }
    }

    public var description: String {
        switch self {
        case .tooFewSnapshots(let n, let g, let v): return "the \(v.rawValue) view needs at least \(n) snapshots, the run has \(g)"
        case .badComponentCount(let k, let m): return "-k \(k): between 1 and \(m) modes (the row length)"
        case .noParameters: return "no parameter with finite values in the selection"
        case .eigensolver(let info): return "LAPACK dsyevd failed (info \(info))"
        case .badGroupCount(let k, let m):
            if let m { return "-k \(k): more groups than the \(m) parameters with a shape (constant and non-finite ones take no part)" }
            return "-k \(k): at least 1 group"
        case .badIterations(let n): return "--iterations \(n): at least 0"
        case .noVaryingFeature: return "no statistic varies across the selected parameters: nothing to group by"
        case .featuresMismatch(let f, let d): return "\(f): \(d)"
        case .badTop(let n): return "top \(n): at least 1 parameter per query"
        case .selectionTooLarge(let n, let m): return "\(n) parameters selected: pairs takes at most \(m) (narrow --include)"
        case .constantQuery(let i): return "query \(i + 1) is constant (or not finite) in this view: its correlation with anything is undefined"
        case .queryLength(let i, let g, let w): return "query \(i + 1) has \(g) values: a query is a trajectory, one value per snapshot (\(w)); the steps view takes its steps"
        }
    }
}

/// The principal trajectory modes pass.
public enum Modes {
    /// Accumulates the Gram matrix of the selected tensors' trajectories (per-parameter centred) on `workers`
    /// threads, then eigendecomposes it; returns all eigenvalues and the first `k` modes.
    public static func compute(_ reader: PSnapReader, k: Int, view: TrajectoryView = .values, tensors: [Int]? = nil,
                               workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                               progress: (@Sendable (UInt64, UInt64) -> Void)? = nil) throws -> ModesResult {
        let S = reader.snapshotCount
        let d = TrajectoryRows.length(view, snapshots: S)
        guard d >= 2 else { throw AnalysisError.tooFewSnapshots(needed: view == .values ? 2 : 3, got: S, view: view) }
        guard k >= 1, k <= d else { throw AnalysisError.badComponentCount(k, max: d) }
        var gram = GramAccumulator(dimension: d)
        try accumulate(reader, dimension: d, view: view, tensors: tensors ?? Array(reader.tensors.indices), partitions: 0..<Int.max,
                       workers: workers, progress: progress) { gram.merge($0) }
        return try fromGram(gram, k: k, view: view, snapshots: S)
    }

    /// The modes of a summed Gram matrix (`accumulate`'s partitions merged in order): all eigenvalues and the first
    /// `k` unit mode shapes, each signed so its largest component is positive.
    public static func fromGram(_ gram: GramAccumulator, k: Int, view: TrajectoryView, snapshots S: Int) throws -> ModesResult {
        let d = gram.dimension
        guard d >= 2 else { throw AnalysisError.tooFewSnapshots(needed: view == .values ? 2 : 3, got: S, view: view) }
        guard k >= 1, k <= d else { throw AnalysisError.badComponentCount(k, max: d) }
        guard gram.rows > 0 else { throw AnalysisError.noParameters }
        var a = gram.symmetric
        var w = [Double](repeating: 0, count: d)
        let info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "V")), Int8(UInt8(ascii: "U")), Int32(d), &a, Int32(d), &w)
        guard info == 0 else { throw AnalysisError.eigensolver(info: info) }
        // dsyevd: ascending eigenvalues, eigenvector j in column j.
        let order = Array((0..<d).reversed())
        let modes = order.prefix(k).map { j -> [Double] in
            var v = (0..<d).map { a[$0 * d + j] }
            if let big = v.max(by: { abs($0) < abs($1) }), big < 0 { v = v.map { -$0 } }
            return v
        }
        return ModesResult(view: view, snapshots: S, dimension: d, parameters: gram.rows, nonFiniteParameters: gram.nonFiniteRows,
                           eigenvalues: order.map { w[$0] }, modes: modes)
    }

    /// Chunks of blocks of a selection, each its own Gram matrix: at least 16·d parameters, so merging costs little
    /// beside the products. `partitionChunks` consecutive chunks make a partition.
    static func chunks(_ reader: PSnapReader, dimension d: Int, tensors: [Int]) -> (blocks: [(Int, Int)], chunks: [Range<Int>]) {
        let layout = reader.layout
        let blocks = tensors.flatMap { t in (0..<layout.blockCounts[t]).map { (t, $0) } }
        let chunkBlocks = max(1, (16 * d + layout.blockSize - 1) / layout.blockSize)
        return (blocks, stride(from: 0, to: blocks.count, by: chunkBlocks).map { $0..<min(blocks.count, $0 + chunkBlocks) })
    }

    /// Chunks per partition: the unit a distributed modes pass hands to one task.
    public static let partitionChunks = 64

    /// The tensors (sorted indices) whose blocks partitions `partitions` of the selection read: what a task of a
    /// distributed pass opens of a sharded run.
    public static func partitionTensors(_ reader: PSnapReader, dimension d: Int, tensors: [Int], partitions: Range<Int>) -> [Int] {
        let (blocks, chunks) = chunks(reader, dimension: d, tensors: tensors)
        return tensorsOf(blocks: blocks.map(\.0), chunks: chunks, partitions: partitions, chunksPerPartition: partitionChunks)
    }

    /// The tensors of `blocks` (each block's tensor, in selection order) that chunks of `partitions` cover.
    static func tensorsOf(blocks: [Int], chunks: [Range<Int>], partitions: Range<Int>, chunksPerPartition P: Int) -> [Int] {
        let c0 = min(chunks.count, partitions.lowerBound.multipliedReportingOverflow(by: P).overflow ? chunks.count : partitions.lowerBound * P)
        let c1 = min(chunks.count, partitions.upperBound.multipliedReportingOverflow(by: P).overflow ? chunks.count : partitions.upperBound * P)
        guard c0 < c1 else { return [] }
        return Array(Set(blocks[chunks[c0].lowerBound..<chunks[c1 - 1].upperBound])).sorted()
    }

    /// How many partitions the selection's Gram matrix is summed in.
    public static func partitionCount(_ reader: PSnapReader, dimension d: Int, tensors: [Int]) -> Int {
        (chunks(reader, dimension: d, tensors: tensors).chunks.count + partitionChunks - 1) / partitionChunks
    }

    /// One pass over the blocks of `partitions` of the selection, whole trajectories (every segment of a block) a block
    /// at a time: one Gram matrix per partition, the sum of its chunks' matrices in chunk order. The whole selection's
    /// matrix is the sum of its partitions' in partition order, from zero: the same bits on every run, worker count,
    /// and way of cutting the partitions into tasks (`paramsnap.dask.modes`).
    /// Each partition's matrix goes to `partition` as soon as it is complete, in partition order (none is kept).
    public static func accumulate(_ reader: PSnapReader, dimension d: Int, view: TrajectoryView, tensors: [Int], partitions: Range<Int>,
                                  workers: Int, progress: (@Sendable (UInt64, UInt64) -> Void)? = nil,
                                  partition: (GramAccumulator) -> Void) throws {
        _ = singleThreadedBLAS
        let layout = reader.layout
        let (blocks, allChunks) = chunks(reader, dimension: d, tensors: tensors)
        let P = partitionChunks
        let first = min(allChunks.count, partitions.lowerBound.multipliedReportingOverflow(by: P).overflow ? allChunks.count : partitions.lowerBound * P)
        let end = min(allChunks.count, partitions.upperBound.multipliedReportingOverflow(by: P).overflow ? allChunks.count : partitions.upperBound * P)
        guard first < end else { return }
        let counter = ProgressCounter(total: UInt64(allChunks[first..<end].reduce(0) { $0 + $1.count }), report: progress)
        var current = GramAccumulator(dimension: d)
        var merged = 0
        let S = reader.snapshotCount
        try parallelOrderedReduce(count: end - first, workers: workers, state: { _ in
            (loader: BlockLoader(reader), rows: UnsafeMutableBufferPointer<Double>.allocate(capacity: layout.blockSize * S))
        }, { w, c in
            var gram = GramAccumulator(dimension: d)
            for i in allChunks[first + c] {
                let (t, b) = blocks[i]
                let params = try w.loader.load(tensor: t, block: b, into: w.rows.baseAddress!)
                TrajectoryRows.inPlace(w.rows.baseAddress!, count: params, snapshots: S, view: view)
                gram.add(rows: w.rows, count: params)
                counter.add(1)
            }
            return gram
        }, merge: { g in
            // In chunk order: a partition is complete after its last chunk (or the selection's).
            current.merge(g)
            merged += 1
            if (first + merged) % P == 0 || first + merged == end {
                partition(current)
                current = GramAccumulator(dimension: d)
            }
        }, finish: { w in w.loader.flush(); w.rows.deallocate() })
    }
}

/// Per-parameter coefficients on the modes, written as a `.psnap` mirroring the input's tensors.
extension Modes {
    /// The output's "snapshots": one per mode coefficient, then the R² of the rank-k reconstruction.
    public static func outputSnapshots(k: Int) -> [SnapshotInfo] {
        (0..<k).map { SnapshotInfo(step: Int64($0), time: 0, metadata: ["statistic": .string("mode\($0 + 1)")]) }
            + [SnapshotInfo(step: Int64(k), time: 0, metadata: ["statistic": .string("r2")])]
    }

    /// A second pass: every selected parameter's centred trajectory (or steps) projected on `result.modes` (BLAS
    /// dgemm per block): its k coefficients and the R² of its rank-k reconstruction (Σ coef² / Σ c²; NaN for a
    /// constant or non-finite trajectory), written to `outputPath` (f32 or f64) mirroring the selected tensors. The
    /// eigenvalues, ratios and mode shapes go into the file's attributes (`modes.json`).
    public static func writeCoefficients(_ reader: PSnapReader, result: ModesResult, tensors selected: [Int], to outputPath: String,
                                         dtype: DType = .f32, force: Bool = false,
                                         workers: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        precondition(dtype == .f32 || dtype == .f64, "f32 or f64 output")
        _ = singleThreadedBLAS
        try OutputPath.check(output: outputPath, inputs: [reader.path], force: force)
        let layout = reader.layout, d = result.dimension, k = result.modes.count, S = reader.snapshotCount
        let tensors = selected.sorted()
        var opts = WriterOptions()
        opts.blockSize = layout.blockSize
        opts.chain = try CodecChain(stages: [.split, .zstdPlanes], zstdLevel: 1)
        opts.overwrite = force
        opts.attributes = ["content": .string("psnap modes: per-parameter coefficients on the principal trajectory modes, then R²"),
                           "modes.json": .string(result.json), "source": .string(reader.path)]
        let sink = try CompactTileSink(path: outputPath, tensors: tensors.map { TensorInfo(name: reader.tensors[$0].name, dtype: dtype, shape: reader.tensors[$0].shape) },
                                       snapshots: outputSnapshots(k: k), options: opts)
        var v = [Double](repeating: 0, count: d * k)      // [d × k], column j = mode j
        for j in 0..<k { for i in 0..<d { v[i * k + j] = result.modes[j][i] } }
        let modes = v
        let blocks = tensors.enumerated().flatMap { o, t in (0..<layout.blockCounts[t]).map { (o, t, $0) } }
        let B = layout.blockSize, width = k + 1
        try parallelForEach(count: blocks.count, workers: workers, state: { _ in
            (codec: TileCodec(chain: opts.chain), loader: BlockLoader(reader), rows: [Double](repeating: 0, count: B * S),
             coef: [Double](repeating: 0, count: B * k), out: [UInt8](repeating: 0, count: B * width * dtype.size))
        }, { w, i in
            let (o, t, b) = blocks[i]
            var norms = [Double](repeating: .nan, count: B)
            let params = try w.rows.withUnsafeMutableBufferPointer { rows in
                let n = try w.loader.load(tensor: t, block: b, into: rows.baseAddress!)
                TrajectoryRows.inPlace(rows.baseAddress!, count: n, snapshots: S, view: result.view)
                for p in 0..<n { norms[p] = TrajectoryRows.centre(rows.baseAddress! + p * d, count: d) }
                return n
            }
            w.rows.withUnsafeBufferPointer { c in modes.withUnsafeBufferPointer { m in w.coef.withUnsafeMutableBufferPointer { out in
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(params), Int32(k), Int32(d), 1.0, c.baseAddress!, Int32(d),
                            m.baseAddress!, Int32(k), 0.0, out.baseAddress!, Int32(k))
            } } }
            for p in 0..<params {
                var row = (0..<k).map { w.coef[p * k + $0] }
                let explained = row.reduce(0) { $0 + $1 * $1 }
                let r2 = norms[p].isFinite && norms[p] > 0 ? explained / norms[p] : .nan
                if !norms[p].isFinite { row = row.map { _ in .nan } }
                for (j, x) in (row + [r2]).enumerated() {
                    let at = (p * width + j) * dtype.size
                    if dtype == .f64 {
                        withUnsafeBytes(of: x.bitPattern.littleEndian) { for q in 0..<8 { w.out[at + q] = $0[q] } }
                    } else {
                        withUnsafeBytes(of: Float(x).bitPattern.littleEndian) { for q in 0..<4 { w.out[at + q] = $0[q] } }
                    }
                }
            }
            try w.out.withUnsafeBytes { try sink.add(tensor: o, block: b, raw: UnsafeRawBufferPointer(rebasing: $0[0..<(params * width * dtype.size)]), codec: w.codec) }
        }, finish: { w in w.loader.flush() })
        try sink.finish()
    }
}

extension ModesResult {
    /// The result as compact JSON: view, dimension, eigenvalues, ratios, mode shapes.
    public var json: String {
        let ev = eigenvalues.map { "\($0)" }.joined(separator: ","), r = explainedVarianceRatio.map { "\($0)" }.joined(separator: ",")
        let m = modes.map { "[" + $0.map { "\($0)" }.joined(separator: ",") + "]" }.joined(separator: ",")
        return "{\"view\":\"\(view.rawValue)\",\"dimension\":\(dimension),\"eigenvalues\":[\(ev)],\"explainedVarianceRatio\":[\(r)],\"modes\":[\(m)]}"
    }
}
