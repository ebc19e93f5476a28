// The per-trajectory statistics (spec/MOMENTS.md §1) and their conventions (scipy.stats defaults or unbiased).
import Foundation

/// One statistic of a trajectory; the order of `allCases` is the order of the output's snapshots.
public enum TrajectoryStatistic: String, CaseIterable, Sendable {
    case count, mean, variance, std, skewness, kurtosis
    case min, argmin, max, argmax
    case first, last
    case netChange = "net_change"
    case pathLength = "path_length"
    case stepAutocorrelation = "step_autocorr"
}

/// Which estimators to use.
public enum MomentConvention: String, Sendable {
    /// scipy.stats defaults: population variance (ddof=0), `skew(bias=True)`, `kurtosis(fisher=True, bias=True)`.
    case population
    /// Unbiased: ddof=1 variance, `skew(bias=False)`, `kurtosis(fisher=True, bias=False)`.
    case sample
}

extension TrajectoryState {
    /// All statistics in `TrajectoryStatistic.allCases` order, written into `out` (15 values).
    /// Follows numpy/scipy: skewness and kurtosis are NaN when the variance is zero to rounding
    /// (m2 ≤ (ε·mean)², scipy's test; so constant trajectories give variance 0 and NaN skew/kurtosis).
    public func statistics(convention: MomentConvention, policy: NonFinitePolicy, into out: UnsafeMutablePointer<Double>) {
        let used = policy == .skip ? moments.count : seen
        let nan = Double.nan
        out[0] = used
        var mean = nan, variance = nan, skew = nan, kurt = nan
        let poisoned = policy == .propagate && nanCount > 0
        if used > 0 && !poisoned {
            if posInfCount > 0 && negInfCount > 0 {
                mean = nan
            } else if posInfCount > 0 {
                mean = .infinity
            } else if negInfCount > 0 {
                mean = -.infinity
            } else {
                moments.finiteStatistics(convention: convention, into: out)
                mean = out[1]; variance = out[2]; skew = out[4]; kurt = out[5]
            }
        }
        out[1] = mean
        out[2] = variance
        out[3] = variance.squareRoot()
        out[4] = skew
        out[5] = kurt
        if used == 0 {
            for k in 6..<15 { out[k] = nan }
            return
        }
        if poisoned {
            out[6] = nan; out[7] = firstNaNIndex; out[8] = nan; out[9] = firstNaNIndex
        } else {
            out[6] = min; out[7] = argmin; out[8] = max; out[9] = argmax
        }
        out[10] = first
        out[11] = last
        out[12] = last - first
        out[13] = steps.absSum
        out[14] = steps.lag1Autocorrelation
    }
}

extension CentralMoments {
    /// Mean, variance, std, skewness and kurtosis of finite values (count > 0) into `out[1...5]`, the same arithmetic
    /// for `TrajectoryState.statistics` and the moments-only pass.
    @inline(__always)
    func finiteStatistics(convention: MomentConvention, into out: UnsafeMutablePointer<Double>) {
        let nan = Double.nan, n = count
        var skew = nan, kurt = nan
        let m2 = self.m2 / n, m3 = self.m3 / n, m4 = self.m4 / n
        let variance = convention == .sample ? (n > 1 ? self.m2 / (n - 1) : nan) : m2
        let zero = m2 <= (Double.ulpOfOne * mean) * (Double.ulpOfOne * mean)
        if !zero {
            let m2_15 = m2 * m2.squareRoot()   // m2^1.5 (pow cost ~4 % of a moments pass; within 1 ulp)
            skew = m3 / m2_15
            kurt = m4 / (m2 * m2)
            if convention == .sample {
                if n > 2 { skew = ((n - 1) * n).squareRoot() / (n - 2) * m3 / m2_15 }
                if n > 3 { kurt = 1 / (n - 2) / (n - 3) * ((n * n - 1) * m4 / (m2 * m2) - 3 * (n - 1) * (n - 1)) + 3 }
            }
            kurt -= 3
        }
        out[1] = mean
        out[2] = variance
        out[3] = variance.squareRoot()
        out[4] = skew
        out[5] = kurt
    }
}

extension TrajectoryState {
    /// The std, kurtosis, net change and path length of one trajectory (population conventions, NaN propagating),
    /// written into `out[0..<4]`: the same arithmetic as `init(values:…)` then `statistics(…)` (columns std, kurtosis,
    /// net_change, path_length), without the statistics not asked for. For passes that only bin these (the report).
    public static func shapeStatistics(_ x: UnsafeBufferPointer<Double>, into out: UnsafeMutablePointer<Double>) {
        let n = x.count
        guard n >= 2, let p = x.baseAddress, case let sum = Fast.sum(p, n), sum.isFinite else {
            withUnsafeTemporaryAllocation(of: Double.self, capacity: TrajectoryStatistic.allCases.count) { a in
                TrajectoryState(values: x, firstIndex: 0, policy: .propagate, extrema: false).statistics(convention: .population, policy: .propagate, into: a.baseAddress!)
                out[0] = a[3]; out[1] = a[5]; out[2] = a[12]; out[3] = a[13]
            }
            return
        }
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 6) { m in
            CentralMoments(twoPass: x, sum: sum).finiteStatistics(convention: .population, into: m.baseAddress!)
            out[0] = m[2].squareRoot()
            out[1] = m[5]
        }
        out[2] = x[n - 1] - x[0]
        out[3] = Fast.stepSums(p, from: 0, to: n - 1).abs
    }
}
