// The density chart of every trajectory (spec/CHARTS.md): each series between consecutive snapshots counted into a
// W × H grid of (column, value bin), in one streaming pass. A segment that stays in one bin is one run of columns
// (two writes into a per-row difference array); one that crosses bins is split at the columns where its bin changes,
// found from the inverse of the interpolation and checked against the forward rule, so the counts are exactly the
// per-column rule's at O(bins crossed) per segment instead of O(columns).
import Foundation
import Synchronization
@_spi(Internals) import ParamSnap

/// What a chart's series is (spec/CHARTS.md §1).
public enum DensityView: String, Sendable, CaseIterable {
    case values, relative, z, steps
}

/// One chart of a multi-chart pass: which tensors, the grid's size, and a fixed value range (nil: sampled).
public struct DensityTarget: Sendable {
    public var tensors: [Int]
    public var width: Int
    public var height: Int
    public var range: (lo: Double, hi: Double)?
    public init(tensors: [Int], width: Int, height: Int, range: (lo: Double, hi: Double)? = nil) {
        self.tensors = tensors; self.width = width; self.height = height; self.range = range
    }
}

/// The counts of a density chart, and what was left out.
public struct DensityGrid: Sendable {
    public let width: Int
    public let height: Int
    public let view: DensityView
    /// The value range binned, and whether it came from a sample (values outside it are counted, not drawn).
    public let lo: Double
    public let hi: Double
    public let sampledRange: Bool
    /// counts[i · width + c]: series whose value at column c is in bin i (row 0 the lowest values).
    public internal(set) var counts: [UInt64]
    /// Per column, values below lo and above hi.
    public internal(set) var below: [UInt64]
    public internal(set) var above: [UInt64]
    /// The series' points: their steps and columns.
    public let pointSteps: [Int64]
    public let pointColumns: [Int]
    /// Series drawn; left out as constant (z view) or holding a NaN or infinity (their finite segments are drawn
    /// in the other views, so they also count as drawn there).
    public internal(set) var series = 0
    public internal(set) var constant = 0
    public internal(set) var nonFinite = 0

    /// Adds the counts of a chart of other trajectories (another selection, tile range or shard) drawn on the same
    /// grid (size, view, range and columns): integer sums, so any split gives the chart of the whole.
    public mutating func merge(_ o: DensityGrid) {
        precondition(o.width == width && o.height == height && o.lo == lo && o.hi == hi && o.view == view && o.pointColumns == pointColumns,
                     "charts on the same grid")
        for i in counts.indices { counts[i] += o.counts[i] }
        for c in 0..<width { below[c] += o.below[c]; above[c] += o.above[c] }
        series += o.series; constant += o.constant; nonFinite += o.nonFinite
    }

    /// The largest count of a cell.
    public var maxCount: UInt64 { counts.max() ?? 0 }
    /// The step at column c (linear between the first and the last point's steps).
    public func step(atColumn c: Int) -> Double {
        let t0 = Double(pointSteps.first ?? 0), t1 = Double(pointSteps.last ?? 0)
        return width > 1 ? t0 + (t1 - t0) * Double(c) / Double(width - 1) : t0
    }
}

/// Errors of the chart passes.
public enum ChartError: ParamSnapError, Equatable {
    case tooFewPoints(snapshots: Int, view: DensityView)
    case stepsNotIncreasing(index: Int, step: Int64, previous: Int64)
    case badSize(width: Int, height: Int)
    case badRange(lo: Double, hi: Double)
    case nothingToDraw

    public var kind: ErrorKind {
        switch self {
        case .tooFewPoints, .stepsNotIncreasing, .nothingToDraw: return .corruptData
        case .badSize, .badRange: return .usage
        }
    }

    public var description: String {
        switch self {
        case .tooFewPoints(let s, let v):
            return "a chart of \(v.rawValue) needs at least \(v == .steps ? 3 : 2) snapshots, the run has \(s) (one snapshot: `psnap moments --across parameters` gives its histogram)"
        case .stepsNotIncreasing(let i, let s, let p): return "snapshot \(i) has step \(s), not after the previous snapshot's \(p): the x axis needs increasing steps"
        case .badSize(let w, let h): return "a \(w) × \(h) grid: width and height are 16 … 16384 and their product at most \(Density.maxCells)"
        case .badRange(let lo, let hi): return "value range \(lo):\(hi) is empty or not finite"
        case .nothingToDraw: return "no finite value in the selection: nothing to draw"
        }
    }
}

