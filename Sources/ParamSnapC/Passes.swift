// The analysis passes through the C ABI: one entry point, a JSON request naming the pass and its options, a JSON
// answer. Passes that write a per-parameter file (moments, groups, fit) write it where the request says; the caller
// opens it as a run.
import Foundation
import ParamSnap
import ParamSnapAnalysis
import ParamSnapStats

struct PassRequest: Decodable {
    var pass: String
    var tensors: [String]?
    var on: String?
    var k: Int?
    var top: Int?
    var queries: [[Double]]?
    var removeModes: Int?
    var statistics: [String]?
    var output: String?
    var overwrite: Bool?
    var iterations: Int?
    var seed: UInt64?
    var families: [String]?
    var view: String?
    var width: Int?
    var height: Int?
    var range: [Double]?
    var workers: Int?
    var partitions: [Int]?
    var of: String?
    var q: Double?
    var sample: [Double]?
    var centroids: [Double]?
    var part: GroupsPart?
    var tensorCounts: Bool?
    var modes: [[Double]]?
    var gram: [Double]?
    var rows: Int?
    var nonFinite: Int?
}

private func view(_ s: String?) throws -> TrajectoryView {
    guard let v = TrajectoryView(rawValue: s ?? "values") else { throw RequestError("on: '\(s ?? "")' is values or steps") }
    return v
}


private func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
    let e = JSONEncoder()
    e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    return Array(try e.encode(value))
}

