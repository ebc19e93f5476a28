// The density chart of every trajectory (spec/CHARTS.md): each series between consecutive snapshots counted into a
// W × H grid of (column, value bin), in one streaming pass. A point is binned once; a segment is counted by its two
// rows in a table of its segment (one increment, whatever it crosses), and each table entry is drawn once, weighted,
// into per-row difference arrays at the end (`DensityAccumulator`).
import Foundation
import Synchronization
import CDensity
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
    /// The target's view; nil: the pass's.
    public var view: DensityView?
    public init(tensors: [Int], width: Int, height: Int, range: (lo: Double, hi: Double)? = nil, view: DensityView? = nil) {
        self.tensors = tensors; self.width = width; self.height = height; self.range = range; self.view = view
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

/// Work done on every block's trajectories in the density pass's read, so a caller that needs more than the charts
/// (`psnap report`: statistics and the modes' Gram matrix) reads the run once. One observer per worker; `observe`
/// sees each block the worker loads: `rows` holds `count` trajectories of every snapshot ([count × snapshots], the
/// values), read only.
public protocol DensityBlockObserver: AnyObject {
    func observe(tensor: Int, block: Int, rows: UnsafePointer<Double>, count: Int)
}

/// The density pass.
public enum Density {
    /// Cells a grid may have (a worker holds (H + 2) × (W + 1) 8-byte counters).
    public static let maxCells = 16 << 20
    /// Bytes of band and pair tables (segments counted by their rows, then drawn once) a worker may hold; only the
    /// cells counted into take memory.
    public static let tableBudget = 64 << 20
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

    /// Several charts in one pass (e.g. the whole run and each tensor, in two views, for `psnap report`): every block
    /// is read once and counted into each target holding its tensor, in the target's view (`view` when it names none).
    /// A target without a range gets its own sampled range.
    /// With `tolerateEmpty`, a target with no finite value gets the range −0.5 … 0.5 instead of an error.
    /// `observer` (called once per worker) gives each worker an observer of the blocks it reads, beside the counts.
    public static func computeMany(_ reader: PSnapReader, view: DensityView = .values, targets: [DensityTarget], fullRange: Bool = false,
                                   workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                                   progress: (@Sendable (UInt64, UInt64) -> Void)? = nil, tolerateEmpty: Bool = false,
                                   observer: (@Sendable (_ worker: Int) -> any DensityBlockObserver)? = nil) throws -> [DensityGrid] {
        try computeMany(reader, view: view, targets: targets, fullRange: fullRange, workers: workers, progress: progress, tolerateEmpty: tolerateEmpty,
                        tableBudget: tableBudget, tableRedraw: UInt64(UInt32.max), observer: observer)
    }

    /// `computeMany` with the tables' budget per worker and the segments a table takes before it is drawn and zeroed
    /// (below 2³², so no cell overflows) set: the counts do not depend on them (tested).
    static func computeMany(_ reader: PSnapReader, view: DensityView, targets: [DensityTarget], fullRange: Bool, workers: Int,
                            progress: (@Sendable (UInt64, UInt64) -> Void)?, tolerateEmpty: Bool, tableBudget: Int, tableRedraw: UInt64,
                            observer: (@Sendable (_ worker: Int) -> any DensityBlockObserver)? = nil) throws -> [DensityGrid] {
        for t in targets {
            guard t.width >= 16, t.height >= 16, t.width <= 16384, t.height <= 16384, t.width * t.height <= maxCells else {
                throw ChartError.badSize(width: t.width, height: t.height)
            }
        }
        let targetViews = targets.map { $0.view ?? view }
        let views = Array(Set(targetViews)).sorted { $0.rawValue < $1.rawValue }
        var stepsOf: [DensityView: [Int64]] = [:]
        for v in views { stepsOf[v] = try pointSteps(reader, view: v) }
        let layout = reader.layout
        var ranges: [(lo: Double, hi: Double, sampled: Bool)] = []
        var member = [[Int]](repeating: [], count: reader.tensors.count)   // targets of each tensor
        for (k, target) in targets.enumerated() {
            for t in Set(target.tensors) { member[t].append(k) }
            if let range = target.range {
                guard range.lo.isFinite, range.hi.isFinite, range.lo < range.hi else { throw ChartError.badRange(lo: range.lo, hi: range.hi) }
                ranges.append((range.lo, range.hi, false))
            } else {
                ranges.append(try defaultRange(reader, view: targetViews[k], tensors: target.tensors, fullRange: fullRange, workers: workers, tolerateEmpty: tolerateEmpty))
            }
        }
        let used = Set(targets.flatMap(\.tensors)).sorted()
        let blocks = used.flatMap { t in (0..<layout.blockCounts[t]).map { (t, $0) } }
        let cols = targets.indices.map { columns(steps: stepsOf[targetViews[$0]]!, width: targets[$0].width) }
        let S = reader.snapshotCount
        // Band tables, then pair tables, in target order, while they fit a worker's budget.
        var budget = tableBudget
        func fits(_ need: Int) -> Bool {
            guard need > 0, need <= budget else { return false }
            budget -= need
            return true
        }
        let withBands = targets.indices.map { fits(DensityAccumulator.bandBytes(height: targets[$0].height, columns: cols[$0])) }
        let withPairs = targets.indices.map { fits(DensityAccumulator.pairBytes(height: targets[$0].height, columns: cols[$0])) }
        func fresh(tables: Bool = true) -> [DensityAccumulator] {
            targets.indices.map { DensityAccumulator(width: targets[$0].width, height: targets[$0].height, lo: ranges[$0].lo, hi: ranges[$0].hi, columns: cols[$0],
                                                     bandTables: tables && withBands[$0], pairTables: tables && withPairs[$0], tableRedraw: tableRedraw) }
        }
        // Per tensor and view, the targets to count into.
        let viewIndex = targetViews.map { v in views.firstIndex(of: v)! }
        let memberByView = member.map { ks in views.indices.map { vi in ks.filter { viewIndex[$0] == vi } } }
        let parts = Mutex<[[DensityAccumulator]]>([])
        let counter = ProgressCounter(total: UInt64(blocks.count), report: progress)
        try parallelForEach(count: blocks.count, workers: workers, state: { k in
            (loader: BlockLoader(reader), rows: UnsafeMutablePointer<Double>.allocate(capacity: layout.blockSize * S),
             series: UnsafeMutablePointer<Double>.allocate(capacity: layout.blockSize * S),
             draw: UnsafeMutablePointer<Bool>.allocate(capacity: layout.blockSize), acc: fresh(), observer: observer?(k))
        }, { w, i in
            let (t, b) = blocks[i]
            let n = try w.loader.load(tensor: t, block: b, into: w.rows)
            w.observer?.observe(tensor: t, block: b, rows: w.rows, count: n)
            for (vi, view) in views.enumerated() where !memberByView[t][vi].isEmpty {
                let ks = memberByView[t][vi]
                if view == .values {
                    // The series are the values: drawn from the loaded rows, their non-finite ones counted while binned.
                    for p in 0..<n { w.draw[p] = true }
                    for k in ks { w.acc[k].nonFinite += w.acc[k].addBlock(w.rows, count: n, draw: w.draw) }
                } else {
                    var constant = 0, nonFinite = 0
                    let N = view == .steps ? S - 1 : S
                    for p in 0..<n {
                        switch seriesOf(w.rows + p * S, snapshots: S, view: view, into: w.series + p * N) {
                        case .constant: constant += 1; w.draw[p] = false
                        case .nonFinite: nonFinite += 1; w.draw[p] = view != .z
                        case .ok: w.draw[p] = true
                        }
                    }
                    for k in ks {
                        w.acc[k].constant += constant; w.acc[k].nonFinite += nonFinite
                        w.acc[k].addBlock(w.series, count: n, draw: w.draw)
                    }
                }
            }
            counter.add(1)
        }, finish: { w in
            w.loader.flush(); w.rows.deallocate(); w.series.deallocate(); w.draw.deallocate()
            var a = w.acc
            for k in a.indices { a[k].flush(); a[k].drawTables(); a[k].rows = [] }
            parts.withLock { $0.append(a) }
        })
        var total = fresh(tables: false)
        for p in parts.withLock({ $0 }) { for k in targets.indices { total[k].merge(p[k]) } }
        return targets.indices.map { total[$0].grid(view: targetViews[$0], steps: stepsOf[targetViews[$0]]!, sampledRange: ranges[$0].sampled) }
    }

    /// The value range a chart of `tensors` gets when none is given (spec/CHARTS.md): the 0.05–99.95 % quantiles of
    /// `sampleBlocks` evenly spaced blocks widened by 2 % (`sampled`), or the exact extremes with `fullRange`. A
    /// distributed chart computes it once and hands it to every task.
    public static func defaultRange(_ reader: PSnapReader, view: DensityView, tensors: [Int], fullRange: Bool = false,
                                    workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                                    tolerateEmpty: Bool = false) throws -> (lo: Double, hi: Double, sampled: Bool) {
        let layout = reader.layout
        let blocks = tensors.sorted().flatMap { t in (0..<layout.blockCounts[t]).map { (t, $0) } }
        let pick = fullRange || blocks.count <= sampleBlocks ? blocks : (0..<sampleBlocks).map { blocks[$0 * blocks.count / sampleBlocks] }
        guard var (lo, hi) = try valueRange(reader, blocks: pick, view: view, quantile: fullRange ? 0 : 0.0005, workers: workers) ?? (tolerateEmpty ? (0, 0) : nil) else {
            throw ChartError.nothingToDraw
        }
        if !fullRange { let margin = (hi - lo) * 0.02; lo -= margin; hi += margin }
        if lo == hi { lo -= 0.5; hi += 0.5 }
        guard lo.isFinite, hi.isFinite, lo < hi else { throw ChartError.badRange(lo: lo, hi: hi) }
        return (lo, hi, !fullRange)
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
        let i = Int(q * Double(v.count - 1)), j = Int((1 - q) * Double(v.count - 1))
        // The j-th, then the i-th of the values before it: the same as in the sorted sample (a sort of the sample
        // took 8 % of `psnap report`'s time, with a range for each tensor shown).
        select(&v, j, in: 0..<v.count)
        if i < j { select(&v, i, in: 0..<j) }
        return (v[i], v[j])
    }

    /// Moves the k-th smallest of v[range] (no NaN) to v[k], the smaller ones before it and the larger after
    /// (quickselect: Hoare's partition around random pivots).
    static func select(_ v: inout [Double], _ k: Int, in range: Range<Int>) {
        v.withUnsafeMutableBufferPointer { a in
            var lo = range.lowerBound, hi = range.upperBound - 1
            while lo < hi {
                let pivot = a[Int.random(in: lo...hi)]
                var i = lo, j = hi
                while i <= j {
                    while a[i] < pivot { i += 1 }
                    while a[j] > pivot { j -= 1 }
                    if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
                }
                // v[lo ... j] ≤ pivot ≤ v[i ... hi], and the ones between equal the pivot.
                if k <= j { hi = j } else if k >= i { lo = i } else { return }
            }
        }
    }
}

/// One worker's counts as difference arrays along the columns, stored column by column: (W + 1) columns × (H + 2) rows
/// (below, the H bins, above). A point's value is binned once (its row, §3). The cells a segment covers depend only on
/// its two rows and its columns, so segments are counted, not drawn: by their pair of rows into a table of their
/// segment, each table entry drawn once, weighted by its count, at the end (`drawTables`). A segment whose rows are at
/// most `bandReach` apart inside the range (or both below it, or both above) goes to the segment's band table; one
/// crossing more rows inside the range to its pair table; only a segment crossing the range's edge (or one whose
/// table did not fit the pass's budget) is drawn on its own. Series are gathered in batches and counted segment by
/// segment (every series' segment n, then n + 1), so one segment's table stays in cache while the batch passes.
/// (Measured against drawing every segment into the difference arrays, a run of columns per row it crosses, on
/// tiny-gpt ×30, 1000 × 500 values: spec/RATIONALE.md §I.)
struct DensityAccumulator: Sendable {
    let width: Int, height: Int
    let lo: Double, hi: Double
    let edges: [Double]
    /// Bin k holds lower[k] ≤ v < upper[k] (numpy's edges; the last bin's upper bound is the double after hi).
    let lower: [Double], upper: [Double]
    let columns: [Int]
    /// diff[c · (H + 2) + r + 1]: the difference along the columns of row r (−1: below, H: above).
    var diff: [Int64]
    var constant = 0, nonFinite = 0, series = 0
    /// The batch: each point's row, point-major (rows[n · stride + i]), for `batched` series.
    var rows: [Int32] = []
    var batched = 0
    /// The series of a segment the band table does not take (`psnap_density_count`).
    var restRows: [Int32] = []
    /// Band tables: segment n's series from row r₀ to r₁ = r₀ + e (|e| ≤ `bandReach`, both in the range) are counted at
    /// bandBase(n) + (bandReach + e) · (H + 2) + r₀ + 1 (one row of the table per e: the few e of most segments stay in
    /// a few KiB of cache); those below the range at both ends at e = 0, r₀ = −1, above at e = 0, r₀ = H. A table per segment kept for the whole pass when they fit
    /// the pass's budget (`persistentBands`); otherwise one, drawn and zeroed after each segment of a batch.
    var bands: PairTable
    let persistentBands: Bool
    static let bandReach: Int32 = 32
    static let bandSlots = 2 * Int(bandReach) + 1
    /// Pair tables: segment n's series from row r₀ to r₁, both in the range and more than `bandReach` apart, at
    /// pairBase[n] + r₀ · H + r₁ (segments at least 2 columns wide; −1: none), when they fit the budget.
    var pairs: PairTable?
    let pairBase: [Int]
    /// Segments a table may count before it is drawn and zeroed (its cells stay below 2³²).
    let tableRedraw: UInt64
    let capacity: Int, stride: Int

    static let none = Int32.min

    /// Bytes of band tables kept for the whole pass.
    static func bandBytes(height: Int, columns: [Int]) -> Int { max(0, columns.count - 1) * bandTableSize(height: height) * 4 }
    /// Cells of one segment's band table.
    static func bandTableSize(height: Int) -> Int { (height + 2) * bandSlots }
    /// Bytes of pair tables a grid of this size and these columns needs.
    static func pairBytes(height: Int, columns: [Int]) -> Int {
        (0..<max(0, columns.count - 1)).filter { columns[$0 + 1] - columns[$0] >= 2 }.count * height * height * 4
    }

    init(width: Int, height: Int, lo: Double, hi: Double, columns: [Int], bandTables: Bool = false, pairTables: Bool = false,
         tableRedraw: UInt64 = UInt64(UInt32.max)) {
        self.tableRedraw = tableRedraw
        self.width = width; self.height = height; self.lo = lo; self.hi = hi; self.columns = columns
        edges = Density.edges(lo: lo, hi: hi, bins: height)
        lower = Array(edges.dropLast())
        upper = Array(edges.dropFirst().dropLast()) + [hi.nextUp]
        diff = [Int64](repeating: 0, count: (height + 2) * (width + 1))
        let segments = max(0, columns.count - 1), bandSize = Self.bandTableSize(height: height)
        persistentBands = bandTables && segments > 0
        bands = PairTable(count: persistentBands ? segments * bandSize : bandSize)
        var pb: [Int] = [], total = 0
        for n in 0..<segments {
            if pairTables && columns[n + 1] - columns[n] >= 2 { pb.append(total); total += height * height } else { pb.append(-1) }
        }
        pairBase = pb
        pairs = pairTables && total > 0 ? PairTable(count: total) : nil
        // The batch's rows: about 256 KiB, so they are still in the core's cache when counted (at least 64 series).
        capacity = Swift.max(64, (256 << 10) / (4 * Swift.max(1, columns.count)))
        // One cache line more than the batch between points: a series' N rows then fall in different cache sets
        // (a stride of a multiple of 4 KiB put them all in one).
        stride = capacity + 16
    }

    mutating func merge(_ o: DensityAccumulator) {
        precondition(o.batched == 0 && batched == 0 && o.pairs == nil && pairs == nil, "batches and tables counted before merging")
        for i in 0..<diff.count { diff[i] += o.diff[i] }
        constant += o.constant; nonFinite += o.nonFinite; series += o.series
    }

    /// Adds the series of a block (§3): `y[p · N + n]` is point n of series p (N = `columns.count`); only the series
    /// with `draw[p]` are counted. They are counted when the batch is full, or at `flush()`.
    /// Returns how many of them hold a NaN or an infinity.
    @discardableResult
    mutating func addBlock(_ y: UnsafePointer<Double>, count: Int, draw: UnsafePointer<Bool>) -> Int {
        let N = columns.count, H = height, lo = lo, hi = hi, cap = capacity
        if rows.isEmpty { rows = [Int32](repeating: 0, count: stride * N) }
        let none = Self.none
        let step = (hi - lo) / Double(H), toBin = Double(H) / (hi - lo)
        let below = -Double(H), above = Double(2 * H - 1), hd = Double(H)
        // t = (v − lo)·toBin is within 5u·H of the exact (v − lo)/((hi − lo)/H) (u = 2⁻⁵³: three roundings in toBin
        // and the product, one in v − lo), and edge eᵢ = i·δ + lo is within 3u·i + u·M/δ of lo + i(hi − lo)/H in
        // those units (M = |lo| + |hi|). So a t at least `slack` from every integer is in the bin ⌊t⌋ of the edges;
        // nearer, the edges decide. 8× margin.
        let slack = 8 * Double.ulpOfOne / 2 * (8 * hd + (abs(lo) + abs(hi)) / step)
        var p = 0, withNonFinite = 0
        while p < count {
            var filled = batched
            lower.withUnsafeBufferPointer { lower in upper.withUnsafeBufferPointer { upper in rows.withUnsafeMutableBufferPointer { rw in
                // §3's row of a finite value: numpy's bin in the range (the estimate by a product is within one bin of
                // the edges' answer, which decides); outside, ⌊(v − lo)/step⌋ kept within −H … −1 or H … 2H − 1.
                @inline(__always) func row(_ v: Double, _ nonFinite: inout Bool) -> Int32 {
                    let t = (v - lo) * toBin
                    if t >= slack && t < hd - slack, case let k0 = Int(t), case let f = t - Double(k0), f >= slack && f <= 1 - slack {
                        // Far from an edge: the product's bin is the edges' bin (see `slack`).
                        return Int32(k0)
                    } else if v >= lo && v <= hi {
                        var k = Swift.min(Int((v - lo) * toBin), H - 1)
                        k = k - (v < lower[k] ? 1 : 0) + (v >= upper[k] ? 1 : 0)
                        return Int32(k)
                    } else if !v.isFinite {
                        nonFinite = true
                        return none
                    } else if v < lo {
                        return Int32(Swift.min(-1, Swift.max(below, ((v - lo) / step).rounded(.down))))
                    } else {
                        return Int32(Swift.max(Double(H), Swift.min(above, ((v - lo) / step).rounded(.down))))
                    }
                }
                /// Series p's rows into batch place i, one point at a time.
                @inline(__always) func slowRows(_ p: Int, _ i: Int) {
                    var nonFinite = false
                    let yp = y + p * N
                    for n in 0..<N { rw[n * stride + i] = row(yp[n], &nonFinite) }
                    if nonFinite { withNonFinite += 1 }
                }
                while p < count && filled < cap {
                    // Every point far from an edge (the first test of `row`) in one vectorised call; else one by one.
                    if draw[p] {
                        if psnap_density_rows(y + p * N, N, lo, toBin, slack, hd - slack, rw.baseAddress! + filled, stride) == 0 { slowRows(p, filled) }
                        filled += 1
                    }
                    p += 1
                }
            } } }
            series += filled - batched
            batched = filled
            if batched == cap { flush() }
        }
        return withNonFinite
    }

    /// Counts the batch.
    mutating func flush() {
        guard batched > 0 else { return }
        let N = columns.count, H = height, H2 = height + 2, count = batched, none = Self.none
        let adds = UInt64(count * N)
        if bands.adds + adds > tableRedraw || (pairs?.adds ?? 0) + adds > tableRedraw { drawTables(keep: true) }
        bands.adds += adds
        pairs?.adds += adds
        let bandSize = Self.bandTableSize(height: H)
        let bandCells = bands.cells, pairCells = pairs?.cells, persistent = persistentBands
        if restRows.count < count { restRows = [Int32](repeating: 0, count: capacity) }
        columns.withUnsafeBufferPointer { col in diff.withUnsafeMutableBufferPointer { dd in rows.withUnsafeBufferPointer { rw in
            pairBase.withUnsafeBufferPointer { pairBase in restRows.withUnsafeMutableBufferPointer { rr in
            let rows = rw.baseAddress!, d = dd.baseAddress!, rest = rr.baseAddress!
            for n in 0..<(N - 1) {
                let c0 = col[n], L = col[n + 1] - c0
                guard L > 0 else { continue }
                let a = rows + n * stride, b = a + stride
                // The segment's band table: its series from r₀ to r₀ + e at (reach + e) · (H + 2) + r₀ + 1.
                let table = bandCells + (persistent ? n * bandSize : 0)
                let pairAt = pairCells != nil && pairBase[n] >= 0 ? pairCells! + pairBase[n] : nil
                // The segments of the band table in C (`psnap_density_count`); the others here.
                let others = psnap_density_count(a, b, count, L == 1 ? 1 : 0, Int32(H), Self.bandReach, table, rest)
                for k in 0..<others {
                    let p = Int(rest[k]), r0 = a[p], r1 = L == 1 ? r0 : b[p]   // one column: only its first row counts
                    if b[p] == none {
                        // A finite point before a non-finite one: its own row in its own column (spec/CHARTS.md §3).
                        Self.drawSegment(d, height: H, from: Int(r0), to: Int(r0), column: c0, width: 1, weight: 1)
                    } else if UInt32(bitPattern: r0) < UInt32(H) && UInt32(bitPattern: r1) < UInt32(H), let pairAt {
                        pairAt[Int(r0) &* H &+ Int(r1)] &+= 1
                    } else {
                        Self.drawSegment(d, height: H, from: Int(r0), to: Int(r1), column: c0, width: L, weight: 1)
                    }
                }
                if !persistent { Self.drawBand(bandCells, into: d, height: H, column: c0, width: L) }
            }
            // The last point adds its own row to its column.
            let cl = col[N - 1], last = rows + (N - 1) * stride
            for p in 0..<count where last[p] != none {
                let r = Int(last[p] < 0 ? -1 : min(last[p], Int32(H)))
                d[cl * H2 + r + 1] += 1
                d[(cl + 1) * H2 + r + 1] -= 1
            }
        } } } } }
        batched = 0
    }

    /// Draws the counted tables into the difference arrays (each entry's segment once, weighted by its count) and
    /// zeroes them; without `keep` the pair tables are dropped (the pass has ended).
    mutating func drawTables(keep: Bool = false) {
        let H = height, bandSize = Self.bandTableSize(height: H)
        let bandCells = bands.cells, persistent = persistentBands
        let pairs = self.pairs
        self.pairs = nil
        diff.withUnsafeMutableBufferPointer { dd in
            let d = dd.baseAddress!
            if persistent {
                for n in 0..<(columns.count - 1) where columns[n + 1] > columns[n] {
                    Self.drawBand(bandCells + n * bandSize, into: d, height: H, column: columns[n], width: columns[n + 1] - columns[n])
                }
            }
            guard let pairs else { return }
            for n in pairBase.indices where pairBase[n] >= 0 {
                let c0 = columns[n], L = columns[n + 1] - c0, cells = pairs.cells + pairBase[n]
                for r0 in 0..<H {
                    for r1 in 0..<H where cells[r0 * H + r1] > 0 {
                        Self.drawSegment(d, height: H, from: r0, to: r1, column: c0, width: L, weight: Int64(cells[r0 * H + r1]))
                    }
                }
            }
        }
        bands.adds = 0
        if keep, let pairs { self.pairs = PairTable(count: pairs.count) }
    }

    /// Draws one segment's band table (columns c0 … c0 + L − 1) and zeroes it.
    static func drawBand(_ table: UnsafeMutablePointer<UInt32>, into d: UnsafeMutablePointer<Int64>, height H: Int, column c0: Int, width L: Int) {
        let reach = Int(bandReach), H2 = H + 2
        for i in 0..<bandTableSize(height: H) where table[i] != 0 {
            let e = i / H2 - reach, r0 = i % H2 - 1
            drawSegment(d, height: H, from: r0, to: r0 + e, column: c0, width: L, weight: Int64(table[i]))
            table[i] = 0
        }
    }

    /// Draws `weight` series from row r0 to row r1 over the L columns from c0 (§3: column c0 + j is in row
    /// r0 + ⌊(2j·(r1 − r0) + L)/(2L)⌋, drawn in the column's below or above count outside the range).
    @inline(__always)
    static func drawSegment(_ d: UnsafeMutablePointer<Int64>, height H: Int, from r0: Int, to r1: Int, column c0: Int, width L: Int, weight w: Int64) {
        let H2 = H + 2
        @inline(__always) func drawn(_ r: Int) -> Int { r < 0 ? -1 : (r >= H ? H : r) }
        var row = drawn(r0)
        d[c0 * H2 + row + 1] += w
        let dr = r1 - r0, ad = abs(dr)
        if dr != 0 && L > 1 {
            @inline(__always) func move(to r: Int, at j: Int) {
                let next = drawn(r)
                guard next != row else { return }
                d[(c0 + j) * H2 + row + 1] -= w
                row = next
                d[(c0 + j) * H2 + row + 1] += w
            }
            if ad < L {
                // Fewer rows than columns: row r0 ± k starts at column ⌈L(2k − 1)/(2d)⌉ (d > 0) or ⌊L(2k − 1)/(2|d|)⌋ + 1
                // (d < 0).
                let sign = dr > 0 ? 1 : -1, den = 2 * ad
                for k in 1...ad {
                    let num = L * (2 * k - 1)
                    let j = dr > 0 ? (num + den - 1) / den : num / den + 1
                    if j >= L { break }
                    move(to: r0 + sign * k, at: j)
                }
            } else {
                // Column by column: the quotient and remainder kept as j grows.
                let twoD = 2 * dr, L2 = 2 * L
                let qStep = twoD >= 0 ? twoD / L2 : -((-twoD + L2 - 1) / L2), rStep = twoD - qStep * L2
                var q = 0, rem = L
                for j in 1..<L {
                    q += qStep; rem += rStep
                    if rem >= L2 { rem -= L2; q += 1 }
                    move(to: r0 + q, at: j)
                }
            }
        }
        d[(c0 + L) * H2 + row + 1] -= w
    }

    /// The counts: prefix sums of the difference rows.
    func grid(view: DensityView, steps: [Int64], sampledRange: Bool) -> DensityGrid {
        let W = width, H = height, H2 = H + 2
        var counts = [UInt64](repeating: 0, count: W * H), below = [UInt64](repeating: 0, count: W), above = [UInt64](repeating: 0, count: W)
        var acc = [Int64](repeating: 0, count: H2)
        for c in 0..<W {
            for r in 0..<H2 { acc[r] += diff[c * H2 + r] }
            below[c] = UInt64(acc[0]); above[c] = UInt64(acc[H + 1])
            for r in 0..<H { counts[r * W + c] = UInt64(acc[r + 1]) }
        }
        var g = DensityGrid(width: W, height: H, view: view, lo: lo, hi: hi, sampledRange: sampledRange, counts: counts,
                            below: below, above: above, pointSteps: steps, pointColumns: columns)
        g.series = series; g.constant = constant; g.nonFinite = nonFinite
        return g
    }
}

/// Zeroed counters from the allocator (pages untouched until counted into), freed with the table.
final class PairTable: @unchecked Sendable {
    let cells: UnsafeMutablePointer<UInt32>
    let count: Int
    /// Segments the table may have counted since it was zero (its cells stay below 2³²).
    var adds: UInt64 = 0
    init(count: Int) {
        self.count = count
        cells = calloc(count, MemoryLayout<UInt32>.size)!.assumingMemoryBound(to: UInt32.self)
    }
    deinit { free(cells) }
}
