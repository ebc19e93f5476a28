// The logistic law y = a + b·σ((x − m)/w), fitted by variable projection in its two nonlinear coefficients (m, w):
// for each (m, w) the best a, b are a linear least-squares fit, so the residual is a function of (m, v = ln w) alone,
// F(m, v) = −(g·yc)² / ‖gc‖² plus the series' centred sum of squares (g the law's basis at the abscissae, yc and gc
// centred). A grid of (m, w) shared by every series gives each series its start (one BLAS product of the centred
// series with the grid's centred unit bases); Newton's method on F with its exact gradient and Hessian, damped when
// the Hessian is not positive definite and kept inside the box m ∈ [0, 1], w ∈ [1e-3, 10] (a coordinate at its bound
// whose gradient points outwards is held), refines it. spec/RATIONALE.md §J has the measurements and what was tried.
import Foundation
import CBLAS

/// A law fitted per series by variable projection: a block of rows in, coefficients and fitted values out.
protocol NonlinearLaw: Sendable {
    /// Rows of `y` ([n × N]; rows not `finite` get NaN): the coefficients into `c` ([n × coefficients]) and the fitted
    /// values into `fitted` ([n × N]).
    func fit(_ y: UnsafePointer<Double>, rows n: Int, finite: [Bool], coefficients c: UnsafeMutablePointer<Double>, fitted: UnsafeMutablePointer<Double>)
}

extension OneParameterLaw: NonlinearLaw {}

struct LogisticLaw: NonlinearLaw {
    /// The box of the nonlinear coefficients: m in units of the run's span (x ∈ [0, 1]), v = ln w.
    static let mLow = 0.0, mHigh = 1.0
    static let wLow = 1e-3, wHigh = 10.0
    static let vLow = Foundation.log(wLow), vHigh = Foundation.log(wHigh)
    /// Newton iterations per series at most (measured: 4–8 on the shared runs' series, a few dozen at worst).
    static let maxIterations = 100
    /// Grid columns per width at most (a run of many snapshots samples its gaps' midpoints evenly).
    static let maxColumnsPerWidth = 256

    let x: [Double]
    /// The grid: (m, v) per column, and the centred unit bases there, [N × G] row-major.
    let gridM: [Double]
    let gridV: [Double]
    let q: [Double]

    init(abscissa x: [Double]) {
        self.x = x
        let N = x.count
        var spacing = Double.infinity
        for i in 1..<max(1, N) { spacing = min(spacing, x[i] - x[i - 1]) }
        if !(spacing > 0 && spacing.isFinite) { spacing = 1 }
        func evenly(_ a: [Double]) -> [Double] {
            guard a.count > Self.maxColumnsPerWidth else { return a }
            return (0..<Self.maxColumnsPerWidth).map { a[$0 * (a.count - 1) / (Self.maxColumnsPerWidth - 1)] }
        }
        let mids = evenly((1..<max(1, N)).map { 0.5 * (x[$0 - 1] + x[$0]) })
        // The sharpest width at the gaps' midpoints (a step between two snapshots); then widths doubling from a quarter
        // of the smallest gap: at the midpoints while the width is at most twice the gap, else m every width over 0…1.
        var points: [(Double, Double)] = mids.map { ($0, Self.wLow) }
        var w = max(spacing / 4, 2 * Self.wLow)
        while w < Self.wHigh {
            if w <= 2 * spacing {
                points += mids.map { ($0, w) }
            } else {
                let k = Int((1 / w).rounded(.up))
                points += (0...k).map { (Double($0) / Double(k), w) }
            }
            w *= 2
        }
        points += [(0, Self.wHigh), (0.5, Self.wHigh), (1, Self.wHigh)]
        gridM = points.map(\.0)
        gridV = points.map { Foundation.log($0.1) }
        let G = points.count
        var q = [Double](repeating: 0, count: N * G)
        var b = [Double](repeating: 0, count: N)
        for j in 0..<G {
            let (m, w) = points[j]
            var mean = 0.0
            for i in 0..<N { b[i] = Self.sigma((x[i] - m) / w); mean += b[i] }
            mean /= Double(N)
            var nn = 0.0
            for i in 0..<N { b[i] -= mean; nn += b[i] * b[i] }
            let inv = nn > 0 ? 1 / nn.squareRoot() : 0
            for i in 0..<N { q[i * G + j] = b[i] * inv }
        }
        self.q = q
    }

    @inline(__always) static func sigma(_ z: Double) -> Double { 1 / (1 + Foundation.exp(-z)) }
    /// w = e^v, kept to the box when rounding would step past its ends.
    @inline(__always) static func width(_ v: Double) -> Double { min(max(Foundation.exp(v), wLow), wHigh) }

