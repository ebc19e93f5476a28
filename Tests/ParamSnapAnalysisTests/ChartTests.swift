// The density chart: its counts equal the numpy implementation of spec/CHARTS.md exactly (every view, the shared runs,
// a multi-segment run with NaN and infinities), its PNG and SVG are read by independent decoders, and bad requests
// get clear errors.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) import ParamSnap
@testable import ParamSnapAnalysis

private let numpyAvailable = pythonSucceeds("import numpy, zstandard")
private let pillowAvailable = pythonSucceeds("import PIL")

@Suite struct ChartTests {
    let psnap = productPath("psnap")

    func checkCounts(_ path: String, view: String, size: [String], in dir: String) throws {
        let counts = dir + "/counts-\(view).npy", json = dir + "/chart-\(view).json"
        let out = try runProcess(psnap, ["chart", path, "--view", view, "--counts", counts, "--json", "--force"] + size)
        #expect(out.status == 0, "\(out.err)")
        try out.out.write(toFile: json, atomically: true, encoding: .utf8)
        let check = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_chart.py", path, counts, json, "--view", view])
        #expect(check.status == 0, "\(path) \(view): \(check.out) \(check.err)")
    }

    @Test(.enabled(if: numpyAvailable), arguments: [("tiny-gpt", "values"), ("tiny-gpt", "relative"), ("mlp-digits", "z"),
                                                     ("mlp-digits", "steps"), ("tiny-gpt-bf16", "values"), ("tiny-gpt-bf16", "z")])
    func countsEqualTheNumpyRule(run: String, view: String) throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(psnap, ["convert", sharedData + "/" + run, "-o", path, "--quiet"]).status == 0)
        // The default size for one case, smaller grids (and so more points per column) for the others.
        try checkCounts(path, view: view, size: run == "tiny-gpt" && view == "values" ? [] : ["--width", "300", "--height", "160"], in: dir)
    }

    @Test(.enabled(if: numpyAvailable)) func nanInfinitiesAndSegmentsFollowTheRule() throws {
        // The golden run: three segments, constant rows, NaN and ±inf in several dtypes.
        let dir = tempDir(); defer { cleanup(dir) }
        for view in ["values", "relative", "z", "steps"] {
            try checkCounts(GoldenFixtures.dir + "/dtypes.psnap", view: view, size: ["--width", "40", "--height", "30"], in: dir)
        }
        let r = try PSnapReader(path: GoldenFixtures.dir + "/dtypes.psnap")
        let g = try Density.compute(r, view: .z, width: 40, height: 30)
        #expect(g.constant > 0 && g.nonFinite > 0 && g.series + g.constant + g.nonFinite == r.parameterCount)
        // Every column holds each drawn series once (a finite one; in range or counted outside).
        let finite = try Density.compute(r, view: .values, tensors: [0], width: 40, height: 30, fullRange: true)
        for c in 0..<40 {
            let total = (0..<30).reduce(UInt64(0)) { $0 + finite.counts[$1 * 40 + c] } + finite.below[c] + finite.above[c]
            #expect(total <= UInt64(finite.series))
        }
    }

    @Test(.enabled(if: numpyAvailable)) func aPointBeforeANonFiniteOneIsInItsColumn() throws {
        // NaN and ±inf in the middle, at the start and at the end of trajectories; segments one column wide (width =
        // snapshots) and wider, and a range that leaves values below and above it: counts and every point's column
        // equal numpy's.
        let dir = tempDir(); defer { cleanup(dir) }
        let script = """
        import numpy as np, sys
        rng = np.random.default_rng(5)
        x = np.cumsum(rng.normal(size=(20, 64)).astype(np.float32), axis=0)
        x[3, 5] = np.nan; x[7, 9] = np.inf; x[8, 10] = -np.inf; x[12, 11] = np.nan; x[0, 12] = np.nan; x[19, 13] = np.nan
        x[4:9, 14] = np.nan
        for s in range(20): np.savez(f"{sys.argv[1]}/step-{s:03d}.npz", w=x[s])
        """
        try FileManager.default.createDirectory(atPath: dir + "/dumps", withIntermediateDirectories: true)
        let made = try runProcess("/usr/bin/env", ["python3", "-c", script, dir + "/dumps"])
        #expect(made.status == 0, "\(made.err)")
        let path = dir + "/run.psnap"
        #expect(try runProcess(psnap, ["convert", dir + "/dumps", "-o", path, "--quiet"]).status == 0)
        for view in ["values", "relative", "steps"] {
            for size in [["--width", "20", "--height", "30"], ["--width", "57", "--height", "40"], ["--width", "20", "--height", "16", "--y-range=-2:2"]] {
                try checkCounts(path, view: view, size: size, in: dir)
            }
        }
    }

    @Test func quantilesOfTheSampleAreThoseOfItsSortedCopy() {
        // The default range's quantiles come from a selection, not a sort: the same values on samples with many ties,
        // sorted and reversed input, and one value.
        var g = SystemRandomNumberGenerator()
        for trial in 0..<200 {
            let n = trial == 0 ? 1 : Int.random(in: 2...3000, using: &g)
            var v: [Double] = (0..<n).map { _ in trial % 3 == 0 ? Double(Int.random(in: -3...3, using: &g)) : Double.random(in: -1...1, using: &g) }
            if trial % 7 == 1 { v.sort() } else if trial % 7 == 2 { v.sort(by: >) }
            let sorted = v.sorted()
            let i = Int.random(in: 0..<n, using: &g), j = Int.random(in: i..<n, using: &g)
            Density.select(&v, j, in: 0..<n)
            if i < j { Density.select(&v, i, in: 0..<j) }
            #expect(v[i] == sorted[i] && v[j] == sorted[j], "n \(n), i \(i), j \(j)")
            #expect(v.sorted() == sorted)
        }
    }

    @Test func imagesAreReadByIndependentDecoders() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(psnap, ["convert", sharedData + "/mlp-digits", "-o", path, "--quiet"]).status == 0)
        let png = dir + "/all.png", svg = dir + "/all.svg", lines = dir + "/lines.svg"
        #expect(try runProcess(psnap, ["chart", path, "-o", png, "--width", "320", "--height", "200"]).status == 0)
        #expect(try runProcess(psnap, ["chart", path, "-o", svg, "--view", "steps", "--scale", "eq"]).status == 0)
        let l = try runProcess(psnap, ["chart", path, "--params", "fc1.weight[3,17]", "fc2.bias[5]", "-o", lines])
        #expect(l.status == 0, "\(l.err)")
        // Python's XML parser reads the SVG; Pillow decodes the PNG and the SVG's embedded images.
        guard pillowAvailable else { return }
        let script = """
        import sys, base64, io, re
        import xml.etree.ElementTree as ET
        from PIL import Image
        im = Image.open(sys.argv[1]); im.load()
        assert im.size == (320 + 78 + 96, 200 + 40 + 46), im.size
        assert im.mode == "RGB"
        px = im.getpixel((78 + 160, 40 + 100))
        root = ET.parse(sys.argv[2]).getroot()
        imgs = [e for e in root.iter() if e.tag.endswith("image")]
        assert len(imgs) == 2, len(imgs)
        for e in imgs:
            href = e.get("href")
            data = base64.b64decode(href.split(",", 1)[1])
            Image.open(io.BytesIO(data)).load()
        lines = ET.parse(sys.argv[3]).getroot()
        assert sum(1 for e in lines.iter() if e.tag.endswith("polyline")) >= 2
        print("ok", im.size, px)
        """
        let check = try runProcess("/usr/bin/env", ["python3", "-c", script, png, svg, lines])
        #expect(check.status == 0 && check.out.hasPrefix("ok"), "\(check.out) \(check.err)")
    }

    @Test func badRequestsGetClearErrors() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let golden = GoldenFixtures.dir + "/dtypes.psnap"
        let one = dir + "/one.psnap"
        let w = try SnapshotWriter.create(path: one, tensors: [TensorInfo(name: "w", dtype: .f32, shape: [3])])
        try w.append(SnapshotInfo(step: 0), tensors: ["w": [UInt8](repeating: 0, count: 12)])
        try w.close()
        // An output that is the run under another name (a symbolic link) is refused, even with --force.
        let copy = dir + "/g.psnap"
        try FileManager.default.copyItem(atPath: golden, toPath: copy)
        try FileManager.default.createSymbolicLink(atPath: dir + "/g.svg", withDestinationPath: copy)
        let cases: [([String], Int32, String)] = [
            (["chart", one, "-o", dir + "/a.png"], 65, "at least 2 snapshots"),
            (["chart", golden, "-o", dir + "/a.png", "--width", "100000"], 64, "--width and --height"),
            (["chart", golden, "-o", dir + "/a.png", "--y-range", "1:0"], 64, "--y-range"),
            (["chart", golden, "-o", dir + "/a.txt"], 64, ".png or .svg"),
            (["chart", golden, "-o", dir + "/a.png", "--include", "nothing-like-it"], 64, "nothing-like-it"),
            (["chart", copy, "-o", dir + "/g.svg", "--force"], 64, "is the input"),
            (["chart", golden, "--params", "layer.f32[9,9]", "-o", dir + "/l.svg"], 64, "layer.f32"),
        ]
        for (args, code, text) in cases {
            let out = try runProcess(psnap, args)
            #expect(out.status == code && out.err.contains(text), "\(args): \(out.status) \(out.err)")
        }
        #expect(try PSnapReader(path: copy).snapshotCount == 5)   // the run itself untouched
    }
}

