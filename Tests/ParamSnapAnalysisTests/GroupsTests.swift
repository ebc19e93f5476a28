// k-means groups: labels, distances, sizes and objective agree with numpy on the shared runs (values, steps, moments
// and modes features); the objective is within 1 % of faiss Kmeans and sklearn KMeans on the same rows; a seed gives
// the same groups whatever the worker count; bad requests are refused by name.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) import ParamSnap
@testable import ParamSnapAnalysis

private let referencesAvailable = pythonSucceeds("import numpy, zstandard, faiss, sklearn")

@Suite struct GroupsTests {
    let psnap = productPath("psnap")

    /// Runs `psnap groups` with `args` (writing f64 output and JSON) and the numpy / faiss / sklearn check on it.
    func checked(_ run: String, _ args: [String], check extra: [String], in dir: String, label: String) throws -> String {
        let out = dir + "/groups-\(label).psnap"
        let res = try runProcess(psnap, ["groups", run, "-o", out, "--f64", "--json", "--force"] + args)
        #expect(res.status == 0, "\(label): \(res.err)")
        let json = dir + "/groups-\(label).json"
        try res.out.write(toFile: json, atomically: true, encoding: .utf8)
        let check = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_groups.py", run, json, out] + extra)
        #expect(check.status == 0, "\(label): \(check.out) \(check.err)")
        return res.out
    }

