// k-means over every parameter's trajectory shape (or a moments file's standardised statistics, or its coefficients on
// the principal modes): k-means++ seeding on a deterministic sample, then Lloyd iterations, each one streaming pass
// (a BLAS product of a block's rows with the centroids). Partial sums are merged in block order, so a seed gives the
// same groups whatever the worker count. Memory: a block of rows and k centroids per worker, and the seeding sample.
import Foundation
import Synchronization
import CBLAS
@_spi(Internals) import ParamSnap
@_spi(Internals) import PSnapCodec

/// What a parameter's feature vector is, for `Groups`.
public enum GroupFeatures: Sendable {
    /// Its trajectory (or its steps) centred and scaled to unit norm: Euclidean k-means on these is k-means by
    /// correlation of shape (‖a − b‖² = 2 − 2r).
    case trajectories(TrajectoryView)
    /// Its statistics in a `psnap moments` output file mirroring the run, each statistic standardised across the
    /// selected parameters (z-score); `statistics` picks some by name (nil: every statistic that varies).
    case moments(PSnapReader, statistics: [String]?)
    /// Its coefficients on the run's principal modes: a `psnap modes -o` file mirroring the run.
    case modesFile(PSnapReader)
    /// Its coefficients on these modes (computed from the run's own trajectories, centred, not scaled).
    case modes(ModesResult)

    var name: String {
        switch self {
        case .trajectories(let v): return v.rawValue
        case .moments: return "moments"
        case .modesFile, .modes: return "modes"
        }
    }
}

/// What `Groups.compute` found.
public struct GroupsResult: Sendable {
    /// The features grouped ("values", "steps", "moments", "modes"), their names (snapshot indices, statistics or
    /// modes) and, for moments, the standardisation applied (feature = (x − mean) / std).
    public var features: String
    public var featureNames: [String]
    public var featureMeans: [Double]?
    public var featureScales: [Double]?
    /// Statistics of a moments file left out because they are the same for every parameter.
    public var constantFeatures: [String]
    public var k: Int
    public var seed: UInt64
    /// Parameters grouped, and those left out: no shape (constant trajectory, undefined statistic) and non-finite.
    public var parameters: Int
    public var undefined: Int
    public var nonFinite: Int
    /// Rows in the k-means++ seeding sample.
    public var sampleSize: Int
    /// Lloyd iterations run, the objective (Σ squared distance to the assigned centroid) each one started from, and
    /// the objective of the final assignment.
    public var iterations: Int
    public var objectiveHistory: [Double]
    public var objective: Double
    /// Each group's share of the objective (Σ squared distance of its members to its centroid).
    public var groupObjective: [Double]
    /// Centroids (k × feature count), group sizes, and per selected tensor how many of its parameters each group holds.
    public var centroids: [[Double]]
    public var sizes: [Int]
    public var tensorNames: [String]
    public var tensorCounts: [[Int]]
    /// When the features are trajectories (values or steps): the steps the centroids' points sit at, and the run's
    /// normalised cumulative learning rate there (when logged), so the centroids can be fitted (`psnap fit --centroids`).
    public var steps: [Int64]? = nil
    public var cumulativeLR: [Double]? = nil
}

/// k-means over parameters.
public enum Groups {
    /// Group codes written for parameters left out.
    public static let undefinedGroup = -1.0, nonFiniteGroup = -2.0

