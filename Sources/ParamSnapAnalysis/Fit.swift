// Generating functions: every parameter's trajectory (or steps) fitted by least squares to families of laws in the
// training step, in one streaming pass. The families linear in their coefficients share one design matrix X per
// run, so a block's coefficients are one BLAS product with X's pseudo-inverse (LAPACK dgelsd, an SVD: what numpy's
// lstsq uses) and its residuals a second.
import Foundation
import Synchronization
import CBLAS
@_spi(Internals) import ParamSnap
@_spi(Internals) import PSnapCodec

/// A family of laws y(t) fitted to every series.
public enum FitFamily: Sendable, Equatable, CustomStringConvertible {
    /// a + b·x, x = (t − t₀)/(t_last − t₀).
    case linear
    /// a + b·x + c·x².
    case quadratic
    /// a + b·L, L the cumulative learning rate (from the snapshots' `lr` or `learning_rate` metadata), normalised.
    case lr
    /// a + b·L + c·L².
    case lr2
    /// a + Σ bⱼ·vⱼ over the run's first K principal modes (`psnap modes`).
    case modes(Int)
    /// a + b·e^(−x/τ): exponential approach (variable projection: linear in a, b for each τ, τ refined in 1-D).
    case exp
    /// a + b·s^(−α), s = 1 + (t − t₀)/(t₁ − t₀) (t in units of the first interval, from 1): power law.
    case power
    /// a + b·σ((x − m)/w), σ(z) = 1/(1 + e^(−z)): a transition of width w centred at m, both in units of the run's
    /// span (m in 0 … 1, w in 1e-3 … 10; variable projection in the two nonlinear coefficients).
    case logistic

    public var description: String {
        switch self {
        case .linear: return "linear"
        case .quadratic: return "quadratic"
        case .lr: return "lr"
        case .lr2: return "lr2"
        case .modes(let k): return "modes:\(k)"
        case .exp: return "exp"
        case .power: return "power"
        case .logistic: return "logistic"
        }
    }

    /// Parses `linear`, `quadratic`, `lr`, `lr2`, `modes:K`.
    public init?(_ s: String) {
        switch s {
        case "linear": self = .linear
        case "quadratic": self = .quadratic
        case "lr": self = .lr
        case "lr2": self = .lr2
        case "exp": self = .exp
        case "power": self = .power
        case "logistic": self = .logistic
        default:
            guard s.hasPrefix("modes:"), let k = Int(s.dropFirst(6)), k >= 1 else { return nil }
            self = .modes(k)
        }
    }

    /// Names of the coefficients.
    public var coefficientNames: [String] {
        switch self {
        case .linear, .lr: return ["a", "b"]
        case .quadratic, .lr2: return ["a", "b", "c"]
        case .modes(let k): return ["a"] + (1...k).map { "b\($0)" }
        case .exp: return ["a", "b", "tau"]
        case .power: return ["a", "b", "alpha"]
        case .logistic: return ["a", "b", "m", "w"]
        }
    }

    /// Whether the law is linear in all its coefficients (one design matrix).
    var isLinear: Bool {
        switch self {
        case .exp, .power, .logistic: return false
        default: return true
        }
    }
}

/// Errors of the fit pass.
public enum FitError: ParamSnapError, Equatable {
    case noLearningRate(family: String)
    case tooFewPoints(points: Int, family: String, coefficients: Int)
    case stepsNotIncreasing(index: Int)
    case noFamily
    case modesMissing(family: String, points: Int)

    public var kind: ErrorKind {
        switch self {
        case .noLearningRate, .noFamily, .modesMissing: return .usage
        case .tooFewPoints, .stepsNotIncreasing: return .corruptData
        }
    }

    public var description: String {
        switch self {
        case .noLearningRate(let f): return "family \(f) needs the learning rate at every snapshot after the first (metadata lr or learning_rate), and the run lacks it"
        case .tooFewPoints(let n, let f, let k): return "family \(f) has \(k) coefficients: it needs more than \(k) points per series, the run gives \(n)"
        case .stepsNotIncreasing(let i): return "snapshot \(i)'s step does not increase: the fits need increasing steps"
        case .noFamily: return "no family to fit"
        case .modesMissing(let f, let n): return "family \(f) needs at least that many principal modes of the run's series (\(n) points each), and none or too few were given"
        }
    }
}

