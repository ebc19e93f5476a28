// The fit pass: coefficients, SSE, R², AIC, BIC and the best family agree with numpy lstsq on 10,000 series of each
// shared run (values and steps, every linear family), and exp / power / logistic reach scipy least_squares' SSE on
// ≥ 99 % of 1,000; series with NaN or infinity are left out; bad requests named.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) import ParamSnap
@testable import ParamSnapAnalysis

private let numpyAvailable = pythonSucceeds("import numpy, zstandard")

@Suite struct FitTests {
    let psnap = productPath("psnap")

    @Test(.enabled(if: numpyAvailable), arguments: [("tiny-gpt", "values", "linear,quadratic,lr,lr2,modes:5,exp,power,logistic"),
                                                     ("mlp-digits", "steps", "linear,quadratic,modes:3,exp,power,logistic"),
                                                     ("tiny-gpt-bf16", "values", "linear,lr,modes:4,exp,logistic")])
    func agreesWithNumpyLstsq(run: String, view: String, families: String) throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap", out = dir + "/fit.psnap"
        #expect(try runProcess(psnap, ["convert", sharedData + "/" + run, "-o", path, "--quiet"]).status == 0)
        let fit = try runProcess(psnap, ["fit", path, "-o", out, "--f64", "--on", view, "--family", families])
        #expect(fit.status == 0, "\(fit.err)")
        // Every family on 10,000 series; scipy's least_squares (the nonlinear reference, ~2 ms a series) on 1,000 of them.
        let check = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_fit.py", path, out, "--sample", "10000", "--nonlinear-sample", "1000"])
        #expect(check.status == 0, "\(run) \(view): \(check.out) \(check.err)")
    }

    @Test(.enabled(if: numpyAvailable)) func nonFiniteSeriesAreLeftOutAndBadRequestsNamed() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let golden = GoldenFixtures.dir + "/dtypes.psnap", out = dir + "/fit.psnap"
        let r = try PSnapReader(path: golden)
        let s = try Fit.run(r, families: [.linear, .quadratic, .exp, .power, .logistic], outputPath: out, dtype: .f64)
        #expect(s.nonFinite > 0 && s.series + s.nonFinite == r.parameterCount)
        #expect(s.best.reduce(0, +) == s.series)
        let check = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_fit.py", golden, out])
        #expect(check.status == 0, "\(check.out) \(check.err)")
        // The golden run has no learning rate: the lr family is refused by name; a two-snapshot run cannot take a quadratic.
        let noLR = try runProcess(psnap, ["fit", golden, "-o", dir + "/x.psnap", "--family", "lr"])
        #expect(noLR.status == 64 && noLR.err.contains("needs the learning rate"), "\(noLR.err)")
        let unknown = try runProcess(psnap, ["fit", golden, "-o", dir + "/x.psnap", "--family", "cubic"])
        #expect(unknown.status == 64 && unknown.err.contains("unknown family 'cubic'"), "\(unknown.err)")
        let two = dir + "/two.psnap"
        let w = try SnapshotWriter.create(path: two, tensors: [TensorInfo(name: "w", dtype: .f32, shape: [3])])
        for k in 0..<2 { try w.append(SnapshotInfo(step: Int64(k)), tensors: ["w": [UInt8](repeating: UInt8(k), count: 12)]) }
        try w.close()
        let short = try runProcess(psnap, ["fit", two, "-o", dir + "/y.psnap", "--family", "quadratic"])
        #expect(short.status == 65 && short.err.contains("needs more than 3 points"), "\(short.err)")
        let same = try runProcess(psnap, ["fit", golden, "-o", golden, "--force"])
        let after = try PSnapReader(path: golden)
        #expect(same.status == 64 && after.snapshotCount == 5, "\(same.err)")
    }
}

