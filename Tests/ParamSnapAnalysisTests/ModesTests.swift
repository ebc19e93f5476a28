// The principal modes pass: the Gram matrix merges exactly, bad requests are refused by name, and eigenvalues, ratios,
// modes, per-parameter coefficients and R² agree with numpy's on the shared real runs (both views) and on a run with NaN
// and infinities.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) import ParamSnap
@testable import ParamSnapAnalysis

@Suite struct ModesTests {
    let psnap = productPath("psnap")

    @Test func gramAccumulatorsMergeToTheOnePassMatrix() {
        var rng = SeededRNG(seed: testSeed(0x6A4D))
        let d = 7, n = 50
        let values = (0..<(n * d)).map { _ in Double(Int64(bitPattern: rng.next()) >> 40) * 1e-6 }
        func gram(_ rows: Range<Int>) -> GramAccumulator {
            var g = GramAccumulator(dimension: d)
            var buf = Array(values[(rows.lowerBound * d)..<(rows.upperBound * d)])
            buf.withUnsafeMutableBufferPointer { g.add(rows: $0, count: rows.count) }
            return g
        }
        var merged = gram(0..<17)
        merged.merge(gram(17..<50))
        let whole = gram(0..<n)
        #expect(merged.rows == n && whole.rows == n)
        for (a, b) in zip(merged.symmetric, whole.symmetric) { #expect(abs(a - b) <= 1e-12 * max(1, abs(b))) }
        // Centred rows: every row of the Gram matrix sums to zero.
        let g = whole.symmetric
        for i in 0..<d { #expect(abs((0..<d).reduce(0) { $0 + g[i * d + $1] }) <= 1e-9) }
    }

    @Test func badRequestsAreRefusedByName() throws {
        let r = try PSnapReader(path: GoldenFixtures.dir + "/dtypes.psnap")
        #expect(throws: AnalysisError.badComponentCount(6, max: 5)) { try Modes.compute(r, k: 6) }
        #expect(throws: AnalysisError.badComponentCount(0, max: 4)) { try Modes.compute(r, k: 0, view: .steps) }
        let dir = tempDir(); defer { cleanup(dir) }
        let one = dir + "/one.psnap"
        let w = try SnapshotWriter.create(path: one, tensors: [TensorInfo(name: "w", dtype: .f32, shape: [3])])
        try w.append(SnapshotInfo(step: 0), tensors: ["w": [UInt8](repeating: 0, count: 12)])
        try w.close()
        #expect(throws: AnalysisError.tooFewSnapshots(needed: 2, got: 1, view: .values)) { try Modes.compute(try PSnapReader(path: one), k: 1) }
        let cli = try runProcess(psnap, ["modes", one, "-k", "1"])
        #expect(cli.status == 65 && cli.err.contains("at least 2 snapshots"), "\(cli.err)")
        let k = try runProcess(psnap, ["modes", GoldenFixtures.dir + "/dtypes.psnap", "-k", "99"])
        #expect(k.status == 64 && k.err.contains("-k 99"), "\(k.err)")
        // The output is never the run itself.
        let run = dir + "/d.psnap"
        try FileManager.default.copyItem(atPath: GoldenFixtures.dir + "/dtypes.psnap", toPath: run)
        let before = try Data(contentsOf: URL(fileURLWithPath: run))
        let same = try runProcess(psnap, ["modes", run, "-k", "1", "-o", run, "--force"])
        #expect(same.status == 64 && same.err.contains("is the input"), "\(same.err)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run)) == before)
    }

    @Test(.enabled(if: numpyAvailable), arguments: ["tiny-gpt", "tiny-gpt-bf16", "mlp-digits", "golden"])
    func agreesWithNumpy(run: String) throws {
        let dir = tempDir(); defer { cleanup(dir) }
        var path = GoldenFixtures.dir + "/dtypes.psnap"   // NaN payloads, infinities, subnormals: those rows are left out
        if run != "golden" {
            path = dir + "/run.psnap"
            let c = try runProcess(psnap, ["convert", sharedData + "/" + run, "-o", path, "--quiet"])
            #expect(c.status == 0, "\(c.err)")
        }
        for view in ["values", "steps"] {
            let coefficients = dir + "/coef-\(view).psnap"
            let out = try runProcess(psnap, ["modes", path, "-k", "4", "--on", view, "--json", "-o", coefficients, "--f64"])
            #expect(out.status == 0, "\(out.err)")
            let json = dir + "/modes-\(view).json"
            try out.out.write(toFile: json, atomically: true, encoding: .utf8)
            let check = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_modes.py", path, json, "--on", view,
                                                        "--coefficients", coefficients])
            #expect(check.status == 0, "\(run) \(view): \(check.out) \(check.err)")
        }
    }
}

