// `psnap groups`: k-means over every parameter's trajectory shape (or its statistics, or its mode coefficients).
import ArgumentParser
import Foundation
import ParamSnapCLICore
@_spi(Internals) import ParamSnap
import ParamSnapAnalysis

/// What `psnap groups` clusters.
enum GroupsOn: String, ExpressibleByArgument, CaseIterable {
    case values, steps, moments, modes
}

/// `psnap groups RUN -k K [-o OUT] [--on values|steps|moments|modes] [--iterations N] [--seed S]`.
package struct GroupsCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "groups",
        abstract: "Groups of parameters whose trajectories move alike: k-means over every parameter, in streaming passes.",
        discussion: """
        What is compared (--on):
          values   each trajectory centred and scaled to unit norm: groups of the same shape (distance² = 2 − 2r)
          steps    the same on the steps between snapshots
          moments  each parameter's statistics from a `psnap moments RUN -o M.psnap` file (--moments M.psnap), each \
        statistic standardised across the selected parameters; --stats picks some (default: all that vary but count)
          modes    each parameter's coefficients on the run's principal modes: from a `psnap modes RUN -o M.psnap` \
        file (--modes M.psnap), or computed first (--components K, default 8)

        Seeding is k-means++ (greedy, 2 + ln k candidates per centre) on a sample of at least max(8192, 64·k) \
        parameters chosen by a hash of their index and --seed; then Lloyd iterations, each one pass over the run \
        (a BLAS product of each block's rows with the centroids), until --iterations or until the objective \
        (Σ squared distance to the centroid) improves by less than --tolerance (relative). Partial sums are merged \
        in block order, so a seed gives the same groups on every run and worker count. Memory: a block of rows and \
        the centroids per worker, and the sample.

        Prints each group's size, share and the tensors it draws most from. With -o OUT, a last pass writes OUT: a \
        .psnap mirroring the selected tensors whose two "snapshots" are each parameter's group (0 … k−1; −1 for no \
        shape: a constant trajectory or an undefined statistic; −2 for NaN or infinity) and its distance to the \
        group's centroid; the centroids, sizes, objective and each tensor's count in every group are in its attributes \
        (groups.json), as --json prints them. --centroids FILE.csv writes the centroids (one row per group).

        Exit codes: 0 ok, 1 failure, 64 usage error (-k larger than the parameters with a shape, no such tensor, a \
        features file that does not mirror the run), 65 damaged run or too few snapshots.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(name: .short, help: "Number of groups.") var k: Int = 16
    @Option(help: "What is compared: values, steps, moments (with --moments) or modes.") var on: GroupsOn = .values
    @Option(help: "The moments file for --on moments (psnap moments RUN -o FILE).") var moments: String?
    @Option(help: "With --on moments: the statistics to use, comma-separated (default: every one that varies, but count).") var stats: String?
    @Option(help: "The modes file for --on modes (psnap modes RUN -o FILE); without it the modes are computed.") var modes: String?
    @Option(help: "With --on modes and no --modes file: how many modes.") var components: Int = 8
    @Option(help: "Most Lloyd iterations (passes).") var iterations: Int = 25
    @Option(help: "Stop when the objective improves by less than this fraction (0: run every iteration).") var tolerance: Double = 1e-6
    @Option(help: "Seed of the sample and of k-means++.") var seed: UInt64 = 0
    @Option(help: "Only tensors whose name matches this glob; repeatable.") var include: [String] = []
    @Option(help: "Worker threads (default: all cores).") var workers: Int?
    @Option(name: .shortAndLong, help: "Write each parameter's group and distance to this .psnap.") var output: String?
    @Option(help: "Write the centroids to this CSV file (group,size,<features…>).") var centroids: String?
    @Flag(help: "Write distances as f64 (default f32).") var f64 = false
    @Flag(help: "Replace existing output files (never an input).") var force = false
    @Flag(help: "Print JSON: sizes, centroids, objective, each tensor's count per group.") var json = false

    package init() {}

    package func validate() throws {
        try OptionCheck.workers(workers)
        guard k >= 1 && k <= 1 << 20 else { throw ValidationError("-k is 1…1048576, not \(k)") }
        guard iterations >= 0 && iterations <= 10_000 else { throw ValidationError("--iterations is 0…10000, not \(iterations)") }
        guard tolerance.isFinite && tolerance >= 0 else { throw ValidationError("--tolerance is a number ≥ 0, not \(tolerance)") }
        guard components >= 1 else { throw ValidationError("--components is at least 1, not \(components)") }
        if on == .moments && moments == nil { throw ValidationError("--on moments needs --moments FILE (write one with: psnap moments RUN -o FILE)") }
        if on != .moments && (moments != nil || stats != nil) { throw ValidationError("--moments and --stats go with --on moments") }
        if on != .modes && modes != nil { throw ValidationError("--modes goes with --on modes") }
        if let output, let centroids, output == centroids { throw ValidationError("-o and --centroids name the same file") }
    }

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            let tensors = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            let n = workers ?? ProcessInfo.processInfo.activeProcessorCount
            if let centroids { try OutputPath.check(output: centroids, inputs: [runPath] + [moments, modes].compactMap { $0 }, force: force) }
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            defer { bar.finish() }
            let features: GroupFeatures
            switch on {
            case .values: features = .trajectories(.values)
            case .steps: features = .trajectories(.steps)
            case .moments:
                let wanted = try stats.map { try StatisticsOption.parse($0).map(\.rawValue) }
                features = .moments(try PSnapReader(path: moments!), statistics: wanted)
            case .modes:
                if let modes {
                    features = .modesFile(try PSnapReader(path: modes))
                } else {
                    let d = r.snapshotCount
                    guard components <= d else { throw ValidationError("--components \(components): at most \(d) (the snapshots)") }
                    features = .modes(try Modes.compute(r, k: components, view: .values, tensors: tensors, workers: n))
                }
            }
            let g = try Groups.compute(r, k: k, features: features, tensors: tensors, iterations: iterations, tolerance: tolerance, seed: seed,
                                       outputPath: output, dtype: f64 ? .f64 : .f32, force: force, workers: n,
                                       progress: { pass, passes, done, total in bar.update(UInt64(pass - 1) * total + done, UInt64(passes) * total) })
            bar.finish()
            if let centroids {
                var csv = (["group", "size"] + g.featureNames).joined(separator: ",") + "\n"
                for (i, c) in g.centroids.enumerated() { csv += ([String(i), String(g.sizes[i])] + c.map { "\($0)" }).joined(separator: ",") + "\n" }
                try AtomicFile.write(centroids, inputs: [runPath] + [moments, modes].compactMap { $0 }, force: force) { try $0(Array(csv.utf8)) }
            }
            if json { print(g.json); return }
            print("\(CLI.group(g.parameters)) parameters in \(g.k) groups by \(g.features) (\(g.undefined) without a shape, \(g.nonFinite) non-finite left out)")
            print("\(g.iterations) iterations from a sample of \(CLI.group(g.sampleSize)); objective \(String(format: "%.6e", g.objective)) (Σ squared distance to the centroid)")
            if !g.constantFeatures.isEmpty { print("statistics that do not vary, left out: \(g.constantFeatures.joined(separator: ", "))") }
            print("group  size          share     rms distance   tensors it draws most from")
            let order = g.sizes.indices.sorted { g.sizes[$0] != g.sizes[$1] ? g.sizes[$0] > g.sizes[$1] : $0 < $1 }
            for i in order {
                let size = g.sizes[i]
                let top = g.tensorNames.indices.filter { g.tensorCounts[$0][i] > 0 }
                    .sorted { g.tensorCounts[$0][i] != g.tensorCounts[$1][i] ? g.tensorCounts[$0][i] > g.tensorCounts[$1][i] : $0 < $1 }.prefix(3)
                    .map { "\(g.tensorNames[$0]) \(String(format: "%.0f%%", 100 * Double(g.tensorCounts[$0][i]) / Double(max(1, size))))" }
                print(CLI.pad("\(i)", 7) + CLI.pad(CLI.group(size), 14) + CLI.pad(String(format: "%.2f %%", 100 * Double(size) / Double(max(1, g.parameters))), 10)
                      + CLI.pad(String(format: "%.4g", g.rmsDistances[i]), 15) + top.joined(separator: ", "))
            }
        }
    }
}