    /// Groups the selected tensors' parameters into `k` groups by `features`: a pass for the seeding sample (and the
    /// statistics' standardisation), up to `iterations` Lloyd passes (stopping early when the objective improves by
    /// less than `tolerance`, relative), and a final pass that assigns every parameter and, with `outputPath`, writes
    /// its group and distance as a `.psnap` mirroring the selected tensors.
    public static func compute(_ reader: PSnapReader, k: Int, features: GroupFeatures, tensors selected: [Int]? = nil,
                               iterations: Int = 25, tolerance: Double = 1e-6, seed: UInt64 = 0,
                               outputPath: String? = nil, dtype: DType = .f32, force: Bool = false,
                               workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                               progress: (@Sendable (_ pass: Int, _ passes: Int, _ done: UInt64, _ total: UInt64) -> Void)? = nil) throws -> GroupsResult {
        precondition(dtype == .f32 || dtype == .f64, "f32 or f64 output")
        guard k >= 1 else { throw AnalysisError.badGroupCount(k, max: nil) }
        guard iterations >= 0 else { throw AnalysisError.badIterations(iterations) }
        _ = singleThreadedBLAS
        if let outputPath { try OutputPath.check(output: outputPath, inputs: [reader.path] + features.inputPaths, force: force) }
        let tensors = (selected ?? Array(reader.tensors.indices)).sorted()
        let source = try FeatureSource(reader, features: features, tensors: tensors)
        let D = source.dimension
        let layout = reader.layout, B = layout.blockSize
        let (blocks, chunks) = Self.chunks(reader, k: k, tensors: tensors)
        let total = tensors.reduce(0) { $0 + layout.parameterCounts[$1] }
        let passes = iterations + 2
        var pass = 0
        func scanner() -> Scanner { pass += 1; return Scanner(reader: reader, source: source, blocks: blocks, chunks: chunks, workers: workers, pass: pass, passes: passes, progress: progress) }

        // Pass 1: the statistics' spread (moments) and the seeding sample, kept with probability q by a hash of the
        // parameter's global index and the seed (so independent of workers and order).
        let sampleTarget = Self.sampleTarget(k: k, dimension: D)
        var q = total == 0 ? 1 : min(1, Double(sampleTarget) / Double(total))
        var first = try scanner().sample(q: q, seed: seed, layout: layout)
        if first.sample.count / D < k && first.valid >= k && q < 1 {
            q = min(1, q * Double(2 * k) / Double(max(1, first.sample.count / D)))
            first = try scanner().sample(q: q, seed: seed, layout: layout)
        }
        let valid = first.valid
        guard valid > 0 else { throw AnalysisError.noParameters }
        guard k <= valid else { throw AnalysisError.badGroupCount(k, max: valid) }
        source.standardise(first.columns)
        let kept = source.dimension
        guard kept > 0 else { throw AnalysisError.noVaryingFeature }
        var sample = source.project(first.sample, from: D)

        // k-means++ (greedy: 2 + ln k candidates per centre, the one lowering the potential most) on the sample.
        var centroids = Self.seed(sample: &sample, dimension: kept, k: k, seed: seed)
        sample = []

        var history: [Double] = []
        var ran = 0
        for _ in 0..<iterations {
            let part = try scanner().assign(centroids: centroids, k: k, dimension: kept, write: nil).total
            history.append(part.objective)
            ran += 1
            centroids = updated(centroids, part: part, k: k, dimension: kept)
            if history.count >= 2 {
                let a = history[history.count - 2], b = history[history.count - 1]
                if a - b <= tolerance * abs(a) { break }
            }
        }
        // Final pass: every parameter's group and distance to its centroid, written if asked; sizes and tensor shares.
        var sink: CompactTileSink?
        if let outputPath {
            var opts = WriterOptions()
            opts.blockSize = B
            opts.chain = try CodecChain(stages: [.split, .zstdPlanes], zstdLevel: 1)
            opts.overwrite = force
            opts.attributes = ["content": .string("psnap groups: each parameter's group (−1 no shape or undefined feature, −2 NaN or infinity) and its distance to the group's centroid"),
                               "source": .string(reader.path)]
            sink = try CompactTileSink(path: outputPath, tensors: tensors.map { TensorInfo(name: reader.tensors[$0].name, dtype: dtype, shape: reader.tensors[$0].shape) },
                                       snapshots: [SnapshotInfo(step: 0, time: 0, metadata: ["statistic": .string("group")]),
                                                   SnapshotInfo(step: 1, time: 0, metadata: ["statistic": .string("distance")])],
                                       options: opts)
        }
        pass = passes - 1
        let last = try scanner().assign(centroids: centroids, k: k, dimension: kept, write: sink.map { (sink: $0, dtype: dtype) }, tensorSlots: tensors.count).total
        var result = GroupsResult(features: features.name, featureNames: source.names, featureMeans: source.means, featureScales: source.scales,
                                  constantFeatures: source.constantNames, k: k, seed: seed, parameters: last.sizes.reduce(0, +),
                                  undefined: last.undefined, nonFinite: last.nonFinite, sampleSize: first.sample.count / D, iterations: ran,
                                  objectiveHistory: history, objective: last.objective, groupObjective: last.groupObjective,
                                  centroids: (0..<k).map { Array(centroids[($0 * kept)..<(($0 + 1) * kept)]) }, sizes: last.sizes,
                                  tensorNames: tensors.map { reader.tensors[$0].name }, tensorCounts: last.tensorCounts)
        if case .trajectories(let view) = features {
            let st = reader.snapshots.map(\.step)
            result.steps = view == .steps ? Array(st.dropFirst()) : st
            result.cumulativeLR = (try? Fit.abscissae(reader, view: view))?.L
        }
        if let sink {
            sink.setAttribute("groups.json", .string(result.json))
            try sink.finish()
        }
        return result
    }

    /// Chunks of blocks merged in order: at least 16 parameters per centroid, so merging costs little beside the products.
    static func chunks(_ reader: PSnapReader, k: Int, tensors: [Int]) -> (blocks: [Block], chunks: [Range<Int>]) {
        let layout = reader.layout, B = layout.blockSize
        let blocks = tensors.enumerated().flatMap { o, t in (0..<layout.blockCounts[t]).map { Block(slot: o, tensor: t, block: $0) } }
        let chunkBlocks = max(1, (16 * k + B - 1) / B)
        return (blocks, stride(from: 0, to: blocks.count, by: chunkBlocks).map { $0..<min(blocks.count, $0 + chunkBlocks) })
    }

    /// The tensors (sorted indices) whose blocks partitions `partitions` of the selection read (`Modes.partitionTensors`).
    public static func partitionTensors(_ reader: PSnapReader, k: Int, tensors selected: [Int]?, partitions: Range<Int>) -> [Int] {
        let (blocks, chunks) = chunks(reader, k: k, tensors: (selected ?? Array(reader.tensors.indices)).sorted())
        return Modes.tensorsOf(blocks: blocks.map(\.tensor), chunks: chunks, partitions: partitions, chunksPerPartition: partitionChunks)
    }

    /// Rows the seeding sample aims at.
    static func sampleTarget(k: Int, dimension D: Int) -> Int { min(max(8192, 64 * k), max(k, (256 << 20) / (8 * max(1, D)))) }

