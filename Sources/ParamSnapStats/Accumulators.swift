// Mergeable moment accumulators (spec/MOMENTS.md §2): Pébay (2008) central moments, lag-1 step co-moments, trajectory state.
import Foundation

/// Count, mean and central moment sums M2…M4 of a stream of finite values, mergeable in any grouping
/// (the pairwise update formulas of Chan et al. and Pébay 2008, SAND2008-6212 eq. 3.1).
/// `m2 = Σ(x − mean)²`, `m3 = Σ(x − mean)³`, `m4 = Σ(x − mean)⁴`.
public struct CentralMoments: Sendable, Equatable {
    public var count: Double = 0
    public var mean: Double = 0
    public var m2: Double = 0
    public var m3: Double = 0
    public var m4: Double = 0

    /// An empty accumulator.
    public init() {}

    /// Exact two-pass moments of `values` (all finite): the mean first, then the sums of centred powers.
    public init(twoPass values: UnsafeBufferPointer<Double>) {
        self.init(twoPass: values, sum: Fast.sum(values.baseAddress!, values.count))
    }

    /// Two-pass moments given the values' sum (computed by the caller's first pass).
    init(twoPass values: UnsafeBufferPointer<Double>, sum s: Double) {
        let n = values.count
        guard n > 0 else { return }
        let p = values.baseAddress!
        let x0 = p[0]
        // A constant sequence has exactly its value as mean and zero central moments (s / n may round).
        if Fast.allEqual(p, n, to: x0) { count = Double(n); mean = x0; return }
        let mean = s / Double(n)
        let (a2, a3, a4) = Fast.centralSums(p, n, mean: mean)
        self.count = Double(n); self.mean = mean; m2 = a2; m3 = a3; m4 = a4
    }

    /// Adds one value (Pébay's update with a one-element second set).
    public mutating func add(_ x: Double) {
        let n1 = count
        let n = n1 + 1
        let delta = x - mean
        let dn = delta / n
        let dn2 = dn * dn
        let t1 = delta * dn * n1
        mean += dn
        m4 += t1 * dn2 * (n * n - 3 * n + 3) + 6 * dn2 * m2 - 4 * dn * m3
        m3 += t1 * dn * (n - 2) - 3 * dn * m2
        m2 += t1
        count = n
    }

    /// Merges `b` (another disjoint set of values) into `self`.
    public mutating func merge(_ b: CentralMoments) {
        if b.count == 0 { return }
        if count == 0 { self = b; return }
        let na = count, nb = b.count, n = na + nb
        let delta = b.mean - mean
        let d2 = delta * delta
        let nanb = na * nb
        let m2n = m2 + b.m2 + d2 * nanb / n
        let m3n = m3 + b.m3 + d2 * delta * nanb * (na - nb) / (n * n) + 3 * delta * (na * b.m2 - nb * m2) / n
        let m4n = m4 + b.m4 + d2 * d2 * nanb * (na * na - nanb + nb * nb) / (n * n * n)
            + 6 * d2 * (na * na * b.m2 + nb * nb * m2) / (n * n) + 4 * delta * (na * b.m3 - nb * m3) / n
        mean += delta * nb / n
        m2 = m2n; m3 = m3n; m4 = m4n
        count = n
    }

    /// The merge of `a` then `b`.
    public static func merged(_ a: CentralMoments, _ b: CentralMoments) -> CentralMoments {
        var r = a; r.merge(b); return r
    }
}

/// Count, means and co-moment `c = Σ(x − x̄)(y − ȳ)` of a stream of pairs, mergeable (Chan et al. / Pébay).
public struct CoMoment: Sendable, Equatable {
    public var count: Double = 0
    public var meanX: Double = 0
    public var meanY: Double = 0
    public var c: Double = 0

    /// An empty accumulator.
    public init() {}

    /// Merges `b` (disjoint pairs) into `self`.
    public mutating func merge(_ b: CoMoment) {
        if b.count == 0 { return }
        if count == 0 { self = b; return }
        let na = count, nb = b.count, n = na + nb
        let dx = b.meanX - meanX, dy = b.meanY - meanY
        c += b.c + dx * dy * na * nb / n
        meanX += dx * nb / n
        meanY += dy * nb / n
        count = n
    }

    /// Adds one pair.
    public mutating func add(_ x: Double, _ y: Double) {
        var one = CoMoment()
        one.count = 1; one.meanX = x; one.meanY = y
        merge(one)
    }
}

