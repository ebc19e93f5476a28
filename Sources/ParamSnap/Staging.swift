// Snapshots staged by the training writer until their segment is committed: in memory up to a budget, then in a
// spill file beside the output (spec §10 bounded memory).
import Foundation
import PSnapFormat

/// Staged snapshots: in memory up to a budget, then in a spill file beside the output (§10 bounded memory).
final class Staging {
    let output: String
    let spillPath: String
    private var spillFile: TempFile?
    let snapshotBytes: Int
    let memoryBudget: Int
    private var memory: [UnsafeMutableRawBufferPointer] = []
    private var spill: WritableFile?
    private var spilled = 0

    /// Byte offset of each tensor inside a staged snapshot (tensors concatenated in file order).
    let tensorOffsets: [Int]

    init(path: String, tensors: [TensorInfo], memoryBudget: Int) {
        self.output = path
        self.spillPath = TempFiles.path(beside: path, .staging)
        var o = [0]
        for t in tensors { o.append(o.last! + (t.parameterCount ?? 0) * t.dtype.size) }
        self.tensorOffsets = o
        self.snapshotBytes = o.last!
        self.memoryBudget = memoryBudget
    }

    var count: Int { memory.count + spilled }

    func add(_ buffers: [UnsafeRawBufferPointer]) throws {
        if (memory.count + 1) * snapshotBytes <= memoryBudget && spilled == 0 {
            let a = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, snapshotBytes), alignment: 64)
            var o = 0
            for b in buffers where b.count > 0 {
                (a.baseAddress! + o).copyMemory(from: b.baseAddress!, byteCount: b.count)
                o += b.count
            }
            memory.append(a)
        } else {
            if spill == nil {
                spillFile = TempFile(beside: output, .staging)
                spill = try WritableFile(path: spillPath, create: true)
            }
            var o = UInt64(spilled) * UInt64(snapshotBytes)
            for b in buffers where b.count > 0 {
                try spill!.write(b, at: o)
                o += UInt64(b.count)
            }
            spilled += 1
        }
    }

    /// A view of all staged snapshots for the tile builder.
    func source() throws -> StagedView {
        let map = spilled > 0 ? try MappedFile(path: spillPath, length: UInt64(spilled) * UInt64(snapshotBytes)) : nil
        return StagedView(memory: memory, map: map, snapshotBytes: snapshotBytes, spilled: spilled, tensorOffsets: tensorOffsets)
    }

    deinit { discard() }

    func reset() {
        for m in memory { m.deallocate() }
        memory.removeAll()
        if spill != nil { try? spill!.truncate(to: 0) }
        spilled = 0
    }

    func discard() {
        for m in memory { m.deallocate() }
        memory.removeAll()
        if spill != nil { spill!.close(); spill = nil }
        spillFile?.remove()
        spillFile = nil
        spilled = 0
    }
}

/// Read-only view of staged snapshots.
struct StagedView: SnapshotSource, @unchecked Sendable {
    package let memory: [UnsafeMutableRawBufferPointer]
    let map: MappedFile?
    let snapshotBytes: Int
    let spilled: Int
    let tensorOffsets: [Int]
    var count: Int { memory.count + spilled }
    func tensorBytes(snapshot k: Int, tensor t: Int) -> UnsafeRawPointer {
        if k < memory.count {
            return UnsafeRawPointer(memory[k].baseAddress!) + tensorOffsets[t]
        }
        return map!.bytes.baseAddress! + (k - memory.count) * snapshotBytes + tensorOffsets[t]
    }
    func releaseResidentPages() { map?.releaseResidentPages() }
}
