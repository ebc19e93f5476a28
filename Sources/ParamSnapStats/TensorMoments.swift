// `psnap moments --across parameters` (spec/MOMENTS.md §4): per tensor × snapshot moments, RMS and an exact histogram.
import Foundation
@_spi(Internals) import ParamSnap

/// Options of a per-tensor pass.
public struct TensorMomentsOptions: Sendable {
    /// NaN/Inf handling of the moments (histograms always count finite values only).
    public var policy: NonFinitePolicy = .propagate
    /// Tensors to include (nil: all).
    public var tensors: [Int]? = nil
    /// Snapshots to use (nil: all).
    public var snapshots: Range<Int>? = nil
    /// Histogram buckets (equal width between the tensor's finite min and max over the selected snapshots).
    public var buckets: Int = 64
    /// Worker threads.
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Called with (raw bytes scanned, raw bytes to scan) over both scans, from the workers.
    public var progress: (@Sendable (UInt64, UInt64) -> Void)? = nil

    /// Defaults: NaN propagates, all tensors and snapshots, 64 buckets.
    public init() {}
}

/// Statistics of one tensor at one snapshot, over its parameters (population conventions; NaN where undefined).
public struct TensorSnapshotMoments: Sendable, Equatable {
    public var tensor: String
    public var snapshot: Int
    public var step: Int64
    /// Values used (all, or the finite ones with `.skip`) and non-finite values seen.
    public var count: Int
    public var nonFinite: Int
    public var mean: Double
    public var std: Double
    public var min: Double
    public var max: Double
    public var skewness: Double
    public var kurtosis: Double
    public var rms: Double
    /// Histogram range (the tensor's finite min and max over all selected snapshots) and bucket counts.
    public var histogramLow: Double
    public var histogramHigh: Double
    public var histogram: [Int]
}

/// Mergeable summary of a set of values: moments, Σx², extremes, non-finite counts, bucket counts.
public struct ValueSummary: Sendable {
    public var moments = CentralMoments()
    public var sumSquares: Double = 0
    /// Extremes of the finite values.
    public var min: Double = .infinity
    public var max: Double = -.infinity
    public var nan: Double = 0
    public var posInf: Double = 0
    public var negInf: Double = 0
    public var histogram: [Int]

    /// An empty summary with `buckets` buckets.
    public init(buckets: Int) { histogram = [Int](repeating: 0, count: buckets) }

    /// Merges a disjoint set.
    public mutating func merge(_ b: ValueSummary) {
        moments.merge(b.moments)
        sumSquares += b.sumSquares
        min = Swift.min(min, b.min); max = Swift.max(max, b.max)
        nan += b.nan; posInf += b.posInf; negInf += b.negInf
        for i in histogram.indices { histogram[i] += b.histogram[i] }
    }
}