private let numpyAvailable = pythonSucceeds("import numpy, zstandard")

@Suite struct SimilarTests {
    let psnap = productPath("psnap")

    @Test func topListsKeepTheBestAndBreakTiesByTheLowerIndex() {
        var list: [SimilarHit] = []
        for (g, r) in [(5, 0.5), (3, 0.9), (9, 0.9), (1, 0.1), (7, 0.95), (2, 0.9)] {
            Similar.insert(SimilarHit(global: g, tensor: 0, index: g, r: r), into: &list, top: 4)
        }
        #expect(list.map(\.global) == [7, 2, 3, 9])
        #expect(Similar.normalised([1, 1, 1][...], view: .values) == nil)          // constant: r undefined
        #expect(Similar.normalised([1, 2, 3][...], view: .steps) == nil)           // constant steps
        #expect(Similar.normalised([1, .nan, 3][...], view: .values) == nil)
    }

    @Test(.enabled(if: numpyAvailable), arguments: ["tiny-gpt", "mlp-digits", "golden"])
    func agreesWithNumpyBruteForce(run: String) throws {
        let dir = tempDir(); defer { cleanup(dir) }
        var path = GoldenFixtures.dir + "/dtypes.psnap"   // constant, NaN and infinite rows are left out and counted
        if run != "golden" {
            path = dir + "/run.psnap"
            #expect(try runProcess(psnap, ["convert", sharedData + "/" + run, "-o", path, "--quiet"]).status == 0)
        }
        let r = try PSnapReader(path: path)
        var rng = SeededRNG(seed: testSeed(0x51A1))
        var queries: [Int] = []
        while queries.count < 4 {
            let g = Int(rng.next() % UInt64(r.parameterCount))
            if Similar.normalised(try r.trajectory(global: g)[...], view: .steps) != nil { queries.append(g) }
        }
        // One query on the command line, and all of them through --queries (one pass), both views.
        let file = dir + "/queries.txt"
        try (["# seeded queries"] + queries.map(String.init)).joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        for view in ["values", "steps"] {
            for (args, expected) in [(["--global", "\(queries[0])"], [queries[0]]), (["--queries", file], queries)] {
                let out = try runProcess(psnap, ["similar", path] + args + ["--top", "50", "--on", view, "--json"])
                #expect(out.status == 0, "\(out.err)")
                let json = dir + "/s.json"
                try out.out.write(toFile: json, atomically: true, encoding: .utf8)
                let check = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_similar.py", path, json]
                                           + expected.map(String.init) + ["--on", view])
                #expect(check.status == 0, "\(run) \(args) \(view): \(check.out) \(check.err)")
            }
        }
        // A constant query is refused by name.
        if run == "golden" {
            let constant = (0..<r.parameterCount).first { (try? Similar.normalised(r.trajectory(global: $0)[...], view: .values)) == .some(nil) }
            if let c = constant {
                let out = try runProcess(psnap, ["similar", path, "--global", "\(c)"])
                #expect(out.status == 64 && out.err.contains("constant"), "\(out.err)")
            }
        }
    }
}

@Suite struct PairsTests {
    let psnap = productPath("psnap")

    @Test(.enabled(if: numpyAvailable)) func thePairSetOfA25600ParameterSelectionIsNumpys() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(psnap, ["convert", sharedData + "/tiny-gpt", "-o", path, "--quiet"]).status == 0)
        for (view, minR) in [("values", "0.998"), ("steps", "0.99")] {
            let out = try runProcess(psnap, ["pairs", path, "--include", "blocks.0.mlp.fc_in.weight", "--min-r", minR, "--on", view, "--csv"])
            #expect(out.status == 0, "\(out.err)")
            let csv = dir + "/pairs.csv"
            try out.out.write(toFile: csv, atomically: true, encoding: .utf8)
            #expect(out.out.split(separator: "\n").count > 10, "\(view): too few pairs to check anything")
            let check = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_pairs.py", path, csv, minR, "blocks.0.mlp.fc_in.weight", "--on", view])
            #expect(check.status == 0, "\(view): \(check.out) \(check.err)")
        }
        let none = try runProcess(psnap, ["pairs", path, "--min-r", "0.9"])
        #expect(none.status == 64 && none.err.contains("--include"), "\(none.err)")
    }
}