private let browserAvailable = pythonSucceeds("import playwright, shutil, sys; sys.exit(0 if shutil.which('chromium') else 1)")

@Suite struct ReportTests {
    let psnap = productPath("psnap")

    /// A report from the analysis outputs of a real run, and one computing everything on a run with constant, NaN and
    /// infinite trajectories: both open in headless Chromium offline with no console error and every image decoded.
    @Test(.enabled(if: browserAvailable)) func reportsOpenInABrowser() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(psnap, ["convert", sharedData + "/mlp-digits", "-o", path, "--quiet"]).status == 0)
        let m = dir + "/moments.psnap", modes = dir + "/modes.psnap", groups = dir + "/groups.psnap"
        #expect(try runProcess(psnap, ["moments", path, "-o", m]).status == 0)
        #expect(try runProcess(psnap, ["modes", path, "-k", "4", "-o", modes]).status == 0)
        #expect(try runProcess(psnap, ["groups", path, "-k", "6", "--iterations", "4", "-o", groups]).status == 0)
        let html = dir + "/report.html"
        let out = try runProcess(psnap, ["report", path, "-o", html, "--moments", m, "--modes", modes, "--groups", groups, "--tensors", "4"])
        #expect(out.status == 0, "\(out.err)")
        let page = try String(contentsOfFile: html, encoding: .utf8)
        for section in ["The run", "Every parameter", "Each tensor", "Statistics of each parameter", "Principal modes", "Groups"] {
            #expect(page.contains(section), "missing section \(section)")
        }
        #expect(!page.contains("http://") || page.components(separatedBy: "http://").count == page.components(separatedBy: "http://www.w3.org/2000/svg").count)
        let check = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_report.py", html, dir + "/report.png"])
        #expect(check.status == 0, "\(check.out) \(check.err)")

        let golden = dir + "/golden.html"
        let g = try runProcess(psnap, ["report", GoldenFixtures.dir + "/dtypes.psnap", "-o", golden, "--groups-k", "2"])
        #expect(g.status == 0, "\(g.err)")
        let check2 = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_report.py", golden, dir + "/golden.png"])
        #expect(check2.status == 0, "\(check2.out) \(check2.err)")
        // A file of another kind where a modes file is expected is named.
        let bad = try runProcess(psnap, ["report", path, "-o", dir + "/x.html", "--modes", m])
        #expect(bad.status == 64 && bad.err.contains("not a `psnap modes -o` file"), "\(bad.err)")
    }
}