/// What the fit pass found, beside the per-parameter output.
public struct FitSummary: Sendable {
    public var families: [FitFamily]
    /// The abscissae used: x (normalised steps) and, when present, L (normalised cumulative learning rate).
    public var x: [Double]
    public var cumulativeLR: [Double]?
    /// Series fitted, and left out (NaN or infinity).
    public var series: Int
    public var nonFinite: Int
    /// Per family: how many series it describes best (lowest AIC), and a histogram of its R² (`Fit.r2Bins` bins over [0, 1],
    /// values below 0 in the first) for the medians.
    public var best: [Int]
    public var r2Histogram: [[Int]]
    /// Per selected tensor, per family: series it describes best.
    public var tensorNames: [String]
    public var tensorBest: [[Int]]

    /// The median R² of family f (the centre of the histogram bin holding the median).
    public func medianR2(_ f: Int) -> Double {
        let h = r2Histogram[f], total = h.reduce(0, +)
        guard total > 0 else { return .nan }
        var acc = 0
        for (i, c) in h.enumerated() { acc += c; if 2 * acc >= total { return (Double(i) + 0.5) / Double(h.count) } }
        return 1
    }
}

/// A law y = a + b·g(θ, u) with one nonlinear parameter θ, fitted by variable projection: for each θ the best a, b
/// are a linear least-squares fit, so the residual depends on θ alone. θ is first chosen on a log-spaced grid shared
/// by every series (one BLAS product of the centred series with the grid's centred unit bases), then refined by
/// successive parabolic interpolation on log θ inside the bracket of the grid's best point.
struct OneParameterLaw: Sendable {
    enum Kind: Sendable { case exp, power }
    let kind: Kind
    /// x ∈ [0, 1] for exp; ln s for power.
    let u: [Double]
    /// Grid of log θ, and the centred unit bases there: [N × m], column j.
    let grid: [Double]
    let q: [Double]

    static let gridPoints = 48

    init(kind: Kind, abscissa: [Double]) {
        self.kind = kind
        u = kind == .exp ? abscissa : abscissa.map { Foundation.log($0) }
        // τ from 1e-3 to 1e3 (x units); α from 1e-3 to 10.
        let (lo, hi) = kind == .exp ? (Foundation.log(1e-3), Foundation.log(1e3)) : (Foundation.log(1e-3), Foundation.log(10.0))
        let m = Self.gridPoints
        grid = (0..<m).map { lo + (hi - lo) * Double($0) / Double(m - 1) }
        let N = abscissa.count
        var q = [Double](repeating: 0, count: N * m)
        for (j, g) in grid.enumerated() {
            var b = Self.basis(kind, u: u, logTheta: g)
            let mean = b.reduce(0, +) / Double(N)
            var nn = 0.0
            for i in 0..<N { b[i] -= mean; nn += b[i] * b[i] }
            let inv = nn > 0 ? 1 / nn.squareRoot() : 0
            for i in 0..<N { q[i * m + j] = b[i] * inv }
        }
        self.q = q
    }

    static func basis(_ kind: Kind, u: [Double], logTheta: Double) -> [Double] {
        let th = Foundation.exp(logTheta)
        switch kind {
        case .exp: return u.map { Foundation.exp(-$0 / th) }
        case .power: return u.map { Foundation.exp(-th * $0) }
        }
    }

