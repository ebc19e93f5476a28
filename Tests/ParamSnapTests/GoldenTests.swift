// Golden fixtures: tiny files written here must equal fixtures/golden byte for byte, and `snapinfo --json` of each
// must equal the committed JSON. PSNAP_REGENERATE_FIXTURES=1 rewrites them (after a deliberate format change).
import Foundation
import Testing
@testable import ParamSnap

enum GoldenFixtures {
    static let dir = repoRoot + "/fixtures/golden"

    /// Deterministic values with every awkward bit pattern: NaN payloads, ±0, subnormals, ±inf, random walks.
    static func snapshot(_ k: Int, tensors: [TensorInfo]) -> [[UInt8]] {
        var rng = SeededRNG(seed: 1000 + UInt64(k))
        var out: [[UInt8]] = []
        for t in tensors {
            var bytes: [UInt8] = []
            for p in 0..<t.parameterCount! {
                let x = sin(Double(p) * 0.7) + Double(k) * 0.01 * cos(Double(p))
                var bits: UInt64
                switch p % 7 {
                case 0: bits = t.dtype == .f64 ? Double.nan.bitPattern | 0x1234 : (t.dtype == .f32 ? 0x7FC0_1234 : 0x7FC1)  // NaN with payload
                case 1: bits = t.dtype == .f64 ? (-0.0 as Double).bitPattern : (t.dtype == .f32 ? 0x8000_0000 : 0x8000)   // -0.0
                case 2: bits = 1 + UInt64(k)                                                                           // subnormal
                case 3: bits = rng.next()                                                                              // noise
                default:
                    switch t.dtype {
                    case .f64: bits = x.bitPattern
                    case .f32: bits = UInt64(Float(x).bitPattern)
                    case .bf16: bits = UInt64(Float(x).bitPattern >> 16)
                    case .f16: bits = UInt64(Float16(Float(x)).bitPattern)
                    }
                }
                withUnsafeBytes(of: bits.littleEndian) { bytes.append(contentsOf: $0.prefix(t.dtype.size)) }
            }
            out.append(bytes)
        }
        return out
    }

    static let dtypeTensors = [
        TensorInfo(name: "layer.f32", dtype: .f32, shape: [3, 5]),
        TensorInfo(name: "layer.f16", dtype: .f16, shape: [7]),
        TensorInfo(name: "layer.bf16", dtype: .bf16, shape: [2, 2, 3]),
        TensorInfo(name: "layer.f64", dtype: .f64, shape: [9]),
        TensorInfo(name: "scalar", dtype: .f32, shape: []),
        TensorInfo(name: "empty", dtype: .f32, shape: [0, 4]),
    ]

    static func info(_ k: Int) -> SnapshotInfo {
        SnapshotInfo(step: Int64(k * 100), epoch: Double(k) / 2, time: 1_764_400_000 + Double(k) * 60,
                     metadata: ["loss": .number(2.5 - Double(k) * 0.125), "phase": .string(k < 3 ? "warmup" : "main")])
    }

    /// (name, builder) of every golden fixture.
    static let all: [(String, @Sendable (String) throws -> Void)] = [
        ("dtypes.psnap", { path in
            var o = WriterOptions(); o.blockSize = 4; o.snapshotsPerSegment = 2; o.workers = 2
            o.chain = .splitByteDelta
            o.attributes = ["model": .string("golden"), "seed": .number(7)]
            let w = try SnapshotWriter.create(path: path, tensors: dtypeTensors, options: o)
            for k in 0..<5 { try SnapshotWriter.withBuffers(snapshot(k, tensors: dtypeTensors)) { try w.append(info(k), buffers: $0) } }
            try w.close()
        }),
        ("segments.psnap", { path in
            // One commit per snapshot, as `psnap append` once per epoch: tiered merging (§10) leaves segments 4,1,1.
            var o = WriterOptions(); o.blockSize = 8; o.snapshotsPerSegment = 1; o.chain = .splitByteDelta
            let t = [TensorInfo(name: "w", dtype: .f32, shape: [4, 5]), TensorInfo(name: "b", dtype: .bf16, shape: [5])]
            try SnapshotWriter.create(path: path, tensors: t, options: o).close()
            for k in 0..<6 {
                let w = try SnapshotWriter.open(path: path, options: o)
                try SnapshotWriter.withBuffers(snapshot(k, tensors: t)) { try w.append(info(k), buffers: $0) }
                try w.close()
            }
        }),
        ("chains.psnap", { path in
            // The sub chain, and tiles small enough that some are stored raw.
            var o = WriterOptions(); o.blockSize = 2; o.snapshotsPerSegment = 3
            o.chain = try CodecChain(stages: [.sub, .split, .zstd], zstdLevel: 5)
            let t = [TensorInfo(name: "x", dtype: .f64, shape: [5]), TensorInfo(name: "y", dtype: .f16, shape: [3])]
            let w = try SnapshotWriter.create(path: path, tensors: t, options: o)
            for k in 0..<3 { try SnapshotWriter.withBuffers(snapshot(k, tensors: t)) { try w.append(info(k), buffers: $0) } }
            try w.close()
        }),
        ("linpred.psnap", { path in
            // The default chain (linpred, split, zstdplanes): every dtype, two segments, a block big enough to compress.
            var o = WriterOptions(); o.blockSize = 8; o.snapshotsPerSegment = 4; o.chain = .default
            let w = try SnapshotWriter.create(path: path, tensors: dtypeTensors, options: o)
            for k in 0..<7 { try SnapshotWriter.withBuffers(snapshot(k, tensors: dtypeTensors)) { try w.append(info(k), buffers: $0) } }
            try w.close()
        }),
        ("lenrans.psnap", { path in
            // linpred + lenrans: every dtype; a 75-parameter tensor in blocks of 64 gives a tile of two 32-row groups
            // and an 11-row tile (a lone last row); f64 noise reaches 64-bit lengths.
            var o = WriterOptions(); o.blockSize = 64; o.snapshotsPerSegment = 7
            o.chain = try CodecChain(stages: [.linpred, .lenrans])
            let t = dtypeTensors + [TensorInfo(name: "wide", dtype: .f32, shape: [5, 15])]
            let w = try SnapshotWriter.create(path: path, tensors: t, options: o)
            for k in 0..<7 { try SnapshotWriter.withBuffers(snapshot(k, tensors: t)) { try w.append(info(k), buffers: $0) } }
            try w.close()
        }),
        ("compacted.psnap", { path in
            let src = path + ".src"
            defer { unlink(src) }
            try all[0].1(src)
            try SnapshotWriter.compact(input: src, output: path, blockSize: 16)
        }),
        ("torn.psnap", { path in
            // dtypes.psnap, then a copy of its newest commit torn inside the metadata (a writer killed before its footer):
            // readers see the 5 snapshots and report the tail (§8.1).
            try all[0].1(path)
            let r = try PSnapReader(path: path)
            let cut = Int(r.footer.metadataOffset + r.footer.metadataLength / 2)
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            // Keep the complete file, then append a partial copy of the newest commit's tail (a torn second write).
            var torn = data
            torn.append(data[Int(r.footer.indexOffset)..<cut])
            try torn.write(to: URL(fileURLWithPath: path))
        }),
    ]

