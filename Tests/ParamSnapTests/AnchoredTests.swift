// Anchored tiles (spec/FORMAT.md §5.2): every read path gives the values written, and a misplaced flag is refused.
import Foundation
import Synchronization
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat

@Suite struct AnchoredTests {
    static let fixture = GoldenFixtures.dir + "/anchored.psnap"

    @Test func anchoredTilesReadBackOnEveryPath() throws {
        for cache in [true, false] {
            let r = try PSnapReader(path: Self.fixture)
            if !cache { r.cacheBytes = 0 }
            #expect(r.segments == [0..<4, 4..<5, 5..<6])
            #expect(r.tiles.filter(\.anchored).count >= 4, "the fixture holds anchored tiles")
            let want = (0..<6).map { GoldenFixtures.snapshot($0, tensors: GoldenFixtures.anchoredTensors) }
            for t in r.tensors.indices {
                let e = r.tensors[t].dtype.size
                // Snapshot columns (export), twice: the second through the tile cache.
                for _ in 0..<2 { for k in 0..<6 { #expect(try r.tensorBytes(tensor: t, snapshot: k) == want[k][t], "\(r.tensors[t].name) @\(k)") } }
                // Rows (trajectories).
                for p in 0..<r.layout.parameterCounts[t] {
                    let row = try r.trajectoryBytes(tensor: t, index: p)
                    for k in 0..<6 { #expect(Array(row[(k * e)..<((k + 1) * e)]) == Array(want[k][t][(p * e)..<((p + 1) * e)])) }
                }
            }
            // Whole tiles (scans, verify).
            #expect(r.verifyAll().isEmpty)
            let seen = Mutex(0)
            try r.scan(workers: 2) { tile, _ in
                let e = r.tensors[tile.tensor].dtype.size
                for p in 0..<tile.parameters {
                    for s in 0..<tile.snapshots {
                        let got = Array(UnsafeRawBufferPointer(rebasing: tile.raw[((p * tile.snapshots + s) * e)..<((p * tile.snapshots + s + 1) * e)]))
                        let q = tile.firstParameter + p
                        if got != Array(want[tile.firstSnapshot + s][tile.tensor][(q * e)..<((q + 1) * e)]) { seen.withLock { $0 += 1 } }
                    }
                }
            }
            #expect(seen.withLock { $0 } == 0)
        }
    }

    /// The fixture's newest index with `flags` of entry `i` replaced, as a forged newer commit.
    static func forgeFlags(_ src: String, _ dir: String, entry pick: (PSnapReader) -> Int, flags: (UInt32) -> UInt32) throws -> String {
        let path = dir + "/forged.psnap"
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: src, toPath: path)
        let r = try PSnapReader(path: path)
        let i = pick(r)
        var idx = Array(r.file.bytes[Int(r.footer.indexOffset)..<Int(r.footer.indexOffset + r.footer.indexLength)])
        let f = flags(r.tiles[i].flags).littleEndian
        withUnsafeBytes(of: f) { for k in 0..<4 { idx[i * 64 + 4 + k] = $0[k] } }
        try HostileCommitTests.forge(path, index: idx) { _ in }
        return path
    }

    @Test func misplacedAnchoredFlagsAreRefused() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        // On a block's first tile (it would be its own anchor), and on a tile stored raw.
        let first = try Self.forgeFlags(Self.fixture, dir, entry: { r in r.tiles.firstIndex { $0.firstSnapshot == 0 && !$0.storedRaw }! }, flags: { $0 | Spec.flagAnchored })
        #expect { _ = try PSnapReader(path: first) } throws: { "\($0)".contains("anchored tile at snapshot 0") }
        let raw = try Self.forgeFlags(Self.fixture, dir, entry: { r in r.tiles.firstIndex { $0.firstSnapshot > 0 && $0.storedRaw }! }, flags: { $0 | Spec.flagAnchored })
        #expect { _ = try PSnapReader(path: raw) } throws: { "\($0)".contains("anchored and stored raw") }
        // Under a chain that does not start with linpred the file opens, and reading the tile fails, naming it.
        let split = dir + "/split.psnap"
        var o = WriterOptions(); o.blockSize = 1024; o.snapshotsPerSegment = 2; o.chain = .splitByteDelta
        let t = [TensorInfo(name: "wide", dtype: .f32, shape: [40, 50])]
        let w = try SnapshotWriter.create(path: split, tensors: t, options: o)
        for k in 0..<4 { try SnapshotWriter.withBuffers(GoldenFixtures.snapshot(k, tensors: t)) { try w.append(GoldenFixtures.info(k), buffers: $0) } }
        try w.close()
        let other = try Self.forgeFlags(split, dir, entry: { r in r.tiles.firstIndex { $0.firstSnapshot > 0 && !$0.storedRaw }! },
                                        flags: { $0 | Spec.flagAnchored })
        let r = try PSnapReader(path: other)
        let bad = r.verifyAll()
        #expect(bad.count == 1 && "\(bad)".contains("linpred"), "\(bad)")
        let i = r.tiles.firstIndex(where: \.anchored)!
        let x = r.tiles[i]
        #expect(throws: (any Error).self) { _ = try r.trajectoryBytes(tensor: Int(x.tensor), index: Int(x.block) * r.layout.blockSize) }
        // The independent reader (written from the spec) refuses the first two as well.
        for p in [first, raw] {
            let py = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/psnap_reader.py", p, "--dump"])
            #expect(py.status != 0 && py.err.contains("anchored"), "\(py.err)")
        }
    }
}