    /// Rows of `y` ([n × N]; non-finite rows skipped): a, b, θ into `coefficients` ([n × 3]) and the fitted values.
    func fit(_ y: UnsafePointer<Double>, rows n: Int, finite: [Bool], coefficients c: UnsafeMutablePointer<Double>, fitted: UnsafeMutablePointer<Double>) {
        let N = u.count, m = grid.count
        var yc = [Double](repeating: 0, count: n * N), means = [Double](repeating: 0, count: n)
        for p in 0..<n where finite[p] {
            var s = 0.0
            for i in 0..<N { s += y[p * N + i] }
            let mean = s / Double(N)
            means[p] = mean
            for i in 0..<N { yc[p * N + i] = y[p * N + i] - mean }
        }
        var z = [Double](repeating: 0, count: n * m)
        yc.withUnsafeBufferPointer { a in q.withUnsafeBufferPointer { b in z.withUnsafeMutableBufferPointer { o in
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(m), Int32(N), 1.0, a.baseAddress!, Int32(N), b.baseAddress!, Int32(m), 0.0, o.baseAddress!, Int32(m))
        } } }
        var g = [Double](repeating: 0, count: N)
        for p in 0..<n {
            guard finite[p] else { for k in 0..<3 { c[p * 3 + k] = .nan }; for i in 0..<N { fitted[p * N + i] = .nan }; continue }
            let row = Array(yc[(p * N)..<((p + 1) * N)])
            // −(projection)² at log θ: the residual less a constant.
            func f(_ t: Double) -> Double {
                g = Self.basis(kind, u: u, logTheta: t)
                let mean = g.reduce(0, +) / Double(N)
                var dot = 0.0, nn = 0.0
                for i in 0..<N { let v = g[i] - mean; dot += v * row[i]; nn += v * v }
                return nn > 0 ? -(dot * dot) / nn : 0
            }
            var j = 0, bestZ = -1.0
            for k in 0..<m { let v = z[p * m + k] * z[p * m + k]; if v > bestZ { bestZ = v; j = k } }
            var best = grid[j]
            if j > 0 && j < m - 1 {
                var a = grid[j - 1], b = grid[j], cc = grid[j + 1]
                var fa = -z[p * m + j - 1] * z[p * m + j - 1], fb = -bestZ, fc = -z[p * m + j + 1] * z[p * m + j + 1]
                for _ in 0..<40 {
                    let den = (b - a) * (fb - fc) - (b - cc) * (fb - fa)
                    var v = den != 0 ? b - 0.5 * ((b - a) * (b - a) * (fb - fc) - (b - cc) * (b - cc) * (fb - fa)) / den : .nan
                    // Outside the bracket or too close to b: a golden-section step into the larger side instead.
                    if !v.isFinite || v <= a || v >= cc || abs(v - b) < 1e-12 {
                        v = (b - a) > (cc - b) ? b - 0.381966 * (b - a) : b + 0.381966 * (cc - b)
                    }
                    let fv = f(v)
                    if fv < fb {
                        if v < b { cc = b; fc = fb } else { a = b; fa = fb }
                        b = v; fb = fv
                    } else {
                        if v < b { a = v; fa = fv } else { cc = v; fc = fv }
                    }
                    if cc - a < 1e-9 { break }
                }
                best = b
            }
            // a, b at the chosen θ, and the fitted values.
            g = Self.basis(kind, u: u, logTheta: best)
            let gm = g.reduce(0, +) / Double(N)
            var dot = 0.0, nn = 0.0
            for i in 0..<N { let v = g[i] - gm; dot += v * row[i]; nn += v * v }
            let bc = nn > 0 ? dot / nn : 0
            let ac = means[p] - bc * gm
            c[p * 3] = ac; c[p * 3 + 1] = bc; c[p * 3 + 2] = Foundation.exp(best)
            for i in 0..<N { fitted[p * N + i] = ac + bc * g[i] }
        }
    }
}

/// The fitted families of one run: their design matrices and pseudo-inverses (linear laws) or variable-projection
/// laws (exp, power, logistic), and how a block of series is fitted to all of them.
public struct FitModels: Sendable {
    public let families: [FitFamily]
    let designs: [[Double]]
    let pinvs: [[Double]]
    let laws: [(any NonlinearLaw)?]
    /// Points per series, and values per series in the output rows (per family its coefficients, sse, r2, aic, bic; best).
    public let points: Int
    public let width: Int