    /// F, and with `second` its gradient and Hessian in (m, v), at one point. `yc` centred, `s` scratch of 4N.
    struct Point {
        var F = 0.0, P = 0.0, Q = 0.0, gMean = 0.0
        var dm = 0.0, dv = 0.0, hmm = 0.0, hmv = 0.0, hvv = 0.0
    }

    func evaluate(_ yc: UnsafePointer<Double>, m: Double, v: Double, second: Bool, scratch s: UnsafeMutablePointer<Double>) -> Point {
        let N = x.count, dn = Double(N)
        let iw = 1 / Self.width(v)
        let g = s, z = s + N, gm = s + 2 * N, gv = s + 3 * N
        var sg = 0.0
        for i in 0..<N { let zi = (x[i] - m) * iw; z[i] = zi; let gi = Self.sigma(zi); g[i] = gi; sg += gi }
        var p = Point()
        p.gMean = sg / dn
        guard second else {
            var P = 0.0, Q = 0.0
            for i in 0..<N { let c = g[i] - p.gMean; P += g[i] * yc[i]; Q += c * c }
            p.P = P; p.Q = Q; p.F = Q > 0 ? -(P * P) / Q : 0
            return p
        }
        // z_m = −1/w, z_v = −z, z_mm = 0, z_mv = 1/w, z_vv = z; g_θ = σ′·z_θ, g_θφ = σ″·z_θ·z_φ + σ′·z_θφ.
        var sm = 0.0, sv = 0.0
        for i in 0..<N {
            let s1 = g[i] * (1 - g[i])
            gm[i] = -s1 * iw; gv[i] = -s1 * z[i]
            sm += gm[i]; sv += gv[i]
        }
        let mm = sm / dn, mv = sv / dn
        var P = 0.0, Q = 0.0, Pm = 0.0, Pv = 0.0, Pmm = 0.0, Pmv = 0.0, Pvv = 0.0
        var Qm = 0.0, Qv = 0.0, cmm = 0.0, cmv = 0.0, cvv = 0.0, dmm = 0.0, dmv = 0.0, dvv = 0.0
        for i in 0..<N {
            let gi = g[i], zi = z[i], y = yc[i]
            let s1 = gi * (1 - gi), s2 = s1 * (1 - 2 * gi)
            let gmm = s2 * iw * iw, gmv = s2 * zi * iw + s1 * iw, gvv = s2 * zi * zi + s1 * zi
            let gc = gi - p.gMean, a = gm[i] - mm, b = gv[i] - mv
            P += gi * y; Q += gc * gc
            Pm += gm[i] * y; Pv += gv[i] * y
            Pmm += gmm * y; Pmv += gmv * y; Pvv += gvv * y
            Qm += gc * a; Qv += gc * b
            cmm += a * a; cmv += a * b; cvv += b * b
            dmm += gc * gmm; dmv += gc * gmv; dvv += gc * gvv
        }
        p.P = P; p.Q = Q
        guard Q > 0 else { return p }
        Qm *= 2; Qv *= 2
        let Qmm = 2 * (cmm + dmm), Qmv = 2 * (cmv + dmv), Qvv = 2 * (cvv + dvv)
        // F = −P·u with u = P/Q: F_i = −u(2P_i − u·Q_i); F_ij = −2Q·u_i·u_j − 2u·P_ij + u²·Q_ij, u_i = (P_i − u·Q_i)/Q.
        let u = P / Q
        p.F = -P * u
        p.dm = -u * (2 * Pm - u * Qm); p.dv = -u * (2 * Pv - u * Qv)
        let um = (Pm - u * Qm) / Q, uv = (Pv - u * Qv) / Q
        p.hmm = -2 * Q * um * um - 2 * u * Pmm + u * u * Qmm
        p.hmv = -2 * Q * um * uv - 2 * u * Pmv + u * u * Qmv
        p.hvv = -2 * Q * uv * uv - 2 * u * Pvv + u * u * Qvv
        return p
    }