    /// Chunks per partition: a Lloyd pass sums its chunks' parts in chunk order within a partition, then the partitions
    /// in partition order from zero, so a pass split into tasks by partitions (`paramsnap.dask.groups`) gives the same
    /// bits as one process.
    public static let partitionChunks = 64

    /// What a distributed groups pass needs to know of a selection (trajectory features): the row length, the
    /// parameters, the partitions and the seeding sample's target size.
    public struct Plan: Sendable, Codable {
        public let dimension: Int, parameters: Int, partitions: Int, sampleTarget: Int
    }

    public static func plan(_ reader: PSnapReader, k: Int, view: TrajectoryView, tensors selected: [Int]?) throws -> Plan {
        guard k >= 1 else { throw AnalysisError.badGroupCount(k, max: nil) }
        let tensors = (selected ?? Array(reader.tensors.indices)).sorted()
        let source = try FeatureSource(reader, features: .trajectories(view), tensors: tensors)
        let chunks = Self.chunks(reader, k: k, tensors: tensors).chunks.count
        return Plan(dimension: source.dimension, parameters: tensors.reduce(0) { $0 + reader.layout.parameterCounts[$1] },
                    partitions: (chunks + partitionChunks - 1) / partitionChunks, sampleTarget: sampleTarget(k: k, dimension: source.dimension))
    }

    /// The first pass over partitions `partitions` of the selection: rows with a shape, and the sample rows kept with
    /// probability q (concatenated in order, they are the single pass's sample).
    public static func samplePart(_ reader: PSnapReader, k: Int, view: TrajectoryView, tensors selected: [Int]?, seed: UInt64, q: Double,
                                  partitions: Range<Int>, workers: Int = 1) throws -> (valid: Int, sample: [Double]) {
        let s = try partScanner(reader, k: k, view: view, tensors: selected, partitions: partitions, workers: workers)
        let r = try s.scanner.sample(q: q, seed: seed, layout: reader.layout)
        return (r.valid, r.sample)
    }

    /// A Lloyd pass over partitions `partitions` of the selection: one part per partition, its chunks' parts summed in
    /// chunk order.
    public static func assignParts(_ reader: PSnapReader, k: Int, view: TrajectoryView, tensors selected: [Int]?, centroids: [Double],
                                   partitions: Range<Int>, tensorCounts: Bool = false, workers: Int = 1) throws -> [GroupsPart] {
        let s = try partScanner(reader, k: k, view: view, tensors: selected, partitions: partitions, workers: workers)
        guard centroids.count == k * s.dimension else { throw AnalysisError.featuresMismatch(file: "centroids", detail: "\(centroids.count) values, not k × \(s.dimension)") }
        return try s.scanner.assign(centroids: centroids, k: k, dimension: s.dimension, write: nil, tensorSlots: tensorCounts ? s.tensors : 0,
                                    firstChunk: s.firstChunk, keepParts: true).parts.map(GroupsPart.init)
    }

    private static func partScanner(_ reader: PSnapReader, k: Int, view: TrajectoryView, tensors selected: [Int]?, partitions: Range<Int>,
                                    workers: Int) throws -> (scanner: Scanner, dimension: Int, tensors: Int, firstChunk: Int) {
        let tensors = (selected ?? Array(reader.tensors.indices)).sorted()
        let source = try FeatureSource(reader, features: .trajectories(view), tensors: tensors)
        let (blocks, all) = Self.chunks(reader, k: k, tensors: tensors)
        let first = min(all.count, partitions.lowerBound * partitionChunks), end = min(all.count, partitions.upperBound * partitionChunks)
        let scanner = Scanner(reader: reader, source: source, blocks: blocks, chunks: Array(all[first..<end]), workers: workers, pass: 1, passes: 1, progress: nil)
        return (scanner, source.dimension, tensors.count, first)
    }

    /// The k-means++ seeding (below) of a sample of rows of `dimension` values, from `seed`.
    public static func seed(sample: inout [Double], dimension: Int, k: Int, seed: UInt64) -> [Double] {
        var rng = SplitMix64(seed: seed)
        return seedCentroids(&sample, count: sample.count / dimension, dimension: dimension, k: k, rng: &rng)
    }

    /// The next centroids after a Lloyd pass whose parts, merged in order, are `part`.
    public static func updated(_ centroids: [Double], part: GroupsPart, k: Int, dimension D: Int) -> [Double] {
        updated(centroids, part: AssignPart(part), k: k, dimension: D)
    }