/// The per-tensor pass: a first scan finds each tensor's finite range (the histogram edges), a second accumulates.
public enum TensorMoments {
    /// Runs both scans and returns one row per selected tensor × snapshot, tensors in file order.
    public static func run(reader: PSnapReader, options: TensorMomentsOptions = .init()) throws -> [TensorSnapshotMoments] {
        let range = options.snapshots ?? 0..<reader.snapshotCount
        guard range.lowerBound >= 0, range.upperBound <= reader.snapshotCount, !range.isEmpty else {
            throw MomentsError.badSnapshotRange("\(range.lowerBound):\(range.upperBound)", count: reader.snapshotCount)
        }
        let selected = (options.tensors ?? Array(reader.tensors.indices)).sorted()
        let selectedSet = Set(selected)
        let T = reader.tensors.count, S = range.count, nb = max(1, options.buckets)
        let lock = NSLock()
        // Two scans of the same tiles: the first counts to half of the total, the second to the whole.
        let passBytes = options.progress == nil ? 0 : reader.scanBytes(tensors: selectedSet)
        var pass1: (@Sendable (UInt64, UInt64) -> Void)? = nil, pass2: (@Sendable (UInt64, UInt64) -> Void)? = nil
        if let report = options.progress {
            pass1 = { done, _ in report(done, 2 * passBytes) }
            pass2 = { done, _ in report(passBytes + done, 2 * passBytes) }
        }
        // Pass 1: finite extremes per tensor.
        let ext = Unshared(UnsafeMutablePointer<Double>.allocate(capacity: 2 * max(1, T)))
        for t in 0..<T { ext.value[2 * t] = .infinity; ext.value[2 * t + 1] = -.infinity }
        defer { ext.value.deallocate() }
        try reader.scan(tensors: selectedSet, workers: options.workers, progress: pass1) { tile, _ in
            let f = tile.firstSnapshot
            let lo = Swift.max(f, range.lowerBound), hi = Swift.min(f + tile.snapshots, range.upperBound)
            guard lo < hi else { return }
            var vals = [Double](repeating: 0, count: tile.parameters * tile.snapshots)
            vals.withUnsafeMutableBufferPointer { tile.values(into: $0) }
            var mn = Double.infinity, mx = -Double.infinity
            for p in 0..<tile.parameters {
                for s in (lo - f)..<(hi - f) {
                    let v = vals[p * tile.snapshots + s]
                    if v.isFinite { mn = Swift.min(mn, v); mx = Swift.max(mx, v) }
                }
            }
            lock.lock()
            ext.value[2 * tile.tensor] = Swift.min(ext.value[2 * tile.tensor], mn)
            ext.value[2 * tile.tensor + 1] = Swift.max(ext.value[2 * tile.tensor + 1], mx)
            lock.unlock()
        }
        // Pass 2: summaries per tensor × snapshot.
        let table = Unshared(UnsafeMutablePointer<ValueSummary>.allocate(capacity: max(1, T * S)))
        table.value.initialize(repeating: ValueSummary(buckets: nb), count: max(1, T * S))
        defer { table.value.deinitialize(count: max(1, T * S)); table.value.deallocate() }
        let edges = Unshared(ext.value)
        // The tiles' summaries are merged in tile order (tensor, block, snapshot), whichever worker finishes first: the
        // same sums, bit for bit, for any worker count and for a sharded run holding the same tiles.
        let jobs = reader.tiles.indices.filter { selectedSet.contains(Int(reader.tiles[$0].tensor)) }
        try reader.scanOrdered(tiles: jobs, workers: options.workers, progress: pass2, { tile -> (Int, [ValueSummary]) in
            let f = tile.firstSnapshot, St = tile.snapshots
            let lo = Swift.max(f, range.lowerBound), hi = Swift.min(f + St, range.upperBound)
            guard lo < hi else { return (0, []) }
            var vals = [Double](repeating: 0, count: tile.parameters * St)
            vals.withUnsafeMutableBufferPointer { tile.values(into: $0) }
            let hlo = edges.value[2 * tile.tensor], hhi = edges.value[2 * tile.tensor + 1]
            let width = hhi - hlo
            var column = [Double](repeating: 0, count: tile.parameters)
            let parts = ((lo - f)..<(hi - f)).map { s in
                for p in 0..<tile.parameters { column[p] = vals[p * St + s] }
                return summarize(column, buckets: nb, low: hlo, width: width)
            }
            return (tile.tensor * S + (lo - range.lowerBound), parts)
        }, merge: { at, parts in
            for (i, part) in parts.enumerated() { table.value[at + i].merge(part) }
        })
        var rows: [TensorSnapshotMoments] = []
        for t in selected {
            for k in 0..<S {
                let v = table.value[t * S + k]
                rows.append(finish(v, tensor: reader.tensors[t].name, snapshot: range.lowerBound + k,
                                   step: reader.snapshots[range.lowerBound + k].step, policy: options.policy,
                                   low: ext.value[2 * t], high: ext.value[2 * t + 1]))
            }
        }
        return rows
    }

    /// One tensor's values at one snapshot (of one tile): moments (two-pass when all are finite), extremes, non-finite
    /// counts and the histogram over `low ..< low + width` in `buckets` buckets.
    static func summarize(_ column: [Double], buckets nb: Int, low hlo: Double, width: Double) -> ValueSummary {
        var sum = ValueSummary(buckets: nb)
        let allFinite = column.allSatisfy(\.isFinite)
        if allFinite {
            sum.moments = column.withUnsafeBufferPointer { CentralMoments(twoPass: $0) }
        }
        for v in column {
            if v.isNaN { sum.nan += 1; continue }
            if v.isInfinite {
                if v > 0 { sum.posInf += 1 } else { sum.negInf += 1 }
                continue
            }
            if !allFinite { sum.moments.add(v) }
            sum.sumSquares += v * v
            sum.min = Swift.min(sum.min, v); sum.max = Swift.max(sum.max, v)
            var b = width > 0 ? Int(((v - hlo) / width * Double(nb)).rounded(.down)) : 0
            b = Swift.min(Swift.max(b, 0), nb - 1)
            sum.histogram[b] += 1
        }
        return sum
    }

