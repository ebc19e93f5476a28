// Exact similarity search over every trajectory: Pearson correlation (= z-normalised dot product) of query
// trajectories against every selected parameter, in one streaming pass (BLAS dgemm per block), top-k per worker merged.
import Foundation
import Synchronization
import CBLAS
@_spi(Internals) import ParamSnap

/// One parameter found by `Similar.search`.
public struct SimilarHit: Sendable, Equatable {
    /// Global parameter index (tensors in file order, row-major), and the tensor and flat index inside it.
    public let global: Int
    public let tensor: Int
    public let index: Int
    /// Pearson correlation with the query, in [−1, 1].
    public let r: Double
}

/// What a search found, per query, best first (ties: the lower global index first).
public struct SimilarResult: Sendable {
    public var hits: [[SimilarHit]]
    /// Parameters left out: constant rows (r undefined) and rows holding NaN or infinity.
    public var constant: Int
    public var nonFinite: Int
    public var searched: Int

    /// Merges the answer of a search over other parameters (another tensor selection, tile range or shard) to the
    /// same queries: the best `top` of both, ties to the lower global index, as one search over all of them gives.
    public mutating func merge(_ other: SimilarResult, top: Int) {
        precondition(other.hits.count == hits.count, "answers to the same queries")
        for j in hits.indices { for h in other.hits[j] { Similar.insert(h, into: &hits[j], top: top) } }
        constant += other.constant; nonFinite += other.nonFinite; searched += other.searched
    }
}

/// Exact top-k correlation search.
public enum Similar {
    /// The row a trajectory of `S` values gives under `view`, centred and scaled to unit norm; nil when it is constant
    /// (or not finite): its correlation with anything is undefined.
    public static func normalised(_ values: ArraySlice<Double>, view: TrajectoryView) -> [Double]? {
        let S = values.count, d = TrajectoryRows.length(view, snapshots: S)
        guard d >= 1 else { return nil }
        var row = [Double](repeating: 0, count: d)
        let ok = Array(values).withUnsafeBufferPointer { v in row.withUnsafeMutableBufferPointer { unitRow(v, row: 0, snapshots: S, view: view, into: $0.baseAddress!) } }
        return ok ? row : nil
    }

    /// Parameter `p`'s row of `values` under `view`, centred and scaled to unit norm, into `dst`; false when the row
    /// is constant or not finite (its correlation is undefined).
    @inline(__always)
    static func unitRow(_ values: UnsafeBufferPointer<Double>, row p: Int, snapshots S: Int, view: TrajectoryView,
                        into dst: UnsafeMutablePointer<Double>) -> Bool {
        let d = TrajectoryRows.length(view, snapshots: S)
        TrajectoryRows.fill(values, row: p, snapshots: S, view: view, into: dst)
        return TrajectoryRows.unit(dst, count: d).ok
    }

