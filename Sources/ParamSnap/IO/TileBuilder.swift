// Builds tiles for a snapshot range from committed tiles and staged snapshots, on all cores (spec §4, §10).
import Foundation

/// Snapshot-major input to the tile builder: the writer's staged snapshots, or snapshot dumps being converted.
/// Implementations must be safe to read from several threads at once.
public protocol SnapshotSource {
    /// Number of snapshots.
    var count: Int { get }
    /// Raw little-endian bytes of tensor `tensor` at snapshot `snapshot` (the tensor's declared size), valid
    /// until `releaseResidentPages` or the end of the build.
    func tensorBytes(snapshot: Int, tensor: Int) -> UnsafeRawPointer
    /// Called after each batch: drop resident pages of memory-mapped inputs, so resident memory stays bounded.
    func releaseResidentPages()
}

/// One encoded tile waiting to be written.
struct EncodedTile {
    var tensor: Int
    var block: Int
    var stored: [UInt8]
    var storedRaw: Bool
    var rawLength: Int
    var checksum: UInt64
}

/// What a build produced.
struct BuildResult {
    var entries: [TileIndexEntry] = []
    var rawBytes: UInt64 = 0
    var storedBytes: UInt64 = 0
    var end: UInt64
}

/// Produces the tiles of columns [0, S) = snapshots [first, first + S) for every block of the output layout,
/// reading columns [0, oldCount) from `old` (tiles at or after `first`) and the rest from `staged`.
struct TileBuilder {
    let layout: RunLayout          // output layout (block size of the output file)
    let chain: CodecChain
    let first: Int                 // first snapshot of the range
    let oldCount: Int              // snapshots taken from `old`
    let old: PSnapReader?
    let staged: SnapshotSource?
    let workers: Int
    let batchBytes: Int            // raw bytes encoded per batch before writing (memory bound)
    /// Called after each batch with (raw bytes done, raw bytes total).
    var progress: ((UInt64, UInt64) -> Void)? = nil

    var snapshots: Int { oldCount + (staged?.count ?? 0) }

    struct Job { let tensor: Int; let p0: Int; let p1: Int }

    /// Jobs cover whole output blocks and whole input blocks (aligned to the larger block size).
    func jobs() -> [Job] {
        let unit = max(layout.blockSize, old?.layout.blockSize ?? 1)
        var out: [Job] = []
        for t in 0..<layout.tensors.count {
            let n = layout.parameterCounts[t]
            var p = 0
            while p < n { out.append(Job(tensor: t, p0: p, p1: min(n, p + unit))); p += unit }
        }
        return out
    }

    /// Builds every tile and writes them to `file` from offset `start`, in job order. Does not fsync.
    func build(into file: WritableFile, at start: UInt64) throws -> BuildResult {
        let S = snapshots
        precondition(S > 0)
        let jobs = self.jobs()
        var result = BuildResult(end: start)
        let totalRaw = UInt64(layout.parameterCount) * UInt64(S) // × element size added below
        _ = totalRaw
        var totalRawBytes: UInt64 = 0
        for j in jobs { totalRawBytes += UInt64((j.p1 - j.p0) * S * layout.tensors[j.tensor].dtype.size) }
        var doneRaw: UInt64 = 0
        var j0 = 0
        let workerCount = max(1, workers)
        let codecs = (0..<workerCount).map { _ in TileCodec(chain: chain) }
        let oldCodecs = (0..<workerCount).map { _ in TileCodec(chain: old?.header.codecChain ?? chain) }
        var writeBuffer: [UInt8] = []
        writeBuffer.reserveCapacity(8 << 20)
        while j0 < jobs.count {
            var j1 = j0, bytes = 0
            while j1 < jobs.count, bytes < batchBytes || j1 == j0 {
                bytes += (jobs[j1].p1 - jobs[j1].p0) * S * layout.tensors[jobs[j1].tensor].dtype.size
                j1 += 1
            }
            let batch = Array(jobs[j0..<j1])
            let outputs = UncheckedBox(value: UnsafeMutablePointer<[EncodedTile]>.allocate(capacity: batch.count))
            outputs.value.initialize(repeating: [], count: batch.count)
            defer { outputs.value.deinitialize(count: batch.count); outputs.value.deallocate() }
            let lock = NSLock()
            let next = UncheckedBox(value: UnsafeMutablePointer<Int>.allocate(capacity: 1))
            next.value.initialize(to: 0)
            let err = UncheckedBox(value: UnsafeMutablePointer<Error?>.allocate(capacity: 1))
            err.value.initialize(to: nil)
            defer { next.value.deallocate(); err.value.deinitialize(count: 1); err.value.deallocate() }
            let me = UncheckedBox(value: self)
            let cx = UncheckedBox(value: (codecs, oldCodecs, batch))
            DispatchQueue.concurrentPerform(iterations: min(workerCount, batch.count)) { w in
                let (codecs, oldCodecs, batch) = cx.value
                var jobRaw = UnsafeMutableRawBufferPointer(start: nil, count: 0)
                defer { jobRaw.deallocate() }
                while true {
                    lock.lock()
                    if err.value.pointee != nil || next.value.pointee >= batch.count { lock.unlock(); return }
                    let i = next.value.pointee
                    next.value.pointee += 1
                    lock.unlock()
                    do {
                        outputs.value[i] = try me.value.run(batch[i], S: S, codec: codecs[w], oldCodec: oldCodecs[w], jobRaw: &jobRaw)
                    } catch {
                        lock.lock()
                        if err.value.pointee == nil { err.value.pointee = error }
                        lock.unlock()
                        return
                    }
                }
            }
            if let e = err.value.pointee { throw e }
            // Write the batch in job order, coalescing small tiles.
            for i in 0..<batch.count {
                for tile in outputs.value[i] {
                    if writeBuffer.count + tile.stored.count > (8 << 20), !writeBuffer.isEmpty {
                        try file.write(writeBuffer, at: result.end - UInt64(writeBuffer.count))
                        writeBuffer.removeAll(keepingCapacity: true)
                    }
                    let offset = result.end
                    if tile.stored.count >= (4 << 20) {
                        if !writeBuffer.isEmpty {
                            try file.write(writeBuffer, at: result.end - UInt64(writeBuffer.count))
                            writeBuffer.removeAll(keepingCapacity: true)
                        }
                        try file.write(tile.stored, at: offset)
                    } else {
                        writeBuffer.append(contentsOf: tile.stored)
                    }
                    result.end += UInt64(tile.stored.count)
                    result.entries.append(TileIndexEntry(
                        tensor: UInt32(tile.tensor), flags: tile.storedRaw ? Spec.flagStoredRaw : 0, block: UInt64(tile.block),
                        firstSnapshot: UInt64(first), snapshotCount: UInt64(S), offset: offset,
                        storedLength: UInt64(tile.stored.count), rawLength: UInt64(tile.rawLength), checksum: tile.checksum))
                    result.rawBytes += UInt64(tile.rawLength)
                    result.storedBytes += UInt64(tile.stored.count)
                }
            }
            if !writeBuffer.isEmpty {
                try file.write(writeBuffer, at: result.end - UInt64(writeBuffer.count))
                writeBuffer.removeAll(keepingCapacity: true)
            }
            // Keep resident memory bounded by the batch, not by the files read through mmap.
            old?.file.releaseResidentPages()
            staged?.releaseResidentPages()
            doneRaw += UInt64(bytes)
            progress?(doneRaw, totalRawBytes)
            j0 = j1
        }
        return result
    }