/// The density pass.
public enum Density {
    /// Cells a grid may have (a worker holds (H + 2) × (W + 1) 8-byte counters).
    public static let maxCells = 16 << 20
    /// Blocks read for the default value range (evenly spaced over the selection).
    public static let sampleBlocks = 64

    /// Columns of points at `steps` in a grid `width` wide (§2).
    public static func columns(steps: [Int64], width: Int) -> [Int] {
        guard let first = steps.first, let last = steps.last, last != first else { return steps.map { _ in 0 } }
        let t0 = Double(first), span = Double(last) - t0
        return steps.map { Int(((Double($0) - t0) / span * Double(width - 1) + 0.5).rounded(.down)) }
    }

    /// numpy's histogram edges for `bins` bins over [lo, hi] (§2).
    public static func edges(lo: Double, hi: Double, bins: Int) -> [Double] {
        let step = (hi - lo) / Double(bins)
        return (0...bins).map { $0 == bins ? hi : Double($0) * step + lo }
    }

    /// The steps the series' points sit at under `view`, checked to increase.
    static func pointSteps(_ reader: PSnapReader, view: DensityView) throws -> [Int64] {
        let S = reader.snapshotCount
        guard S >= (view == .steps ? 3 : 2) else { throw ChartError.tooFewPoints(snapshots: S, view: view) }
        let steps = reader.snapshots.map(\.step)
        for i in 1..<S where steps[i] <= steps[i - 1] { throw ChartError.stepsNotIncreasing(index: i, step: steps[i], previous: steps[i - 1]) }
        return view == .steps ? Array(steps.dropFirst()) : steps
    }

    /// The chart's counts for the selected tensors: every block once, on `workers` threads. `range` fixes the value
    /// range; otherwise it is a sample's (or, with `fullRange`, every value's: one more pass).
    public static func compute(_ reader: PSnapReader, view: DensityView = .values, tensors selected: [Int]? = nil,
                               width: Int = 1000, height: Int = 500, range: (lo: Double, hi: Double)? = nil, fullRange: Bool = false,
                               workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                               progress: (@Sendable (UInt64, UInt64) -> Void)? = nil) throws -> DensityGrid {
        let target = DensityTarget(tensors: (selected ?? Array(reader.tensors.indices)), width: width, height: height, range: range)
        return try computeMany(reader, view: view, targets: [target], fullRange: fullRange, workers: workers, progress: progress)[0]
    }