    static func finish(_ v: ValueSummary, tensor: String, snapshot: Int, step: Int64, policy: NonFinitePolicy,
                       low: Double, high: Double) -> TensorSnapshotMoments {
        let nonFinite = v.nan + v.posInf + v.negInf
        let n = v.moments.count
        let used = policy == .skip ? n : n + nonFinite
        var r = TensorSnapshotMoments(tensor: tensor, snapshot: snapshot, step: step, count: Int(used), nonFinite: Int(nonFinite),
                                      mean: .nan, std: .nan, min: .nan, max: .nan, skewness: .nan, kurtosis: .nan, rms: .nan,
                                      histogramLow: low.isFinite ? low : .nan, histogramHigh: high.isFinite ? high : .nan,
                                      histogram: v.histogram)
        guard used > 0 else { return r }
        if policy == .propagate && v.nan > 0 { return r }
        let useInf = policy == .propagate && (v.posInf + v.negInf) > 0
        r.min = useInf && v.negInf > 0 ? -.infinity : (n > 0 ? v.min : .nan)
        r.max = useInf && v.posInf > 0 ? .infinity : (n > 0 ? v.max : .nan)
        if useInf {
            r.mean = v.posInf > 0 && v.negInf > 0 ? .nan : (v.posInf > 0 ? .infinity : -.infinity)
            r.rms = .infinity
            return r
        }
        let m2 = v.moments.m2 / n
        r.mean = v.moments.mean
        r.std = m2.squareRoot()
        r.rms = (v.sumSquares / n).squareRoot()
        if m2 > (Double.ulpOfOne * r.mean) * (Double.ulpOfOne * r.mean) {
            r.skewness = v.moments.m3 / n / pow(m2, 1.5)
            r.kurtosis = v.moments.m4 / n / (m2 * m2) - 3
        }
        return r
    }

    /// CSV header of `csvLine`.
    public static let csvHeader = "tensor,snapshot,step,count,nonfinite,mean,std,min,max,skewness,kurtosis,rms,hist_low,hist_high,histogram"

    /// One CSV line (histogram counts separated by spaces).
    public static func csvLine(_ r: TensorSnapshotMoments) -> String {
        "\(r.tensor),\(r.snapshot),\(r.step),\(r.count),\(r.nonFinite),\(r.mean),\(r.std),\(r.min),\(r.max),\(r.skewness),\(r.kurtosis),\(r.rms),\(r.histogramLow),\(r.histogramHigh),\(r.histogram.map(String.init).joined(separator: " "))"
    }

    /// JSON (schema "psnap-tensor-moments/1"); NaN and ±Inf become null.
    public static func json(_ rows: [TensorSnapshotMoments]) -> String {
        struct Row: Encodable {
            let tensor: String; let snapshot: Int; let step: Int64; let count: Int; let nonfinite: Int
            let mean, std, min, max, skewness, kurtosis, rms, hist_low, hist_high: Double?
            let histogram: [Int]
        }
        struct Doc: Encodable { let schema: String; let buckets: String; let rows: [Row] }
        func j(_ v: Double) -> Double? { v.isFinite ? v : nil }
        let doc = Doc(schema: "psnap-tensor-moments/1",
                      buckets: "equal width over [hist_low, hist_high] (the tensor's finite min and max over the selected snapshots); the last bucket includes hist_high",
                      rows: rows.map { r in
            Row(tensor: r.tensor, snapshot: r.snapshot, step: r.step, count: r.count, nonfinite: r.nonFinite,
                mean: j(r.mean), std: j(r.std), min: j(r.min), max: j(r.max), skewness: j(r.skewness), kurtosis: j(r.kurtosis),
                rms: j(r.rms), hist_low: j(r.histogramLow), hist_high: j(r.histogramHigh), histogram: r.histogram)
        })
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? e.encode(doc)) ?? Data(), as: UTF8.self)
    }
}

