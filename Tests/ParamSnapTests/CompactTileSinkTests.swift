// CompactTileSink: caller-encoded tiles, added in any order from several threads, read back bit-exact; an output
// missing a tile is refused and leaves no file.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite struct CompactTileSinkTests {
    @Test func tilesInAnyOrderFromTwoThreadsReadBackBitExact() throws {
        let dir = tempDir()
        defer { cleanup(dir) }
        var rng = SeededRNG(seed: testSeed(0x51_4C))
        let tensors = [TensorInfo(name: "a", dtype: .f32, shape: [70]), TensorInfo(name: "b", dtype: .bf16, shape: [3, 11])]
        let S = 5
        var o = WriterOptions(); o.blockSize = 16
        let snaps = (0..<S).map { SnapshotInfo(step: Int64($0)) }
        let sink = try CompactTileSink(path: dir + "/out.psnap", tensors: tensors, snapshots: snaps, options: o)
        // values[t][p]: each parameter's trajectory as raw bytes (from the helper's snapshot-major bytes).
        let values: [[[UInt8]]] = tensors.map { info in
            let e = info.dtype.size, P = info.parameterCount!
            let bySnapshot = randomTrajectoryBits(&rng, dtype: info.dtype, params: P, snapshots: S)
            return (0..<P).map { p in (0..<S).flatMap { bySnapshot[$0][(p * e)..<((p + 1) * e)] } }
        }
        var jobs: [(Int, Int)] = []
        for t in tensors.indices { for b in 0..<sink.layout.blockCounts[t] { jobs.append((t, b)) } }
        jobs.shuffle(using: &rng)
        let box = UncheckedSendable((sink, jobs, values))
        DispatchQueue.concurrentPerform(iterations: 2) { w in
            let (sink, jobs, values) = box.value
            let codec = TileCodec(chain: sink.chain)
            for (j, (t, b)) in jobs.enumerated() where j % 2 == w {
                let p0 = b * 16, n = sink.layout.blockParams(tensor: t, block: b)
                let raw = (p0..<(p0 + n)).flatMap { values[t][$0] }
                try! raw.withUnsafeBytes { try sink.add(tensor: t, block: b, raw: $0, codec: codec) }
            }
        }
        let report = try sink.finish()
        #expect(report.tilesWritten == jobs.count)
        let r = try PSnapReader(path: dir + "/out.psnap")
        #expect(r.snapshotCount == S && r.segments == [0..<S])
        for (t, info) in tensors.enumerated() {
            for p in 0..<info.parameterCount! {
                let e = info.dtype.size
                let bytes = try r.trajectoryBytes(tensor: t, index: p)
                #expect(bytes == values[t][p], "tensor \(info.name) parameter \(p)")
                #expect(bytes.count == S * e)
            }
        }
        #expect(r.verifyAll().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.psnap.tmp-\(getpid())"))
    }

    @Test func aFileThatAppearsAtThePathIsNotReplacedWithoutOverwrite() throws {
        let dir = tempDir()
        defer { cleanup(dir) }
        var o = WriterOptions(); o.blockSize = 16
        let out = dir + "/out.psnap"
        do {
            let sink = try CompactTileSink(path: out, tensors: [TensorInfo(name: "a", dtype: .f32, shape: [16])],
                                           snapshots: [SnapshotInfo(step: 0)], options: o)
            let raw = [UInt8](repeating: 7, count: 16 * 4)
            try raw.withUnsafeBytes { try sink.add(tensor: 0, block: 0, raw: $0, codec: TileCodec(chain: sink.chain)) }
            // Someone else writes the output meanwhile: finish must refuse, not rename over it.
            try Data("theirs".utf8).write(to: URL(fileURLWithPath: out))
            #expect(throws: IOError.exists(path: out)) { try sink.finish() }
        }
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "theirs")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.psnap"], "the temporary file is removed")
    }

    @Test func aMissingTileIsRefusedAndLeavesNoFile() throws {
        let dir = tempDir()
        defer { cleanup(dir) }
        let tensors = [TensorInfo(name: "a", dtype: .f32, shape: [40])]
        var o = WriterOptions(); o.blockSize = 16
        do {
            let sink = try CompactTileSink(path: dir + "/out.psnap", tensors: tensors, snapshots: [SnapshotInfo(step: 0)], options: o)
            let codec = TileCodec(chain: sink.chain)
            let raw = [UInt8](repeating: 7, count: 16 * 4)
            try raw.withUnsafeBytes { try sink.add(tensor: 0, block: 0, raw: $0, codec: codec) }
            #expect(throws: IOError.self) { try sink.finish() }
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.psnap"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty, "the temporary file is removed")
    }
}
