// `psnap report` reads the run once: the statistics it bins and the Gram matrix it sums beside the density counts
// equal what `psnap moments` and `psnap modes` give on their own passes.
import Foundation
import Testing
import PSnapTestSupport
@testable import ParamSnap
@testable import ParamSnapCLI
import ParamSnapAnalysis
import ParamSnapStats

@Suite struct ReportPassTests {
    @Test func statisticsAndModesInTheDensityPassEqualTheirOwnPasses() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/run.psnap", m = dir + "/moments.psnap"
        #expect(try runProcess(productPath("psnap"), ["convert", sharedData + "/mlp-digits", "-o", path, "--quiet"]).status == 0)
        let r = try PSnapReader(path: path)
        let selected = Array(r.tensors.indices), shown = [0, 2]
        let ranges = try ReportObserver.statisticRanges(r, tensors: selected)
        #expect(ranges.allSatisfy { $0 != nil })
        let registry = ReportObserver.Registry()
        let grids = try Density.computeMany(r, targets: [DensityTarget(tensors: selected, width: 200, height: 100, view: .values)], workers: 2,
                                            observer: { _ in
                                                let o = ReportObserver(reader: r, ranges: ranges, shown: shown, gram: true)
                                                registry.add(o)
                                                return o
                                            })
        #expect(grids[0].series == r.parameterCount)
        let observers = registry.all
        #expect(!observers.isEmpty)

        // Statistics: the same bins as from a `psnap moments` file, bin for bin.
        var o = TrajectoryMomentsOptions()
        o.statistics = [.std, .kurtosis, .netChange, .pathLength]
        o.outputDType = .f64
        o.workers = 2
        _ = try TrajectoryMoments.run(reader: r, outputPath: m, options: o)
        let f = try PSnapReader(path: m)
        for (k, stat) in ReportObserver.statistics.enumerated() {
            let got = try #require(ReportObserver.merged(observers, statistic: k))
            var want = StatisticHistogram(lo: got.lo, hi: got.hi, shown: shown.map { r.tensors[$0].name })
            let column = f.snapshots.firstIndex { $0.metadata?["statistic"] == .string(stat) }!
            for t in f.tensors.indices {
                let rows = try f.trajectories(tensor: t, range: 0..<f.layout.parameterCounts[t])
                let slot = shown.firstIndex(of: t)
                for p in 0..<f.layout.parameterCounts[t] { want.add(rows[p * f.snapshotCount + column], slot: slot) }
            }
            #expect(got.all == want.all && got.count == want.count, "\(stat)")
            #expect(got.perShown == want.perShown && got.shownCount == want.shownCount, "\(stat)")
            #expect(got.all.reduce(0, +) > 0.9 * got.count, "\(stat): most values inside the range")
        }

        // Modes: the Gram matrix summed beside the counts gives `psnap modes`' answer (to rounding: workers add blocks
        // in another order).
        var gram = GramAccumulator(dimension: r.snapshotCount)
        for ob in observers { if let g = ob.gram { gram.merge(g) } }
        let fused = try Modes.fromGram(gram, k: 4, view: .values, snapshots: r.snapshotCount)
        let alone = try Modes.compute(r, k: 4, workers: 2)
        #expect(fused.parameters == alone.parameters && fused.nonFiniteParameters == alone.nonFiniteParameters)
        for i in 0..<4 {
            #expect(abs(fused.eigenvalues[i] - alone.eigenvalues[i]) <= 1e-10 * alone.eigenvalues[0])
            let dot = zip(fused.modes[i], alone.modes[i]).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(abs(dot - 1) < 1e-9, "mode \(i + 1): \(dot)")
        }
    }
}