    @Test(.enabled(if: referencesAvailable), arguments: [("tiny-gpt", "values"), ("mlp-digits", "steps"), ("tiny-gpt-bf16", "values")])
    func agreesWithNumpyAndIsWithinOnePercentOfFaiss(run: String, view: String) throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(psnap, ["convert", sharedData + "/" + run, "-o", path, "--quiet"]).status == 0)
        _ = try checked(path, ["-k", "16", "--iterations", "10", "--tolerance", "0", "--on", view],
                        check: ["--on", view, "--faiss", "--sklearn"], in: dir, label: "\(run)-\(view)")
    }

    @Test(.enabled(if: referencesAvailable)) func momentsAndModesFeatures() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(psnap, ["convert", sharedData + "/mlp-digits", "-o", path, "--quiet"]).status == 0)
        // Moments: every statistic standardised (count, the same for all, is left out by default).
        let m = dir + "/moments.psnap"
        #expect(try runProcess(psnap, ["moments", path, "-o", m, "--stats", "all", "--f64"]).status == 0)
        _ = try checked(path, ["-k", "8", "--iterations", "8", "--tolerance", "0", "--on", "moments", "--moments", m],
                        check: ["--on", "moments", "--features", m, "--faiss"], in: dir, label: "moments")
        // Modes, from a file and computed in place: the same coefficients, so the same groups.
        let modes = dir + "/modes.psnap"
        #expect(try runProcess(psnap, ["modes", path, "-k", "5", "-o", modes, "--f64"]).status == 0)
        let fromFile = try checked(path, ["-k", "8", "--iterations", "8", "--tolerance", "0", "--on", "modes", "--modes", modes],
                                   check: ["--on", "modes", "--features", modes, "--faiss"], in: dir, label: "modes")
        let computed = try runProcess(psnap, ["groups", path, "-k", "8", "--iterations", "8", "--tolerance", "0", "--on", "modes",
                                              "--components", "5", "--json"])
        #expect(computed.status == 0 && computed.out == fromFile, "\(computed.err)")
        // A moments file of another selection does not match the run: named.
        let part = dir + "/part.psnap"
        #expect(try runProcess(psnap, ["moments", path, "-o", part, "--include", "fc1.*"]).status == 0)
        let bad = try runProcess(psnap, ["groups", path, "--on", "moments", "--moments", part])
        #expect(bad.status == 64 && bad.err.contains("has no tensor"), "\(bad.err)")
        let notMoments = try runProcess(psnap, ["groups", path, "--on", "moments", "--moments", modes])
        #expect(notMoments.status == 64 && notMoments.err.contains("not a moments file"), "\(notMoments.err)")
    }

    @Test func aSeedGivesTheSameGroupsOnAnyWorkerCount() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(psnap, ["convert", sharedData + "/mlp-digits", "-o", path, "--quiet"]).status == 0)
        let r = try PSnapReader(path: path)
        let one = try Groups.compute(r, k: 12, features: .trajectories(.steps), iterations: 6, seed: 7, outputPath: dir + "/a.psnap", workers: 1)
        let two = try Groups.compute(r, k: 12, features: .trajectories(.steps), iterations: 6, seed: 7, outputPath: dir + "/b.psnap", workers: 2)
        #expect(one.json == two.json)
        let a = try PSnapReader(path: dir + "/a.psnap"), b = try PSnapReader(path: dir + "/b.psnap")
        for t in a.tensors.indices {
            let n = a.layout.parameterCounts[t]
            #expect(try a.trajectories(tensor: t, range: 0..<n) == b.trajectories(tensor: t, range: 0..<n))
        }
        #expect(one.sizes.reduce(0, +) == one.parameters && one.parameters + one.undefined + one.nonFinite == r.parameterCount)
        #expect(one.objectiveHistory.count == one.iterations && one.objective <= one.objectiveHistory[0])
    }

    @Test func badRequestsAreRefusedByName() throws {
        // The golden run holds constant, NaN and infinite trajectories: they take no part and are counted.
        let golden = GoldenFixtures.dir + "/dtypes.psnap"
        let r = try PSnapReader(path: golden)
        let g = try Groups.compute(r, k: 1, features: .trajectories(.values), iterations: 2)
        #expect(g.undefined > 0 && g.nonFinite > 0 && g.parameters + g.undefined + g.nonFinite == r.parameterCount)
        #expect(throws: AnalysisError.badGroupCount(g.parameters + 1, max: g.parameters)) {
            try Groups.compute(r, k: g.parameters + 1, features: .trajectories(.values))
        }
        let tooMany = try runProcess(psnap, ["groups", golden, "-k", "\(g.parameters + 1)"])
        #expect(tooMany.status == 64 && tooMany.err.contains("more groups than the \(g.parameters) parameters"), "\(tooMany.err)")
        let noFile = try runProcess(psnap, ["groups", golden, "--on", "moments"])
        #expect(noFile.status == 64 && noFile.err.contains("--moments FILE"), "\(noFile.err)")
        let typo = try runProcess(psnap, ["groups", golden, "--include", "nothing-like-it"])
        #expect(typo.status == 64, "\(typo.err)")
        // An output that is the run itself is refused, even with --force.
        let same = try runProcess(psnap, ["groups", golden, "-k", "1", "-o", golden, "--force"])
        let after = try PSnapReader(path: golden)
        #expect(same.status != 0 && after.parameterCount == r.parameterCount, "\(same.err)")
    }

    @Test func removingModesAgreesWithNumpy() throws {
        guard referencesAvailable else { return }
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        #expect(try runProcess(psnap, ["convert", sharedData + "/tiny-gpt", "-o", path, "--quiet"]).status == 0)
        for view in ["values", "steps"] {
            let out = try runProcess(psnap, ["similar", path, "--global", "12345", "--remove-modes", "5", "--on", view, "--top", "50", "--json"])
            #expect(out.status == 0, "\(out.err)")
            let json = dir + "/s.json"
            try out.out.write(toFile: json, atomically: true, encoding: .utf8)
            let check = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_similar.py", path, json, "12345",
                                                        "--on", view, "--remove-modes", "5"])
            #expect(check.status == 0, "\(view): \(check.out) \(check.err)")
        }
        let bad = try runProcess(psnap, ["similar", path, "--global", "1", "--remove-modes", "61"])
        #expect(bad.status == 64 && bad.err.contains("--remove-modes 61"), "\(bad.err)")
    }
}
