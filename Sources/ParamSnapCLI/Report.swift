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
import Synchronization

/// `psnap report RUN -o report.html [--moments M] [--modes M] [--groups G | --groups-k K]`.
package struct ReportCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "One self-contained HTML page about a run: summary, loss, every parameter's density, statistics, modes, groups.",
        discussion: """
        Sections: the run (what snapinfo prints); loss and learning rate from the snapshots' metadata; the density \
        chart of every parameter (values; steps too with --steps) and of each of the --tensors largest tensors (their \
        columns at the snapshots are the per-tensor histograms over training); the distribution of each parameter's \
        std, kurtosis, net change and path length (from --moments FILE, else computed); the principal modes (from \
        --modes FILE, else computed) with their shapes and explained variance; the groups (from --groups FILE, or \
        computed with --groups-k K) with each centroid's shape ± its spread and size. The run is read once for the \
        density charts, the statistics (binned over the 0.5–99.5 % range of a sample of 64 blocks) and the modes' \
        Gram matrix; groups computed with --groups-k take their own passes. Images are inline (PNG as data: URLs, SVG \
        as markup): the file opens offline, alone.

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
    @Flag(name: .customLong("steps"), help: "Also the density of every parameter's steps (counting it costs 2–6× a verify pass more).") var stepsChart = false
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

            // One read of the run: the density of the whole selection (values, and steps with --steps) and of its largest
            // tensors, and beside them each parameter's statistics (binned) and the modes' Gram matrix, unless files
            // were given for them.
            let counts: [Int] = r.layout.parameterCounts
            let order = selected.sorted { (a: Int, b: Int) -> Bool in counts[a] != counts[b] ? counts[a] > counts[b] : a < b }
            let own = order.prefix(tensors).filter { counts[$0] > 0 }
            let shown = Array(own.prefix(6))
            // Grids of modest height: the pass costs in proportion to the rows trajectories cross.
            var targets = [DensityTarget(tensors: selected, width: 900, height: 300, view: .values)]
            let withSteps = stepsChart && r.snapshotCount >= 3
            if withSteps { targets.append(DensityTarget(tensors: selected, width: 900, height: 300, view: .steps)) }
            let first = targets.count
            targets += own.map { DensityTarget(tensors: [$0], width: 360, height: 120, view: .values) }
            let statRanges = moments == nil ? try ReportObserver.statisticRanges(r, tensors: selected) : nil
            let modesK = min(5, r.snapshotCount)
            let observers = ReportObserver.Registry()
            let wantGram = modes == nil && r.snapshotCount >= 2
            var makeObserver: (@Sendable (Int) -> any DensityBlockObserver)? = nil
            if statRanges != nil || wantGram {
                makeObserver = { (_: Int) -> any DensityBlockObserver in
                    let o = ReportObserver(reader: r, ranges: statRanges, shown: shown, gram: wantGram)
                    observers.add(o)
                    return o
                }
            }
            let all = try Density.computeMany(r, targets: targets, workers: n, progress: { d, t in bar.update(d, t) }, tolerateEmpty: true, observer: makeObserver)
            bar.finish()
            let gathered = observers.all
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

            // Statistics per parameter: from --moments FILE, else binned in the pass above.
            html.open("Statistics of each parameter's trajectory", text: "Distribution over the parameters of each statistic (spec/MOMENTS.md), for the whole selection and its largest tensors.")
            let momentsFile = try moments.map { try PSnapReader(path: $0) }
            for (k, stat) in ReportObserver.statistics.enumerated() {
                let h: StatisticHistogram?
                if let momentsFile {
                    h = try Self.statisticHistogram(momentsFile, statistic: stat, run: r, tensors: shown)
                } else {
                    h = ReportObserver.merged(gathered, statistic: k)
                }
                if let h { html.figure(svg: Self.statisticChart(stat, h, sampledRange: moments == nil), caption: stat) }
            }
            html.close()

            // Modes: from --modes FILE, else from the Gram matrix summed in the pass above.
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
                var gram = GramAccumulator(dimension: r.snapshotCount)
                for o in gathered { if let g = o.gram { gram.merge(g) } }
                m = try Modes.fromGram(gram, k: modesK, view: .values, snapshots: r.snapshotCount)
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

    /// A histogram of `statistic` over every parameter of a `psnap moments -o` file, and over each of `tensors`.
    static func statisticHistogram(_ f: PSnapReader, statistic: String, run: PSnapReader, tensors: [Int]) throws -> StatisticHistogram? {
        let names = f.snapshots.map { s -> String in if case .string(let n)? = s.metadata?["statistic"] { return n } else { return "" } }
        guard let k = names.firstIndex(of: statistic) else { return nil }
        let S = f.snapshotCount
        let shown = tensors.map { run.tensors[$0].name }
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
        guard var h = StatisticHistogram(sample: &sample, shown: shown) else { return nil }
        try forEachSlice { t, rows, m in
            let slot = shown.firstIndex(of: f.tensors[t].name)
            for p in 0..<m { h.add(rows[p * S + k], slot: slot) }
        }
        return h
    }

    /// A statistic's histograms as lines: the whole selection and each shown tensor, as shares of their parameters.
    static func statisticChart(_ statistic: String, _ h: StatisticHistogram, sampledRange: Bool) -> String {
        let bins = StatisticHistogram.bins
        let centres = (0..<bins).map { h.lo + (Double($0) + 0.5) * (h.hi - h.lo) / Double(bins) }
        var series = [LineSeries(name: "all (\(Int(h.count)))", x: centres, y: h.all.map { $0 / max(1, h.count) })]
        for (i, name) in h.shown.enumerated() where h.shownCount[i] > 0 {
            series.append(LineSeries(name: name, x: centres, y: h.perShown[i].map { $0 / max(1, h.shownCount[i]) }))
        }
        var c = LineChart(series: series, title: "\(statistic) of each parameter's trajectory (0.5–99.5 % range\(sampledRange ? " of a sample" : ""))",
                          xLabel: statistic, yLabel: "share of parameters")
        c.width = 460; c.height = 260
        return c.svg()
    }
}

/// Counts of one statistic's values in `bins` equal bins over [lo, hi], for all parameters and per shown tensor; values
/// outside count in the totals only.
struct StatisticHistogram: Sendable {
    static let bins = 60
    let lo: Double, hi: Double
    let shown: [String]
    var all: [Double]
    var count = 0.0
    var perShown: [[Double]]
    var shownCount: [Double]

    init(lo: Double, hi: Double, shown: [String]) {
        self.lo = lo; self.hi = hi; self.shown = shown
        all = [Double](repeating: 0, count: Self.bins)
        perShown = [[Double]](repeating: [Double](repeating: 0, count: Self.bins), count: shown.count)
        shownCount = [Double](repeating: 0, count: shown.count)
    }

    /// The range of a sample of finite values (its 0.5 % and 99.5 % quantiles); nil when it holds no spread.
    init?(sample: inout [Double], shown: [String]) {
        guard sample.count > 1 else { return nil }
        sample.sort()
        let lo = sample[Int(0.005 * Double(sample.count - 1))], hi = sample[Int(0.995 * Double(sample.count - 1))]
        guard hi > lo else { return nil }
        self.init(lo: lo, hi: hi, shown: shown)
    }

    @inline(__always) mutating func add(_ x: Double, slot: Int?) {
        guard x.isFinite else { return }
        count += 1
        if let slot { shownCount[slot] += 1 }
        guard x >= lo && x <= hi else { return }
        let b = min(Self.bins - 1, Int((x - lo) / (hi - lo) * Double(Self.bins)))
        all[b] += 1
        if let slot { perShown[slot][b] += 1 }
    }

    mutating func merge(_ o: StatisticHistogram) {
        count += o.count
        for b in 0..<Self.bins { all[b] += o.all[b] }
        for i in shown.indices { shownCount[i] += o.shownCount[i]; for b in 0..<Self.bins { perShown[i][b] += o.perShown[i][b] } }
    }
}

/// What `psnap report` gathers beside the density counts, per worker: each parameter's statistics binned
/// (`ReportObserver.statistics`, as `psnap moments` computes them from the whole trajectory) and the Gram matrix of
/// the centred trajectories (the modes).
final class ReportObserver: DensityBlockObserver, @unchecked Sendable {
    static let statistics = ["std", "kurtosis", "net_change", "path_length"]

    /// The observers the workers were given.
    final class Registry: Sendable {
        private let list = Mutex<[ReportObserver]>([])
        func add(_ o: ReportObserver) { list.withLock { $0.append(o) } }
        var all: [ReportObserver] { list.withLock { $0 } }
    }

    let snapshots: Int
    var histograms: [StatisticHistogram?]
    let slotOfTensor: [Int: Int]
    var gram: GramAccumulator?
    private var scratch: [Double]
    private var out = [Double](repeating: 0, count: 4)

    init(reader: PSnapReader, ranges: [(Double, Double)?]?, shown: [Int], gram wantGram: Bool) {
        snapshots = reader.snapshotCount
        let names = shown.map { reader.tensors[$0].name }
        histograms = (ranges ?? []).map { r in r.map { StatisticHistogram(lo: $0.0, hi: $0.1, shown: names) } }
        slotOfTensor = Dictionary(uniqueKeysWithValues: shown.enumerated().map { ($1, $0) })
        gram = wantGram ? GramAccumulator(dimension: reader.snapshotCount) : nil
        scratch = wantGram ? [Double](repeating: 0, count: reader.layout.blockSize * reader.snapshotCount) : []
    }

    func observe(tensor: Int, block: Int, rows: UnsafePointer<Double>, count n: Int) {
        let S = snapshots
        if !histograms.isEmpty {
            let slot = slotOfTensor[tensor]
            // Counted in a local (a stored property's every access is checked for exclusivity).
            var h = histograms
            histograms = []
            out.withUnsafeMutableBufferPointer { o in
                for p in 0..<n {
                    TrajectoryState.shapeStatistics(UnsafeBufferPointer(start: rows + p * S, count: S), into: o.baseAddress!)
                    for k in 0..<4 where h[k] != nil { h[k]!.add(o[k], slot: slot) }
                }
            }
            histograms = h
        }
        if gram != nil {
            // The Gram accumulator centres rows in place: a copy, the loaded rows are read only.
            scratch.withUnsafeMutableBufferPointer { sc in
                sc.baseAddress!.update(from: rows, count: n * S)
                gram!.add(rows: sc, count: n)
            }
        }
    }

    /// The ranges of the statistics from the selection's sampled blocks (`Density.sampleBlocks`, evenly spaced):
    /// the 0.5 % and 99.5 % quantiles of each, nil where it does not spread.
    static func statisticRanges(_ r: PSnapReader, tensors: [Int]) throws -> [(Double, Double)?] {
        let blocks = tensors.sorted().flatMap { t in (0..<r.layout.blockCounts[t]).map { (t, $0) } }
        let K = Density.sampleBlocks
        let pick = blocks.count <= K ? blocks : (0..<K).map { blocks[$0 * blocks.count / K] }
        let S = r.snapshotCount
        var loader = BlockLoader(r)
        defer { loader.flush() }
        var rows = [Double](repeating: 0, count: r.layout.blockSize * S), out = [Double](repeating: 0, count: 4)
        var samples = [[Double]](repeating: [], count: statistics.count)
        for (t, b) in pick {
            try rows.withUnsafeMutableBufferPointer { rw in
                let n = try loader.load(tensor: t, block: b, into: rw.baseAddress!)
                out.withUnsafeMutableBufferPointer { o in
                    for p in 0..<n {
                        TrajectoryState.shapeStatistics(UnsafeBufferPointer(start: rw.baseAddress! + p * S, count: S), into: o.baseAddress!)
                        for k in 0..<4 where o[k].isFinite { samples[k].append(o[k]) }
                    }
                }
            }
        }
        return samples.indices.map { k in
            var v = samples[k]
            return StatisticHistogram(sample: &v, shown: []).map { ($0.lo, $0.hi) }
        }
    }

    /// Statistic k's histograms merged over the workers' observers; nil when it had no range.
    static func merged(_ observers: [ReportObserver], statistic k: Int) -> StatisticHistogram? {
        var total: StatisticHistogram?
        for o in observers {
            guard k < o.histograms.count, let h = o.histograms[k] else { continue }
            if total == nil { total = h } else { total!.merge(h) }
        }
        return total
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