/// The analysis results that cross a split of the parameters merge into the whole's: a chart's counts and a search's
/// top lists computed over two halves of a run's tensors equal those of one pass over all of them.
@Suite struct MergeTests {
    @Test func onePassOfManyChartsEqualsSeparatePasses() throws {
        // Two views and a tensor's chart in one pass, with and without band and pair tables (and with some only), and with
        // tables drawn and zeroed after every batch: the same counts as one pass per chart.
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(productPath("psnap"), ["convert", sharedData + "/mlp-digits", "-o", path, "--quiet"]).status == 0)
        let r = try PSnapReader(path: path)
        let all = Array(r.tensors.indices)
        let targets = [DensityTarget(tensors: all, width: 200, height: 100, view: .values), DensityTarget(tensors: all, width: 200, height: 100, view: .steps),
                       DensityTarget(tensors: [0], width: 64, height: 32, view: .z)]
        let separate = try targets.map { try Density.compute(r, view: $0.view!, tensors: $0.tensors, width: $0.width, height: $0.height) }
        for (budget, redraw) in [(Density.tableBudget, UInt64(UInt32.max)), (0, UInt64(UInt32.max)), (Density.tableBudget, UInt64(1)), (300_000, UInt64(7))] {
            let together = try Density.computeMany(r, view: .values, targets: targets, fullRange: false, workers: 2, progress: nil, tolerateEmpty: false,
                                                   tableBudget: budget, tableRedraw: redraw)
            for (a, b) in zip(together, separate) {
                #expect(a.view == b.view && a.lo == b.lo && a.hi == b.hi && a.counts == b.counts && a.below == b.below && a.above == b.above)
                #expect(a.series == b.series && a.constant == b.constant && a.nonFinite == b.nonFinite)
            }
        }
        #expect(separate[1].counts.reduce(0, +) > 0 && separate[2].constant + separate[2].series == r.layout.parameterCounts[0])
    }

    @Test func halvesMergeIntoTheWhole() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(productPath("psnap"), ["convert", sharedData + "/mlp-digits", "-o", path, "--quiet"]).status == 0)
        let r = try PSnapReader(path: path)
        let all = Array(r.tensors.indices), first = Array(all.prefix(all.count / 2)), second = Array(all.dropFirst(all.count / 2))
        let range = (-0.5, 0.5)
        let whole = try Density.compute(r, view: .values, tensors: all, width: 120, height: 60, range: range)
        var merged = try Density.compute(r, view: .values, tensors: first, width: 120, height: 60, range: range)
        merged.merge(try Density.compute(r, view: .values, tensors: second, width: 120, height: 60, range: range))
        #expect(merged.counts == whole.counts && merged.below == whole.below && merged.above == whole.above && merged.series == whole.series)
        let q = [try r.trajectory(global: 12345), try r.trajectory(global: 777)]
        let w = try Similar.search(r, queries: q, top: 30, tensors: all)
        var m = try Similar.search(r, queries: q, top: 30, tensors: first)
        m.merge(try Similar.search(r, queries: q, top: 30, tensors: second), top: 30)
        #expect(m.hits == w.hits && m.searched == w.searched && m.constant == w.constant)
    }
}
