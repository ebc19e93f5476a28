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
        var sum = 0.0
        for i in 0..<d { sum += row[i] }
        guard sum.isFinite else { return .nan }
        let mean = sum / Double(d)
        var squares = 0.0
        for i in 0..<d { let c = row[i] - mean; row[i] = c; squares += c * c }
        return squares
    }
}
