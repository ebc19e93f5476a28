// `psnap pairs`: every pair of parameters inside a selection whose trajectories correlate at least as asked.
import ArgumentParser
import Foundation
import ParamSnapCLICore
@_spi(Internals) import ParamSnap
import ParamSnapAnalysis

/// `psnap pairs RUN --include GLOB… --min-r 0.99 [--on values|steps] [--csv]`.
package struct PairsCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "pairs",
        abstract: "Every pair of parameters in a selection whose trajectories correlate with |r| ≥ --min-r (exact).",
        discussion: """
        The selection (--include, required) is held in memory as unit rows (at most 512 MiB: about 10⁶ parameters at 61 snapshots) and correlated block by block with BLAS matrix products: exact Pearson r for every pair, values or steps (--on steps). Constant and non-finite trajectories are left out and counted. Pairs are printed by global index (a < b), up to --limit.

        Exit codes: 0 ok, 1 failure, 64 usage error (no --include, a selection too large), 65 damaged run.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(help: "Tensors to pair, by name glob; repeatable (required).") var include: [String] = []
    @Option(help: "Smallest |r| reported.") var minR: Double = 0.99
    @Option(help: "Correlate values, or steps (consecutive differences).") var on: TrajectoryView = .values
    @Option(help: "Most pairs printed.") var limit: Int = 1_000_000
    @Option(help: "Worker threads (default: all cores).") var workers: Int?
    @Flag(help: "Print CSV (a,b,r with global indices, tensor names and flat indices).") var csv = false

    package init() {}

    package func validate() throws {
        try OptionCheck.workers(workers)
        guard !include.isEmpty else { throw ValidationError("pairs needs a selection: --include GLOB") }
        guard minR.isFinite, minR >= 0, minR <= 1 else { throw ValidationError("--min-r is in 0…1, not \(minR)") }
        guard limit >= 1 else { throw ValidationError("--limit is at least 1, not \(limit)") }
    }

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            let tensors = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            let res = try Similar.pairs(r, tensors: tensors, minR: minR, view: on, limit: limit,
                                        workers: workers ?? ProcessInfo.processInfo.activeProcessorCount)
            func name(_ g: Int) -> String { r.layout.locate(global: g).map { "\(r.tensors[$0.tensor].name)[\($0.index)]" } ?? "?" }
            if csv {
                print("a,b,tensor_a,tensor_b,r")
                for p in res.pairs { print("\(p.a),\(p.b),\(name(p.a)),\(name(p.b)),\(p.r)") }
            } else {
                print("\(CLI.group(res.searched)) parameters paired (\(res.leftOut) constant or non-finite left out): \(CLI.group(res.pairs.count)) pair(s) with |r| ≥ \(minR)\(res.truncated ? " (cut at --limit)" : "")")
                for p in res.pairs.prefix(50) { print("\(name(p.a))  \(name(p.b))  r = \(p.r)") }
                if res.pairs.count > 50 { print("… (--csv lists them all)") }
            }
        }
    }
}
