// `psnap moments`: per-parameter statistics over snapshots (a .psnap out), or per-tensor statistics per snapshot (spec/MOMENTS.md).
import ArgumentParser
import ParamSnapCLICore
import Foundation
@_spi(Internals) import ParamSnap
import PSnapImport
import ParamSnapStats

/// `psnap moments RUN -o OUT.psnap` and `psnap moments RUN --across parameters`.
package struct MomentsCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "moments",
        abstract: "Statistics of every parameter over the snapshots (or of every tensor at each snapshot).",
        discussion: """
        Default (--across snapshots): for every parameter, over its trajectory, writes a .psnap whose tensors \
        mirror the input and whose "snapshots" are the statistics, in this order (each named by its snapshot \
        metadata {"statistic": NAME} and listed in the file attribute "statistics"):
          count, mean, variance, std, skewness, kurtosis, min, argmin, max, argmax,
          first, last, net_change (last − first), path_length (Σ|Δ|),
          step_autocorr (lag-1 autocorrelation of Δ).
        argmin/argmax are snapshot indices of the input file (the first occurrence on ties). For small \
        selections, --csv and --json print the statistics (one row or object per parameter, with its tensor \
        name and index); --npy DIR writes one [statistics × parameters] .npy per tensor and DIR/stats.json, \
        which lists the row order and the tensors. With -o, --json prints a report of the pass instead.

        Conventions are scipy.stats defaults: population variance (ddof=0), skew(bias=True), \
        kurtosis(fisher=True, bias=True) (excess kurtosis). --sample switches to ddof=1 variance, \
        skew(bias=False) (needs n > 2) and kurtosis(bias=False) (needs n > 3), as scipy does. A constant \
        trajectory has variance 0 and NaN skewness and kurtosis (as scipy: NaN whenever m2 ≤ (ε·mean)²). \
        step_autocorr is the sample ACF at lag 1 of the steps Δᵢ = xᵢ₊₁ − xᵢ: \
        Σ(Δᵢ − Δ̄)(Δᵢ₊₁ − Δ̄) / Σ(Δᵢ − Δ̄)², NaN with fewer than 2 steps or constant steps. NaN/Inf: NaN \
        propagates (mean…kurtosis, min and max become NaN, argmin/argmax point at the first NaN); --skip-nan \
        drops every non-finite value first, and count says how many were used. Accumulation is in f64; the \
        output is f32 (f64 values rounded) unless --f64.

        --across parameters: for every tensor at every snapshot, over its parameters: mean, std (population), \
        min, max, skewness, kurtosis, RMS and a 64-bucket histogram over the tensor's finite min and max across \
        all selected snapshots (bucket i covers [lo + i·w, lo + (i+1)·w), the last bucket includes the max). \
        Printed as a table, --json or --csv; -o FILE.json writes JSON.

        A progress line is shown on a terminal. A run with no snapshots has no statistics (exit 65).

        Exit codes: 0 ok, 1 failure (I/O, OUT exists), 64 usage error, 65 bad or damaged input data.
        """)

    /// The axis a pass reduces over.
    enum Axis: String, ExpressibleByArgument, CaseIterable { case snapshots, parameters }

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(name: .shortAndLong, help: "Output .psnap (per-parameter mode) or .json (--across parameters).") var output: String?
    @Option(help: "Axis reduced over: snapshots (per-parameter statistics) or parameters (per-tensor statistics per snapshot).")
    var across: Axis = .snapshots
    @Option(help: "Only tensors whose name matches this glob (* ? [..]); repeatable.") var include: [String] = []
    @Option(help: "Snapshot range A:B (half-open; A: or :B allowed).", transform: SnapshotRange.parse) var snapshots: SnapshotRange?
    @Flag(help: "Unbiased estimators: ddof=1 variance, skew(bias=False), kurtosis(bias=False).") var sample = false
    @Flag(help: "Ignore NaN and ±Inf (count says how many values were used).") var skipNan = false
    @Flag(help: "Write f64 output (default f32).") var f64 = false
    @Option(help: "Statistics to write, comma-separated names from the list above, or 'moments' (mean,variance,skewness,kurtosis) or 'all' (default). Leaving out the extrema and step statistics skips computing them.", transform: StatisticsOption.parse)
    var stats: [TrajectoryStatistic] = TrajectoryStatistic.allCases
    @Option(help: "Codec chain of the output file (default split,zstdplanes at --level 1).") var codec: String = "split,zstdplanes"
    @Option(help: "zstd level of the output file.") var level: Int32 = 1
    @Flag(help: "Print the statistics as CSV (small selections).") var csv = false
    @Option(help: "Write the statistics of each tensor as a .npy [statistics × parameters] into this directory, with stats.json naming the rows.") var npy: String?
    @Flag(help: "Print the statistics as JSON (small selections; with -o, a JSON report of the pass).") var json = false
    @Flag(help: "Replace existing output files (-o, the --npy files; never the run itself).") var force = false
    @Option(help: "Worker threads, 1…\(OptionCheck.maxWorkers) (default: all cores).") var workers: Int?

    package init() {}

    /// Every option is checked here, before the run is opened.
    package func validate() throws {
        try OptionCheck.workers(workers)
        try OptionCheck.codec(codec, level: level)
        if csv && json { throw ValidationError("--csv and --json: give one") }
        switch across {
        case .snapshots:
            guard output != nil || csv || json || npy != nil else { throw ValidationError("give -o OUT.psnap (or --csv, --json, --npy DIR)") }
        case .parameters:
            if npy != nil { throw ValidationError("--npy is for per-parameter statistics (--across snapshots)") }
        }
    }

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            guard r.snapshotCount > 0 else { throw BadInput.noSnapshots(runPath) }
            let tensors = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            let range = try snapshots?.range(count: r.snapshotCount) ?? 0..<r.snapshotCount
            switch across {
            case .snapshots: try perParameter(r, tensors: tensors, range: range)
            case .parameters: try perTensor(r, tensors: tensors, range: range)
            }
        }
    }

    /// `--snapshots A:B` as a range inside 0..<count (only the syntax when the count is not known yet).
    func perParameter(_ r: PSnapReader, tensors: [Int], range: Range<Int>) throws {
        var opts = TrajectoryMomentsOptions()
        opts.convention = sample ? .sample : .population
        opts.policy = skipNan ? .skip : .propagate
        opts.tensors = tensors
        opts.snapshots = range
        opts.outputDType = f64 ? .f64 : .f32
        opts.overwrite = force
        opts.statistics = stats
        opts.outputChain = try OptionCheck.codec(codec, level: level)
        if let workers { opts.workers = workers }
        let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
        defer { bar.finish() }   // also before an error message
        opts.progress = { done, total in bar.update(done, total) }
        // --csv/--json/--npy without -o: compute into a temporary file and print from it.
        let keep = output != nil
        // Every output is checked before the pass, and again as it is written.
        if let output { try OutputPath.check(output: output, inputs: [runPath], force: force) }
        if let npy {
            for t in tensors { try OutputPath.check(output: Self.npyPath(npy, r.tensors[t].name), inputs: [runPath], force: force) }
            try OutputPath.check(output: npy + "/stats.json", inputs: [runPath], force: force)
        }
        let scratch = keep ? nil : TempFile(path: NSTemporaryDirectory() + "psnap-moments-\(getpid()).psnap")
        let out = output ?? scratch!.path
        if !keep { opts.overwrite = true }
        defer { scratch?.remove() }
        let start = Date()
        let report = try TrajectoryMoments.run(reader: r, outputPath: out, options: opts)
        bar.finish()
        let secs = Date().timeIntervalSince(start)
        let chosen = report.statistics.map(\.rawValue)
        let m = try PSnapReader(path: out)
        if csv { try MomentsOutput.printCSV(m, names: chosen) }
        if json && !keep { try MomentsOutput.printJSON(m, names: chosen) }
        if let npy { try MomentsOutput.writeNPY(m, names: chosen, directory: npy, source: runPath, range: range, force: force) }
        if keep && !csv {
            let msg = "moments of \(CLI.group(report.parameters)) parameters over snapshots \(range.lowerBound)..<\(range.upperBound) (\(report.segments) segment\(report.segments == 1 ? "" : "s")) → \(out): \(chosen.count) statistic\(chosen.count == 1 ? "" : "s"), \(CLI.bytes(report.outputBytes)), \(String(format: "%.2f", secs)) s, \(String(format: "%.0f", Double(report.rawBytes) / 1e6 / max(secs, 1e-9))) MB/s raw"
            if json {
                struct Out: Encodable { let output: String; let parameters: Int; let snapshots: Int; let segments: Int; let rawBytes: UInt64; let seconds: Double; let statistics: [String] }
                print(CLI.jsonString(Out(output: out, parameters: report.parameters, snapshots: report.snapshots, segments: report.segments,
                                         rawBytes: report.rawBytes, seconds: secs, statistics: chosen)))
            } else {
                print(msg)
            }
        }
    }

    /// `--stats`: names, 'moments' or 'all'.
    /// The file of tensor `name` in an `--npy` folder: the same injective names as `psnap export` to a folder.
    static func npyPath(_ directory: String, _ name: String) -> String {
        directory + "/" + ExportFileNames.fileName(for: name)
    }

    func perTensor(_ r: PSnapReader, tensors: [Int], range: Range<Int>) throws {
        if let output { try OutputPath.check(output: output, inputs: [runPath], force: force) }
        var opts = TensorMomentsOptions()
        opts.policy = skipNan ? .skip : .propagate
        opts.tensors = tensors
        opts.snapshots = range
        if let workers { opts.workers = workers }
        let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
        defer { bar.finish() }   // also before an error message
        opts.progress = { done, total in bar.update(done, total) }
        let rows = try TensorMoments.run(reader: r, options: opts)
        bar.finish()
        if let output {
            try AtomicFile.write(output, inputs: [runPath], force: force) { w in try w(Array(TensorMoments.json(rows).utf8)) }
        }
        if json {
            print(TensorMoments.json(rows))
        } else if csv {
            print(TensorMoments.csvHeader)
            for row in rows { print(TensorMoments.csvLine(row)) }
        } else if output == nil {
            print("tensor                               snap      step        mean         std         min         max        skew        kurt         rms")
            for x in rows {
                func f(_ v: Double) -> String { CLI.lpad(String(format: "%.4g", v), 12) }
                print(CLI.pad(x.tensor, 36) + CLI.lpad("\(x.snapshot)", 5) + CLI.lpad("\(x.step)", 10)
                      + f(x.mean) + f(x.std) + f(x.min) + f(x.max) + f(x.skewness) + f(x.kurtosis) + f(x.rms))
            }
        }
    }
}
