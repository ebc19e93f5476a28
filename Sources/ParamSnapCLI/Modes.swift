// `psnap modes`: the principal trajectory modes of a run (eigenvalues, explained variance, mode shapes).
import ArgumentParser
import Foundation
import ParamSnapCLICore
@_spi(Internals) import ParamSnap
import ParamSnapAnalysis

extension TrajectoryView: ExpressibleByArgument {}

/// `psnap modes RUN [-k K] [--on values|steps] [--include GLOB…]`.
package struct ModesCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "modes",
        abstract: "The principal modes of the trajectories: PCA over snapshots, in one streaming pass.",
        discussion: """
        Accumulates the S×S Gram matrix of every selected parameter's trajectory, centred on its own mean (or of its steps, --on steps), in f64 on all cores, then eigendecomposes it (LAPACK dsyevd). Prints every eigenvalue's share of the variance (sklearn PCA's explained_variance_ratio_ on the snapshot × parameter matrix) and the first K mode shapes. Parameters with a NaN or an infinity, or values so large their squares overflow f64, are left out and counted. Memory: one block of trajectories and one S×S matrix per worker, whatever the run's size.

        With -o OUT, a second pass writes OUT: a .psnap mirroring the selected tensors whose "snapshots" are each parameter's K coefficients on the modes (mode1 … modeK) and the R² of its rank-K reconstruction (r2; NaN for a constant or non-finite trajectory), so trajectory, export and moments work on it; the eigenvalues, ratios and mode shapes are in its attributes (modes.json).

        Exit codes: 0 ok, 1 failure, 64 usage error (-k out of range, no such tensor), 65 damaged run or too few snapshots.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(name: .short, help: "Mode shapes to print (1 … row length).") var k: Int = 8
    @Option(help: "What a trajectory is: values, or steps (consecutive differences).") var on: TrajectoryView = .values
    @Option(help: "Only tensors whose name matches this glob; repeatable.") var include: [String] = []
    @Option(help: "Worker threads (default: all cores).") var workers: Int?
    @Option(name: .shortAndLong, help: "Write each parameter's coefficients and R² to this .psnap (a second pass).") var output: String?
    @Flag(help: "Write the coefficients as f64 (default f32).") var f64 = false
    @Flag(help: "Replace an existing OUT (never the run itself).") var force = false
    @Flag(help: "Print JSON: eigenvalues, explained variance ratios, mode shapes.") var json = false

    package init() {}

    package func validate() throws {
        try OptionCheck.workers(workers)
        guard k >= 1 else { throw ValidationError("-k is at least 1, not \(k)") }
    }

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            let tensors = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            defer { bar.finish() }
            let m = try Modes.compute(r, k: k, view: on, tensors: tensors, workers: workers ?? ProcessInfo.processInfo.activeProcessorCount,
                                      progress: { done, total in bar.update(done, total) })
            bar.finish()
            if let output {
                try Modes.writeCoefficients(r, result: m, tensors: tensors, to: output, dtype: f64 ? .f64 : .f32, force: force,
                                            workers: workers ?? ProcessInfo.processInfo.activeProcessorCount)
            }
            let ratio = m.explainedVarianceRatio
            if json {
                struct Out: Encodable {
                    let view: String; let snapshots: Int; let dimension: Int; let parameters: Int; let nonFiniteParameters: Int
                    let eigenvalues: [Double]; let explainedVarianceRatio: [Double]; let modes: [[Double]]
                }
                print(CLI.jsonString(Out(view: m.view.rawValue, snapshots: m.snapshots, dimension: m.dimension, parameters: m.parameters,
                                         nonFiniteParameters: m.nonFiniteParameters, eigenvalues: m.eigenvalues,
                                         explainedVarianceRatio: ratio, modes: m.modes)))
                return
            }
            print("\(CLI.group(m.parameters)) parameters (\(m.nonFiniteParameters) left out: NaN or infinity), \(m.view.rawValue) over \(m.snapshots) snapshots")
            print("mode  eigenvalue      explained  cumulative")
            var cum = 0.0
            for i in 0..<min(k, m.eigenvalues.count) {
                cum += ratio[i]
                print(CLI.pad("\(i + 1)", 6) + CLI.pad(String(format: "%.6e", m.eigenvalues[i]), 16)
                      + CLI.pad(String(format: "%.4f %%", 100 * ratio[i]), 11) + String(format: "%.4f %%", 100 * cum))
            }
        }
    }
}
