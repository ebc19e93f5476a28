// Seeded property tests: random runs written by the training writer read back bit-exact, across
// dtypes, shapes, block sizes, segment lengths, commits, reopenings, merging and compaction.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

/// A run held in memory as ground truth: truth[snapshot][tensor] = raw bytes.
@Suite struct RoundTripTests {
    @Test(arguments: 0..<12)
    func randomRunsRoundTrip(caseIndex: Int) throws {
        let seed = testSeed(0x5EED_0000 + UInt64(caseIndex))
        var rng = SeededRNG(seed: seed)
        let dir = tempDir()
        defer { cleanup(dir) }
        let path = dir + "/run.psnap"
        let ctx = "seed \(seed) (rerun with PSNAP_SEED=\(seed))"
        var truth = TruthRun(tensors: randomTensors(&rng))
        var options = WriterOptions()
        options.blockSize = [1, 2, 8, 64, 1024][Int(rng.next() % 5)]
        options.snapshotsPerSegment = Int(rng.next() % 5) + 1
        options.chain = try CodecChain(stages: codecChainsUnderTest[Int(rng.next() % UInt64(codecChainsUnderTest.count))], zstdLevel: 1)
        options.workers = Int(rng.next() % 3) + 1
        options.memoryBudget = rng.next() % 2 == 0 ? 1 << 20 : 256   // tiny budgets force spilling to the staging file
        options.merge = rng.next() % 4 != 0
        var w: SnapshotWriter? = try SnapshotWriter.create(path: path, tensors: truth.tensors, options: options)
        let total = Int(rng.next() % 23) + 1
        for k in 0..<total {
            let snap = truth.tensors.map { t in randomTrajectoryBits(&rng, dtype: t.dtype, params: t.parameterCount!, snapshots: 1)[0] }
            let info = SnapshotInfo(step: Int64(k * 10), epoch: rng.next() % 2 == 0 ? Double(k) / 4 : nil, time: 1_700_000_000 + Double(k),
                                    metadata: ["loss": .number(Double(k) * 0.5), "note": .string("s\(k)")])
            try SnapshotWriter.withBuffers(snap) { try w!.append(info, buffers: $0) }
            truth.snapshots.append(snap); truth.infos.append(info)
            switch rng.next() % 6 {
            case 0: try w!.commit()
            case 1: try w!.close(); w = try SnapshotWriter.open(path: path, expecting: truth.tensors, options: options)
            default: break
            }
            if rng.next() % 5 == 0 {
                // A concurrent reader sees exactly the committed prefix.
                let r = try PSnapReader(path: path)
                #expect(r.snapshotCount == w!.committedSnapshots, "\(ctx)")
            }
        }
        try w!.close()
        let r = try PSnapReader(path: path)
        // The inflated-tile cache: off, tiny (constant eviction), small, default; a second pass reads from it.
        r.cacheBytes = [0, 4096, 1 << 16, PSnapReader.defaultCacheBytes][Int(rng.next() % 4)]
        try checkAgainstTruth(r, truth, context: ctx + " written, cache \(r.cacheBytes)")
        try checkAgainstTruth(r, truth, context: ctx + " written, cache \(r.cacheBytes), second pass")
        #expect(r.verifyAll().isEmpty, "\(ctx)")
        #expect(r.ignoredBytes == 0)
        // Compact, possibly into another block size and chain: same values, one segment.
        let out = dir + "/compact.psnap"
        let nb = [1, 4, 16, 2048][Int(rng.next() % 4)]
        try SnapshotWriter.compact(input: path, output: out, blockSize: nb, chain: .default)
        let c = try PSnapReader(path: out)
        #expect(c.segments.count == 1, "\(ctx)")
        #expect(Int(c.header.blockSize) == nb)
        try checkAgainstTruth(c, truth, context: ctx + " compacted B=\(nb)")
    }