    /// Greedy k-means++ over `count` rows of `sample`: the first centre uniformly at random, then each next one the
    /// best of 2 + ⌊ln k⌋ candidates drawn with probability ∝ squared distance to the nearest centre so far.
    static func seedCentroids(_ sample: inout [Double], count m: Int, dimension D: Int, k: Int, rng: inout SplitMix64) -> [Double] {
        var centres = [Double](repeating: 0, count: k * D)
        func dist2(_ i: Int, _ c: UnsafePointer<Double>) -> Double {
            var s = 0.0
            sample.withUnsafeBufferPointer { x in let r = x.baseAddress! + i * D; for j in 0..<D { let e = r[j] - c[j]; s += e * e } }
            return s
        }
        let first = rng.below(m)
        centres.withUnsafeMutableBufferPointer { c in sample.withUnsafeBufferPointer { c.baseAddress!.update(from: $0.baseAddress! + first * D, count: D) } }
        var closest = centres.withUnsafeBufferPointer { c in (0..<m).map { dist2($0, c.baseAddress!) } }
        var potential = closest.reduce(0, +)
        var chosen: Set<Int> = [first]
        let trials = 2 + Int(log(Double(k)))
        var candidate = [Double](repeating: 0, count: m)
        for c in 1..<k {
            var best: (index: Int, potential: Double, closest: [Double])? = nil
            for _ in 0..<trials {
                var pick: Int
                if potential > 0 {
                    var r = rng.unit() * potential
                    pick = m - 1
                    for i in 0..<m { r -= closest[i]; if r < 0 { pick = i; break } }
                    if closest[pick] == 0 { pick = (0..<m).first { closest[$0] > 0 } ?? pick }
                } else {
                    // Every sample row sits on a centre: take the first row not chosen yet (k ≤ rows is checked).
                    pick = (0..<m).first { !chosen.contains($0) } ?? rng.below(m)
                }
                var pot = 0.0
                sample.withUnsafeBufferPointer { x in
                    let cand = x.baseAddress! + pick * D
                    for i in 0..<m {
                        var s = 0.0
                        let r = x.baseAddress! + i * D
                        for j in 0..<D { let e = r[j] - cand[j]; s += e * e }
                        candidate[i] = min(closest[i], s)
                        pot += candidate[i]
                    }
                }
                if best == nil || pot < best!.potential { best = (pick, pot, candidate) }
            }
            let b = best!
            chosen.insert(b.index)
            centres.withUnsafeMutableBufferPointer { cc in sample.withUnsafeBufferPointer { cc.baseAddress!.advanced(by: c * D).update(from: $0.baseAddress! + b.index * D, count: D) } }
            closest = b.closest
            potential = b.potential
        }
        return centres
    }

    /// New centroids: each group's mean; an empty group takes half of the largest group (its centroid split in two
    /// by a relative ±1/1024 perturbation, as faiss does).
    static func updated(_ old: [Double], part: AssignPart, k: Int, dimension D: Int) -> [Double] {
        var c = old
        var sizes = part.sizes.map(Double.init)
        for g in 0..<k where part.sizes[g] > 0 {
            let inv = 1 / Double(part.sizes[g])
            for j in 0..<D { c[g * D + j] = part.sums[g * D + j] * inv }
        }
        for g in 0..<k where sizes[g] == 0 {
            var big = 0
            for h in 0..<k where sizes[h] > sizes[big] { big = h }
            guard sizes[big] > 1 else { break }
            let eps = 1.0 / 1024
            for j in 0..<D {
                let x = c[big * D + j]
                if j % 2 == 0 { c[g * D + j] = x * (1 + eps); c[big * D + j] = x * (1 - eps) } else { c[g * D + j] = x * (1 - eps); c[big * D + j] = x * (1 + eps) }
            }
            sizes[g] = sizes[big] / 2
            sizes[big] -= sizes[g]
        }
        return c
    }
}

extension GroupFeatures {
    var inputPaths: [String] {
        switch self {
        case .moments(let r, _), .modesFile(let r): return [r.path]
        default: return []
        }
    }
}

/// One block of a selected tensor (slot: its place among the selected tensors).
struct Block: Sendable { let slot: Int; let tensor: Int; let block: Int }

/// Row codes of a block's features.
enum RowState: UInt8 { case ok = 0, undefined = 1, nonFinite = 2 }

/// Per-parameter feature rows of a block, from the run or from a file mirroring it.
final class FeatureSource: @unchecked Sendable {
    let features: GroupFeatures
    /// Feature file tensor per selected run tensor (moments and modes files).
    private var fileTensor: [Int: Int] = [:]
    /// Columns of the feature file used, and (modes files) the r² column whose NaN marks a constant trajectory.
    private var columns: [Int] = []
    private var r2Column: Int?
    private(set) var names: [String]
    private(set) var means: [Double]?
    private(set) var scales: [Double]?
    private(set) var constantNames: [String] = []
    /// Kept columns (of `names` before standardisation) once standardised.
    private var keep: [Int]?
    private let snapshots: Int
    private(set) var dimension: Int