    /// `x` the normalised steps, `L` the normalised cumulative learning rate, `modes` the mode shapes, `power` the
    /// power law's abscissa s (all of one length).
    public init(families: [FitFamily], x: [Double], L: [Double]?, modes: [[Double]], power: [Double]) throws {
        self.families = families
        let N = x.count
        points = N
        designs = families.map { Fit.design($0, x: x, L: L, modes: modes) }
        pinvs = try zip(families, designs).map { $0.isLinear ? try Fit.pseudoInverse($1, rows: N, columns: $0.coefficientNames.count) : [] }
        laws = families.map { f -> (any NonlinearLaw)? in
            switch f {
            case .exp: return OneParameterLaw(kind: .exp, abscissa: x)
            case .power: return OneParameterLaw(kind: .power, abscissa: power)
            case .logistic: return LogisticLaw(abscissa: x)
            default: return nil
            }
        }
        width = Fit.outputNames(families).count
    }

    /// Fits `n` series ([n × points] in `rows`; rows with NaN or infinity are zeroed and left out) to every family,
    /// writing each series' output row into `out` ([n × width]). Returns which rows were finite, each row's best family
    /// (−1 when left out) and each family's R² per row.
    public func fitRows(_ rows: inout [Double], count n: Int, coef: inout [Double], fitted: inout [Double], out: inout [Double])
        -> (finite: [Bool], best: [Int], r2: [[Double]]) {
        let N = points
        if fitted.count < n * N { fitted = [Double](repeating: 0, count: n * N) }
        if out.count < n * width { out = [Double](repeating: 0, count: n * width) }
        var finite = [Bool](repeating: true, count: n), sst = [Double](repeating: 0, count: n)
        for p in 0..<n {
            var sum = 0.0, ok = true
            for s in 0..<N { let v = rows[p * N + s]; if !v.isFinite { ok = false }; sum += v }
            finite[p] = ok
            if ok { let m = sum / Double(N); var q = 0.0; for s in 0..<N { let c = rows[p * N + s] - m; q += c * c }; sst[p] = q } else {
                for s in 0..<N { rows[p * N + s] = 0 }
            }
        }
        var bestAIC = [Double](repeating: .infinity, count: n), bestF = [Int](repeating: -1, count: n)
        var r2s = [[Double]](repeating: [], count: families.count)
        var col = 0
        for (fi, f) in families.enumerated() {
            let pc = f.coefficientNames.count
            if coef.count < n * pc { coef = [Double](repeating: 0, count: n * pc) }
            if let law = laws[fi] {
                // a, b and the nonlinear coefficients per row by variable projection; the fitted values straight from them.
                rows.withUnsafeBufferPointer { y in coef.withUnsafeMutableBufferPointer { c in fitted.withUnsafeMutableBufferPointer { fit in
                    law.fit(y.baseAddress!, rows: n, finite: finite, coefficients: c.baseAddress!, fitted: fit.baseAddress!)
                } } }
            } else {
                // C = Y · pinv(X)ᵀ  [n × p];  Fitted = C · Xᵀ  [n × N].
                rows.withUnsafeBufferPointer { y in pinvs[fi].withUnsafeBufferPointer { pi in coef.withUnsafeMutableBufferPointer { c in
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(pc), Int32(N), 1.0, y.baseAddress!, Int32(N), pi.baseAddress!, Int32(N), 0.0, c.baseAddress!, Int32(pc))
                } } }
                coef.withUnsafeBufferPointer { c in designs[fi].withUnsafeBufferPointer { xd in fitted.withUnsafeMutableBufferPointer { fit in
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(N), Int32(pc), 1.0, c.baseAddress!, Int32(pc), xd.baseAddress!, Int32(pc), 0.0, fit.baseAddress!, Int32(N))
                } } }
            }
            let dn = Double(N)
            var r2f = [Double](repeating: .nan, count: n)
            for p in 0..<n {
                let base = p * width + col
                guard finite[p] else { for j in 0..<(pc + 4) { out[base + j] = .nan }; continue }
                var sse = 0.0
                for s in 0..<N { let e = rows[p * N + s] - fitted[p * N + s]; sse += e * e }
                let r2 = sst[p] > 0 ? 1 - sse / sst[p] : .nan
                let aic = dn * log(sse / dn) + 2 * Double(pc), bic = dn * log(sse / dn) + Double(pc) * log(dn)
                for j in 0..<pc { out[base + j] = coef[p * pc + j] }
                out[base + pc] = sse; out[base + pc + 1] = r2; out[base + pc + 2] = aic; out[base + pc + 3] = bic
                if aic < bestAIC[p] || (bestF[p] < 0 && !aic.isNaN) { bestAIC[p] = aic; bestF[p] = fi }
                r2f[p] = r2
            }
            r2s[fi] = r2f
            col += pc + 4
        }
        for p in 0..<n { out[p * width + width - 1] = Double(bestF[p]) }
        return (finite, bestF, r2s)
    }
}