    @Test func tileCacheServesRepeatedReadsAndStaysWithinBudget() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/c.psnap"
        var rng = SeededRNG(seed: testSeed(0xCAC4E))
        let tensors = [TensorInfo(name: "w", dtype: .f32, shape: [64, 64]), TensorInfo(name: "b", dtype: .bf16, shape: [300])]
        var o = WriterOptions(); o.blockSize = 256
        let w = try SnapshotWriter.create(path: path, tensors: tensors, options: o)
        var truth = TruthRun(tensors: tensors)
        for k in 0..<9 {
            let snap = tensors.map { randomTrajectoryBits(&rng, dtype: $0.dtype, params: $0.parameterCount!, snapshots: 1)[0] }
            try SnapshotWriter.withBuffers(snap) { try w.append(SnapshotInfo(step: Int64(k)), buffers: $0) }
            truth.snapshots.append(snap); truth.infos.append(SnapshotInfo(step: Int64(k)))
        }
        try w.close()
        let r = try PSnapReader(path: path)
        let first = try r.trajectoryBytes(tensor: 0, index: 1000)
        #expect(r.cacheStats.misses >= 1)
        // The first request of a tile does not cache it, the second does, the third is a hit.
        #expect(try r.trajectoryBytes(tensor: 0, index: 1001) == (0..<9).flatMap { Array(truth.snapshots[$0][0][4004..<4008]) })
        let hits = r.cacheStats.hits
        #expect(try r.trajectoryBytes(tensor: 0, index: 1002) == (0..<9).flatMap { Array(truth.snapshots[$0][0][4008..<4012]) })
        #expect(r.cacheStats.hits > hits, "a third read of the same tile is a hit")
        #expect(first == (0..<9).flatMap { Array(truth.snapshots[$0][0][4000..<4004]) })
        r.cacheBytes = 0
        #expect(try r.trajectoryBytes(tensor: 0, index: 1000) == first)
        try checkAgainstTruth(r, truth, context: "cache off")
        // Many threads share one reader and its cache (small, so entries are evicted and upgraded while others read).
        let shared = try PSnapReader(path: path)
        shared.cacheBytes = 64 << 10
        let wrong = UnsafeMutablePointer<Int>.allocate(capacity: 4)
        wrong.initialize(repeating: 0, count: 4)
        defer { wrong.deallocate() }
        let box = UncheckedSendable(wrong)
        let truthBox = UncheckedSendable(truth)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            var g = SeededRNG(seed: 77 + UInt64(worker))
            for _ in 0..<300 {
                let t = Int(g.next() % 2), info = tensors[t], e = info.dtype.size
                if g.next() % 4 == 0 {
                    let k = Int(g.next() % 9)
                    if (try? shared.tensorBytes(tensor: t, snapshot: k)) != truthBox.value.snapshots[k][t] { box.value[worker] += 1 }
                } else {
                    let p = Int(g.next() % UInt64(info.parameterCount!))
                    let want = (0..<9).flatMap { Array(truthBox.value.snapshots[$0][t][(p * e)..<((p + 1) * e)]) }
                    if (try? shared.trajectoryBytes(tensor: t, index: p)) != want { box.value[worker] += 1 }
                }
            }
        }
        #expect((0..<4).map { wrong[$0] } == [0, 0, 0, 0])
    }

    @Test func resumedWriterRefusesADifferentLayout() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/r.psnap"
        let tensors = [TensorInfo(name: "a", dtype: .f32, shape: [3]), TensorInfo(name: "b", dtype: .bf16, shape: [2, 2])]
        try SnapshotWriter.create(path: path, tensors: tensors).close()
        var changed = tensors; changed[1].shape = [4]
        #expect(throws: IOError.layoutMismatch("tensor 'b' has shape [4], the file has [2, 2]")) {
            try SnapshotWriter.open(path: path, expecting: changed)
        }
        changed = tensors; changed[0].dtype = .f64
        #expect(throws: IOError.layoutMismatch("tensor 'a' has dtype f64, the file has f32")) {
            try SnapshotWriter.open(path: path, expecting: changed)
        }
        #expect(throws: IOError.layoutMismatch("tensor 'b' is in the file but missing from the snapshot")) {
            try SnapshotWriter.open(path: path, expecting: [tensors[0]])
        }
    }

    @Test func secondWriterIsLockedOut() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/l.psnap"
        let w = try SnapshotWriter.create(path: path, tensors: [TensorInfo(name: "a", dtype: .f32, shape: [1])])
        #expect(throws: IOError.locked(path: path)) { try SnapshotWriter.open(path: path) }
        try w.close()
        try SnapshotWriter.open(path: path).close()
    }

    @Test func wrongBufferSizesAreRefused() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let w = try SnapshotWriter.create(path: dir + "/x.psnap", tensors: [TensorInfo(name: "a", dtype: .f32, shape: [3])])
        #expect(throws: IOError.self) { try w.append(SnapshotInfo(step: 0), tensors: ["a": [0, 0, 0]]) }
        #expect(throws: IOError.self) { try w.append(SnapshotInfo(step: 0), tensors: ["b": [UInt8](repeating: 0, count: 12)]) }
        try w.close()
    }
}

