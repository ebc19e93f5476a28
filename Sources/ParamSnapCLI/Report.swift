// `psnap report`: one self-contained HTML file about a run (images inline, no script, no network): the summary
// snapinfo prints, loss and learning rate, the density of every parameter and of each tensor, the distributions of
// the per-parameter statistics, the principal modes and, when asked, the groups.
import ArgumentParser
import Foundation
import ParamSnapCLICore
@_spi(Internals) import ParamSnap
import ParamSnapAnalysis
import ParamSnapStats
import PSnapRender

/// `psnap report RUN -o report.html [--moments M] [--modes M] [--groups G | --groups-k K]`.
package struct ReportCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "One self-contained HTML page about a run: summary, loss, every parameter's density, statistics, modes, groups.",
        discussion: """
        Sections: the run (what snapinfo prints); loss and learning rate from the snapshots' metadata; the density \
        chart of every parameter (values and steps) and of each of the --tensors largest tensors (their columns at \
        the snapshots are the per-tensor histograms over training); the distribution of each parameter's std, \
        kurtosis, net change and path length (from --moments FILE, else computed: one pass); the principal modes \
        (from --modes FILE, else computed: one pass) with their shapes and explained variance; the groups (from \
        --groups FILE, or computed with --groups-k K) with each centroid's shape ± its spread and size. The density \
        charts of the run and of every tensor are counted in one pass. Images are inline (PNG as data: URLs, SVG as \
        markup): the file opens offline, alone.

        Exit codes: 0 ok, 1 failure, 64 usage error (a file that does not belong to the run, an output that is an \
        input), 65 damaged run or too few snapshots.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(name: .shortAndLong, help: "Output HTML file.") var output: String
    @Option(help: "A `psnap moments RUN -o FILE` output to use instead of computing the statistics.") var moments: String?
    @Option(help: "A `psnap modes RUN -o FILE` output to use instead of computing the modes.") var modes: String?
    @Option(help: "A `psnap groups RUN -o FILE` output to show.") var groups: String?
    @Option(name: .customLong("groups-k"), help: "Compute groups of this many (when no --groups file).") var groupsK: Int?
    @Option(help: "Tensors with their own density chart (the largest first).") var tensors: Int = 24
    @Option(help: "Only tensors whose name matches this glob; repeatable.") var include: [String] = []
    @Option(help: "Worker threads (default: all cores).") var workers: Int?
    @Flag(help: "Replace an existing output (never an input).") var force = false

    package init() {}

    package func validate() throws {
        try OptionCheck.workers(workers)
        guard output.lowercased().hasSuffix(".html") || output.lowercased().hasSuffix(".htm") else { throw ValidationError("-o \(output): the report is an .html file") }
        guard tensors >= 0 && tensors <= 1000 else { throw ValidationError("--tensors is 0…1000, not \(tensors)") }
        if let groupsK, groupsK < 1 { throw ValidationError("--groups-k is at least 1, not \(groupsK)") }
        if groups != nil && groupsK != nil { throw ValidationError("--groups FILE or --groups-k K, not both") }
    }

    package func run() throws {
        try CLI.guarded {
            let inputs = [runPath] + [moments, modes, groups].compactMap { $0 }
            try OutputPath.check(output: output, inputs: inputs, force: force)
            let r = try PSnapReader(path: runPath)
            let selected = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            let n = workers ?? ProcessInfo.processInfo.activeProcessorCount
            let name = (runPath as NSString).lastPathComponent
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            defer { bar.finish() }
            var html = HTMLPage(title: "ParamSnap report: \(name)")

            // The run.
            let info = try InfoCommand.parse([runPath])
            html.section("The run", pre: info.humanLines(r, damage: []).joined(separator: "\n"))

            // Loss and learning rate.
            let steps = r.snapshots.map { Double($0.step) }
            var curves: [LineSeries] = []
            for keys in [["loss", "train_loss"], ["eval_loss", "test_loss", "val_loss"], ["lr", "learning_rate"]] {
                for k in keys {
                    let v = r.snapshots.map { s -> Double in if case .number(let x)? = s.metadata?[k] { return x } else { return .nan } }
                    if v.contains(where: \.isFinite) { curves.append(LineSeries(name: k, x: steps, y: v, secondAxis: keys[0] == "lr")); break }
                }
            }
            if curves.isEmpty {
                html.section("Loss and learning rate", text: "The snapshots carry no loss or learning-rate metadata (psnap append --meta loss=…).")
            } else {
                var c = LineChart(series: curves, title: "loss and learning rate", xLabel: "training step", yLabel: "loss")
                c.y2Label = curves.contains(where: \.secondAxis) ? "learning rate" : ""
                html.section("Loss and learning rate", svg: c.svg())
            }

            // Density: the whole selection (values and steps) and its largest tensors (values), counted in one pass.
            let order = selected.sorted { r.layout.parameterCounts[$0] != r.layout.parameterCounts[$1] ? r.layout.parameterCounts[$0] > r.layout.parameterCounts[$1] : $0 < $1 }
            let own = order.prefix(tensors).filter { r.layout.parameterCounts[$0] > 0 }
            // Grids of modest height: the pass costs in proportion to the rows trajectories cross.
            var targets = [DensityTarget(tensors: selected, width: 900, height: 300, view: .values)]
            let withSteps = r.snapshotCount >= 3
            if withSteps { targets.append(DensityTarget(tensors: selected, width: 900, height: 300, view: .steps)) }
            let first = targets.count
            targets += own.map { DensityTarget(tensors: [$0], width: 360, height: 120, view: .values) }
            let all = try Density.computeMany(r, targets: targets, workers: n, progress: { d, t in bar.update(d, t) }, tolerateEmpty: true)
            bar.finish()
            let views: [(DensityView, [DensityGrid])] = [(.values, [all[0]] + all[first...])] + (withSteps ? [(.steps, [all[1]])] : [])
            for (view, grids) in views {
                let g = grids[0]
                var chart = DensityChart(counts: g.counts, width: g.width, height: g.height, x: (Double(g.pointSteps.first!), Double(g.pointSteps.last!)),
                                         y: (g.lo, g.hi), title: "\(CLI.group(g.series)) trajectories: \(ChartCommand.viewTitle(view))", xLabel: "training step",
                                         yLabel: ChartCommand.viewTitle(view))
                chart.note = Self.note(g)
                html.section(view == .values ? "Every parameter" : "Every parameter's steps", png: chart.canvas().png(), alt: "density of every trajectory, \(view.rawValue)")
            }
            if let (_, grids) = views.first, grids.count > 1 {
                html.open("Each tensor", text: "Density of each tensor's trajectories (the column at each snapshot is the tensor's histogram at that snapshot); the \(own.count) largest tensors.")
                for (i, t) in own.enumerated() {
                    let g = grids[i + 1]
                    var chart = DensityChart(counts: g.counts, width: g.width, height: g.height, x: (Double(g.pointSteps.first!), Double(g.pointSteps.last!)),
                                             y: (g.lo, g.hi), title: r.tensors[t].name, xLabel: "training step", yLabel: "value")
                    chart.note = "\(CLI.group(r.layout.parameterCounts[t])) parameters " + r.tensors[t].shape.description
                    html.figure(png: chart.canvas().png(), caption: r.tensors[t].name)
                }
                html.close()
            }

            // Statistics per parameter.
            var statsReader: PSnapReader
            var temp: TempFile?
            if let moments {
                statsReader = try PSnapReader(path: moments)
            } else {
                let t = TempFile(beside: output, .output)
                temp = t
                var o = TrajectoryMomentsOptions()
                o.statistics = [.std, .kurtosis, .netChange, .pathLength]
                o.tensors = selected
                o.workers = n
                o.overwrite = true
                o.progress = { d, tot in bar.update(d, tot) }
                try TrajectoryMoments.run(reader: r, outputPath: t.path, options: o)
                bar.finish()
                statsReader = try PSnapReader(path: t.path)
            }
            defer { temp?.remove() }
            html.open("Statistics of each parameter's trajectory", text: "Distribution over the parameters of each statistic (spec/MOMENTS.md), for the whole selection and its largest tensors.")
            for stat in ["std", "kurtosis", "net_change", "path_length"] {
                if let svg = try Self.statisticChart(statsReader, statistic: stat, run: r, tensors: Array(own.prefix(6))) { html.figure(svg: svg, caption: stat) }
            }
            html.close()

            // Modes.
            let m: ModesResult
            if let modes {
                let f = try PSnapReader(path: modes)
                guard case .string(let j)? = f.metadata.attributes?["modes.json"], let data = j.data(using: .utf8),
                      let parsed = try? JSONDecoder().decode(ModesJSON.self, from: data) else {
                    throw ValidationError("--modes \(modes): not a `psnap modes -o` file (no modes.json attribute)")
                }
                m = ModesResult(view: TrajectoryView(rawValue: parsed.view) ?? .values, snapshots: r.snapshotCount, dimension: parsed.dimension,
                                parameters: 0, nonFiniteParameters: 0, eigenvalues: parsed.eigenvalues, modes: parsed.modes)
            } else {
                m = try Modes.compute(r, k: min(5, r.snapshotCount), view: .values, tensors: selected, workers: n)
            }
            let ratio = m.explainedVarianceRatio
            let modeSteps = m.view == .steps ? Array(steps.dropFirst()) : steps
            var mc = LineChart(series: m.modes.enumerated().map { LineSeries(name: String(format: "mode %d (%.2f%%)", $0.offset + 1, 100 * ratio[$0.offset]), x: modeSteps, y: $0.element) },
                               title: "principal trajectory modes (\(m.view.rawValue))", xLabel: "training step", yLabel: "mode shape")
            mc.height = 320
            var cum = 0.0
            let rows = ratio.prefix(10).enumerated().map { i, v -> [String] in cum += v; return ["\(i + 1)", String(format: "%.4f %%", 100 * v), String(format: "%.4f %%", 100 * cum)] }
            html.section("Principal modes", svg: mc.svg(), table: (["mode", "explained", "cumulative"], rows))

            // Groups.
            var g: (centroids: [[Double]], sizes: [Int], rms: [Double], features: String)?
            if let groups {
                let f = try PSnapReader(path: groups)
                guard case .string(let j)? = f.metadata.attributes?["groups.json"], let data = j.data(using: .utf8),
                      let parsed = try? JSONDecoder().decode(GroupsJSON.self, from: data) else {
                    throw ValidationError("--groups \(groups): not a `psnap groups -o` file (no groups.json attribute)")
                }
                let obj = parsed.objectives
                let rms = parsed.sizes.indices.map { parsed.sizes[$0] > 0 && $0 < obj.count ? (obj[$0] / Double(parsed.sizes[$0])).squareRoot() : 0 }
                g = (parsed.centroids, parsed.sizes, rms, parsed.features)
            } else if let groupsK {
                let res = try Groups.compute(r, k: groupsK, features: .trajectories(.values), tensors: selected, workers: n)
                g = (res.centroids, res.sizes, res.rmsDistances, res.features)
            }
            if let g {
                html.open("Groups", text: "Parameters grouped by the shape of their trajectories (\(g.features)); each centroid ± its members' RMS distance per point, largest groups first.")
                let total = max(1, g.sizes.reduce(0, +))
                let byted = g.sizes.indices.sorted { g.sizes[$0] > g.sizes[$1] }
                for i in byted.prefix(32) where g.sizes[i] > 0 {
                    let c = g.centroids[i]
                    let x = c.count == steps.count ? steps : (c.count == steps.count - 1 ? Array(steps.dropFirst()) : (0..<c.count).map(Double.init))
                    let spread = g.rms[i] / Double(max(1, c.count)).squareRoot()
                    var lc = LineChart(series: [LineSeries(name: "group \(i)", x: x, y: c, band: (c.map { $0 - spread }, c.map { $0 + spread }))],
                                       title: String(format: "group %d: %@ parameters (%.1f%%)", i, CLI.group(g.sizes[i]), 100 * Double(g.sizes[i]) / Double(total)),
                                       xLabel: c.count == steps.count || c.count == steps.count - 1 ? "training step" : "feature", yLabel: "centroid")
                    lc.width = 360; lc.height = 200
                    html.figure(svg: lc.svg(), caption: "group \(i)")
                }
                html.close()
            }

            let page = html.finish()
            try AtomicFile.write(output, inputs: inputs, force: force) { try $0(Array(page.utf8)) }
            print("wrote \(output) (\(CLI.bytes(UInt64(page.utf8.count))))")
        }
    }

    struct ModesJSON: Decodable { let view: String; let dimension: Int; let eigenvalues: [Double]; let modes: [[Double]] }
    struct GroupsJSON: Decodable { let features: String; let sizes: [Int]; let centroids: [[Double]]; let groupObjective: [Double?]?
        var objectives: [Double] { (groupObjective ?? []).map { $0 ?? 0 } }
    }

    static func note(_ g: DensityGrid) -> String {
        var parts: [String] = []
        if g.constant > 0 { parts.append("\(CLI.group(g.constant)) constant left out") }
        if g.nonFinite > 0 { parts.append("\(CLI.group(g.nonFinite)) with NaN/inf (not drawn there)") }
        let outside = g.below.reduce(0, +) + g.above.reduce(0, +)
        if outside > 0 { parts.append(String(format: "%.3f%% of points outside the range", 100 * Double(outside) / Double(max(1, UInt64(g.width) * UInt64(max(1, g.series)))))) }
        parts.append(String(format: "range %@ … %@%@", Ticks.label(g.lo), Ticks.label(g.hi), g.sampledRange ? " (from a sample)" : ""))
        return parts.joined(separator: "; ")
    }

    /// A histogram of `statistic` over every parameter of the stats file, and over each of `tensors`, as lines.
    static func statisticChart(_ f: PSnapReader, statistic: String, run: PSnapReader, tensors: [Int]) throws -> String? {
        let names = f.snapshots.map { s -> String in if case .string(let n)? = s.metadata?["statistic"] { return n } else { return "" } }
        guard let k = names.firstIndex(of: statistic) else { return nil }
        let S = f.snapshotCount
        let shown = Set(tensors.map { run.tensors[$0].name })
        // Streamed in slices of 64 Ki parameters: a range from every k-th value (at most ~1 Mi kept), then the counts.
        let total = f.parameterCount, stride = max(1, total / (1 << 20)), slice = 1 << 16
        func forEachSlice(_ body: (Int, UnsafeBufferPointer<Double>, Int) -> Void) throws {
            for t in f.tensors.indices {
                let n = f.layout.parameterCounts[t]
                var p0 = 0
                while p0 < n {
                    let m = min(slice, n - p0)
                    let rows = try f.trajectories(tensor: t, range: p0..<(p0 + m))
                    rows.withUnsafeBufferPointer { body(t, $0, m) }
                    f.file.releaseResidentPages()   // streamed: the file's pages do not accumulate
                    p0 += m
                }
            }
        }
        var sample: [Double] = []
        var seen = 0
        try forEachSlice { _, rows, m in
            for p in 0..<m { if seen % stride == 0, rows[p * S + k].isFinite { sample.append(rows[p * S + k]) }; seen += 1 }
        }
        guard sample.count > 1 else { return nil }
        sample.sort()
        let lo = sample[Int(0.005 * Double(sample.count - 1))], hi = sample[Int(0.995 * Double(sample.count - 1))]
        guard hi > lo else { return nil }
        let bins = 60
        var all = [Double](repeating: 0, count: bins), allCount = 0.0
        var per: [Int: (counts: [Double], n: Double)] = [:]
        try forEachSlice { t, rows, m in
            let mine = shown.contains(f.tensors[t].name)
            if mine && per[t] == nil { per[t] = ([Double](repeating: 0, count: bins), 0) }
            for p in 0..<m {
                let x = rows[p * S + k]
                guard x.isFinite else { continue }
                allCount += 1
                if mine { per[t]!.n += 1 }
                guard x >= lo && x <= hi else { continue }
                let b = min(bins - 1, Int((x - lo) / (hi - lo) * Double(bins)))
                all[b] += 1
                if mine { per[t]!.counts[b] += 1 }
            }
        }
        let centres = (0..<bins).map { lo + (Double($0) + 0.5) * (hi - lo) / Double(bins) }
        var series = [LineSeries(name: "all (\(Int(allCount)))", x: centres, y: all.map { $0 / max(1, allCount) })]
        series += per.keys.sorted().map { t in LineSeries(name: f.tensors[t].name, x: centres, y: per[t]!.counts.map { $0 / max(1, per[t]!.n) }) }
        var c = LineChart(series: series, title: "\(statistic) of each parameter's trajectory (0.5–99.5 % range)", xLabel: statistic, yLabel: "share of parameters")
        c.width = 460; c.height = 260
        return c.svg()
    }
}

/// The page: sections of text, tables, inline SVG and inline PNG.
struct HTMLPage {
    var body = ""
    let title: String
    init(title: String) { self.title = title }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    mutating func open(_ heading: String, text: String? = nil) {
        body += "<section><h2>\(Self.escape(heading))</h2>\n"
        if let text { body += "<p>\(Self.escape(text))</p>\n" }
        body += "<div class=\"grid\">\n"
    }
    mutating func close() { body += "</div></section>\n" }

    mutating func figure(png: [UInt8], caption: String) {
        body += "<figure><img alt=\"\(Self.escape(caption))\" src=\"data:image/png;base64,\(Data(png).base64EncodedString())\"><figcaption>\(Self.escape(caption))</figcaption></figure>\n"
    }
    mutating func figure(svg: String, caption: String) {
        body += "<figure>\(svg)<figcaption>\(Self.escape(caption))</figcaption></figure>\n"
    }

    mutating func section(_ heading: String, text: String? = nil, pre: String? = nil, svg: String? = nil, png: [UInt8]? = nil, alt: String = "",
                          table: ([String], [[String]])? = nil) {
        body += "<section><h2>\(Self.escape(heading))</h2>\n"
        if let text { body += "<p>\(Self.escape(text))</p>\n" }
        if let pre { body += "<pre>\(Self.escape(pre))</pre>\n" }
        if let svg { body += "<div>\(svg)</div>\n" }
        if let png { body += "<img alt=\"\(Self.escape(alt))\" src=\"data:image/png;base64,\(Data(png).base64EncodedString())\">\n" }
        if let (head, rows) = table {
            body += "<table><tr>" + head.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr>\n"
            for row in rows { body += "<tr>" + row.map { "<td>\(Self.escape($0))</td>" }.joined() + "</tr>\n" }
            body += "</table>\n"
        }
        body += "</section>\n"
    }

    func finish() -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(title))</title>
        <style>
        body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1400px; }
        pre { background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 12px; }
        .grid { display: flex; flex-wrap: wrap; gap: 12px; }
        figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
        table { border-collapse: collapse; font-size: 13px; } td, th { padding: 2px 10px; text-align: right; }
        img { max-width: 100%; }
        </style></head><body>
        <h1>\(Self.escape(title))</h1>
        \(body)<p style="color:#888;font-size:12px">Written by psnap report (ParamSnap).</p>
        </body></html>

        """
    }
}