/// Mergeable state of a sequence of steps Δᵢ = xᵢ₊₁ − xᵢ: their moments, Σ|Δ|, and the lag-1 pairs (Δᵢ, Δᵢ₊₁),
/// with the first and last step kept so that concatenating two sequences adds the pair across the seam.
public struct StepSeries: Sendable, Equatable {
    /// Count, mean and M2 of the steps (m3, m4 unused).
    public var steps = CentralMoments()
    /// Σ|Δ|, the path length (non-finite steps propagate).
    public var absSum: Double = 0
    /// First and last step (meaningful when `steps.count > 0`).
    public var firstStep: Double = 0
    public var lastStep: Double = 0
    /// The pairs (Δᵢ, Δᵢ₊₁).
    public var pairs = CoMoment()
    /// Whether a step was NaN or infinite (the autocorrelation is then NaN).
    public var nonFinite = false

    /// An empty series.
    public init() {}

    /// The series of one step.
    public init(step d: Double) {
        steps.count = 1; steps.mean = d
        absSum = abs(d); firstStep = d; lastStep = d
        nonFinite = !d.isFinite
    }

    /// Appends the steps of `b` after those of `self` (adds the lag pair across the seam).
    public mutating func append(_ b: StepSeries) {
        if b.steps.count == 0 { return }
        if steps.count == 0 { self = b; return }
        steps.merge(b.steps)
        absSum += b.absSum
        pairs.add(lastStep, b.firstStep)
        pairs.merge(b.pairs)
        lastStep = b.lastStep
        nonFinite = nonFinite || b.nonFinite
    }

    /// Lag-1 autocorrelation r₁ = Σᵢ(Δᵢ − Δ̄)(Δᵢ₊₁ − Δ̄) / Σᵢ(Δᵢ − Δ̄)² (the sample ACF, statsmodels `acf`),
    /// NaN with fewer than 2 steps, a non-finite step, or steps constant to rounding (M2/m ≤ (ε·Δ̄)²).
    public var lag1Autocorrelation: Double {
        let m = steps.count
        guard m >= 2, !nonFinite else { return .nan }
        let v = steps.m2 / m
        guard v > (Double.ulpOfOne * steps.mean) * (Double.ulpOfOne * steps.mean) else { return .nan }
        // Σ(x − Δ̄)(y − Δ̄) = C + n·(x̄ − Δ̄)(ȳ − Δ̄): exact algebra, no cancellation of raw sums.
        let num = pairs.c + pairs.count * (pairs.meanX - steps.mean) * (pairs.meanY - steps.mean)
        return num / steps.m2
    }
}

/// How statistics treat NaN and ±Inf.
public enum NonFinitePolicy: String, Sendable {
    /// As numpy/scipy: NaN (or +Inf and −Inf together) makes the moments NaN, min/max NaN at the first NaN.
    case propagate
    /// Non-finite values are dropped before anything is computed; `count` says how many remained.
    case skip
}

/// Mergeable state of one trajectory (or of one segment of it): everything the per-parameter statistics need.
/// Plain data (no references), so it can be stored as bytes in a spill file.
public struct TrajectoryState: Sendable, Equatable {
    /// Moments of the finite values used.
    public var moments = CentralMoments()
    /// Values seen (finite or not), values that were NaN, +Inf, −Inf.
    public var seen: Double = 0
    public var nanCount: Double = 0
    public var posInfCount: Double = 0
    public var negInfCount: Double = 0
    /// Snapshot index of the first NaN, or −1.
    public var firstNaNIndex: Double = -1
    /// Smallest / largest non-NaN used value and the snapshot where it first occurs (−1: none).
    public var min: Double = .infinity
    public var argmin: Double = -1
    public var max: Double = -.infinity
    public var argmax: Double = -1
    /// First / last used value and its snapshot (−1: none).
    public var first: Double = .nan
    public var firstIndex: Double = -1
    public var last: Double = .nan
    public var lastIndex: Double = -1
    /// Steps between consecutive used values.
    public var steps = StepSeries()

    /// An empty state.
    public init() {}