func runPass(_ r: PSnapReader, _ q: PassRequest) throws -> [UInt8] {
    let workers = max(1, q.workers ?? ProcessInfo.processInfo.activeProcessorCount)
    let tensors = try q.tensors.map { try $0.map { try r.tensorIndex(named: $0) } }
    func output() throws -> String {
        guard let o = q.output, !o.isEmpty else { throw RequestError("\(q.pass): an output path is needed") }
        return o
    }
    switch q.pass {
    case "modes":
        let m = try Modes.compute(r, k: q.k ?? 5, view: try view(q.on), tensors: tensors, workers: workers)
        struct Out: Encodable { let view: String; let parameters: Int; let nonFinite: Int; let eigenvalues: [Double]; let explainedVarianceRatio: [Double]; let modes: [[Double]] }
        return try encode(Out(view: m.view.rawValue, parameters: m.parameters, nonFinite: m.nonFiniteParameters, eigenvalues: m.eigenvalues,
                              explainedVarianceRatio: m.explainedVarianceRatio, modes: m.modes))
    case "gram":
        // The Gram matrices of partitions [a, b) of the selection (Modes.accumulate): summed in partition order from
        // zero they give the matrix `modes` decomposes, bit for bit. Without partitions: only how many there are.
        let v = try view(q.on)
        let d = v == .values ? r.snapshotCount : r.snapshotCount - 1
        guard d >= 2 else { throw AnalysisError.tooFewSnapshots(needed: v == .values ? 2 : 3, got: r.snapshotCount, view: v) }
        let selection = tensors ?? Array(r.tensors.indices)
        let count = Modes.partitionCount(r, dimension: d, tensors: selection)
        var grams: [GramAccumulator] = []
        if let p = q.partitions {
            guard p.count == 2, p[0] >= 0, p[0] <= p[1], p[1] <= count else { throw RequestError("gram: partitions [a, b] with 0 ≤ a ≤ b ≤ \(count)") }
            try Modes.accumulate(r, dimension: d, view: v, tensors: selection, partitions: p[0]..<p[1], workers: workers) { grams.append($0) }
        }
        struct Out: Encodable { let dimension: Int; let partitions: Int; let grams: [[Double]]; let rows: [Int]; let nonFinite: [Int] }
        return try encode(Out(dimension: d, partitions: count, grams: grams.map(\.matrix), rows: grams.map(\.rows), nonFinite: grams.map(\.nonFiniteRows)))
    case "partitionTensors":
        // The tensors partitions [a, b) of a `gram` ("of": "gram") or groups ("of": "groups") pass read: what its task
        // opens of a sharded run.
        guard let p = q.partitions, p.count == 2, p[0] >= 0, p[0] <= p[1] else { throw RequestError("partitionTensors: partitions [a, b] with 0 ≤ a ≤ b") }
        let selection = tensors ?? Array(r.tensors.indices)
        let found: [Int]
        switch q.of {
        case "gram":
            let v = try view(q.on)
            found = Modes.partitionTensors(r, dimension: v == .values ? r.snapshotCount : r.snapshotCount - 1, tensors: selection, partitions: p[0]..<p[1])
        case "groups":
            found = Groups.partitionTensors(r, k: q.k ?? 16, tensors: selection, partitions: p[0]..<p[1])
        default:
            throw RequestError("partitionTensors: \"of\" is \"gram\" or \"groups\", not \(q.of.map { "\"\($0)\"" } ?? "missing")")
        }
        struct Out: Encodable { let tensors: [String] }
        return try encode(Out(tensors: found.map { r.tensors[$0].name }))
    case "groupsPlan", "groupsSample", "groupsAssign", "groupsSeed", "groupsUpdate":
        // The pieces of `groups` for a pass split into tasks (paramsnap.dask.groups), trajectory features.
        let v = try view(q.on)
        let k = q.k ?? 16
        let plan = try Groups.plan(r, k: k, view: v, tensors: tensors)
        func range() throws -> Range<Int> {
            guard let p = q.partitions, p.count == 2, p[0] >= 0, p[0] <= p[1], p[1] <= plan.partitions else {
                throw RequestError("\(q.pass): partitions [a, b] with 0 ≤ a ≤ b ≤ \(plan.partitions)")
            }
            return p[0]..<p[1]
        }
        func centroids() throws -> [Double] {
            guard let c = q.centroids, c.count == k * plan.dimension else {
                throw RequestError("\(q.pass): centroids need k × \(plan.dimension) = \(k * plan.dimension) values, got \(q.centroids?.count ?? 0)")
            }
            return c
        }
        switch q.pass {
        case "groupsPlan":
            return try encode(plan)
        case "groupsSample":
            guard let qq = q.q, qq > 0, qq <= 1 else { throw RequestError("groupsSample: q in (0, 1]") }
            let s = try Groups.samplePart(r, k: k, view: v, tensors: tensors, seed: q.seed ?? 0, q: qq, partitions: try range(), workers: workers)
            struct Out: Encodable { let valid: Int; let sample: [Double] }
            return try encode(Out(valid: s.valid, sample: s.sample))
        case "groupsSeed":
            guard var sample = q.sample, sample.count >= k * plan.dimension, sample.count % plan.dimension == 0 else {
                throw RequestError("groupsSeed: a sample of at least k rows of \(plan.dimension) values")
            }
            return try encode(Groups.seed(sample: &sample, dimension: plan.dimension, k: k, seed: q.seed ?? 0))
        case "groupsAssign":
            return try encode(try Groups.assignParts(r, k: k, view: v, tensors: tensors, centroids: try centroids(), partitions: try range(),
                                                      tensorCounts: q.tensorCounts ?? false, workers: workers))
        default:
            guard let part = q.part else { throw RequestError("groupsUpdate: no merged part given") }
            guard part.sums.count == k * plan.dimension, part.sizes.count == k else {
                throw RequestError("groupsUpdate: the merged part has \(part.sums.count) sums and \(part.sizes.count) sizes; k = \(k) groups of \(plan.dimension) values need \(k * plan.dimension) and \(k)")
            }
            return try encode(Groups.updated(try centroids(), part: part, k: k, dimension: plan.dimension))
        }
    case "modesFromGram":
        let v = try view(q.on)
        let d = v == .values ? r.snapshotCount : r.snapshotCount - 1
        guard let g = q.gram, g.count == d * d else { throw RequestError("modesFromGram: gram needs \(d) × \(d) = \(d * d) values, got \(q.gram?.count ?? 0)") }
        guard let rows = q.rows, rows >= 0 else { throw RequestError("modesFromGram: rows (the parameters summed, ≥ 0) missing or negative") }
        let m = try Modes.fromGram(GramAccumulator(dimension: d, matrix: g, rows: rows, nonFiniteRows: max(0, q.nonFinite ?? 0)), k: q.k ?? 5, view: v,
                                   snapshots: r.snapshotCount)
        struct Out: Encodable { let view: String; let parameters: Int; let nonFinite: Int; let eigenvalues: [Double]; let explainedVarianceRatio: [Double]; let modes: [[Double]] }
        return try encode(Out(view: m.view.rawValue, parameters: m.parameters, nonFinite: m.nonFiniteParameters, eigenvalues: m.eigenvalues,
                              explainedVarianceRatio: m.explainedVarianceRatio, modes: m.modes))
    case "similar":
        guard let queries = q.queries, !queries.isEmpty else { throw RequestError("similar: no query") }
        let v = try view(q.on)
        // Modes to remove: given (a distributed pass computes them over the whole selection first), else computed here.
        let givenModes = q.modes.flatMap { $0.isEmpty ? nil : $0 }
        var remove = try q.removeModes.flatMap { $0 > 0 && givenModes == nil ? try Modes.compute(r, k: $0, view: v, tensors: tensors, workers: workers) : nil }
        if let given = givenModes {
            let d = v == .values ? r.snapshotCount : r.snapshotCount - 1
            guard given.allSatisfy({ $0.count == d }) else { throw RequestError("similar: modes of \(d) values each (the \(v.rawValue) view)") }
            remove = ModesResult(view: v, snapshots: r.snapshotCount, dimension: d, parameters: 0, nonFiniteParameters: 0, eigenvalues: [], modes: given)
        }
        let s = try Similar.search(r, queries: queries, top: q.top ?? 50, view: v, removeModes: remove, tensors: tensors, workers: workers)
        struct Hit: Encodable { let tensor: String; let index: Int; let r: Double }
        struct Out: Encodable { let hits: [[Hit]]; let constant: Int; let nonFinite: Int; let searched: Int }
        return try encode(Out(hits: s.hits.map { $0.map { Hit(tensor: r.tensors[$0.tensor].name, index: $0.index, r: $0.r) } },
                              constant: s.constant, nonFinite: s.nonFinite, searched: s.searched))
    case "moments":
        var o = TrajectoryMomentsOptions()
        if let names = q.statistics {
            o.statistics = try names.map { n in
                guard let s = TrajectoryStatistic(rawValue: n) else {
                    throw RequestError("statistic '\(n)': one of \(TrajectoryStatistic.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return s
            }
        }
        o.tensors = tensors
        o.outputDType = .f64
        o.overwrite = q.overwrite ?? false
        o.workers = workers
        let out = try output()
        _ = try TrajectoryMoments.run(reader: r, outputPath: out, options: o)
        struct Out: Encodable { let output: String; let statistics: [String] }
        return try encode(Out(output: out, statistics: o.statistics.map(\.rawValue)))
    case "groups":
        let g = try Groups.compute(r, k: q.k ?? 16, features: .trajectories(try view(q.on)), tensors: tensors, iterations: q.iterations ?? 25,
                                   seed: q.seed ?? 0, outputPath: try output(), dtype: .f64, force: q.overwrite ?? false, workers: workers)
        struct Out: Encodable { let output: String; let centroids: [[Double]]; let sizes: [Int]; let rms: [Double]; let objectiveHistory: [Double]
                                let undefined: Int; let nonFinite: Int; let iterations: Int }
        return try encode(Out(output: try output(), centroids: g.centroids, sizes: g.sizes, rms: g.rmsDistances, objectiveHistory: g.objectiveHistory,
                              undefined: g.undefined, nonFinite: g.nonFinite, iterations: g.iterations))
    case "fit":
        let v = try view(q.on)
        let names = q.families ?? ["linear", "quadratic", "modes:5"]
        let families = try names.map { n in
            guard let f = FitFamily(n) else { throw RequestError("family '\(n)': linear, quadratic, lr, lr2, modes:K, exp, power or logistic") }
            return f
        }
        let maxK = families.compactMap { if case .modes(let k) = $0 { return k } else { return nil } }.max()
        // Mode shapes given (a distributed pass computes them over the whole selection first), else computed here.
        var modes = try maxK.flatMap { q.modes == nil ? try Modes.compute(r, k: $0, view: v, tensors: tensors, workers: workers) : nil }
        if let given = q.modes, maxK != nil {
            let d = v == .values ? r.snapshotCount : r.snapshotCount - 1
            guard given.allSatisfy({ $0.count == d }) else { throw RequestError("fit: modes of \(d) values each (the \(v.rawValue) view)") }
            modes = ModesResult(view: v, snapshots: r.snapshotCount, dimension: d, parameters: 0, nonFiniteParameters: 0, eigenvalues: [], modes: given)
        }
        let s = try Fit.run(r, families: families, view: v, tensors: tensors, modes: modes, outputPath: try output(), dtype: .f64,
                            force: q.overwrite ?? false, workers: workers)
        struct Out: Encodable { let output: String; let families: [String]; let best: [Int]; let series: Int; let nonFinite: Int; let x: [Double] }
        return try encode(Out(output: try output(), families: s.families.map(\.description), best: s.best, series: s.series,
                              nonFinite: s.nonFinite, x: s.x))
    case "chartRange":
        guard let dv = DensityView(rawValue: q.view ?? "values") else { throw RequestError("view '\(q.view ?? "")': values, relative, z or steps") }
        let rr = try Density.defaultRange(r, view: dv, tensors: tensors ?? Array(r.tensors.indices), workers: workers)
        struct Out: Encodable { let lo: Double; let hi: Double; let sampled: Bool }
        return try encode(Out(lo: rr.lo, hi: rr.hi, sampled: rr.sampled))
    case "chart":
        guard let dv = DensityView(rawValue: q.view ?? "values") else { throw RequestError("view '\(q.view ?? "")': values, relative, z or steps") }
        var range: (lo: Double, hi: Double)?
        if let rr = q.range {
            guard rr.count == 2 else { throw RequestError("range: [lo, hi]") }
            range = (rr[0], rr[1])
        }
        let g = try Density.compute(r, view: dv, tensors: tensors, width: q.width ?? 1000, height: q.height ?? 500, range: range, workers: workers)
        struct Out: Encodable { let width: Int; let height: Int; let lo: Double; let hi: Double; let counts: [UInt64]; let below: [UInt64]
                                let above: [UInt64]; let pointSteps: [Int64]; let series: Int; let constant: Int; let nonFinite: Int }
        return try encode(Out(width: g.width, height: g.height, lo: g.lo, hi: g.hi, counts: g.counts, below: g.below, above: g.above,
                              pointSteps: g.pointSteps, series: g.series, constant: g.constant, nonFinite: g.nonFinite))
    default:
        throw RequestError("no pass '\(q.pass)' (modes, gram, modesFromGram, similar, moments, groups, groupsPlan, groupsSample, groupsSeed, groupsAssign, groupsUpdate, fit, chartRange, chart)")
    }
}

/// Runs an analysis pass over the run: `request` JSON {"pass": "modes" | "gram" | "modesFromGram" | "similar" |
/// "moments" | "groups" | "fit" | "chart", …its options}; the answer JSON is malloc'd into `out` (free with `psnap_free`).
@_cdecl("psnap_pass")
public func psnap_pass(_ h: UnsafeMutableRawPointer?, _ request: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                       _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        guard let h, let request, let out else { throw RequestError("psnap_pass: null handle, request or output") }
        let r = Unmanaged<RunHandle>.fromOpaque(h).takeUnretainedValue().reader
        let q: PassRequest
        do { q = try JSONDecoder().decode(PassRequest.self, from: Data(String(cString: request).utf8)) } catch {
            throw RequestError("psnap_pass: malformed request (\(error))")
        }
        out.pointee = mallocString(try runPass(r, q))
    }
}