    init(_ reader: PSnapReader, features: GroupFeatures, tensors: [Int]) throws {
        self.features = features
        snapshots = reader.snapshotCount
        switch features {
        case .trajectories(let view):
            let d = TrajectoryRows.length(view, snapshots: snapshots)
            guard d >= 2 else { throw AnalysisError.tooFewSnapshots(needed: view == .values ? 2 : 3, got: snapshots, view: view) }
            dimension = d
            names = (0..<d).map { view == .values ? "s\($0)" : "d\($0)" }
        case .modes(let m):
            guard m.snapshots == snapshots else { throw AnalysisError.featuresMismatch(file: "modes", detail: "modes of \(m.snapshots) snapshots, the run has \(snapshots)") }
            dimension = m.modes.count
            names = (1...m.modes.count).map { "mode\($0)" }
        case .moments(let f, _), .modesFile(let f):
            var wanted: [String]? = nil, isMoments = false
            if case .moments(_, let w) = features { isMoments = true; wanted = w }
            let content: String
            if case .string(let s)? = f.metadata.attributes?["content"] { content = s } else { content = "" }
            let kind = isMoments ? "psnap moments" : "psnap modes"
            guard content.hasPrefix(kind) else {
                throw AnalysisError.featuresMismatch(file: f.path, detail: "not a \(isMoments ? "moments" : "modes") file (write one with `\(kind) RUN -o FILE`)")
            }
            let stats = f.snapshots.map { s -> String in if case .string(let n)? = s.metadata?["statistic"] { return n } else { return "" } }
            for t in tensors {
                let info = reader.tensors[t]
                guard let ft = f.tensors.firstIndex(where: { $0.name == info.name }) else {
                    throw AnalysisError.featuresMismatch(file: f.path, detail: "it has no tensor '\(info.name)' (it was written for another run or selection)")
                }
                guard f.tensors[ft].shape == info.shape else {
                    throw AnalysisError.featuresMismatch(file: f.path, detail: "tensor '\(info.name)' has shape \(f.tensors[ft].shape), the run's is \(info.shape)")
                }
                fileTensor[t] = ft
            }
            if isMoments {
                let skip: Set<String> = ["count"]
                if let wanted {
                    for w in wanted where !stats.contains(w) {
                        throw AnalysisError.featuresMismatch(file: f.path, detail: "it holds no statistic '\(w)' (it holds \(stats.joined(separator: ", ")))")
                    }
                    columns = wanted.map { w in stats.firstIndex(of: w)! }
                } else {
                    columns = stats.indices.filter { !skip.contains(stats[$0]) }
                }
            } else {
                columns = stats.indices.filter { stats[$0].hasPrefix("mode") }
                r2Column = stats.firstIndex(of: "r2")
            }
            guard !columns.isEmpty else { throw AnalysisError.featuresMismatch(file: f.path, detail: "no statistic to group by") }
            names = columns.map { stats[$0] }
            dimension = columns.count
        }
    }

    var isMoments: Bool { if case .moments = features { return true } else { return false } }

    /// After the first pass: the moments' column means and standard deviations; columns that do not vary are dropped.
    func standardise(_ stats: [ColumnStats]?) {
        guard isMoments, let stats else { return }
        var keep: [Int] = [], m: [Double] = [], s: [Double] = []
        for (j, c) in stats.enumerated() {
            let sd = c.count > 1 ? (c.m2 / c.count).squareRoot() : 0
            if sd > 0 && sd.isFinite { keep.append(j); m.append(c.mean); s.append(sd) } else { constantNames.append(names[j]) }
        }
        self.keep = keep
        means = m; scales = s
        names = keep.map { names[$0] }
        dimension = keep.count
    }

    /// Sample rows (raw, `from` columns each) standardised and reduced to the kept columns.
    func project(_ raw: [Double], from D: Int) -> [Double] {
        guard let keep, let means, let scales else { return raw }
        let n = raw.count / D
        var out = [Double](repeating: 0, count: n * keep.count)
        for i in 0..<n { for (o, j) in keep.enumerated() { out[i * keep.count + o] = (raw[i * D + j] - means[o]) / scales[o] } }
        return out
    }

    /// Fills `rows` ([n × dimension]) and `state` for parameters p0..<p0+n of run tensor `t`; `raw` true gives the
    /// statistics before standardisation (the first pass).
    /// `rows` has room for a block's whole trajectories ([blockSize × snapshots]) and more than the features.
    func fill(_ loader: inout BlockLoader, _ reader: PSnapReader, tensor t: Int, block b: Int, rows: UnsafeMutablePointer<Double>,
              state: UnsafeMutablePointer<RowState>, raw: Bool, scratch: inout [Double]) throws -> Int {
        switch features {
        case .trajectories(let view):
            let n = try loader.load(tensor: t, block: b, into: rows)
            let d = dimension
            TrajectoryRows.inPlace(rows, count: n, snapshots: snapshots, view: view)
            for p in 0..<n {
                let u = TrajectoryRows.unit(rows + p * d, count: d)
                state[p] = u.ok ? .ok : u.constant ? .undefined : .nonFinite
            }
            return n
        case .modes(let m):
            let d = m.dimension, k = m.modes.count, S = snapshots, B = reader.layout.blockSize
            if scratch.count < B * S + d * k { scratch = [Double](repeating: 0, count: B * S + d * k) }
            return try scratch.withUnsafeMutableBufferPointer { sc in
                let c = sc.baseAddress!, v = sc.baseAddress! + B * S
                let n = try loader.load(tensor: t, block: b, into: c)
                for j in 0..<k { for i in 0..<d { v[i * k + j] = m.modes[j][i] } }
                TrajectoryRows.inPlace(c, count: n, snapshots: S, view: m.view)
                for p in 0..<n {
                    let sq = TrajectoryRows.centre(c + p * d, count: d)
                    state[p] = !sq.isFinite ? .nonFinite : sq == 0 ? .undefined : .ok
                    if state[p] != .ok { for i in 0..<d { c[p * d + i] = 0 } }
                }
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(k), Int32(d), 1.0, c, Int32(d), v, Int32(k), 0.0, rows, Int32(k))
                return n
            }
        case .moments(let f, _), .modesFile(let f):
            let p0 = b * reader.layout.blockSize, n = reader.layout.blockParams(tensor: t, block: b)
            let values = try f.trajectories(tensor: fileTensor[t]!, range: p0..<(p0 + n))
            let S = f.snapshotCount
            let cols = columns
            for p in 0..<n {
                let base = p * S
                var finite = true
                if let keep, !raw, let means, let scales {
                    for (o, j) in keep.enumerated() {
                        let x = values[base + cols[j]]
                        if !x.isFinite { finite = false }
                        rows[p * keep.count + o] = (x - means[o]) / scales[o]
                    }
                } else {
                    for (o, j) in cols.enumerated() {
                        let x = values[base + j]
                        if !x.isFinite { finite = false }
                        rows[p * cols.count + o] = x
                    }
                }
                if let r2 = r2Column, values[base + r2].isNaN, finite { state[p] = .undefined; continue }
                state[p] = finite ? .ok : (isMoments ? .undefined : .nonFinite)
            }
            return n
        }
    }
}