    /// Several charts in one pass (e.g. the whole run and each tensor, for `psnap report`): every block is read once
    /// and counted into each target holding its tensor. A target without a range gets its own sampled range.
    /// With `tolerateEmpty`, a target with no finite value gets the range −0.5 … 0.5 instead of an error.
    public static func computeMany(_ reader: PSnapReader, view: DensityView = .values, targets: [DensityTarget], fullRange: Bool = false,
                                   workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                                   progress: (@Sendable (UInt64, UInt64) -> Void)? = nil, tolerateEmpty: Bool = false) throws -> [DensityGrid] {
        for t in targets {
            guard t.width >= 16, t.height >= 16, t.width <= 16384, t.height <= 16384, t.width * t.height <= maxCells else {
                throw ChartError.badSize(width: t.width, height: t.height)
            }
        }
        let steps = try pointSteps(reader, view: view)
        let layout = reader.layout
        var ranges: [(lo: Double, hi: Double, sampled: Bool)] = []
        var member = [[Int]](repeating: [], count: reader.tensors.count)   // targets of each tensor
        for (k, target) in targets.enumerated() {
            for t in Set(target.tensors) { member[t].append(k) }
            var lo: Double, hi: Double, sampled = false
            if let range = target.range {
                (lo, hi) = range
            } else {
                let blocks = target.tensors.sorted().flatMap { t in (0..<layout.blockCounts[t]).map { (t, $0) } }
                let pick = fullRange || blocks.count <= sampleBlocks ? blocks : (0..<sampleBlocks).map { blocks[$0 * blocks.count / sampleBlocks] }
                guard let r = try valueRange(reader, blocks: pick, view: view, quantile: fullRange ? 0 : 0.0005, workers: workers) ?? (tolerateEmpty ? (0, 0) : nil) else {
                    throw ChartError.nothingToDraw
                }
                (lo, hi) = r
                sampled = !fullRange
                if !fullRange { let margin = (hi - lo) * 0.02; lo -= margin; hi += margin }
                if lo == hi { lo -= 0.5; hi += 0.5 }
            }
            guard lo.isFinite, hi.isFinite, lo < hi else { throw ChartError.badRange(lo: lo, hi: hi) }
            ranges.append((lo, hi, sampled))
        }
        let used = Set(targets.flatMap(\.tensors)).sorted()
        let blocks = used.flatMap { t in (0..<layout.blockCounts[t]).map { (t, $0) } }
        let cols = targets.map { columns(steps: steps, width: $0.width) }
        let S = reader.snapshotCount
        func fresh() -> [DensityAccumulator] {
            targets.indices.map { DensityAccumulator(width: targets[$0].width, height: targets[$0].height, lo: ranges[$0].lo, hi: ranges[$0].hi, columns: cols[$0]) }
        }
        let parts = Mutex<[[DensityAccumulator]]>([])
        let counter = ProgressCounter(total: UInt64(blocks.count), report: progress)
        try parallelForEach(count: blocks.count, workers: workers, state: { _ in
            (loader: BlockLoader(reader), rows: UnsafeMutablePointer<Double>.allocate(capacity: layout.blockSize * S),
             series: UnsafeMutablePointer<Double>.allocate(capacity: S), acc: fresh())
        }, { w, i in
            let (t, b) = blocks[i]
            let n = try w.loader.load(tensor: t, block: b, into: w.rows)
            let N = cols[0].count
            for p in 0..<n {
                let state = seriesOf(w.rows + p * S, snapshots: S, view: view, into: w.series)
                for k in member[t] {
                    switch state {
                    case .constant: w.acc[k].constant += 1
                    case .nonFinite where view == .z: w.acc[k].nonFinite += 1
                    case .nonFinite: w.acc[k].nonFinite += 1; w.acc[k].add(w.series, count: N)
                    case .ok: w.acc[k].add(w.series, count: N)
                    }
                }
            }
            counter.add(1)
        }, finish: { w in
            w.loader.flush(); w.rows.deallocate(); w.series.deallocate()
            let a = w.acc
            parts.withLock { $0.append(a) }
        })
        var total = fresh()
        for p in parts.withLock({ $0 }) { for k in targets.indices { total[k].merge(p[k]) } }
        return targets.indices.map { total[$0].grid(view: view, steps: steps, sampledRange: ranges[$0].sampled) }
    }

    enum SeriesState { case ok, constant, nonFinite }

    /// The series of the trajectory at `x` (S values) under `view`, into `y` (§1).
    @inline(__always)
    static func seriesOf(_ x: UnsafePointer<Double>, snapshots S: Int, view: DensityView, into y: UnsafeMutablePointer<Double>) -> SeriesState {
        var finite = true
        switch view {
        case .values:
            for s in 0..<S { y[s] = x[s]; if !x[s].isFinite { finite = false } }
        case .relative:
            for s in 0..<S { y[s] = x[s] - x[0]; if !y[s].isFinite { finite = false } }
        case .steps:
            for s in 0..<(S - 1) { y[s] = x[s + 1] - x[s]; if !y[s].isFinite { finite = false } }
        case .z:
            var sum = 0.0
            for s in 0..<S { sum += x[s] }
            let m = sum / Double(S)
            var sq = 0.0
            for s in 0..<S { let c = x[s] - m; sq += c * c }
            let sd = (sq / Double(S)).squareRoot()
            guard sd.isFinite, m.isFinite else { return .nonFinite }
            guard sd > 0 else { return .constant }
            for s in 0..<S { y[s] = (x[s] - m) / sd }
        }
        return finite ? .ok : .nonFinite
    }

