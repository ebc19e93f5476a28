// `psnap fit`: every parameter's trajectory fitted to families of laws in the training step, in one pass.
import ArgumentParser
import Foundation
import ParamSnapCLICore
@_spi(Internals) import ParamSnap
import ParamSnapAnalysis
import PSnapImport

/// `psnap fit RUN -o fit.psnap [--family linear,quadratic,lr,lr2,modes:K] [--on values|steps] [--include GLOB…]`.
package struct FitCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Fit every parameter's trajectory to families of laws in the training step (least squares, one pass).",
        discussion: """
        Families (--family, comma-separated; default linear,quadratic,lr,modes:5 when the snapshots carry a \
        learning rate, else linear,quadratic,modes:5):
          linear      a + b·x,           x = (t − t₀)/(t_last − t₀), t the snapshots' steps
          quadratic   a + b·x + c·x²
          lr          a + b·L,           L the cumulative learning rate Σ lr·Δt (metadata lr or learning_rate of every snapshot after the first), scaled to 0…1
          lr2         a + b·L + c·L²
          modes:K     a + Σ bⱼ·vⱼ        over the run's first K principal modes (computed first: one more pass)
          exp         a + b·e^(−x/τ)     exponential approach, τ in 1e-3 … 1e3
          power       a + b·s^(−α)       power law, s = 1 + (t − t₀)/(t₁ − t₀) (steps in units of the first interval), α in 1e-3 … 10
          logistic    a + b·σ((x − m)/w) a transition, σ(z) = 1/(1 + e^(−z)), centred at m in 0 … 1 with width w in 1e-3 … 10
        exp, power and logistic are fitted by variable projection: for each τ (α; m and w) the best a, b are a linear \
        fit. τ is chosen on a 48-point log grid shared by every series (one matrix product) and refined by parabolic \
        interpolation; m and w start from a grid of a few hundred points (transitions at the midpoints between \
        snapshots, widths doubling) and are refined by Newton's method with the exact Hessian, inside their ranges. \
        The others are linear in their coefficients: one design matrix per run, its pseudo-inverse from LAPACK dgelsd (an SVD, \
        as numpy's lstsq), then per block of parameters one matrix product for the coefficients and one for the \
        residuals. Writes OUT: a .psnap mirroring the selected tensors whose "snapshots" are, per family, its \
        coefficients, sse, r2, aic (n·ln(sse/n) + 2k) and bic (n·ln(sse/n) + k·ln n), then best (the family with the \
        lowest AIC, by its index in --family; −1 for a series with NaN or infinity, which gets NaN everywhere). Prints \
        how many parameters each family describes best and its median R², overall and per tensor (--json).

        Exit codes: 0 ok, 1 failure, 64 usage error (unknown family, lr without learning-rate metadata), 65 damaged \
        run, too few snapshots for a family, steps that do not increase.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(name: .shortAndLong, help: "Output .psnap of per-parameter fits.") var output: String?
    @Flag(help: "RUN is a `psnap groups -o` file: fit its centroids (printed; --json) instead of every parameter.") var centroids = false
    @Option(name: .customLong("export-centroids"), help: "With --centroids: write the centroids with their steps to FILE.csv or FILE.npy.") var exportCentroids: String?
    @Option(help: "Families, comma-separated: linear, quadratic, lr, lr2, modes:K, exp, power, logistic.") var family: String?
    @Option(help: "Fit values, or steps (consecutive differences).") var on: TrajectoryView = .values
    @Option(help: "Only tensors whose name matches this glob; repeatable.") var include: [String] = []
    @Option(help: "Worker threads (default: all cores).") var workers: Int?
    @Flag(help: "Write f64 (default f32).") var f64 = false
    @Flag(help: "Replace an existing OUT (never the run).") var force = false
    @Flag(help: "Print the summary as JSON.") var json = false

    package init() {}

    package func validate() throws {
        try OptionCheck.workers(workers)
        if !centroids && output == nil { throw ValidationError("give -o OUT.psnap (or --centroids for a groups file)") }
        if centroids && output != nil { throw ValidationError("--centroids prints its fits (--json); -o is for fitting every parameter of a run") }
        if exportCentroids != nil && !centroids { throw ValidationError("--export-centroids goes with --centroids") }
        if let e = exportCentroids, !(e.lowercased().hasSuffix(".csv") || e.lowercased().hasSuffix(".npy")) {
            throw ValidationError("--export-centroids \(e): a .csv or .npy file")
        }
        if let family {
            for f in family.split(separator: ",") where FitFamily(String(f).trimmingCharacters(in: .whitespaces)) == nil {
                throw ValidationError("--family: unknown family '\(f)' (linear, quadratic, lr, lr2, modes:K, exp, power, logistic)")
            }
        }
    }

    package func run() throws {
        try CLI.guarded {
            if centroids { return try fitCentroids() }
            guard let output else { return }
            let r = try PSnapReader(path: runPath)
            let tensors = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            let n = workers ?? ProcessInfo.processInfo.activeProcessorCount
            var families: [FitFamily]
            if let family {
                families = family.split(separator: ",").compactMap { FitFamily(String($0).trimmingCharacters(in: .whitespaces)) }
            } else {
                let hasLR = (try? Fit.abscissae(r, view: on))?.L != nil
                families = hasLR ? [.linear, .quadratic, .lr, .modes(5)] : [.linear, .quadratic, .modes(5)]
                let points = on == .values ? r.snapshotCount : r.snapshotCount - 1
                families = families.map { if case .modes(let k) = $0 { return .modes(max(1, min(k, points - 2))) } else { return $0 } }
            }
            let maxK = families.compactMap { if case .modes(let k) = $0 { return k } else { return nil } }.max()
            var modes: ModesResult?
            if let maxK {
                let d = on == .values ? r.snapshotCount : r.snapshotCount - 1
                guard maxK < d else { throw ValidationError("modes:\(maxK): fewer modes than points per series (\(d))") }
                modes = try Modes.compute(r, k: maxK, view: on, tensors: tensors, workers: n)
            }
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            defer { bar.finish() }
            let s = try Fit.run(r, families: families, view: on, tensors: tensors, modes: modes, outputPath: output, dtype: f64 ? .f64 : .f32,
                                force: force, workers: n, progress: { d, t in bar.update(d, t) })
            bar.finish()
            if json {
                struct Fam: Encodable { let family: String; let best: Int; let medianR2: Double }
                struct Tensor: Encodable { let tensor: String; let best: [String: Int] }
                struct Out: Encodable { let view: String; let series: Int; let nonFinite: Int; let families: [Fam]; let tensors: [Tensor]; let output: String }
                print(CLI.jsonString(Out(view: on.rawValue, series: s.series, nonFinite: s.nonFinite,
                                         families: families.indices.map { Fam(family: "\(families[$0])", best: s.best[$0], medianR2: s.medianR2($0)) },
                                         tensors: s.tensorNames.indices.map { t in Tensor(tensor: s.tensorNames[t], best: Dictionary(uniqueKeysWithValues: families.indices.map { ("\(families[$0])", s.tensorBest[t][$0]) })) },
                                         output: output)))
                return
            }
            print("\(CLI.group(s.series)) series (\(on.rawValue)) fitted, \(s.nonFinite) with NaN or infinity left out → \(output)")
            print("family        best by AIC          median R²")
            for (i, f) in families.enumerated() {
                print(CLI.pad("\(f)", 14) + CLI.pad("\(CLI.group(s.best[i])) (\(String(format: "%.1f", 100 * Double(s.best[i]) / Double(max(1, s.series)))) %)", 21)
                      + String(format: "%.3f", s.medianR2(i)))
            }
        }
    }

    struct GroupsJSON: Decodable { let features: String; let sizes: [Int]; let centroids: [[Double?]]; let steps: [Int64]?; let cumulativeLR: [Double?]? }

    /// `--centroids`: the families fitted to a groups file's centroids, printed; `--export-centroids` writes them.
    func fitCentroids() throws {
        let f = try PSnapReader(path: runPath)
        guard case .string(let j)? = f.metadata.attributes?["groups.json"], let data = j.data(using: .utf8),
              let g = try? JSONDecoder().decode(GroupsJSON.self, from: data) else {
            throw ValidationError("\(runPath) is not a `psnap groups -o` file (no groups.json attribute)")
        }
        guard let steps = g.steps, steps.count >= 2 else {
            throw ValidationError("the centroids of \(g.features) features are not series over training: fit groups of values or steps")
        }
        let N = steps.count
        let t = steps.map(Double.init)
        guard t[N - 1] > t[0], t[1] > t[0] else { throw ValidationError("the centroids' steps do not increase") }
        let x = t.map { ($0 - t[0]) / (t[N - 1] - t[0]) }
        let L: [Double]? = g.cumulativeLR.flatMap { l in l.allSatisfy { $0 != nil } ? l.map { $0! } : nil }
        var families: [FitFamily]
        if let family {
            families = family.split(separator: ",").compactMap { FitFamily(String($0).trimmingCharacters(in: .whitespaces)) }
        } else {
            families = L != nil ? [.linear, .quadratic, .lr, .exp, .power, .logistic] : [.linear, .quadratic, .exp, .power, .logistic]
        }
        for fam in families {
            if case .modes = fam { throw ValidationError("--family \(fam): mode fits need the run (psnap fit RUN), not its centroids") }
            if (fam == .lr || fam == .lr2) && L == nil { throw FitError.noLearningRate(family: "\(fam)") }
            guard N > fam.coefficientNames.count else { throw FitError.tooFewPoints(points: N, family: "\(fam)", coefficients: fam.coefficientNames.count) }
        }
        let models = try FitModels(families: families, x: x, L: L, modes: [], power: t.map { 1 + ($0 - t[0]) / (t[1] - t[0]) })
        let k = g.centroids.count
        var rows = g.centroids.flatMap { $0.map { $0 ?? .nan } }
        var coef: [Double] = [], fitted: [Double] = [], out: [Double] = []
        let (_, best, r2) = models.fitRows(&rows, count: k, coef: &coef, fitted: &fitted, out: &out)
        if let e = exportCentroids {
            var bytes: [UInt8]
            if e.lowercased().hasSuffix(".csv") {
                var csv = (["step"] + (0..<k).map { "group\($0)" }).joined(separator: ",") + "\n"
                for i in 0..<N { csv += ([String(steps[i])] + (0..<k).map { "\(g.centroids[$0][i] ?? .nan)" }).joined(separator: ",") + "\n" }
                bytes = Array(csv.utf8)
            } else {
                // (k + 1) × N float64: row 0 the steps, row 1 + g group g's centroid.
                bytes = NpyHeader.encode(descr: "<f8", shape: [k + 1, N])
                for v in t + g.centroids.flatMap({ $0.map { $0 ?? .nan } }) { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
            }
            try AtomicFile.write(e, inputs: [runPath], force: force) { try $0(bytes) }
        }
        let names = Fit.outputNames(families)
        if json {
            struct Row: Encodable { let group: Int; let size: Int; let best: String?; let fits: [String: Double?] }
            let rowsOut = (0..<k).map { i in
                Row(group: i, size: g.sizes[i], best: best[i] >= 0 ? "\(families[best[i]])" : nil,
                    fits: Dictionary(uniqueKeysWithValues: names.indices.dropLast().map { (names[$0], out[i * models.width + $0].isFinite ? out[i * models.width + $0] : nil) }))
            }
            print(CLI.jsonString(rowsOut))
            return
        }
        print("\(k) centroids of \(g.features) over \(N) points, families: " + families.map { "\($0)" }.joined(separator: ", "))
        print(CLI.pad("group", 7) + CLI.pad("size", 12) + CLI.pad("best", 11) + families.map { CLI.pad("R² \($0)", 14) }.joined())
        for i in 0..<k {
            print(CLI.pad("\(i)", 7) + CLI.pad(CLI.group(g.sizes[i]), 12) + CLI.pad(best[i] >= 0 ? "\(families[best[i]])" : "-", 11)
                  + families.indices.map { CLI.pad(String(format: "%.4f", r2[$0][i]), 14) }.joined())
        }
        if let e = exportCentroids { print("wrote \(e)") }
    }
}