/// The fit pass.
public enum Fit {
    /// s = 1 + (t − t₀)/(t₁ − t₀) for the power law (t in units of the series' first interval).
    static func powerAbscissa(_ reader: PSnapReader, view: TrajectoryView) throws -> [Double] {
        var t = reader.snapshots.map { Double($0.step) }
        if view == .steps { t.removeFirst() }
        guard t.count >= 2, t[1] > t[0] else { throw FitError.stepsNotIncreasing(index: 1) }
        return t.map { 1 + ($0 - t[0]) / (t[1] - t[0]) }
    }

    /// Bins of the R² histograms (over [0, 1]; below 0 in the first): the medians printed are good to 1/r2Bins.
    public static let r2Bins = 1000
    /// The output's "snapshots", in order: per family its coefficients, sse, r2, aic, bic; then best (the index of the
    /// family with the lowest AIC, −1 for a series left out).
    public static func outputNames(_ families: [FitFamily]) -> [String] {
        families.flatMap { f in f.coefficientNames.map { "\(f).\($0)" } + ["\(f).sse", "\(f).r2", "\(f).aic", "\(f).bic"] } + ["best"]
    }

    /// The design matrix of `family` ([points × coefficients], row-major) at abscissae `x`, cumulative learning rate
    /// `L` and modes `modes` (shapes of the run's series under the same view).
    static func design(_ family: FitFamily, x: [Double], L: [Double]?, modes: [[Double]]) -> [Double] {
        let n = x.count
        switch family {
        case .linear: return (0..<n).flatMap { [1, x[$0]] }
        case .quadratic: return (0..<n).flatMap { [1, x[$0], x[$0] * x[$0]] }
        case .lr: return (0..<n).flatMap { [1, L![$0]] }
        case .lr2: return (0..<n).flatMap { [1, L![$0], L![$0] * L![$0]] }
        case .modes(let k): return (0..<n).flatMap { i in [1] + (0..<k).map { modes[$0][i] } }
        case .exp, .power, .logistic: return []
        }
    }