    /// The q and 1 − q quantiles of the finite series values of `blocks` (q = 0: the minimum and maximum), at most
    /// about 2¹⁸ values kept (every k-th series of a block); nil when there is none.
    static func valueRange(_ reader: PSnapReader, blocks: [(Int, Int)], view: DensityView, quantile q: Double, workers: Int) throws -> (Double, Double)? {
        let S = reader.snapshotCount, B = reader.layout.blockSize
        let stride = q == 0 ? 1 : max(1, blocks.count * B * S / (1 << 18))
        let parts = Mutex<[(min: Double, max: Double, values: [Double])]>([])
        try parallelForEach(count: blocks.count, workers: workers, state: { _ in
            (loader: BlockLoader(reader), rows: UnsafeMutablePointer<Double>.allocate(capacity: B * S), series: UnsafeMutablePointer<Double>.allocate(capacity: S),
             min: Double.infinity, max: -Double.infinity, values: [Double]())
        }, { w, i in
            let (t, b) = blocks[i]
            let n = try w.loader.load(tensor: t, block: b, into: w.rows)
            let N = view == .steps ? S - 1 : S
            for p in Swift.stride(from: q == 0 ? 0 : (i % stride) % max(1, n), to: n, by: stride) {
                guard seriesOf(w.rows + p * S, snapshots: S, view: view, into: w.series) != .constant else { continue }
                for s in 0..<N where w.series[s].isFinite {
                    let v = w.series[s]
                    if q == 0 { w.min = Swift.min(w.min, v); w.max = Swift.max(w.max, v) } else { w.values.append(v) }
                }
            }
        }, finish: { w in
            w.loader.flush(); w.rows.deallocate(); w.series.deallocate()
            let part = (w.min, w.max, w.values)
            parts.withLock { $0.append(part) }
        })
        let all = parts.withLock { $0 }
        if q == 0 {
            let lo = all.map(\.min).min() ?? .infinity, hi = all.map(\.max).max() ?? -.infinity
            return lo <= hi ? (lo, hi) : nil
        }
        var v = all.flatMap(\.values)
        guard !v.isEmpty else { return nil }
        v.sort()
        let i = Int(q * Double(v.count - 1)), j = Int((1 - q) * Double(v.count - 1))
        return (v[i], v[j])
    }
}

/// One worker's counts as difference arrays along the columns: (H + 2) rows (below, the H bins, above) × (W + 1).
struct DensityAccumulator: Sendable {
    let width: Int, height: Int
    let lo: Double, hi: Double
    let edges: [Double]
    let columns: [Int]
    /// τ = (c − cₙ)/(cₙ₊₁ − cₙ) for every column of every segment (segment n's from `tauStart[n]`): the same for
    /// every series, so computed once (the rule's division, in the rule's order).
    let taus: [Double]
    let tauStart: [Int]
    var diff: [Int64]
    var constant = 0, nonFinite = 0, series = 0

    init(width: Int, height: Int, lo: Double, hi: Double, columns: [Int]) {
        self.width = width; self.height = height; self.lo = lo; self.hi = hi; self.columns = columns
        edges = Density.edges(lo: lo, hi: hi, bins: height)
        diff = [Int64](repeating: 0, count: (height + 2) * (width + 1))
        var taus: [Double] = [], start: [Int] = []
        for n in 0..<max(0, columns.count - 1) {
            start.append(taus.count)
            let c0 = columns[n], c1 = columns[n + 1]
            if c1 > c0 { for c in c0..<c1 { taus.append(Double(c - c0) / Double(c1 - c0)) } }
        }
        self.taus = taus; tauStart = start
    }

    mutating func merge(_ o: DensityAccumulator) {
        for i in 0..<diff.count { diff[i] += o.diff[i] }
        constant += o.constant; nonFinite += o.nonFinite; series += o.series
    }