    /// Adds value `x` observed at snapshot `index` (indices must increase). Under `.skip`, non-finite values are ignored.
    public mutating func add(_ x: Double, at index: Int, policy: NonFinitePolicy) {
        let i = Double(index)
        if !x.isFinite {
            if policy == .skip { return }
            seen += 1
            if x.isNaN {
                nanCount += 1
                if firstNaNIndex < 0 { firstNaNIndex = i }
            } else if x > 0 {
                posInfCount += 1
            } else {
                negInfCount += 1
            }
        } else {
            seen += 1
            moments.add(x)
        }
        if !x.isNaN {
            if argmin < 0 || x < min { min = x; argmin = i }
            if argmax < 0 || x > max { max = x; argmax = i }
        }
        if firstIndex < 0 { first = x; firstIndex = i } else { steps.append(StepSeries(step: x - last)) }
        last = x; lastIndex = i
    }

    /// The state of values `x[0..<n]` at snapshots `firstIndex, firstIndex + 1, …`: a fast two-pass path when all are
    /// finite, else value by value.
    /// `extrema: false` skips min/argmin/max/argmax and `steps: false` the step series (their statistics are then
    /// meaningless): for passes that output only the moments.
    public init(values x: UnsafeBufferPointer<Double>, firstIndex f: Int, policy: NonFinitePolicy, extrema: Bool = true, steps needSteps: Bool = true) {
        let n = x.count
        guard n > 0 else { return }
        let p = x.baseAddress!
        let sum = Fast.sum(p, n)
        guard sum.isFinite else {
            for k in 0..<n { add(x[k], at: f + k, policy: policy) }
            return
        }
        moments = CentralMoments(twoPass: x, sum: sum)
        seen = Double(n)
        if extrema {
            var mn = x[0], mx = x[0], imn = 0, imx = 0
            for k in 1..<n {
                let v = x[k]
                if v < mn { mn = v; imn = k }
                if v > mx { mx = v; imx = k }
            }
            min = mn; argmin = Double(f + imn); max = mx; argmax = Double(f + imx)
        }
        first = x[0]; firstIndex = Double(f); last = x[n - 1]; lastIndex = Double(f + n - 1)
        guard n >= 2, needSteps else { return }
        // Steps d[k] = x[k+1] − x[k], k in 0..<m: sums (all, all but the last, all but the first), then centred sums.
        let m = n - 1
        let (sd, ad) = Fast.stepSums(p, from: 0, to: m)
        let sx = m > 1 ? Fast.stepSums(p, from: 0, to: m - 1).sum : 0
        let syDirect = m > 1 ? Fast.stepSums(p, from: 1, to: m).sum : 0
        let d0 = x[1] - x[0], dl = x[n - 1] - x[n - 2]
        let dmean = sd / Double(m)
        let mx_ = m > 1 ? sx / Double(m - 1) : 0, my_ = m > 1 ? syDirect / Double(m - 1) : 0
        let (m2d, c) = Fast.stepCentralSums(p, m: m, mean: dmean, meanX: mx_, meanY: my_)
        steps.steps.count = Double(m); steps.steps.mean = dmean; steps.steps.m2 = m2d
        steps.absSum = ad; steps.firstStep = d0; steps.lastStep = dl
        steps.nonFinite = !ad.isFinite
        if m > 1 { steps.pairs.count = Double(m - 1); steps.pairs.meanX = mx_; steps.pairs.meanY = my_; steps.pairs.c = c }
    }

    /// Appends `b`, the state of later snapshots, to `self` (order matters only for first/last, ties and steps).
    public mutating func append(_ b: TrajectoryState) {
        if b.seen == 0 { return }
        if seen == 0 { self = b; return }
        moments.merge(b.moments)
        seen += b.seen
        nanCount += b.nanCount; posInfCount += b.posInfCount; negInfCount += b.negInfCount
        if firstNaNIndex < 0 { firstNaNIndex = b.firstNaNIndex }
        // Ties keep the earlier snapshot, as numpy's argmin/argmax do.
        if b.argmin >= 0, argmin < 0 || b.min < min { min = b.min; argmin = b.argmin }
        if b.argmax >= 0, argmax < 0 || b.max > max { max = b.max; argmax = b.argmax }
        if firstIndex >= 0, b.firstIndex >= 0 {
            var seam = StepSeries(step: b.first - last)
            seam.append(b.steps)
            steps.append(seam)
        }
        if firstIndex < 0 { first = b.first; firstIndex = b.firstIndex; steps = b.steps }
        if b.lastIndex >= 0 { last = b.last; lastIndex = b.lastIndex }
    }
}

