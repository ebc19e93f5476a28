// `psnap chart`: every trajectory as a density image (spec/CHARTS.md), or chosen trajectories as line charts.
import ArgumentParser
import Foundation
import ParamSnapCLICore
@_spi(Internals) import ParamSnap
import ParamSnapAnalysis
import PSnapImport
import PSnapRender

extension DensityView: ExpressibleByArgument {}
extension DensityScale: ExpressibleByArgument {}

/// `psnap chart RUN -o FILE.png|FILE.svg [--view …]` or `psnap chart RUN --params NAME[i,j]… -o FILE.svg`.
package struct ChartCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "chart",
        abstract: "Every parameter vs training step as one density image, or chosen parameters as lines.",
        discussion: """
        The density chart counts every selected trajectory into a --width × --height grid: x is the training step \
        (the snapshots' step metadata), y the value (--view values), its change since the first snapshot \
        (relative), its z-normalised shape (z) or its step-to-step change (steps); each cell counts the \
        trajectories passing through it: each snapshot's value in its bin, and every segment between two snapshots \
        as a line between the bins of its ends, one count per column (the rule is spec/CHARTS.md; \
        tools/check_chart.py implements it with numpy). One streaming pass on all cores, \
        memory independent of the run's size. The colour is log(1 + count) (--scale log) or histogram-equalised \
        (--scale eq). The value range is --y-range LO:HI, or the 0.05–99.95 % quantiles of a sample of the run \
        widened by 2 % (values outside are counted and reported, not drawn), or with --full-range every value's \
        minimum and maximum (one more pass). NaN and infinities are counted and never drawn. --counts FILE.npy \
        writes the grid (uint64, shape (height, width), row 0 the lowest values).

        With --params, a line chart (SVG or PNG is decided by -o) of the named parameters' trajectories, e.g. \
        --params 'fc1.weight[3,17]' 'fc2.bias[5]'; the snapshots' loss (or learning rate) metadata, when present, \
        goes on a second axis.

        Exit codes: 0 ok, 1 failure, 64 usage error (bad size or range, no such tensor or index, an output that is \
        the run), 65 damaged run, too few snapshots, steps that do not increase.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(name: .shortAndLong, help: "Output image: FILE.png or FILE.svg.") var output: String?
    @Option(help: "values, relative (change since the first snapshot), z (z-normalised shape) or steps.") var view: DensityView = .values
    @Option(help: "Only tensors whose name matches this glob; repeatable.") var include: [String] = []
    @Option(help: "Grid columns (pixels of the plot area).") var width: Int = 1000
    @Option(help: "Grid rows.") var height: Int = 500
    @Option(name: .customLong("y-range"), help: "Value range LO:HI (default: from a sample of the run); a negative LO as --y-range=-2:2.") var yRange: String?
    @Flag(name: .customLong("full-range"), help: "Range from every value's minimum and maximum (one more pass).") var fullRange = false
    @Option(help: "Colour scale: log or eq (histogram-equalised).") var scale: DensityScale = .log
    @Option(help: "Write the grid of counts to this .npy file.") var counts: String?
    @Option(help: "Chart title (default: the run's file name and the view).") var title: String?
    @Option(parsing: .upToNextOption, help: "Line chart of these parameters: NAME[i,j] or NAME[flat].") var params: [String] = []
    @Option(help: "Worker threads (default: all cores).") var workers: Int?
    @Flag(help: "Replace existing output files (never the run).") var force = false
    @Flag(help: "Print what was drawn as JSON.") var json = false

    package init() {}

    package func validate() throws {
        try OptionCheck.workers(workers)
        guard output != nil || counts != nil || json else { throw ValidationError("give -o FILE.png|FILE.svg, --counts FILE.npy or --json") }
        if let output { _ = try Self.kind(output) }
        if !params.isEmpty && (counts != nil || yRange != nil || fullRange) { throw ValidationError("--counts, --y-range and --full-range go with the density chart, not --params") }
        guard width >= 16 && height >= 16 && width <= 16384 && height <= 16384 && width * height <= Density.maxCells else {
            throw ValidationError("--width and --height are 16 … 16384 and their product at most \(Density.maxCells), not \(width) × \(height)")
        }
        if let yRange { _ = try Self.range(yRange) }
        if yRange != nil && fullRange { throw ValidationError("--y-range and --full-range: one or the other") }
        if let output, let counts, output == counts { throw ValidationError("-o and --counts name the same file") }
    }

    enum Kind { case png, svg }
    static func kind(_ path: String) throws -> Kind {
        let l = path.lowercased()
        if l.hasSuffix(".png") { return .png }
        if l.hasSuffix(".svg") { return .svg }
        throw ValidationError("-o \(path): the image kind follows the name, .png or .svg")
    }

    static func range(_ s: String) throws -> (Double, Double) {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let lo = Double(parts[0]), let hi = Double(parts[1]), lo.isFinite, hi.isFinite, lo < hi else {
            throw ValidationError("--y-range wants LO:HI with finite LO < HI, got '\(s)'")
        }
        return (lo, hi)
    }

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            let n = workers ?? ProcessInfo.processInfo.activeProcessorCount
            for path in [output, counts].compactMap({ $0 }) { try OutputPath.check(output: path, inputs: [runPath], force: force) }
            if !params.isEmpty { return try lineChart(r) }
            let tensors = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            defer { bar.finish() }
            let g = try Density.compute(r, view: view, tensors: tensors, width: width, height: height, range: try yRange.map(Self.range),
                                        fullRange: fullRange, workers: n, progress: { d, t in bar.update(d, t) })
            bar.finish()
            let outside = g.below.reduce(0, +) + g.above.reduce(0, +)
            let drawn = UInt64(g.width) * UInt64(max(0, g.series))
            if let counts { try Self.writeCounts(g, to: counts, inputs: [runPath], force: force) }
            if let output {
                let name = (runPath as NSString).lastPathComponent
                let what = include.isEmpty ? "every parameter" : "\(tensors.count) tensor\(tensors.count == 1 ? "" : "s")"
                var chart = DensityChart(counts: g.counts, width: g.width, height: g.height,
                                         x: (Double(g.pointSteps.first!), Double(g.pointSteps.last!)), y: (g.lo, g.hi),
                                         title: title ?? "\(name): \(what), \(Self.viewTitle(view))", xLabel: "training step", yLabel: Self.viewTitle(view))
                chart.scale = scale
                var notes = ["\(CLI.group(g.series)) trajectories"]
                if g.constant > 0 { notes.append("\(CLI.group(g.constant)) constant left out") }
                if g.nonFinite > 0 { notes.append("\(CLI.group(g.nonFinite)) with NaN/inf (not drawn there)") }
                if outside > 0 { notes.append(String(format: "%.3f%% of points outside the range", 100 * Double(outside) / Double(max(1, drawn)))) }
                chart.note = notes.joined(separator: "; ")
                let bytes: [UInt8] = try Self.kind(output) == .png ? chart.canvas().png() : Array(chart.svg().utf8)
                try AtomicFile.write(output, inputs: [runPath], force: force) { try $0(bytes) }
            }
            if json {
                struct Out: Encodable {
                    let view: String; let width: Int; let height: Int; let lo: Double; let hi: Double; let sampledRange: Bool
                    let series: Int; let constant: Int; let nonFinite: Int; let below: UInt64; let above: UInt64; let maxCount: UInt64
                    let pointSteps: [Int64]; let pointColumns: [Int]; let output: String?; let counts: String?
                }
                print(CLI.jsonString(Out(view: view.rawValue, width: g.width, height: g.height, lo: g.lo, hi: g.hi, sampledRange: g.sampledRange,
                                         series: g.series, constant: g.constant, nonFinite: g.nonFinite, below: g.below.reduce(0, +),
                                         above: g.above.reduce(0, +), maxCount: g.maxCount, pointSteps: g.pointSteps, pointColumns: g.pointColumns,
                                         output: output, counts: counts)))
            } else {
                print("\(CLI.group(g.series)) trajectories (\(g.constant) constant, \(g.nonFinite) with NaN or infinity) in a \(g.width) × \(g.height) grid, \(view.rawValue) in [\(g.lo), \(g.hi)]\(g.sampledRange ? " (from a sample)" : "")")
                if outside > 0 { print("\(CLI.group(Int(outside))) points of the lines outside the range were counted, not drawn") }
                for p in [output, counts].compactMap({ $0 }) { print("wrote \(p)") }
            }
        }
    }

    static func viewTitle(_ v: DensityView) -> String {
        switch v {
        case .values: return "value"
        case .relative: return "change since the first snapshot"
        case .z: return "z-normalised value"
        case .steps: return "step-to-step change"
        }
    }

    /// The grid as a little-endian uint64 .npy of shape (height, width).
    static func writeCounts(_ g: DensityGrid, to path: String, inputs: [String], force: Bool) throws {
        var bytes = NpyHeader.encode(descr: "<u8", shape: [g.height, g.width])
        bytes.reserveCapacity(bytes.count + g.counts.count * 8)
        for v in g.counts { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        try AtomicFile.write(path, inputs: inputs, force: force) { try $0(bytes) }
    }

    /// Line charts of the --params trajectories, with loss or learning rate on a second axis.
    func lineChart(_ r: PSnapReader) throws {
        guard let output else { throw ValidationError("--params draws a line chart: give -o FILE.svg or FILE.png") }
        let steps = r.snapshots.map { Double($0.step) }
        var series: [LineSeries] = []
        for p in params {
            guard let open = p.firstIndex(of: "["), p.hasSuffix("]") else { throw ValidationError("--params \(p): NAME[i,j] or NAME[flat]") }
            let name = String(p[..<open])
            let idx = p[p.index(after: open)..<p.index(before: p.endIndex)].split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !idx.isEmpty, idx.allSatisfy({ $0 != nil }) else { throw ValidationError("--params \(p): the index is integers, e.g. \(name)[3,17]") }
            let ix = idx.map { $0! }
            let values = ix.count == 1 ? try r.trajectory(tensor: name, index: ix[0]) : try r.trajectory(tensor: name, multiIndex: ix)
            series.append(LineSeries(name: p, x: steps, y: values))
        }
        func meta(_ keys: [String]) -> (String, [Double])? {
            for k in keys {
                let v = r.snapshots.map { s -> Double in if case .number(let x)? = s.metadata?[k] { return x } else { return .nan } }
                if v.contains(where: \.isFinite) { return (k, v) }
            }
            return nil
        }
        var chart = LineChart(series: series, title: title ?? "\((runPath as NSString).lastPathComponent): \(params.count) parameter\(params.count == 1 ? "" : "s")",
                              xLabel: "training step", yLabel: "value")
        if let (k, v) = meta(["loss", "train_loss", "eval_loss"]) ?? meta(["lr", "learning_rate"]) {
            chart.series.append(LineSeries(name: k, x: steps, y: v, secondAxis: true))
            chart.y2Label = k
        }
        let svg = chart.svg()
        let bytes: [UInt8]
        if try Self.kind(output) == .png {
            throw ValidationError("--params draws SVG line charts: give -o FILE.svg")
        } else {
            bytes = Array(svg.utf8)
        }
        try AtomicFile.write(output, inputs: [runPath], force: force) { try $0(bytes) }
        if !json { print("wrote \(output)") }
    }
}