    /// Adds one series of `count` points (its columns are `columns`): §3. The series is followed as runs of columns in
    /// one bin: a run stays open across segments while the bin does not change (a parameter that barely moves is a
    /// single run), and only where the bin changes does a run end (two writes into the difference rows).
    mutating func add(_ y: UnsafePointer<Double>, count N: Int) {
        series += 1
        let W1 = width + 1, H = height, lo = lo, hi = hi
        columns.withUnsafeBufferPointer { col in edges.withUnsafeBufferPointer { e in diff.withUnsafeMutableBufferPointer { d in
        taus.withUnsafeBufferPointer { tb in tauStart.withUnsafeBufferPointer { ts in
            // The bin estimate by a product (numpy divides): the edge comparisons after it decide, as in numpy, and
            // both estimates are within one bin of the edges' answer.
            let toBin = Double(H) / (hi - lo)
            @inline(__always) func bin(_ v: Double) -> Int {
                if v < lo { return -1 }
                if v > hi { return H }
                var i = Int((v - lo) * toBin)
                if i >= H { i = H - 1 }
                if v < e[i] { i -= 1 } else if i != H - 1 && v >= e[i + 1] { i += 1 }
                return i
            }
            @inline(__always) func inBin(_ v: Double, _ b: Int) -> Bool {
                if b < 0 { return v < lo }
                if b >= H { return v > hi }
                return v >= e[b] && (b == H - 1 ? v <= hi : v < e[b + 1])
            }
            let none = Int.min
            var cur = none, start = 0
            @inline(__always) func close(_ end: Int) {
                guard cur != none, end > start else { return }
                let row = (cur + 1) * W1
                d[row + start] += 1
                d[row + end] -= 1
            }
            @inline(__always) func change(to b: Int, at c: Int) {
                guard b != cur else { return }
                close(c)
                cur = b; start = c
            }
            var bNext = y[0].isFinite ? bin(y[0]) : none
            for n in 0..<(N - 1) {
                let c0 = col[n], c1 = col[n + 1]
                let a = y[n], b = y[n + 1]
                let ba = bNext
                bNext = b.isFinite ? bin(b) : none
                guard c1 > c0 else { continue }
                guard a.isFinite && b.isFinite else { close(c0); cur = none; continue }
                change(to: ba, at: c0)
                let cspan = Double(c1 - c0), delta = b - a, tau = tb.baseAddress! + ts[n] - c0
                // v(c) lies between a and a + delta (which rounding may put an ulp past b): one bin throughout when both are.
                if ba == bNext && inBin(a + delta, ba) { continue }
                @inline(__always) func v(_ c: Int) -> Double { a + tau[c] * delta }
                if abs(bNext - ba) * 3 >= c1 - c0 {
                    for c in (c0 + 1)..<c1 { change(to: bin(v(c)), at: c) }
                    continue
                }
                // Walk the bin boundaries: the bin of v(c) is monotone in c, so each bin is one run of columns.
                let target = bin(v(c1 - 1)), up = target > ba
                var c = c0
                while cur != target {
                    let edge = up ? (cur < 0 ? lo : e[cur + 1]) : (cur >= H ? hi : e[cur])
                    let guess = ((edge - a) / delta * cspan).rounded(.up)
                    var c2 = guess.isFinite ? c0 + Int(Swift.max(0, Swift.min(cspan, guess))) : c1 - 1
                    c2 = Swift.max(c + 1, Swift.min(c1 - 1, c2))
                    while c2 > c + 1 && bin(v(c2 - 1)) != cur { c2 -= 1 }
                    while c2 < c1 - 1 && bin(v(c2)) == cur { c2 += 1 }
                    change(to: bin(v(c2)), at: c2)
                    c = c2
                }
            }
            let cl = col[N - 1]
            if y[N - 1].isFinite { change(to: bNext, at: cl); close(cl + 1) } else { close(cl) }
        } } } } }
    }

    /// The counts: prefix sums of the difference rows.
    func grid(view: DensityView, steps: [Int64], sampledRange: Bool) -> DensityGrid {
        let W = width, H = height, W1 = W + 1
        var counts = [UInt64](repeating: 0, count: W * H), below = [UInt64](repeating: 0, count: W), above = [UInt64](repeating: 0, count: W)
        for r in 0..<(H + 2) {
            var acc: Int64 = 0
            for c in 0..<W {
                acc += diff[r * W1 + c]
                let x = UInt64(acc)
                if r == 0 { below[c] = x } else if r == H + 1 { above[c] = x } else { counts[(r - 1) * W + c] = x }
            }
        }
        var g = DensityGrid(width: W, height: H, view: view, lo: lo, hi: hi, sampledRange: sampledRange, counts: counts,
                            below: below, above: above, pointSteps: steps, pointColumns: columns)
        g.series = series; g.constant = constant; g.nonFinite = nonFinite
        return g
    }
}
