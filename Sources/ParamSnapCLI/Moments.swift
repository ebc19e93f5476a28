// `psnap moments`: per-parameter statistics over snapshots (a .psnap out), or per-tensor statistics per snapshot (spec/MOMENTS.md).
import ArgumentParser
import Foundation
@_spi(Internals) import ParamSnap
import PSnapImport
import ParamSnapStats

/// `psnap moments RUN -o OUT.psnap` and `psnap moments RUN --across parameters`.
public struct MomentsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "moments",
        abstract: "Statistics of every parameter over the snapshots (or of every tensor at each snapshot).",
        discussion: """
        Default (--across snapshots): for every parameter, over its trajectory, writes a .psnap whose
        tensors mirror the input and whose "snapshots" are the statistics, in this order (each named
        by its snapshot metadata {"statistic": NAME} and listed in the file attribute "statistics"):
          count, mean, variance, std, skewness, kurtosis, min, argmin, max, argmax, first, last,
          net_change (last − first), path_length (Σ|Δ|), step_autocorr (lag-1 autocorrelation of Δ).
        argmin/argmax are snapshot indices of the input file (the first occurrence on ties).

        Conventions are scipy.stats defaults: population variance (ddof=0), skew(bias=True),
        kurtosis(fisher=True, bias=True) (excess kurtosis). --sample switches to ddof=1 variance,
        skew(bias=False) (needs n > 2) and kurtosis(bias=False) (needs n > 3), as scipy does.
        A constant trajectory has variance 0 and NaN skewness and kurtosis (as scipy: NaN whenever
        m2 ≤ (ε·mean)²). step_autocorr is the sample ACF at lag 1 of the steps Δᵢ = xᵢ₊₁ − xᵢ:
        Σ(Δᵢ − Δ̄)(Δᵢ₊₁ − Δ̄) / Σ(Δᵢ − Δ̄)², NaN with fewer than 2 steps or constant steps.
        NaN/Inf: NaN propagates (mean…kurtosis, min and max become NaN, argmin/argmax point at the
        first NaN); --skip-nan drops every non-finite value first, and count says how many were used.
        Accumulation is in f64; the output is f32 (f64 values rounded) unless --f64.

        --across parameters: for every tensor at every snapshot, over its parameters: mean, std
        (population), min, max, skewness, kurtosis, RMS and a 64-bucket histogram over the tensor's
        finite min and max across all selected snapshots (bucket i covers [lo + i·w, lo + (i+1)·w),
        the last bucket includes the max). Printed as a table, --json or --csv; -o FILE.json writes JSON.

        Exit codes: 0 ok, 1 failure (I/O), 64 usage error, 65 bad or damaged input data.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(name: .shortAndLong, help: "Output .psnap (per-parameter mode) or .json (--across parameters).") var output: String?
    @Option(help: "Axis reduced over: snapshots (per-parameter statistics) or parameters (per-tensor statistics per snapshot).")
    var across: String = "snapshots"
    @Option(help: "Only tensors whose name matches this glob (* ? [..]); repeatable.") var include: [String] = []
    @Option(help: "Snapshot range A:B (half-open; A: or :B allowed).") var snapshots: String?
    @Flag(help: "Unbiased estimators: ddof=1 variance, skew(bias=False), kurtosis(bias=False).") var sample = false
    @Flag(help: "Ignore NaN and ±Inf (count says how many values were used).") var skipNan = false
    @Flag(help: "Write f64 output (default f32).") var f64 = false
    @Option(help: "Statistics to write, comma-separated names from the list above, or 'moments' (mean,variance,skewness,kurtosis) or 'all' (default). Leaving out the extrema and step statistics skips computing them.")
    var stats: String = "all"
    @Option(help: "Codec chain of the output file (default split,zstdplanes at --level 1).") var codec: String = "split,zstdplanes"
    @Option(help: "zstd level of the output file.") var level: Int32 = 1
    @Flag(help: "Print the statistics as CSV (small selections).") var csv = false
    @Option(help: "Write the statistics of each tensor as a .npy [statistics × parameters] into this directory.") var npy: String?
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Replace existing output files (-o, the --npy files; never the run itself).") var force = false
    @Option(help: "Worker threads (default: all cores).") var workers: Int?

    public init() {}

    public func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            let tensors = try selectTensors(r)
            let range = try parseRange(r.snapshotCount)
            switch across {
            case "snapshots": try perParameter(r, tensors: tensors, range: range)
            case "parameters": try perTensor(r, tensors: tensors, range: range)
            default: throw ValidationError("--across must be 'snapshots' or 'parameters', not '\(across)'")
            }
        }
    }

    func selectTensors(_ r: PSnapReader) throws -> [Int] {
        guard !include.isEmpty else { return Array(r.tensors.indices) }
        let sel = r.tensors.indices.filter { t in include.contains { DumpNames.globMatch($0, r.tensors[t].name) } }   // the one glob of convert and export
        guard !sel.isEmpty else { throw ValidationError("no tensor matches --include \(include.joined(separator: ", "))") }
        return sel
    }

    func parseRange(_ count: Int) throws -> Range<Int> {
        guard let s = snapshots else { return 0..<count }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw ValidationError("--snapshots wants A:B, got '\(s)'") }
        let a = parts[0].isEmpty ? 0 : Int(parts[0]), b = parts[1].isEmpty ? count : Int(parts[1])
        guard let a, let b, a >= 0, b <= count, a < b else {
            throw ValidationError("--snapshots \(s) is empty or outside 0:\(count)")
        }
        return a..<b
    }

    func perParameter(_ r: PSnapReader, tensors: [Int], range: Range<Int>) throws {
        var opts = TrajectoryMomentsOptions()
        opts.convention = sample ? .sample : .population
        opts.policy = skipNan ? .skip : .propagate
        opts.tensors = tensors
        opts.snapshots = range
        opts.outputDType = f64 ? .f64 : .f32
        opts.overwrite = force
        opts.statistics = try Self.parseStatistics(stats)
        do { opts.outputChain = try CodecChain(parsing: codec, zstdLevel: level) } catch { throw ValidationError("--codec: \(error)") }
        if let workers { opts.workers = workers }
        // --csv/--npy without -o: compute into a temporary file and print from it.
        let keep = output != nil
        guard keep || csv || npy != nil else { throw ValidationError("give -o OUT.psnap (or --csv / --npy DIR)") }
        // Every output is checked before the pass, and again as it is written.
        if let output { try OutputPath.check(output: output, inputs: [runPath], force: force) }
        if let npy {
            for t in tensors { try OutputPath.check(output: Self.npyPath(npy, r.tensors[t].name), inputs: [runPath], force: force) }
        }
        let scratch = keep ? nil : TempFile(path: NSTemporaryDirectory() + "psnap-moments-\(getpid()).psnap")
        let out = output ?? scratch!.path
        if !keep { opts.overwrite = true }
        defer { scratch?.remove() }
        let start = Date()
        let report = try TrajectoryMoments.run(reader: r, outputPath: out, options: opts)
        let secs = Date().timeIntervalSince(start)
        let chosen = report.statistics.map(\.rawValue)
        let m = try PSnapReader(path: out)
        if csv { try printCSV(m, names: chosen) }
        if let npy { try writeNPY(m, directory: npy) }
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
    static func parseStatistics(_ text: String) throws -> [TrajectoryStatistic] {
        var out: [TrajectoryStatistic] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            switch part {
            case "all": out += TrajectoryStatistic.allCases
            case "moments": out += [.mean, .variance, .skewness, .kurtosis]
            default:
                guard let s = TrajectoryStatistic(rawValue: part) else {
                    throw ValidationError("--stats: unknown statistic '\(part)' (known: \(TrajectoryStatistic.allCases.map(\.rawValue).joined(separator: ", ")), moments, all)")
                }
                out.append(s)
            }
        }
        guard !out.isEmpty else { throw ValidationError("--stats: no statistic given") }
        return out
    }

    /// CSV: tensor,index,<statistics…>; values printed exactly (shortest round trip of the stored value).
    func printCSV(_ m: PSnapReader, names: [String]) throws {
        let total = m.parameterCount
        guard total <= 1_000_000 else { throw ValidationError("--csv is for small selections (\(total) parameters); use --include or -o") }
        print((["tensor", "index"] + names).joined(separator: ","))
        for (t, info) in m.tensors.enumerated() {
            let n = m.layout.parameterCounts[t]
            guard n > 0 else { continue }
            let rows = try m.trajectories(tensor: t, range: 0..<n)
            let S = m.snapshotCount
            for p in 0..<n {
                let cols = (0..<S).map { k -> String in
                    let v = rows[p * S + k]
                    return info.dtype == .f32 ? "\(Float(v))" : "\(v)"
                }
                print("\(info.name),\(p),\(cols.joined(separator: ","))")
            }
        }
    }

    /// One NPY v1.0 file per tensor: shape [statistics, parameters], dtype <f4 or <f8.
    func writeNPY(_ m: PSnapReader, directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (t, info) in m.tensors.enumerated() {
            let n = m.layout.parameterCounts[t]
            var data: [UInt8] = []
            for k in 0..<m.snapshotCount { data += try m.tensorBytes(tensor: t, snapshot: k) }
            let descr = info.dtype == .f64 ? "<f8" : "<f4"
            var h = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(m.snapshotCount), \(n)), }"
            while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
            h += "\n"
            var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count & 0xFF), UInt8(h.utf8.count >> 8)]
            bytes += Array(h.utf8)
            bytes += data
            _ = try ExportCommand.writeAtomically(Self.npyPath(directory, info.name), inputs: [runPath], force: force) { w in try w(bytes) }
        }
    }

    /// The --npy file of tensor `name` in `directory`.
    static func npyPath(_ directory: String, _ name: String) -> String {
        directory + "/" + String(name.map { $0 == "/" ? "_" : $0 }) + ".npy"
    }

    func perTensor(_ r: PSnapReader, tensors: [Int], range: Range<Int>) throws {
        if let output { try OutputPath.check(output: output, inputs: [runPath], force: force) }
        var opts = TensorMomentsOptions()
        opts.policy = skipNan ? .skip : .propagate
        opts.tensors = tensors
        opts.snapshots = range
        if let workers { opts.workers = workers }
        let rows = try TensorMoments.run(reader: r, options: opts)
        if let output {
            _ = try ExportCommand.writeAtomically(output, inputs: [runPath], force: force) { w in try w(Array(TensorMoments.json(rows).utf8)) }
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