    static var regenerate: Bool { ProcessInfo.processInfo.environment["PSNAP_REGENERATE_FIXTURES"] == "1" }
}

@Suite(.serialized) struct GoldenTests {
    @Test(arguments: GoldenFixtures.all.map(\.0))
    func fixtureBytesAreStable(name: String) throws {
        let tmp = tempDir(); defer { cleanup(tmp) }
        let built = tmp + "/" + name
        try GoldenFixtures.all.first { $0.0 == name }!.1(built)
        let golden = GoldenFixtures.dir + "/" + name
        if GoldenFixtures.regenerate {
            try FileManager.default.createDirectory(atPath: GoldenFixtures.dir, withIntermediateDirectories: true)
            _ = try? FileManager.default.removeItem(atPath: golden)
            try FileManager.default.copyItem(atPath: built, toPath: golden)
            let json = try runProcess(productPath("snapinfo"), [golden, "--json", "--tiles", "--snapshots"])
            try json.out.write(toFile: golden + ".json", atomically: true, encoding: .utf8)
        }
        let a = try Data(contentsOf: URL(fileURLWithPath: built))
        let b = try Data(contentsOf: URL(fileURLWithPath: golden))
        #expect(a == b, "\(name): written bytes differ from fixtures/golden/\(name) (a format change must regenerate fixtures and bump the version)")
        let json = try runProcess(productPath("snapinfo"), [golden, "--json", "--tiles", "--snapshots"])
        #expect(json.status == 0, "\(json.err)")
        #expect(json.out == (try String(contentsOfFile: golden + ".json", encoding: .utf8)), "\(name): snapinfo --json differs from \(name).json")
    }

    @Test func fixturesReadBackTheirValues() throws {
        let r = try PSnapReader(path: GoldenFixtures.dir + "/dtypes.psnap")
        #expect(r.segments == [0..<2, 2..<4, 4..<5])
        for k in 0..<5 {
            let want = GoldenFixtures.snapshot(k, tensors: GoldenFixtures.dtypeTensors)
            for t in 0..<GoldenFixtures.dtypeTensors.count {
                #expect(try r.tensorBytes(tensor: t, snapshot: k) == want[t])
            }
        }
        let s = try PSnapReader(path: GoldenFixtures.dir + "/segments.psnap")
        #expect(s.segments == [0..<4, 4..<5, 5..<6])
        #expect(s.deadBytes > 0)
        let torn = try PSnapReader(path: GoldenFixtures.dir + "/torn.psnap")
        #expect(torn.snapshotCount == 5)
        #expect(torn.ignoredBytes > 0)
        let c = try PSnapReader(path: GoldenFixtures.dir + "/compacted.psnap")
        #expect(c.segments == [0..<5])
        for k in 0..<5 {
            let want = GoldenFixtures.snapshot(k, tensors: GoldenFixtures.dtypeTensors)
            for t in 0..<GoldenFixtures.dtypeTensors.count { #expect(try c.tensorBytes(tensor: t, snapshot: k) == want[t]) }
        }
    }
}