    /// The `top` parameters (of `tensors`) whose trajectories correlate best with each of `queries` (each a whole
    /// trajectory of the run's snapshot count), in one pass on `workers` threads.
    ///
    /// With `removeModes` (modes of the same view, e.g. the first few of `Modes.compute`), every row and query first
    /// loses its projection on those modes and is scaled to unit norm again: the correlation of what the shared
    /// movement (the learning-rate schedule, the run's main directions) leaves. A row the modes explain entirely
    /// (residual below 1e-10 of its norm) has no defined correlation and is left out as constant.
    public static func search(_ reader: PSnapReader, queries: [[Double]], top: Int, view: TrajectoryView = .values,
                              removeModes: ModesResult? = nil,
                              tensors: [Int]? = nil, workers: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> SimilarResult {
        let S = reader.snapshotCount
        let d = TrajectoryRows.length(view, snapshots: S)
        guard d >= 2 else { throw AnalysisError.tooFewSnapshots(needed: view == .values ? 2 : 3, got: S, view: view) }
        guard top >= 1 else { throw AnalysisError.badTop(top) }
        if let m = removeModes {
            guard m.view == view, m.dimension == d else { throw AnalysisError.featuresMismatch(file: "modes", detail: "modes of the \(m.view.rawValue) view over \(m.snapshots) snapshots do not fit the \(view.rawValue) view of this run") }
        }
        let removal = removeModes.map { ModeRemoval($0) }
        var q: [Double] = []
        for (i, query) in queries.enumerated() {
            guard query.count == S else { throw AnalysisError.queryLength(i, got: query.count, want: S) }
            guard var z = normalised(query[...], view: view) else { throw AnalysisError.constantQuery(i) }
            if let removal {
                let kept = z.withUnsafeMutableBufferPointer { removal.apply($0.baseAddress!, rows: 1) }
                guard kept[0] else { throw AnalysisError.constantQuery(i) }
            }
            q += z
        }
        _ = singleThreadedBLAS
        let nq = queries.count
        let layout = reader.layout
        let selected = (tensors ?? Array(reader.tensors.indices)).sorted()
        let blocks = selected.flatMap { t in (0..<layout.blockCounts[t]).map { (t, $0) } }
        let offsets = layout.parameterOffsets
        let parts = Mutex<[(hits: [[SimilarHit]], constant: Int, nonFinite: Int, searched: Int)]>([])
        let qz = q
        try parallelForEach(count: blocks.count, workers: workers, state: { _ in
            (hits: [[SimilarHit]](repeating: [], count: nq), loader: BlockLoader(reader), z: [Double](repeating: 0, count: layout.blockSize * S),
             r: [Double](repeating: 0, count: layout.blockSize * nq), constant: 0, nonFinite: 0, searched: 0)
        }, { w, i in
            let (t, b) = blocks[i]
            let p0 = b * layout.blockSize
            var kept: [Int] = []
            try w.z.withUnsafeMutableBufferPointer { zb in
                let z = zb.baseAddress!
                let params = try w.loader.load(tensor: t, block: b, into: z)
                TrajectoryRows.inPlace(z, count: params, snapshots: S, view: view)
                // Unit rows compacted to the front, in order (a row moves only backwards, over rows already read).
                for p in 0..<params {
                    let dst = z + kept.count * d
                    if kept.count != p { dst.update(from: z + p * d, count: d) }
                    let u = TrajectoryRows.unit(dst, count: d)
                    if u.ok { kept.append(p) } else if u.constant { w.constant += 1 } else { w.nonFinite += 1 }
                }
                if let removal, !kept.isEmpty {
                    // Rows the modes explain entirely drop out (compacted in place, order kept).
                    let ok = removal.apply(z, rows: kept.count)
                    var n = 0
                    for (i, p) in kept.enumerated() where ok[i] {
                        if n != i { (z + n * d).update(from: z + i * d, count: d) }
                        kept[n] = p; n += 1
                    }
                    w.constant += kept.count - n
                    kept.removeLast(kept.count - n)
                }
            }
            w.searched += kept.count
            guard !kept.isEmpty else { return }
            // R = Z Qᵀ: [kept × nq] correlations of this block's rows with every query.
            w.z.withUnsafeBufferPointer { z in qz.withUnsafeBufferPointer { qq in w.r.withUnsafeMutableBufferPointer { r in
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(kept.count), Int32(nq), Int32(d), 1.0, z.baseAddress!, Int32(d),
                            qq.baseAddress!, Int32(d), 0.0, r.baseAddress!, Int32(nq))
            } } }
            // Per query, rows below its current top-k floor are skipped before any hit is made (most of them).
            w.r.withUnsafeBufferPointer { rr in
                for j in 0..<nq {
                    var floor = w.hits[j].count == top ? w.hits[j][top - 1].r : -Double.infinity
                    for (row, p) in kept.enumerated() {
                        let v = max(-1, min(1, rr[row * nq + j]))
                        guard v >= floor else { continue }
                        insert(SimilarHit(global: offsets[t] + p0 + p, tensor: t, index: p0 + p, r: v), into: &w.hits[j], top: top)
                        if w.hits[j].count == top { floor = w.hits[j][top - 1].r }
                    }
                }
            }
        }, finish: { w in
            w.loader.flush()
            let part = (w.hits, w.constant, w.nonFinite, w.searched)
            parts.withLock { $0.append(part) }
        })
        var result = SimilarResult(hits: [[SimilarHit]](repeating: [], count: nq), constant: 0, nonFinite: 0, searched: 0)
        for part in parts.withLock({ $0 }) {
            for j in 0..<nq { for h in part.hits[j] { insert(h, into: &result.hits[j], top: top) } }
            result.constant += part.constant; result.nonFinite += part.nonFinite; result.searched += part.searched
        }
        return result
    }

    /// Removes the projection on a few modes from unit rows, and scales them to unit norm again.
    struct ModeRemoval: Sendable {
        let d: Int, k: Int
        /// [d × k], column j = mode j.
        let v: [Double]
        init(_ m: ModesResult) {
            d = m.dimension; k = m.modes.count
            var v = [Double](repeating: 0, count: d * k)
            for j in 0..<k { for i in 0..<d { v[i * k + j] = m.modes[j][i] } }
            self.v = v
        }

