// Tests of psnap moments: accumulator merges, segment-split invariance, known values, the CLI, and the numpy/scipy check script.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport
import ParamSnapStats

/// Relative closeness with NaN == NaN and exact infinities.
private func close(_ a: Double, _ b: Double, rel: Double = 1e-12, abs floor: Double = 0) -> Bool {
    if a.isNaN || b.isNaN { return a.isNaN && b.isNaN }
    if a.isInfinite || b.isInfinite { return a == b }
    return Swift.abs(a - b) <= rel * Swift.max(Swift.abs(a), Swift.abs(b)) + floor
}

private func stats(_ xs: [Double], convention: MomentConvention = .population, policy: NonFinitePolicy = .propagate) -> [Double] {
    let st = xs.withUnsafeBufferPointer { TrajectoryState(values: $0, firstIndex: 0, policy: policy) }
    var out = [Double](repeating: 0, count: TrajectoryStatistic.allCases.count)
    out.withUnsafeMutableBufferPointer { st.statistics(convention: convention, policy: policy, into: $0.baseAddress!) }
    return out
}

private func index(_ s: TrajectoryStatistic) -> Int { TrajectoryStatistic.allCases.firstIndex(of: s)! }

@Suite struct MomentsTests {
    @Test func knownValues() {
        let s = stats([1, 2, 4, 7])
        #expect(s[index(.count)] == 4)
        #expect(s[index(.mean)] == 3.5)
        #expect(s[index(.variance)] == 5.25)
        #expect(s[index(.netChange)] == 6)
        #expect(s[index(.pathLength)] == 6)
        #expect(s[index(.stepAutocorrelation)] == 0)      // steps 1,2,3: deviations −1,0,1
        #expect(s[index(.argmax)] == 3)
        let u = stats([1, 2, 4, 7], convention: .sample)
        #expect(u[index(.variance)] == 7)
        let c = stats([0.1, 0.1, 0.1, 0.1, 0.1])
        #expect(c[index(.variance)] == 0 && c[index(.mean)] == 0.1)
        #expect(c[index(.skewness)].isNaN && c[index(.kurtosis)].isNaN)
    }

    @Test func nonFinitePolicies() {
        let xs: [Double] = [3, .nan, 1, .infinity, 2]
        let p = stats(xs)
        #expect(p[index(.count)] == 5 && p[index(.mean)].isNaN && p[index(.min)].isNaN && p[index(.argmin)] == 1)
        let s = stats(xs, policy: .skip)
        #expect(s[index(.count)] == 3 && s[index(.mean)] == 2 && s[index(.argmin)] == 2 && s[index(.last)] == 2)
        #expect(s[index(.pathLength)] == 3)            // 3 → 1 → 2
        let inf = stats([1, .infinity, 2])
        #expect(inf[index(.mean)] == .infinity && inf[index(.variance)].isNaN && inf[index(.max)] == .infinity)
    }