/// A column's mean and sum of squared deviations (Chan et al. merge).
struct ColumnStats: Sendable {
    var count = 0.0, mean = 0.0, m2 = 0.0
    mutating func add(_ x: Double) { count += 1; let d = x - mean; mean += d / count; m2 += d * (x - mean) }
    mutating func merge(_ b: ColumnStats) {
        guard b.count > 0 else { return }
        guard count > 0 else { self = b; return }
        let n = count + b.count, d = b.mean - mean
        mean += d * b.count / n
        m2 += b.m2 + d * d * count * b.count / n
        count = n
    }
}

/// One pass's per-chunk results, merged in chunk order.
struct AssignPart: Sendable {
    var sums: [Double]
    var sizes: [Int]
    var objective = 0.0
    var groupObjective: [Double]
    var undefined = 0, nonFinite = 0
    var tensorCounts: [[Int]]

    init(sums: [Double], sizes: [Int], groupObjective: [Double], tensorCounts: [[Int]]) {
        self.sums = sums; self.sizes = sizes; self.groupObjective = groupObjective; self.tensorCounts = tensorCounts
    }

    init(_ p: GroupsPart) {
        sums = p.sums; sizes = p.sizes; objective = p.objective; groupObjective = p.groupObjective
        undefined = p.undefined; nonFinite = p.nonFinite; tensorCounts = p.tensorCounts
    }

    static func zero(k: Int, dimension D: Int, tensorSlots: Int) -> AssignPart {
        AssignPart(sums: [Double](repeating: 0, count: k * D), sizes: [Int](repeating: 0, count: k), groupObjective: [Double](repeating: 0, count: k),
                   tensorCounts: [[Int]](repeating: [Int](repeating: 0, count: k), count: tensorSlots))
    }

    /// Adds `part` (the next chunk's or partition's, in order).
    mutating func merge(_ part: AssignPart) {
        let k = sizes.count, n = sums.count
        for i in 0..<n { sums[i] += part.sums[i] }
        for g in 0..<k { sizes[g] += part.sizes[g] }
        objective += part.objective
        for g in 0..<k { groupObjective[g] += part.groupObjective[g] }
        undefined += part.undefined; nonFinite += part.nonFinite
        for (s, counts) in part.tensorCounts.enumerated() where !counts.isEmpty { for g in 0..<k { tensorCounts[s][g] += counts[g] } }
    }
}

/// A Lloyd pass's sums over a partition of the selection (`Groups.assignParts`): per group the sum of its members'
/// rows (k × d), their count and squared distances; rows left out; per selected tensor the members of each group
/// (final pass only). Merged in partition order from zero they are the whole pass's.
public struct GroupsPart: Sendable, Codable {
    public var sums: [Double]
    public var sizes: [Int]
    public var objective: Double
    public var groupObjective: [Double]
    public var undefined: Int, nonFinite: Int
    public var tensorCounts: [[Int]]

    init(_ a: AssignPart) {
        sums = a.sums; sizes = a.sizes; objective = a.objective; groupObjective = a.groupObjective
        undefined = a.undefined; nonFinite = a.nonFinite; tensorCounts = a.tensorCounts
    }

    public init(sums: [Double], sizes: [Int], objective: Double, groupObjective: [Double], undefined: Int, nonFinite: Int, tensorCounts: [[Int]]) {
        self.sums = sums; self.sizes = sizes; self.objective = objective; self.groupObjective = groupObjective
        self.undefined = undefined; self.nonFinite = nonFinite; self.tensorCounts = tensorCounts
    }
}

/// Runs one pass over the chunks on all workers and merges each chunk's part in chunk order.
struct Scanner {
    let reader: PSnapReader
    let source: FeatureSource
    let blocks: [Block]
    let chunks: [Range<Int>]
    let workers: Int
    let pass: Int, passes: Int
    let progress: (@Sendable (Int, Int, UInt64, UInt64) -> Void)?