@Suite struct ScanTests {
    /// The parallel scan visits every (parameter, snapshot) exactly once, with the right values, on a multi-segment file.
    @Test(arguments: [1, 2, 3])
    func scanCoversEveryValueOnce(workers: Int) throws {
        let r = try PSnapReader(path: GoldenFixtures.dir + "/segments.psnap")
        #expect(r.segments.count > 1)
        final class Seen: @unchecked Sendable { var map: [String: [UInt8]] = [:]; var twice: [String] = []; let lock = NSLock() }
        let box = Seen()   // "tensor/param/snapshot" → bytes
        try r.scan(workers: workers) { tile, _ in
            let e = tile.dtype.size
            box.lock.lock(); defer { box.lock.unlock() }
            for p in 0..<tile.parameters {
                for s in 0..<tile.snapshots {
                    let key = "\(tile.tensor)/\(tile.firstParameter + p)/\(tile.firstSnapshot + s)"
                    if box.map[key] != nil { box.twice.append(key) }
                    box.map[key] = Array(tile.raw[((p * tile.snapshots + s) * e)..<((p * tile.snapshots + s + 1) * e)])
                }
            }
        }
        let seen = box.map
        #expect(box.twice.isEmpty, "visited twice: \(box.twice.prefix(5))")
        #expect(seen.count == r.parameterCount * r.snapshotCount)
        for t in 0..<r.tensors.count {
            let e = r.tensors[t].dtype.size
            for k in 0..<r.snapshotCount {
                let whole = try r.tensorBytes(tensor: t, snapshot: k)
                for p in 0..<r.layout.parameterCounts[t] {
                    #expect(seen["\(t)/\(p)/\(k)"] == Array(whole[(p * e)..<((p + 1) * e)]))
                }
            }
        }
    }

    @Test func scanStopsAtTheFirstErrorAndRethrowsIt() throws {
        struct Stop: Error {}
        let r = try PSnapReader(path: GoldenFixtures.dir + "/dtypes.psnap")
        #expect(throws: Stop.self) { try r.scan { _, _ in throw Stop() } }
    }
}


@Suite struct WriteCompactTests {
    @Test func writeCompactMatchesAppendThenCompact() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let tensors = GoldenFixtures.dtypeTensors
        let data = (0..<7).map { GoldenFixtures.snapshot($0, tensors: tensors) }
        var o = WriterOptions(); o.blockSize = 4
        try SnapshotWriter.writeCompact(path: dir + "/c.psnap", tensors: tensors, snapshots: (0..<7).map(GoldenFixtures.info),
                                        source: ArraySource(data: data), options: o)
        let r = try PSnapReader(path: dir + "/c.psnap")
        #expect(r.segments == [0..<7])
        try checkAgainstTruth(r, TruthRun(tensors: tensors, snapshots: data, infos: (0..<7).map(GoldenFixtures.info)), context: "writeCompact")
        // Never over an existing file without overwrite.
        #expect(throws: IOError.exists(path: dir + "/c.psnap")) {
            try SnapshotWriter.writeCompact(path: dir + "/c.psnap", tensors: tensors, snapshots: [], source: ArraySource(data: []))
        }
    }
}

@Suite struct MetadataTests {
    @Test func nonFiniteMetadataIsStoredAsStringsAndNonFiniteTimesAreRefused() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let w = try SnapshotWriter.create(path: dir + "/m.psnap", tensors: [TensorInfo(name: "a", dtype: .f32, shape: [1])])
        try w.append(SnapshotInfo(step: 1, metadata: ["loss": .number(.nan), "lr": .number(.infinity)]), tensors: ["a": [0, 0, 0x80, 0x7F]])
        #expect(throws: IOError.self) { try w.append(SnapshotInfo(step: 2, time: .nan), tensors: ["a": [0, 0, 0, 0]]) }
        try w.close()
        let r = try PSnapReader(path: dir + "/m.psnap")
        #expect(r.snapshots[0].metadata?["loss"] == .string("nan"))
        #expect(r.snapshots[0].metadata?["lr"] == .string("inf"))
        #expect(try r.trajectory(tensor: "a", index: 0)[0] == .infinity)
    }
}
