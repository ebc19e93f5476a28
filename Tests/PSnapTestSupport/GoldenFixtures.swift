// The golden fixtures' builders: tiny files every dtype, segments, other chains, compacted, torn (fixtures/golden).
import Foundation
@_spi(Internals) import ParamSnap
import PSnapImport

package enum GoldenFixtures {
    package static let dir = repoRoot + "/fixtures/golden"

    /// Deterministic values with every awkward bit pattern: NaN payloads, ±0, subnormals, ±inf, random walks.
    package static func snapshot(_ k: Int, tensors: [TensorInfo]) -> [[UInt8]] {
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

    package static let dtypeTensors = [
        TensorInfo(name: "layer.f32", dtype: .f32, shape: [3, 5]),
        TensorInfo(name: "layer.f16", dtype: .f16, shape: [7]),
        TensorInfo(name: "layer.bf16", dtype: .bf16, shape: [2, 2, 3]),
        TensorInfo(name: "layer.f64", dtype: .f64, shape: [9]),
        TensorInfo(name: "scalar", dtype: .f32, shape: []),
        TensorInfo(name: "empty", dtype: .f32, shape: [0, 4]),
    ]

    /// The tensors of anchored.psnap.
    package static let anchoredTensors = dtypeTensors + [TensorInfo(name: "wide", dtype: .f32, shape: [40, 50]),
                                                         TensorInfo(name: "wide.bf16", dtype: .bf16, shape: [30, 50])]

    package static func info(_ k: Int) -> SnapshotInfo {
        SnapshotInfo(step: Int64(k * 100), epoch: Double(k) / 2, time: 1_764_400_000 + Double(k) * 60,
                     metadata: ["loss": .number(2.5 - Double(k) * 0.125), "phase": .string(k < 3 ? "warmup" : "main")])
    }

    /// (name, builder) of every golden fixture.
    package static let all: [(String, @Sendable (String) throws -> Void)] = [
        ("dtypes.psnap", { path in
            var o = WriterOptions(); o.blockSize = 4; o.snapshotsPerSegment = 2; o.workers = 2
            o.spaceBound = nil   // the tiered plan alone (§10): the layout this fixture was written with
            o.chain = .splitByteDelta
            o.attributes = ["model": .string("golden"), "seed": .number(7)]
            let w = try SnapshotWriter.create(path: path, tensors: dtypeTensors, options: o)
            for k in 0..<5 { try SnapshotWriter.withBuffers(snapshot(k, tensors: dtypeTensors)) { try w.append(info(k), buffers: $0) } }
            try w.close()
        }),
        ("segments.psnap", { path in
            // One commit per snapshot, as `psnap append` once per epoch: tiered merging (§10) leaves segments 4,1,1.
            var o = WriterOptions(); o.blockSize = 8; o.snapshotsPerSegment = 1; o.chain = .splitByteDelta
            o.spaceBound = nil   // the tiered plan alone (§10)
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
            // The default chain before `lead` (linpred, split, zstdplanes): every dtype, two segments, a block big enough to compress.
            var o = WriterOptions(); o.blockSize = 8; o.snapshotsPerSegment = 4; o.chain = .linpredSplit
            o.anchorSegments = false   // as written before anchored tiles (§5.2)
            let w = try SnapshotWriter.create(path: path, tensors: dtypeTensors, options: o)
            for k in 0..<7 { try SnapshotWriter.withBuffers(snapshot(k, tensors: dtypeTensors)) { try w.append(info(k), buffers: $0) } }
            try w.close()
        }),
        ("lead.psnap", { path in
            // The default chain (linpred, lead, split, zstdplanes): every dtype, two segments, and a 2,000-parameter
            // tensor in blocks of 1,024 whose planes hold the leading column in a zstd block of its own.
            var o = WriterOptions(); o.blockSize = 1024; o.snapshotsPerSegment = 4; o.chain = .default
            o.anchorSegments = false   // as written before anchored tiles (§5.2)
            let t = dtypeTensors + [TensorInfo(name: "wide", dtype: .f32, shape: [40, 50])]
            let w = try SnapshotWriter.create(path: path, tensors: t, options: o)
            for k in 0..<7 { try SnapshotWriter.withBuffers(snapshot(k, tensors: t)) { try w.append(info(k), buffers: $0) } }
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
        ("anchored.psnap", { path in
            // The default chain appended one commit per snapshot, as `psnap append` does: segments 4, 1, 1, every one
            // after the first anchored to snapshot 0 (§5.2); every dtype, NaN payloads and noise, and a wide tensor.
            var o = WriterOptions(); o.blockSize = 1024; o.snapshotsPerSegment = 1; o.chain = .default
            o.spaceBound = nil   // the tiered plan alone (§10)
            let t = anchoredTensors
            try SnapshotWriter.create(path: path, tensors: t, options: o).close()
            for k in 0..<6 {
                let w = try SnapshotWriter.open(path: path, options: o)
                try SnapshotWriter.withBuffers(snapshot(k, tensors: t)) { try w.append(info(k), buffers: $0) }
                try w.close()
            }
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

    package static var regenerate: Bool { ProcessInfo.processInfo.environment["PSNAP_REGENERATE_FIXTURES"] == "1" }
}