    /// Runs `body` on every block of every chunk (rows filled), each chunk into a fresh `Part`, merged in order by `merge`.
    func run<Part: Sendable>(raw: Bool, makePart: () -> Part, _ body: (inout Part, Block, Int, UnsafeMutablePointer<Double>, UnsafeMutablePointer<RowState>) throws -> Void,
                             merge: (Part) -> Void) throws {
        let B = reader.layout.blockSize, D = raw ? source.dimensionBeforeStandardising : source.dimension
        let (p, P) = (pass, passes)
        let report = progress
        let counter = ProgressCounter(total: UInt64(blocks.count), report: report.map { r in { @Sendable d, t in r(p, P, d, t) } })
        // Parts merged in chunk order: the sums do not depend on which worker finished first.
        let S = reader.snapshotCount
        try parallelOrderedReduce(count: chunks.count, workers: workers, state: { _ in
            (loader: BlockLoader(reader), rows: UnsafeMutablePointer<Double>.allocate(capacity: B * max(1, D, S)),
             state: UnsafeMutablePointer<RowState>.allocate(capacity: B), scratch: [Double]())
        }, { w, c in
            var part = makePart()
            for i in chunks[c] {
                let b = blocks[i]
                let n = try source.fill(&w.loader, reader, tensor: b.tensor, block: b.block, rows: w.rows, state: w.state, raw: raw, scratch: &w.scratch)
                try body(&part, b, n, w.rows, w.state)
                counter.add(1)
            }
            return part
        }, merge: merge, finish: { w in w.loader.flush(); w.rows.deallocate(); w.state.deallocate() })
    }

    init(reader: PSnapReader, source: FeatureSource, blocks: [Block], chunks: [Range<Int>], workers: Int, pass: Int, passes: Int,
         progress: (@Sendable (Int, Int, UInt64, UInt64) -> Void)?) {
        self.reader = reader; self.source = source; self.blocks = blocks; self.chunks = chunks; self.workers = workers
        self.pass = pass; self.passes = passes; self.progress = progress
    }

    /// The first pass: rows with a value, raw sample rows kept with probability q, and (moments) each column's spread.
    func sample(q: Double, seed: UInt64, layout: RunLayout) throws -> (valid: Int, sample: [Double], columns: [ColumnStats]?) {
        struct Part: Sendable { var valid = 0; var sample: [Double] = []; var columns: [ColumnStats] }
        let D = source.dimension, B = layout.blockSize
        let wantColumns = source.isMoments
        let threshold = q >= 1 ? UInt64.max : UInt64(q * 0x1p64)
        var valid = 0, sample: [Double] = [], columns = [ColumnStats](repeating: ColumnStats(), count: wantColumns ? D : 0)
        try run(raw: true, makePart: { Part(columns: [ColumnStats](repeating: ColumnStats(), count: wantColumns ? D : 0)) }, { part, b, n, rows, state in
            let g0 = layout.parameterOffsets[b.tensor] + b.block * B
            for p in 0..<n where state[p] == .ok {
                part.valid += 1
                let r = rows + p * D
                if wantColumns { for j in 0..<D { part.columns[j].add(r[j]) } }
                if SplitMix64.hash(seed, UInt64(g0 + p)) <= threshold { part.sample.append(contentsOf: UnsafeBufferPointer(start: r, count: D)) }
            }
        }, merge: { part in
            valid += part.valid
            sample += part.sample
            for j in 0..<columns.count { columns[j].merge(part.columns[j]) }
        })
        return (valid, sample, wantColumns ? columns : nil)
    }

