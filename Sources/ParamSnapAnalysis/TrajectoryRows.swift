// The row every analysis pass works on: a parameter's trajectory (or its steps), centred on its own mean. One
// definition for modes, coefficients, similar and pairs, written into caller-owned scratch (no allocation per row).
import CBLAS

/// The passes parallelise over blocks themselves: OpenBLAS threads inside each worker's small products only
/// oversubscribe the cores (measured on mlp-digits with the other core busy: modes 0.11 s → 3.2–3.4 s), so BLAS runs
/// one thread per call. Set once, before the first product of any pass.
let singleThreadedBLAS: Void = openblas_set_num_threads(1)

/// Rows of a block of trajectories under a view.
enum TrajectoryRows {
    /// Row length under `view` for `snapshots` snapshots.
    static func length(_ view: TrajectoryView, snapshots S: Int) -> Int { view == .values ? S : S - 1 }

    /// Writes parameter `p`'s row of `values` ([parameters × S], row-major) under `view` into `dst`.
    @inline(__always)
    static func fill(_ values: UnsafeBufferPointer<Double>, row p: Int, snapshots S: Int, view: TrajectoryView,
                     into dst: UnsafeMutablePointer<Double>) {
        let src = values.baseAddress! + p * S
        if view == .values {
            dst.update(from: src, count: S)
        } else {
            for s in 0..<(S - 1) { dst[s] = src[s + 1] - src[s] }
        }
    }

    /// Turns `n` whole trajectories at `buf` ([n × S], as `BlockLoader` writes them) into their rows under `view`, in
    /// place ([n × length(view)]: the steps overwrite the values front to back, never ahead of what is still read).
    @inline(__always)
    static func inPlace(_ buf: UnsafeMutablePointer<Double>, count n: Int, snapshots S: Int, view: TrajectoryView) {
        guard view == .steps else { return }
        var w = 0
        for p in 0..<n {
            let src = buf + p * S
            for s in 0..<(S - 1) { buf[w] = src[s + 1] - src[s]; w += 1 }
        }
    }

    /// Centres the row at `row` and scales it to unit norm; false (row left as is) when it is constant, not finite, or
    /// its squares overflow: its correlation with anything is undefined. `constant` tells which.
    @inline(__always)
    static func unit(_ row: UnsafeMutablePointer<Double>, count d: Int) -> (ok: Bool, constant: Bool) {
        let squares = centre(row, count: d)
        guard squares.isFinite else { return (false, false) }
        guard squares > 0 else { return (false, true) }
        let scale = 1 / squares.squareRoot()
        for i in 0..<d { row[i] *= scale }
        return (true, false)
    }

    /// Centres the `d` values at `row` on their mean, in place; returns the sum of their squares, which is not
    /// finite when the row holds NaN or an infinity or its squares overflow f64 (such a row takes no part).
    @inline(__always)
    static func centre(_ row: UnsafeMutablePointer<Double>, count d: Int) -> Double {
        // Four running sums of four lanes: one running sum waits for each add (a trajectory of 150 snapshots took
        // 1.2 µs here, 8 % of a report's time; RATIONALE §I). Fixed order, so the same row gives the same bits.
        let raw = UnsafeMutableRawPointer(row)
        let whole = d & ~15
        var a = SIMD4<Double>(), b = SIMD4<Double>(), c = SIMD4<Double>(), e = SIMD4<Double>()
        var i = 0
        while i < whole {
            a += raw.loadUnaligned(fromByteOffset: 8 * i, as: SIMD4<Double>.self)
            b += raw.loadUnaligned(fromByteOffset: 8 * (i + 4), as: SIMD4<Double>.self)
            c += raw.loadUnaligned(fromByteOffset: 8 * (i + 8), as: SIMD4<Double>.self)
            e += raw.loadUnaligned(fromByteOffset: 8 * (i + 12), as: SIMD4<Double>.self)
            i += 16
        }
        var tail = 0.0
        while i < d { tail += row[i]; i += 1 }
        let lanes = (a + b) + (c + e)
        let sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + tail
        guard sum.isFinite else { return .nan }
        let mean = sum / Double(d), m = SIMD4<Double>(repeating: mean)
        var qa = SIMD4<Double>(), qb = SIMD4<Double>(), qc = SIMD4<Double>(), qe = SIMD4<Double>()
        i = 0
        while i < whole {
            let x0 = raw.loadUnaligned(fromByteOffset: 8 * i, as: SIMD4<Double>.self) - m
            let x1 = raw.loadUnaligned(fromByteOffset: 8 * (i + 4), as: SIMD4<Double>.self) - m
            let x2 = raw.loadUnaligned(fromByteOffset: 8 * (i + 8), as: SIMD4<Double>.self) - m
            let x3 = raw.loadUnaligned(fromByteOffset: 8 * (i + 12), as: SIMD4<Double>.self) - m
            raw.storeBytes(of: x0, toByteOffset: 8 * i, as: SIMD4<Double>.self)
            raw.storeBytes(of: x1, toByteOffset: 8 * (i + 4), as: SIMD4<Double>.self)
            raw.storeBytes(of: x2, toByteOffset: 8 * (i + 8), as: SIMD4<Double>.self)
            raw.storeBytes(of: x3, toByteOffset: 8 * (i + 12), as: SIMD4<Double>.self)
            qa += x0 * x0; qb += x1 * x1; qc += x2 * x2; qe += x3 * x3
            i += 16
        }
        var tailSquares = 0.0
        while i < d { let x = row[i] - mean; row[i] = x; tailSquares += x * x; i += 1 }
        let q = (qa + qb) + (qc + qe)
        return ((q[0] + q[1]) + (q[2] + q[3])) + tailSquares
    }
}