    /// The pseudo-inverse of the [m × p] matrix `a` (p × m, row-major), by LAPACK dgelsd against the identity.
    static func pseudoInverse(_ a: [Double], rows m: Int, columns p: Int) throws -> [Double] {
        var a = a
        var b = [Double](repeating: 0, count: max(m, p) * m)
        for i in 0..<m { b[i * m + i] = 1 }
        var s = [Double](repeating: 0, count: min(m, p))
        var rank: Int32 = 0
        let info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, Int32(m), Int32(p), Int32(m), &a, Int32(p), &b, Int32(m), &s, -1, &rank)
        guard info == 0 else { throw AnalysisError.eigensolver(info: info) }
        return Array(b[0..<(p * m)])
    }

    /// The abscissae of a run's series under `view`: normalised steps, and the normalised cumulative learning rate
    /// when every snapshot after the first has one (L₀ = 0, Lₛ = Lₛ₋₁ + lrₛ·(tₛ − tₛ₋₁)).
    public static func abscissae(_ reader: PSnapReader, view: TrajectoryView) throws -> (x: [Double], L: [Double]?) {
        let snaps = reader.snapshots
        for i in 1..<max(1, snaps.count) where snaps[i].step <= snaps[i - 1].step { throw FitError.stepsNotIncreasing(index: i) }
        var t = snaps.map { Double($0.step) }
        let lrs = snaps.map { s -> Double? in
            for k in ["lr", "learning_rate"] { if case .number(let v)? = s.metadata?[k], v.isFinite { return v } }
            return nil
        }
        var L: [Double]? = nil
        // lr₀ is not used (the first snapshot, often the initial weights, has none).
        if snaps.count >= 2 && lrs.dropFirst().allSatisfy({ $0 != nil }) {
            var acc = [0.0]
            for i in 1..<snaps.count { acc.append(acc[i - 1] + lrs[i]! * (t[i] - t[i - 1])) }
            if view == .steps { acc.removeFirst() }
            let first = acc.first ?? 0, span = (acc.last ?? 0) - first
            if span > 0 { L = acc.map { ($0 - first) / span } }
        }
        if view == .steps { t.removeFirst() }
        guard let t0 = t.first, let t1 = t.last, t1 > t0 else { return (t.map { _ in 0 }, L) }
        return (t.map { ($0 - t0) / (t1 - t0) }, L)
    }

    /// Fits every selected parameter's series to `families` and writes `outputPath` (f32 or f64) mirroring the
    /// selected tensors (`outputNames` are its snapshots); `modes` supplies the shapes for `.modes(K)` (the run's
    /// principal modes in the same view, at least K of them).
    public static func run(_ reader: PSnapReader, families: [FitFamily], view: TrajectoryView = .values, tensors selected: [Int]? = nil,
                           modes: ModesResult? = nil, outputPath: String, dtype: DType = .f32, force: Bool = false,
                           workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                           progress: (@Sendable (UInt64, UInt64) -> Void)? = nil) throws -> FitSummary {
        precondition(dtype == .f32 || dtype == .f64, "f32 or f64 output")
        guard !families.isEmpty else { throw FitError.noFamily }
        _ = singleThreadedBLAS
        try OutputPath.check(output: outputPath, inputs: [reader.path], force: force)
        let S = reader.snapshotCount
        let (x, L) = try abscissae(reader, view: view)
        let N = x.count
        for f in families {
            if case .lr = f, L == nil { throw FitError.noLearningRate(family: f.description) }
            if case .lr2 = f, L == nil { throw FitError.noLearningRate(family: f.description) }
            let p = f.coefficientNames.count
            guard N > p else { throw FitError.tooFewPoints(points: N, family: f.description, coefficients: p) }
            if case .modes(let k) = f {
                guard let modes, modes.modes.count >= k, modes.dimension == N else { throw FitError.modesMissing(family: f.description, points: N) }
            }
        }
        let tensors = (selected ?? Array(reader.tensors.indices)).sorted()
        // Per family: X [N × p] and its pseudo-inverse [p × N].
        let models = try FitModels(families: families, x: x, L: L, modes: modes?.modes ?? [], power: try powerAbscissa(reader, view: view))
        let names = outputNames(families)
        let width = names.count, F = families.count
        var opts = WriterOptions()
        opts.blockSize = reader.layout.blockSize
        opts.chain = try CodecChain(stages: [.split, .zstdPlanes], zstdLevel: 1)
        opts.overwrite = force
        opts.attributes = ["content": .string("psnap fit: per-parameter least-squares fits (coefficients, sse, r2, aic, bic per family; best by AIC)"),
                           "source": .string(reader.path)]
        let sink = try CompactTileSink(path: outputPath, tensors: tensors.map { TensorInfo(name: reader.tensors[$0].name, dtype: dtype, shape: reader.tensors[$0].shape) },
                                       snapshots: names.enumerated().map { SnapshotInfo(step: Int64($0.offset), time: 0, metadata: ["statistic": .string($0.element)]) },
                                       options: opts)
        let layout = reader.layout, B = layout.blockSize
        let blocks = tensors.enumerated().flatMap { o, t in (0..<layout.blockCounts[t]).map { (o, t, $0) } }
        struct Part: Sendable { var best: [Int]; var hist: [[Int]]; var tensorBest: [Int: [Int]] = [:]; var series = 0; var nonFinite = 0 }
        let parts = Mutex<[Part]>([])
        let counter = ProgressCounter(total: UInt64(blocks.count), report: progress)
        let view = view
        try parallelForEach(count: blocks.count, workers: workers, state: { _ in
            (loader: BlockLoader(reader), codec: TileCodec(chain: opts.chain), rows: [Double](repeating: 0, count: B * S),
             coef: [Double](repeating: 0, count: B * 8), fitted: [Double](repeating: 0, count: B * S), out: [Double](repeating: 0, count: B * width),
             bytes: [UInt8](repeating: 0, count: B * width * dtype.size),
             part: Part(best: [Int](repeating: 0, count: F), hist: [[Int]](repeating: [Int](repeating: 0, count: Fit.r2Bins), count: F)))
        }, { w, i in
            let (o, t, b) = blocks[i]
            let n = try w.rows.withUnsafeMutableBufferPointer { r in
                let n = try w.loader.load(tensor: t, block: b, into: r.baseAddress!)
                TrajectoryRows.inPlace(r.baseAddress!, count: n, snapshots: S, view: view)
                return n
            }
            let (finite, bestF, r2s) = models.fitRows(&w.rows, count: n, coef: &w.coef, fitted: &w.fitted, out: &w.out)
            for (fi, r2) in r2s.enumerated() {
                for v in r2 where v.isFinite { w.part.hist[fi][min(Fit.r2Bins - 1, max(0, Int(v * Double(Fit.r2Bins))))] += 1 }
            }
            var tb = w.part.tensorBest[o] ?? [Int](repeating: 0, count: F)
            for p in 0..<n {
                if finite[p] { w.part.series += 1 } else { w.part.nonFinite += 1 }
                if bestF[p] >= 0 { w.part.best[bestF[p]] += 1; tb[bestF[p]] += 1 }
            }
            w.part.tensorBest[o] = tb
            for q in 0..<(n * width) {
                let v = w.out[q]
                if dtype == .f64 {
                    withUnsafeBytes(of: v.bitPattern.littleEndian) { for z in 0..<8 { w.bytes[q * 8 + z] = $0[z] } }
                } else {
                    withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { for z in 0..<4 { w.bytes[q * 4 + z] = $0[z] } }
                }
            }
            try w.bytes.withUnsafeBytes { try sink.add(tensor: o, block: b, raw: UnsafeRawBufferPointer(rebasing: $0[0..<(n * width * dtype.size)]), codec: w.codec) }
            counter.add(1)
        }, finish: { w in
            w.loader.flush()
            let p = w.part
            parts.withLock { $0.append(p) }
        })
        var summary = FitSummary(families: families, x: x, cumulativeLR: L, series: 0, nonFinite: 0, best: [Int](repeating: 0, count: F),
                                 r2Histogram: [[Int]](repeating: [Int](repeating: 0, count: Fit.r2Bins), count: F),
                                 tensorNames: tensors.map { reader.tensors[$0].name }, tensorBest: [[Int]](repeating: [Int](repeating: 0, count: F), count: tensors.count))
        for p in parts.withLock({ $0 }) {
            summary.series += p.series; summary.nonFinite += p.nonFinite
            for f in 0..<F { summary.best[f] += p.best[f]; for j in 0..<Fit.r2Bins { summary.r2Histogram[f][j] += p.hist[f][j] } }
            for (o, counts) in p.tensorBest { for f in 0..<F { summary.tensorBest[o][f] += counts[f] } }
        }
        let famJSON = families.map { "\"\($0)\"" }.joined(separator: ",")
        let xs = x.map { "\($0)" }.joined(separator: ","), ls = L.map { "[" + $0.map { "\($0)" }.joined(separator: ",") + "]" } ?? "null"
        let ms = (modes?.modes ?? []).map { "[" + $0.map { "\($0)" }.joined(separator: ",") + "]" }.joined(separator: ",")
        sink.setAttribute("fit.json", .string("{\"view\":\"\(view.rawValue)\",\"families\":[\(famJSON)],\"x\":[\(xs)],\"cumulativeLR\":\(ls),\"modes\":[\(ms)]}"))
        try sink.finish()
        return summary
    }
}