    /// A Lloyd pass: every row assigned to its nearest centroid (ties: the lower group), per-group sums and sizes and the
    /// objective; with `write`, each parameter's group and distance written as a tile per block.
    /// Chunks are summed in order within each partition (`Groups.partitionChunks` chunks, counted from the
    /// selection's chunk `firstChunk`, where this scanner's chunks start), the partitions in order from zero.
    /// `keepParts`: also return each partition's part (a distributed pass's); else only the total is kept.
    func assign(centroids: [Double], k: Int, dimension D: Int, write: (sink: CompactTileSink, dtype: DType)?, tensorSlots: Int = 0,
                firstChunk: Int = 0, keepParts: Bool = false) throws -> (total: AssignPart, parts: [AssignPart]) {
        let norms = (0..<k).map { g in (0..<D).reduce(0.0) { $0 + centroids[g * D + $1] * centroids[g * D + $1] } }
        var total = AssignPart.zero(k: k, dimension: D, tensorSlots: tensorSlots)
        var parts: [AssignPart] = [], current = total, merged = 0
        let P = Groups.partitionChunks, count = chunks.count
        let codecs = Mutex<[TileCodec]>([])   // one per worker at a time, reused
        try run(raw: false, makePart: { AssignPart(sums: [Double](repeating: 0, count: k * D), sizes: [Int](repeating: 0, count: k),
                                                     groupObjective: [Double](repeating: 0, count: k), tensorCounts: []) },
                { part, b, n, rows, state in
            var dots = [Double](repeating: 0, count: n * k)
            var out = write.map { [UInt8](repeating: 0, count: n * 2 * $0.dtype.size) } ?? []
            var counts = [Int](repeating: 0, count: k)
            var objective = 0.0
            // Unsafe buffers in the loop: it runs k + 2·D operations per parameter on every pass.
            centroids.withUnsafeBufferPointer { c in norms.withUnsafeBufferPointer { nb in dots.withUnsafeMutableBufferPointer { o in
            part.sums.withUnsafeMutableBufferPointer { sums in part.groupObjective.withUnsafeMutableBufferPointer { gobj in
            counts.withUnsafeMutableBufferPointer { cnt in
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(k), Int32(D), 1.0, rows, Int32(D), c.baseAddress!, Int32(D), 0.0, o.baseAddress!, Int32(k))
                for p in 0..<n {
                    var group: Double, distance: Double
                    switch state[p] {
                    case .undefined: group = Groups.undefinedGroup; distance = .nan
                    case .nonFinite: group = Groups.nonFiniteGroup; distance = .nan
                    case .ok:
                        var best = 0, bestD = Double.infinity
                        let dp = o.baseAddress! + p * k
                        for g in 0..<k {
                            let d = nb[g] - 2 * dp[g]
                            if d < bestD { bestD = d; best = g }
                        }
                        let r = rows + p * D, cc = c.baseAddress! + best * D, sm = sums.baseAddress! + best * D
                        var s = 0.0
                        for j in 0..<D { let e = r[j] - cc[j]; s += e * e; sm[j] += r[j] }
                        cnt[best] += 1
                        objective += s
                        gobj[best] += s
                        group = Double(best); distance = s.squareRoot()
                    }
                    if let write {
                        out.withUnsafeMutableBytes { ob in
                            if write.dtype == .f64 {
                                ob.storeBytes(of: group.bitPattern.littleEndian, toByteOffset: p * 16, as: UInt64.self)
                                ob.storeBytes(of: distance.bitPattern.littleEndian, toByteOffset: p * 16 + 8, as: UInt64.self)
                            } else {
                                ob.storeBytes(of: Float(group).bitPattern.littleEndian, toByteOffset: p * 8, as: UInt32.self)
                                ob.storeBytes(of: Float(distance).bitPattern.littleEndian, toByteOffset: p * 8 + 4, as: UInt32.self)
                            }
                        }
                    }
                }
            } } } } } }
            for p in 0..<n { if state[p] == .undefined { part.undefined += 1 } else if state[p] == .nonFinite { part.nonFinite += 1 } }
            part.objective += objective
            for g in 0..<k { part.sizes[g] += counts[g] }
            if tensorSlots > 0 {
                if part.tensorCounts.isEmpty { part.tensorCounts = [[Int]](repeating: [], count: tensorSlots) }
                if part.tensorCounts[b.slot].isEmpty { part.tensorCounts[b.slot] = counts } else { for g in 0..<k { part.tensorCounts[b.slot][g] += counts[g] } }
            }
            if let write {
                let tc = codecs.withLock { $0.popLast() } ?? TileCodec(chain: write.sink.chain)
                defer { codecs.withLock { $0.append(tc) } }
                try out.withUnsafeBytes { try write.sink.add(tensor: b.slot, block: b.block, raw: $0, codec: tc) }
            }
        }, merge: { part in
            current.merge(part)
            merged += 1
            if (firstChunk + merged) % P == 0 || merged == count {
                if keepParts { parts.append(current) }
                total.merge(current)
                current = AssignPart.zero(k: k, dimension: D, tensorSlots: tensorSlots)
            }
        })
        return (total, parts)
    }
}

extension FeatureSource {
    /// Columns of a row in the first pass (before the moments' constant columns are dropped).
    var dimensionBeforeStandardising: Int { keep == nil ? dimension : columns.count }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small seeded generator, so a seed gives the same groups on every platform.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A hash of (seed, index): the sampling decision for one parameter.
    static func hash(_ seed: UInt64, _ i: UInt64) -> UInt64 { mix(mix(seed &+ 0x9E37_79B9_7F4A_7C15) ^ (i &* 0xD1B5_4A32_D192_ED03)) }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
    /// Uniform in 0..<n.
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

extension GroupsResult {
    /// Each group's root-mean-square distance of its members to its centroid (NaN for an empty group).
    public var rmsDistances: [Double] { sizes.indices.map { sizes[$0] > 0 ? (groupObjective[$0] / Double(sizes[$0])).squareRoot() : .nan } }

    /// The result as compact JSON (the output file's `groups.json` attribute).
    public var json: String {
        func list(_ a: [Double]) -> String { "[" + a.map { $0.isFinite ? "\($0)" : "null" }.joined(separator: ",") + "]" }
        let quoted = JSONText.quoted
        var s = "{\"features\":\(quoted(features)),\"featureNames\":[\(featureNames.map(quoted).joined(separator: ","))]"
        if let featureMeans, let featureScales { s += ",\"featureMeans\":\(list(featureMeans)),\"featureScales\":\(list(featureScales))" }
        s += ",\"constantFeatures\":[\(constantFeatures.map(quoted).joined(separator: ","))]"
        s += ",\"k\":\(k),\"seed\":\(seed),\"parameters\":\(parameters),\"undefined\":\(undefined),\"nonFinite\":\(nonFinite),\"sampleSize\":\(sampleSize)"
        s += ",\"iterations\":\(iterations),\"objectiveHistory\":\(list(objectiveHistory)),\"objective\":\(objective)"
        s += ",\"groupObjective\":\(list(groupObjective))"
        s += ",\"sizes\":[\(sizes.map(String.init).joined(separator: ","))],\"centroids\":[\(centroids.map(list).joined(separator: ","))]"
        s += ",\"tensors\":[\(tensorNames.map(quoted).joined(separator: ","))]"
        s += ",\"tensorCounts\":[\(tensorCounts.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: ","))]"
        s += ",\"steps\":" + (steps.map { "[" + $0.map(String.init).joined(separator: ",") + "]" } ?? "null")
        s += ",\"cumulativeLR\":" + (cumulativeLR.map(list) ?? "null") + "}"
        return s
    }
}
