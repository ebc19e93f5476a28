// What a written run must read back as, and the codec chains the property tests draw from.
import Foundation
@_spi(Internals) import ParamSnap
import PSnapImport
@_spi(Internals) import PSnapCodec
import Testing

package struct TruthRun {
    package var tensors: [TensorInfo]
    package var snapshots: [[[UInt8]]] = []
    package var infos: [SnapshotInfo] = []
    package init(tensors: [TensorInfo], snapshots: [[[UInt8]]] = [], infos: [SnapshotInfo] = []) {
        self.tensors = tensors; self.snapshots = snapshots; self.infos = infos
    }
}

package func randomTensors(_ rng: inout SeededRNG) -> [TensorInfo] {
    let n = Int(rng.next() % 4) + 1
    return (0..<n).map { i in
        let rank = Int(rng.next() % 3)
        var shape = (0..<rank).map { _ in Int(rng.next() % 9) + 1 }
        if rng.next() % 10 == 0 { shape = [0] }            // an empty tensor
        if rng.next() % 6 == 0 { shape = [Int(rng.next() % 300) + 1] }
        return TensorInfo(name: "t\(i).w", dtype: DType.allCases[Int(rng.next() % 4)], shape: shape)
    }
}

/// Checks every trajectory, every tensor at every snapshot and a block read against the truth.
package func checkAgainstTruth(_ r: PSnapReader, _ truth: TruthRun, context: String) throws {
    #expect(r.snapshotCount == truth.snapshots.count, "\(context)")
    #expect(r.snapshots == truth.infos, "\(context)")
    for (t, info) in truth.tensors.enumerated() {
        let e = info.dtype.size
        let n = info.parameterCount!
        for p in 0..<n {
            let got = try r.trajectoryBytes(tensor: t, index: p)
            var want: [UInt8] = []
            for s in truth.snapshots { want.append(contentsOf: s[t][(p * e)..<((p + 1) * e)]) }
            #expect(got == want, "\(context): tensor \(info.name) param \(p)")
            if got != want { return }
        }
        for k in 0..<truth.snapshots.count {
            #expect(try r.tensorBytes(tensor: t, snapshot: k) == truth.snapshots[k][t], "\(context): tensor \(info.name) snapshot \(k)")
        }
        if n > 0 && truth.snapshots.count > 0 {
            let lo = n / 3, hi = n
            let m = try r.trajectories(tensor: t, range: lo..<hi)
            for p in lo..<hi {
                for k in 0..<truth.snapshots.count {
                    let v = truth.snapshots[k][t].withUnsafeBytes { ValueConversion.toDoubles(UnsafeRawBufferPointer(rebasing: $0[(p * e)..<((p + 1) * e)]), dtype: info.dtype)[0] }
                    let g = m[(p - lo) * truth.snapshots.count + k]
                    #expect(g.bitPattern == v.bitPattern || (g.isNaN && v.isNaN), "\(context): matrix \(info.name)[\(p)] snapshot \(k)")
                }
            }
        }
    }
}

/// Hands a value to `concurrentPerform` workers (each worker touches only its own slot).
package struct UncheckedSendable<T>: @unchecked Sendable {
    package let value: T
    package init(_ v: T) { value = v }
}


/// Every codec chain the property tests draw from (spec §5), valid and pointless ones alike.
package let codecChainsUnderTest: [[CodecStage]] = [
    [], [.zstd], [.split, .zstd], [.xor, .split, .zstd], [.sub, .split, .bytedelta, .zstd],
    [.xor, .split, .bytedelta, .zstd], [.xor], [.split, .bytedelta], [.bytedelta, .zstd],
    [.split, .bytedelta, .zstdPlanes], [.zstdPlanes], [.sub, .split, .zstdPlanes], [.xor, .zstdPlanes],
    [.linpred, .split, .zstdPlanes], [.linpred], [.linpred, .split, .bytedelta, .zstd], [.linpred, .zstdPlanes],
    [.linpred, .lenrans], [.lenrans], [.xor, .lenrans], [.split, .lenrans],
    [.linpred, .lead, .split, .zstdPlanes], [.lead], [.linpred, .lead, .zstd], [.lead, .split, .bytedelta, .zstd],
    [.xor, .lead, .split, .zstdPlanes], [.linpred, .lead, .lenrans],
]

/// Snapshots held in memory, for `writeCompact`.
package struct ArraySource: SnapshotSource, @unchecked Sendable {
    package let data: [[[UInt8]]]   // [snapshot][tensor] bytes
    package init(data: [[[UInt8]]]) { self.data = data }
    package var count: Int { data.count }
    package func tensorBytes(snapshot: Int, tensor: Int) -> UnsafeRawPointer {
        data[snapshot][tensor].withUnsafeBytes { $0.baseAddress ?? UnsafeRawPointer(bitPattern: 8)! }
    }
    package func releaseResidentPages() {}
}