@Suite struct LogisticLawTests {
    /// A series that is a logistic law is recovered; a step between two snapshots goes to the sharpest width allowed;
    /// a constant series gets b = 0; every answer stays inside the box (m in 0 … 1, w in 1e-3 … 10) and finite.
    @Test func recoversLawsAndKeepsToItsBox() {
        let N = 41
        let x = (0..<N).map { Double($0) / Double(N - 1) }
        let law = LogisticLaw(abscissa: x)
        func sigma(_ z: Double) -> Double { 1 / (1 + Foundation.exp(-z)) }
        var rows: [[Double]] = [
            x.map { 2 + 3 * sigma(($0 - 0.4) / 0.05) },           // a law inside the box
            x.map { $0 < 0.51 ? 1.0 : -1.0 },                      // a step between snapshots 20 and 21
            [Double](repeating: 0.25, count: N),                   // constant
            x.map { -7 + 0.5 * sigma(($0 - 0.9) / 2) },            // wide: almost linear over the run
        ]
        var g = SplitMix64(seed: 7)
        for _ in 0..<200 { var v = 0.0; rows.append((0..<N).map { _ in v += g.unit() - 0.5; return v }) }
        let n = rows.count
        let flat = rows.flatMap { $0 }
        var c = [Double](repeating: 0, count: n * 4), fitted = [Double](repeating: 0, count: n * N)
        law.fit(flat, rows: n, finite: [Bool](repeating: true, count: n), coefficients: &c, fitted: &fitted)
        func sse(_ p: Int) -> Double { (0..<N).reduce(0) { $0 + (flat[p * N + $1] - fitted[p * N + $1]) * (flat[p * N + $1] - fitted[p * N + $1]) } }
        #expect(abs(c[0] - 2) < 1e-6 && abs(c[1] - 3) < 1e-6 && abs(c[2] - 0.4) < 1e-6 && abs(c[3] - 0.05) < 1e-6, "\(c[0..<4])")
        #expect(sse(0) < 1e-18)
        #expect(c[7] <= LogisticLaw.wLow * (1 + 1e-12) && c[6] > 0.5 && c[6] < 0.525 && sse(1) < 1e-9, "\(c[4..<8]) \(sse(1))")
        #expect(c[9] == 0 && c[8] == 0.25 && sse(2) == 0)
        #expect(sse(3) < 1e-18, "\(c[12..<16]) \(sse(3))")
        for p in 0..<n {
            #expect((0...1).contains(c[p * 4 + 2]) && c[p * 4 + 3] >= LogisticLaw.wLow && c[p * 4 + 3] <= LogisticLaw.wHigh)
            #expect((0..<4).allSatisfy { c[p * 4 + $0].isFinite })
        }
    }
}

@Suite struct CentroidFitTests {
    let psnap = productPath("psnap")

    /// `psnap fit GROUPS --centroids`: the exported centroids (.npy, row 0 the steps) fitted by numpy lstsq give the
    /// printed coefficients; groups of statistics are refused by name.
    @Test(.enabled(if: numpyAvailable)) func centroidsFitAsNumpyDoes() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap", groups = dir + "/g.psnap", npy = dir + "/c.npy", json = dir + "/c.json"
        #expect(try runProcess(psnap, ["convert", sharedData + "/mlp-digits", "-o", path, "--quiet"]).status == 0)
        #expect(try runProcess(psnap, ["groups", path, "-k", "5", "--iterations", "3", "-o", groups]).status == 0)
        let fit = try runProcess(psnap, ["fit", groups, "--centroids", "--family", "linear,quadratic,lr,exp", "--json", "--export-centroids", npy])
        #expect(fit.status == 0, "\(fit.err)")
        try fit.out.write(toFile: json, atomically: true, encoding: .utf8)
        let script = """
        import json, sys
        import numpy as np
        a = np.load(sys.argv[1]); t = a[0]; C = a[1:]
        x = (t - t[0]) / (t[-1] - t[0])
        rows = json.load(open(sys.argv[2]))
        assert len(rows) == 5 == C.shape[0]
        for r in rows:
            y = C[r["group"]]
            for fam, X in (("linear", np.stack([np.ones_like(x), x], 1)), ("quadratic", np.stack([np.ones_like(x), x, x * x], 1))):
                beta = np.linalg.lstsq(X, y, rcond=None)[0]
                got = [r["fits"][f"{fam}.{c}"] for c in "abc"[:X.shape[1]]]
                assert np.allclose(got, beta, rtol=1e-9, atol=1e-12 * abs(beta).max()), (fam, got, beta)
            assert np.isfinite(r["fits"]["exp.sse"]) and r["fits"]["exp.r2"] <= 1 and 1e-3 * (1 - 1e-12) <= r["fits"]["exp.tau"] <= 1e3 * (1 + 1e-12)
        print("ok")
        """
        let check = try runProcess("/usr/bin/env", ["python3", "-c", script, npy, json])
        #expect(check.status == 0 && check.out.hasPrefix("ok"), "\(check.out) \(check.err)")
        let m = dir + "/m.psnap", mg = dir + "/mg.psnap"
        #expect(try runProcess(psnap, ["moments", path, "-o", m]).status == 0)
        #expect(try runProcess(psnap, ["groups", path, "--on", "moments", "--moments", m, "-k", "3", "--iterations", "2", "-o", mg]).status == 0)
        let refused = try runProcess(psnap, ["fit", mg, "--centroids"])
        #expect(refused.status == 64 && refused.err.contains("not series over training"), "\(refused.err)")
    }
}