/// The per-trajectory loops, with four independent accumulators (SIMD4 lanes) so additions do not wait on each
/// other: sums change only in rounding order (well inside the 1e-12 accuracy checked against numpy).
enum Fast {
    @inline(__always) static func load4(_ p: UnsafePointer<Double>, _ i: Int) -> SIMD4<Double> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD4<Double>.self)
    }

    static func sum(_ p: UnsafePointer<Double>, _ n: Int) -> Double {
        var acc = SIMD4<Double>(repeating: 0)
        var i = 0
        while i &+ 4 <= n { acc += load4(p, i); i &+= 4 }
        var s = (acc[0] + acc[1]) + (acc[2] + acc[3])
        while i < n { s += p[i]; i &+= 1 }
        return s
    }

    static func allEqual(_ p: UnsafePointer<Double>, _ n: Int, to x0: Double) -> Bool {
        for i in 0..<n where p[i] != x0 { return false }
        return true
    }

    /// Σ(x − mean)², Σ(x − mean)³, Σ(x − mean)⁴.
    static func centralSums(_ p: UnsafePointer<Double>, _ n: Int, mean: Double) -> (Double, Double, Double) {
        var a2 = SIMD4<Double>(repeating: 0), a3 = a2, a4 = a2
        let mv = SIMD4<Double>(repeating: mean)
        var i = 0
        while i &+ 4 <= n {
            let d = load4(p, i) - mv
            let d2 = d * d
            a2 += d2; a3 += d2 * d; a4 += d2 * d2
            i &+= 4
        }
        var s2 = (a2[0] + a2[1]) + (a2[2] + a2[3])
        var s3 = (a3[0] + a3[1]) + (a3[2] + a3[3])
        var s4 = (a4[0] + a4[1]) + (a4[2] + a4[3])
        while i < n {
            let d = p[i] - mean
            let d2 = d * d
            s2 += d2; s3 += d2 * d; s4 += d2 * d2
            i &+= 1
        }
        return (s2, s3, s4)
    }

    /// Σ d[k] and Σ |d[k]| for k in lo..<hi, d[k] = x[k+1] − x[k].
    static func stepSums(_ p: UnsafePointer<Double>, from lo: Int, to hi: Int) -> (sum: Double, abs: Double) {
        var s = SIMD4<Double>(repeating: 0), a = s
        var k = lo
        while k &+ 4 <= hi {
            let d = load4(p, k &+ 1) - load4(p, k)
            s += d
            a += SIMD4<Double>(abs(d[0]), abs(d[1]), abs(d[2]), abs(d[3]))
            k &+= 4
        }
        var ss = (s[0] + s[1]) + (s[2] + s[3]), aa = (a[0] + a[1]) + (a[2] + a[3])
        while k < hi { let d = p[k &+ 1] - p[k]; ss += d; aa += abs(d); k &+= 1 }
        return (ss, aa)
    }

    /// Σ (d[k] − mean)² over k in 0..<m, and Σ (d[k−1] − meanX)(d[k] − meanY) over k in 1..<m.
    static func stepCentralSums(_ p: UnsafePointer<Double>, m: Int, mean: Double, meanX: Double, meanY: Double) -> (Double, Double) {
        var e2 = SIMD4<Double>(repeating: 0), cc = e2
        let mv = SIMD4<Double>(repeating: mean), mxv = SIMD4<Double>(repeating: meanX), myv = SIMD4<Double>(repeating: meanY)
        // Lanes k = 1…: d[k] = x[k+1] − x[k], d[k−1] = x[k] − x[k−1].
        let d0 = p[1] - p[0]
        var s2 = (d0 - mean) * (d0 - mean)
        var k = 1
        while k &+ 4 <= m {
            let xk = load4(p, k)
            let d = load4(p, k &+ 1) - xk
            let dp = xk - load4(p, k &- 1)
            let e = d - mv
            e2 += e * e
            cc += (dp - mxv) * (d - myv)
            k &+= 4
        }
        s2 += (e2[0] + e2[1]) + (e2[2] + e2[3])
        var c = (cc[0] + cc[1]) + (cc[2] + cc[3])
        while k < m {
            let d = p[k &+ 1] - p[k], dp = p[k] - p[k &- 1]
            s2 += (d - mean) * (d - mean)
            c += (dp - meanX) * (d - meanY)
            k &+= 1
        }
        return (s2, c)
    }
}