        /// Rows [rows × d] at `z`: z ← (z − V Vᵀ z) / ‖…‖; false for a row whose residual is below 1e-10 of its norm.
        func apply(_ z: UnsafeMutablePointer<Double>, rows n: Int) -> [Bool] {
            var c = [Double](repeating: 0, count: n * k)
            v.withUnsafeBufferPointer { vb in c.withUnsafeMutableBufferPointer { cb in
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(k), Int32(d), 1.0, z, Int32(d), vb.baseAddress!, Int32(k), 0.0, cb.baseAddress!, Int32(k))
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(d), Int32(k), -1.0, cb.baseAddress!, Int32(k), vb.baseAddress!, Int32(k), 1.0, z, Int32(d))
            } }
            return (0..<n).map { r in
                let row = z + r * d
                var sq = 0.0
                for i in 0..<d { sq += row[i] * row[i] }
                guard sq > 1e-20, sq.isFinite else { return false }
                let s = 1 / sq.squareRoot()
                for i in 0..<d { row[i] *= s }
                return true
            }
        }
    }

    /// Keeps `list` the best `top` hits, best first: higher r, then the lower global index.
    static func insert(_ h: SimilarHit, into list: inout [SimilarHit], top: Int) {
        func better(_ a: SimilarHit, _ b: SimilarHit) -> Bool { a.r != b.r ? a.r > b.r : a.global < b.global }
        if list.count == top, let last = list.last, !better(h, last) { return }
        var at = list.count
        while at > 0 && better(h, list[at - 1]) { at -= 1 }
        list.insert(h, at: at)
        if list.count > top { list.removeLast() }
    }
}

/// One pair of parameters whose trajectories correlate at least as much as asked.
public struct CorrelatedPair: Sendable, Equatable {
    /// Global parameter indices, `a < b`.
    public let a: Int
    public let b: Int
    public let r: Double
}

extension Similar {
    /// Memory `pairs` may hold for the selection's unit rows (n × row length doubles).
    public static let maxPairsBytes = 512 << 20

    /// Every pair inside the selected tensors whose |r| ≥ `minR` (constant and non-finite rows left out), by BLAS
    /// products of row blocks against the rows after them; sorted by global indices. `limit` caps the pairs returned.
    public static func pairs(_ reader: PSnapReader, tensors: [Int], minR: Double, view: TrajectoryView = .values,
                             limit: Int = 10_000_000, workers: Int = ProcessInfo.processInfo.activeProcessorCount) throws
        -> (pairs: [CorrelatedPair], searched: Int, leftOut: Int, truncated: Bool) {
        let S = reader.snapshotCount
        let d = TrajectoryRows.length(view, snapshots: S)
        guard d >= 2 else { throw AnalysisError.tooFewSnapshots(needed: view == .values ? 2 : 3, got: S, view: view) }
        _ = singleThreadedBLAS
        let layout = reader.layout
        let selected = tensors.sorted()
        let total = selected.reduce(0) { $0 + layout.parameterCounts[$1] }
        guard total <= maxPairsBytes / (8 * d) else { throw AnalysisError.selectionTooLarge(total, max: maxPairsBytes / (8 * d)) }
        var z: [Double] = [], globals: [Int] = []
        z.reserveCapacity(total * d)
        var leftOut = 0
        var row = [Double](repeating: 0, count: d)
        for t in selected {
            let n = layout.parameterCounts[t]
            guard n > 0 else { continue }
            let values = try reader.trajectories(tensor: t, range: 0..<n)
            values.withUnsafeBufferPointer { v in
                row.withUnsafeMutableBufferPointer { r in
                    for p in 0..<n {
                        guard unitRow(v, row: p, snapshots: S, view: view, into: r.baseAddress!) else { leftOut += 1; continue }
                        z.append(contentsOf: r)
                        globals.append(layout.parameterOffsets[t] + p)
                    }
                }
            }
        }
        let n = globals.count, rows = 256, cols = 4096
        let chunks = (n + rows - 1) / rows
        let found = Mutex<[CorrelatedPair]>([])
        let zz = z, gg = globals
        // Row chunk c against every row from its own first one on, in column tiles: rows × cols doubles per worker.
        try parallelForEach(count: chunks, workers: workers, state: { _ in [Double](repeating: 0, count: rows * cols) }, { r, c in
            let i0 = c * rows, m = min(rows, n - i0)
            var local: [CorrelatedPair] = []
            var j0 = i0
            while j0 < n {
                let w = min(cols, n - j0)
                zz.withUnsafeBufferPointer { zb in r.withUnsafeMutableBufferPointer { out in
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(w), Int32(d), 1.0, zb.baseAddress! + i0 * d, Int32(d),
                                zb.baseAddress! + j0 * d, Int32(d), 0.0, out.baseAddress!, Int32(w))
                } }
                for i in 0..<m {
                    let first = max(0, i0 + i + 1 - j0)   // only pairs after the row itself
                    guard first < w else { continue }
                    for j in first..<w {
                        let v = max(-1, min(1, r[i * w + j]))
                        if abs(v) >= minR { local.append(CorrelatedPair(a: gg[i0 + i], b: gg[j0 + j], r: v)) }
                    }
                }
                j0 += w
            }
            found.withLock { $0 += local }
        })
        var all = found.withLock { $0 }
        all.sort { ($0.a, $0.b) < ($1.a, $1.b) }
        let truncated = all.count > limit
        if truncated { all.removeLast(all.count - limit) }
        return (all, n, leftOut, truncated)
    }
}