    /// Newton's method from (m, v) on one centred series whose sum of squares is `sst`: the refined (m, v).
    func refine(_ yc: UnsafePointer<Double>, m m0: Double, v v0: Double, sst: Double, scratch: UnsafeMutablePointer<Double>) -> (Double, Double) {
        var m = m0, v = v0
        var pt = evaluate(yc, m: m, v: v, second: true, scratch: scratch)
        var lambda = 0.0
        for _ in 0..<Self.maxIterations {
            // Coordinates at a bound whose descent direction leaves the box are held.
            let freeM = !((m <= Self.mLow && pt.dm > 0) || (m >= Self.mHigh && pt.dm < 0))
            let freeV = !((v <= Self.vLow && pt.dv > 0) || (v >= Self.vHigh && pt.dv < 0))
            if !freeM && !freeV { break }
            var accepted = false, converged = false
            for _ in 0..<30 {
                var useM = freeM, useV = freeV, sm = 0.0, sv = 0.0, solved = true
                for _ in 0..<3 {
                    // (H + λ·diag|H|) s = −∇F on the coordinates in use.
                    let a = pt.hmm + lambda * (abs(pt.hmm) + 1e-300), c = pt.hvv + lambda * (abs(pt.hvv) + 1e-300), b = pt.hmv
                    sm = 0; sv = 0
                    if useM && useV {
                        let det = a * c - b * b
                        guard a > 0 && det > 0 else { solved = false; break }
                        sm = -(c * pt.dm - b * pt.dv) / det; sv = -(a * pt.dv - b * pt.dm) / det
                    } else if useM {
                        guard a > 0 else { solved = false; break }
                        sm = -pt.dm / a
                    } else if useV {
                        guard c > 0 else { solved = false; break }
                        sv = -pt.dv / c
                    }
                    // A step that would leave the box from a bound drops that coordinate, and the rest is solved again.
                    let leaveM = useM && ((m + sm < Self.mLow && m <= Self.mLow) || (m + sm > Self.mHigh && m >= Self.mHigh))
                    let leaveV = useV && ((v + sv < Self.vLow && v <= Self.vLow) || (v + sv > Self.vHigh && v >= Self.vHigh))
                    if !leaveM && !leaveV { break }
                    if leaveM { useM = false }
                    if leaveV { useV = false }
                }
                if !solved { lambda = max(lambda * 4, 1e-3); continue }
                let predicted = -(pt.dm * sm + pt.dv * sv + 0.5 * (pt.hmm * sm * sm + 2 * pt.hmv * sm * sv + pt.hvv * sv * sv))
                if !(predicted > 1e-13 * max(sst + pt.F, 1e-16 * sst)) { converged = true; break }
                let nm = min(max(m + sm, Self.mLow), Self.mHigh), nv = min(max(v + sv, Self.vLow), Self.vHigh)
                // With its derivatives: most Newton steps are taken, and the next iteration needs them there.
                let trial = evaluate(yc, m: nm, v: nv, second: true, scratch: scratch)
                if trial.F < pt.F {
                    m = nm; v = nv
                    pt = trial
                    lambda = lambda > 1e-6 ? lambda / 4 : 0
                    accepted = true
                    break
                }
                lambda = max(lambda * 4, 1e-3)
            }
            if converged || !accepted { break }
        }
        return (m, v)
    }

    func fit(_ y: UnsafePointer<Double>, rows n: Int, finite: [Bool], coefficients c: UnsafeMutablePointer<Double>, fitted: UnsafeMutablePointer<Double>) {
        let N = x.count, G = gridM.count
        var yc = [Double](repeating: 0, count: n * N), means = [Double](repeating: 0, count: n), sst = [Double](repeating: 0, count: n)
        for p in 0..<n where finite[p] {
            var s = 0.0
            for i in 0..<N { s += y[p * N + i] }
            let mean = s / Double(N)
            means[p] = mean
            var ss = 0.0
            for i in 0..<N { let d = y[p * N + i] - mean; yc[p * N + i] = d; ss += d * d }
            sst[p] = ss
        }
        var zg = [Double](repeating: 0, count: n * G)
        yc.withUnsafeBufferPointer { a in q.withUnsafeBufferPointer { b in zg.withUnsafeMutableBufferPointer { o in
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(G), Int32(N), 1.0, a.baseAddress!, Int32(N), b.baseAddress!, Int32(G), 0.0, o.baseAddress!, Int32(G))
        } } }
        var scratch = [Double](repeating: 0, count: 4 * N)
        yc.withUnsafeBufferPointer { ycb in scratch.withUnsafeMutableBufferPointer { sb in
            let s = sb.baseAddress!
            for p in 0..<n {
                guard finite[p] else { for k in 0..<4 { c[p * 4 + k] = .nan }; for i in 0..<N { fitted[p * N + i] = .nan }; continue }
                let row = ycb.baseAddress! + p * N
                var j = 0, best = -1.0
                for k in 0..<G { let v = zg[p * G + k] * zg[p * G + k]; if v > best { best = v; j = k } }
                let (m, v) = sst[p] > 0 ? refine(row, m: gridM[j], v: gridV[j], sst: sst[p], scratch: s) : (gridM[j], gridV[j])
                // a, b at (m, v), and the fitted values.
                let pt = evaluate(row, m: m, v: v, second: false, scratch: s)
                let b = pt.Q > 0 ? pt.P / pt.Q : 0
                let a = means[p] - b * pt.gMean
                c[p * 4] = a; c[p * 4 + 1] = b; c[p * 4 + 2] = m; c[p * 4 + 3] = Self.width(v)
                for i in 0..<N { fitted[p * N + i] = a + b * s[i] }
            }
        } }
    }
}