    /// Any split of a sequence into segments, merged in order, gives the single-pass statistics.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func mergeEqualsSinglePass(seed: UInt64) {
        var rng = SeededRNG(seed: testSeed(seed))
        let n = Int.random(in: 1...80, using: &rng)
        var x = Double.random(in: -5...5, using: &rng)
        let xs: [Double] = (0..<n).map { _ in x += Double.random(in: -0.1...0.1, using: &rng); return x }
        let whole = stats(xs)
        var merged = TrajectoryState()
        var i = 0
        while i < n {
            let len = Int.random(in: 1...max(1, n / 3), using: &rng)
            let part = Array(xs[i..<min(n, i + len)])
            let st = part.withUnsafeBufferPointer { TrajectoryState(values: $0, firstIndex: i, policy: .propagate) }
            merged.append(st)
            i += len
        }
        var got = [Double](repeating: 0, count: whole.count)
        got.withUnsafeMutableBufferPointer { merged.statistics(convention: .population, policy: .propagate, into: $0.baseAddress!) }
        for (k, s) in TrajectoryStatistic.allCases.enumerated() {
            let exact: Set<TrajectoryStatistic> = [.count, .min, .max, .argmin, .argmax, .first, .last]
            if exact.contains(s) {
                #expect(got[k] == whole[k], "seed \(seed) \(s)")
            } else {
                #expect(close(got[k], whole[k], rel: 1e-12, abs: 1e-12 * 10), "seed \(seed) \(s): \(got[k]) vs \(whole[k])")
            }
        }
    }

    /// The same data written with different segment lengths gives the same moments file values.
    @Test func segmentSplitInvariance() throws {
        let dir = tempDir()
        defer { cleanup(dir) }
        var rng = SeededRNG(seed: testSeed(42))
        let tensors = [TensorInfo(name: "w", dtype: .f32, shape: [5, 7]), TensorInfo(name: "b", dtype: .f64, shape: [3])]
        let S = 29
        var snaps: [[TensorName: [UInt8]]] = []
        var walk = (0..<38).map { _ in Double.random(in: -1...1, using: &rng) }
        for k in 0..<S {
            // Parameter 5 stays constant (zero variance); 3 turns NaN at 11, 7 is +Inf at 20 only (the moments-only
            // pass falls back to the state's path for non-finite rows).
            for i in walk.indices where i != 5 { walk[i] += Double.random(in: -0.01...0.01, using: &rng) }
            if k == 11 { walk[3] = .nan }
            if k == 20 { walk[7] = .infinity } else if k == 21 { walk[7] = 0.5 }
            var w: [UInt8] = [], b: [UInt8] = []
            for i in 0..<35 { withUnsafeBytes(of: Float(walk[i]).bitPattern.littleEndian) { w += $0 } }
            for i in 35..<38 { withUnsafeBytes(of: walk[i].bitPattern.littleEndian) { b += $0 } }
            snaps.append(["w": w, "b": b])
        }
        var outputs: [PSnapReader] = []
        for (tag, perSegment, merge) in [("one", 1, true), ("five", 5, false), ("all", S, false)] {
            var o = WriterOptions()
            o.blockSize = 8
            o.snapshotsPerSegment = perSegment
            o.merge = merge
            let path = dir + "/\(tag).psnap"
            let w = try SnapshotWriter.create(path: path, tensors: tensors, options: o)
            for (k, s) in snaps.enumerated() { try w.append(SnapshotInfo(step: Int64(k)), tensors: s) }
            try w.close()
            let r = try PSnapReader(path: path)
            var opts = TrajectoryMomentsOptions()
            opts.outputDType = .f64
            opts.workers = 2
            try TrajectoryMoments.run(reader: r, outputPath: dir + "/\(tag).moments.psnap", options: opts)
            outputs.append(try PSnapReader(path: dir + "/\(tag).moments.psnap"))
        }
        #expect(outputs[0].snapshotCount == TrajectoryStatistic.allCases.count)
        // Output tiles gather input blocks (MOMENTS.md §3): 15 f64 statistics → B = 2048, one tile per tensor here.
        #expect(outputs[0].header.blockSize == 2048 && outputs[0].tiles.count == 2)
        let exact: Set<String> = ["count", "min", "max", "argmin", "argmax", "first", "last"]
        for (k, info) in outputs[0].snapshots.enumerated() {
            guard case .string(let name)? = info.metadata?["statistic"] else { Issue.record("no statistic name"); continue }
            for t in ["w", "b"] {
                let ref = try outputs[2].tensorBytes(tensor: t, snapshot: k).withUnsafeBytes { ValueConversion.toDoubles($0, dtype: .f64) }
                for other in outputs[0..<2] {
                    let got = try other.tensorBytes(tensor: t, snapshot: k).withUnsafeBytes { ValueConversion.toDoubles($0, dtype: .f64) }
                    for (a, b) in zip(got, ref) {
                        if exact.contains(name) {
                            #expect(a == b || (a.isNaN && b.isNaN), "\(t) \(name): \(a) vs \(b)")
                        } else {
                            #expect(close(a, b, rel: 1e-12, abs: 1e-15), "\(t) \(name): \(a) vs \(b)")
                        }
                    }
                }
            }
        }
        #expect(outputs[0].metadata.attributes?["statistics"] == .string(TrajectoryStatistic.allCases.map(\.rawValue).joined(separator: ",")))
        // A subset of statistics (extrema and steps skipped) writes exactly the full pass's rows, in canonical order,
        // on the one-segment and the multi-segment file.
        for (tag, full) in [("one", outputs[0]), ("all", outputs[2])] {
            for subset: [TrajectoryStatistic] in [[.kurtosis, .mean, .variance, .skewness], [.pathLength], [.argmax, .count, .last]] {
                var opts = TrajectoryMomentsOptions()
                opts.outputDType = .f64
                opts.statistics = subset
                let out = dir + "/\(tag).subset.psnap"
                opts.overwrite = true
                try TrajectoryMoments.run(reader: try PSnapReader(path: dir + "/\(tag).psnap"), outputPath: out, options: opts)
                let m = try PSnapReader(path: out)
                let order = TrajectoryStatistic.allCases.enumerated().filter { subset.contains($0.element) }
                #expect(m.snapshotCount == subset.count)
                #expect(m.metadata.attributes?["statistics"] == .string(order.map(\.element.rawValue).joined(separator: ",")))
                for (k, (fullIndex, _)) in order.enumerated() {
                    for t in ["w", "b"] {
                        #expect(try m.tensorBytes(tensor: t, snapshot: k) == full.tensorBytes(tensor: t, snapshot: fullIndex), "\(tag) \(subset) \(t) #\(k)")
                    }
                }
            }
        }
    }

    /// Output tiles gathered from many input blocks, several per tensor with a partial last one, from two workers,
    /// hold exactly what one input block per output tile gives (the statistics do not depend on the block size).
    @Test(arguments: [["moments"], ["all"]])
    func outputTilesGatherInputBlocks(stats: [String]) throws {
        let dir = tempDir()
        defer { cleanup(dir) }
        var rng = SeededRNG(seed: testSeed(0x0B_10C))
        let tensors = [TensorInfo(name: "big", dtype: .f32, shape: [3000]), TensorInfo(name: "small", dtype: .bf16, shape: [70])]
        let snaps: [[TensorName: [UInt8]]] = (0..<9).map { _ in
            ["big": (0..<3000).flatMap { _ in withUnsafeBytes(of: Float.random(in: -2...2, using: &rng).bitPattern.littleEndian) { Array($0) } },
             "small": (0..<140).map { _ in UInt8.random(in: 0...255, using: &rng) }]
        }
        var outs: [PSnapReader] = []
        for B in [64, 8192] {
            var o = WriterOptions(); o.blockSize = B
            let path = dir + "/b\(B).psnap"
            let w = try SnapshotWriter.create(path: path, tensors: tensors, options: o)
            for (k, s) in snaps.enumerated() { try w.append(SnapshotInfo(step: Int64(k)), tensors: s) }
            try w.close()
            var opts = TrajectoryMomentsOptions()
            opts.workers = 2
            if stats == ["moments"] { opts.statistics = [.mean, .variance, .skewness, .kurtosis] }
            try TrajectoryMoments.run(reader: try PSnapReader(path: path), outputPath: dir + "/m\(B).psnap", options: opts)
            outs.append(try PSnapReader(path: dir + "/m\(B).psnap"))
        }
        // 4 and 15 f32 statistics → output B 4096 (64 input blocks per tile; §4.1 caps B at 4096). The B = 8192 input
        // keeps its own B.
        #expect(outs[0].header.blockSize == 4096 && outs[1].header.blockSize == 8192)
        #expect(outs[0].tiles.count == 2)
        #expect(outs[0].verifyAll().isEmpty)
        for t in 0..<2 {
            for k in 0..<outs[0].snapshotCount {
                #expect(try outs[0].tensorBytes(tensor: t, snapshot: k) == outs[1].tensorBytes(tensor: t, snapshot: k), "tensor \(t) statistic \(k)")
            }
        }
    }

    @Test func cliUsageErrorsAndAcrossParameters() throws {
        let dir = tempDir()
        defer { cleanup(dir) }
        let path = dir + "/r.psnap"
        let w = try SnapshotWriter.create(path: path, tensors: [TensorInfo(name: "w", dtype: .f32, shape: [4])])
        for k in 0..<3 {
            var b: [UInt8] = []
            for i in 0..<4 { withUnsafeBytes(of: Float(i * k).bitPattern.littleEndian) { b += $0 } }
            try w.append(SnapshotInfo(step: Int64(k)), tensors: ["w": b])
        }
        try w.close()
        let psnap = productPath("psnap")
        let bad = try runProcess(psnap, ["moments", path, "-o", dir + "/m.psnap", "--snapshots", "2:9"])
        #expect(bad.status == 64 && bad.err.contains("--snapshots"))
        let none = try runProcess(psnap, ["moments", path])
        #expect(none.status == 64)
        let badStat = try runProcess(psnap, ["moments", path, "--csv", "--stats", "mean,median"])
        #expect(badStat.status == 64 && badStat.err.contains("median"))
        let four = try runProcess(psnap, ["moments", path, "--csv", "--stats", "moments"])
        #expect(four.status == 0 && four.out.hasPrefix("tensor,index,mean,variance,skewness,kurtosis\n"), "\(four.out) \(four.err)")
        #expect(four.out.contains("w,3,3.0,6.0,0.0,-1.5"))   // parameter 3: 0, 3, 6
        let ok = try runProcess(psnap, ["moments", path, "-o", dir + "/m.psnap"])
        #expect(ok.status == 0, "\(ok.err)")
        let again = try runProcess(psnap, ["moments", path, "-o", dir + "/m.psnap"])
        #expect(again.status == 1 && again.err.contains("m.psnap"))
        let csv = try runProcess(psnap, ["moments", path, "--csv"])
        #expect(csv.status == 0 && csv.out.hasPrefix("tensor,index,count,mean,variance"))
        #expect(csv.out.contains("w,3,3,3.0,6.0"))   // parameter 3: 0, 3, 6 (count printed as an integer)
        let across = try runProcess(psnap, ["moments", path, "--across", "parameters", "--json"])
        #expect(across.status == 0)
        let doc = try JSONSerialization.jsonObject(with: Data(across.out.utf8)) as? [String: Any]
        let rows = doc?["rows"] as? [[String: Any]]
        #expect(rows?.count == 3)
        #expect((rows?[2]["mean"] as? Double) == 3.0 && (rows?[2]["histogram"] as? [Int])?.reduce(0, +) == 4)
    }

    /// Every statistic against numpy/scipy (tools/check_moments.py) on the synthetic edge cases (the real runs: `tools/check_moments.py` in full).
    @Test(.enabled(if: scipyAvailable)) func agreesWithNumpyAndScipy() throws {
        let r = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/check_moments.py", "--psnap", productPath("psnap"),
                                                 "--runs", "synthetic", "--data", sharedData])
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out.contains(" 0 mismatches"))
    }
}

private let scipyAvailable = pythonSucceeds("import numpy, scipy, zstandard")