    /// Fills one job's [params × S] raw rows, then encodes each output block inside it.
    private func run(_ job: Job, S: Int, codec: TileCodec, oldCodec: TileCodec,
                     jobRaw: inout UnsafeMutableRawBufferPointer) throws -> [EncodedTile] {
        let t = job.tensor
        let e = layout.tensors[t].dtype.size
        let rowBytes = S * e
        let need = (job.p1 - job.p0) * rowBytes
        if jobRaw.count < need {
            jobRaw.deallocate()
            jobRaw = .allocate(byteCount: need, alignment: 64)
        }
        let dst = jobRaw.baseAddress!
        if let old, oldCount > 0 {
            let ob = old.layout.blockSize
            var b = job.p0 / ob
            while b * ob < job.p1 {
                let bp0 = b * ob
                let bParams = old.layout.blockParams(tensor: t, block: b)
                for i in old.tileRange(tensor: t, block: b) {
                    let x = old.tiles[i]
                    let f = Int(x.firstSnapshot), s = Int(x.snapshotCount)
                    guard f >= first else { continue }
                    let scratch = oldCodec.rawScratch(Int(x.rawLength))
                    try old.decodeTile(i, into: scratch, codec: oldCodec)
                    let lo = max(job.p0, bp0), hi = min(job.p1, bp0 + bParams)
                    for p in lo..<hi {
                        (dst + (p - job.p0) * rowBytes + (f - first) * e)
                            .copyMemory(from: scratch.baseAddress! + (p - bp0) * s * e, byteCount: s * e)
                    }
                }
                b += 1
            }
        }
        if let staged {
            let n = job.p1 - job.p0
            for k in 0..<staged.count {
                let src = staged.tensorBytes(snapshot: k, tensor: t) + job.p0 * e
                let col = oldCount + k
                Self.scatterColumn(src: src, dst: dst + col * e, count: n, stride: rowBytes, elementSize: e)
            }
        }
        var out: [EncodedTile] = []
        let B = layout.blockSize
        var p = job.p0
        while p < job.p1 {
            let block = p / B
            let params = layout.blockParams(tensor: t, block: block)
            let raw = UnsafeRawBufferPointer(start: dst + (p - job.p0) * rowBytes, count: params * rowBytes)
            let (stored, storedRaw) = codec.encode(raw, elementSize: e, params: params, snapshots: S)
            out.append(EncodedTile(tensor: t, block: block, stored: Array(stored), storedRaw: storedRaw,
                                   rawLength: raw.count, checksum: XXH64.hash(stored)))
            p += params
        }
        return out
    }

    /// Writes `count` consecutive elements of `src` to `dst`, `dst + stride`, … (one staged snapshot into a tile column).
    static func scatterColumn(src: UnsafeRawPointer, dst: UnsafeMutableRawPointer, count: Int, stride: Int, elementSize e: Int) {
        switch e {
        case 4:
            for i in 0..<count { (dst + i &* stride).storeBytes(of: src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self), as: UInt32.self) }
        case 2:
            for i in 0..<count { (dst + i &* stride).storeBytes(of: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self), as: UInt16.self) }
        case 8:
            for i in 0..<count { (dst + i &* stride).storeBytes(of: src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self), as: UInt64.self) }
        default:
            for i in 0..<count { (dst + i &* stride).copyMemory(from: src + i &* e, byteCount: e) }
        }
    }
}
