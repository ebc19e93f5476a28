// Builds tiles for a snapshot range from committed tiles and staged snapshots, on all cores (spec §4, §10).
import PSnapFormat
@_spi(Internals) import PSnapCodec
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
    var anchored: Bool
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
    package let workers: Int
    let batchBytes: Int            // raw bytes encoded per batch before writing (memory bound)
    /// Anchor the tiles to snapshot 0 (§5.2) when `first` > 0, the chain starts with linpred and the blocks are `old`'s.
    var anchorSegments = false
    /// The shortest zstd match of the tiles built (`WriterOptions.zstdMinMatch`).
    var minMatch: Int32 = Spec.zstdMinMatch
    /// Called after each batch with (raw bytes done, raw bytes total).
    var progress: ((UInt64, UInt64) -> Void)? = nil
    /// Repair mode: an old tile that fails its checksum or decode is replaced by NaN values (canonical quiet NaN
    /// of the dtype) and reported to `damaged`, instead of failing the build.
    var onDamagedTile: (@Sendable (Int, Error) -> Void)? = nil

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

    /// Shared state of a build: outputs waiting to be written in job order, raw bytes in flight, and the file end.
    private final class Pipeline: @unchecked Sendable {
        let cond = NSCondition()
        var nextWrite = 0
        var ready: [Int: [EncodedTile]] = [:]
        var pendingBytes = 0
        var writing = false
        var error: Error?
        var result: BuildResult
        var doneRaw: UInt64 = 0
        var sinceRelease = 0
        init(start: UInt64) { result = BuildResult(end: start) }

        /// Waits until job `j` (of `bytes` raw bytes) may start: the next job to write always may, a later one once the
        /// bytes in flight leave room under `batch`. Throws the build's error if another worker failed meanwhile.
        func admit(_ j: Int, bytes: Int, batch: Int) throws {
            cond.lock(); defer { cond.unlock() }
            while error == nil, j > nextWrite, pendingBytes + bytes > batch { cond.wait() }
            if let error { throw error }
            pendingBytes += bytes
        }

        /// Records a worker's failure and wakes the others.
        func fail(_ e: Error) {
            cond.lock(); if error == nil { error = e }; cond.broadcast(); cond.unlock()
        }
    }

    /// Builds every tile and writes them to `file` from offset `start`. Workers encode jobs in parallel; whichever
    /// worker finds the next job in order ready writes the contiguous ready outputs, so tiles land in job order
    /// (deterministic files) while encoding and writing overlap. Raw bytes in flight stay under `batchBytes`.
    /// Does not fsync.
    func build(into file: WritableFile, at start: UInt64) throws -> BuildResult {
        let S = snapshots
        precondition(S > 0)
        let jobs = self.jobs()
        let jobBytes = jobs.map { ($0.p1 - $0.p0) * S * layout.tensors[$0.tensor].dtype.size }
        let totalRawBytes = UInt64(jobBytes.reduce(0, +))
        let st = Pipeline(start: start)
        try parallelForEach(count: jobs.count, workers: workers, state: { _ in
            (codec: TileCodec(chain: chain, minMatch: minMatch), oldCodec: TileCodec(chain: old?.header.codecChain ?? chain),
             jobRaw: UnsafeMutableRawBufferPointer(start: nil, count: 0))
        }, { w, j in
            do {
                try st.admit(j, bytes: jobBytes[j], batch: batchBytes)
                let out = try run(jobs[j], S: S, codec: w.codec, oldCodec: w.oldCodec, jobRaw: &w.jobRaw)
                try deliver(j, out, pipeline: st, file: file, jobBytes: jobBytes, S: S, total: totalRawBytes)
            } catch {
                st.fail(error)
                throw error
            }
        }, finish: { $0.jobRaw.deallocate() })
        if let e = st.error { throw e }
        precondition(st.nextWrite == jobs.count, "every job written")
        old?.file.releaseResidentPages()
        staged?.releaseResidentPages()
        return st.result
    }

    /// Hands job `j`'s tiles to the pipeline; unless another worker is writing, writes every contiguous ready output
    /// from the next in order (in batches of up to 8 MiB, their offsets assigned in job order).
    private func deliver(_ j: Int, _ out: [EncodedTile], pipeline st: Pipeline, file: WritableFile, jobBytes: [Int], S: Int,
                         total: UInt64) throws {
        st.cond.lock(); defer { st.cond.unlock() }
        st.ready[j] = out
        guard !st.writing else { return }
        st.writing = true
        defer { st.writing = false }
        while st.error == nil, st.ready[st.nextWrite] != nil {
            var buffer: [UInt8] = []
            let offset0 = st.result.end
            var freed = 0
            while buffer.count < (8 << 20), let outs = st.ready.removeValue(forKey: st.nextWrite) {
                for tile in outs {
                    st.result.entries.append(TileIndexEntry(
                        tensor: UInt32(tile.tensor), flags: tile.storedRaw ? Spec.flagStoredRaw : tile.anchored ? Spec.flagAnchored : 0, block: UInt64(tile.block),
                        firstSnapshot: UInt64(first), snapshotCount: UInt64(S), offset: st.result.end,
                        storedLength: UInt64(tile.stored.count), rawLength: UInt64(tile.rawLength), checksum: tile.checksum))
                    st.result.end += UInt64(tile.stored.count)
                    st.result.rawBytes += UInt64(tile.rawLength)
                    st.result.storedBytes += UInt64(tile.stored.count)
                    buffer.append(contentsOf: tile.stored)
                }
                freed += jobBytes[st.nextWrite]
                st.nextWrite += 1
            }
            st.cond.unlock()
            var failure: Error?
            do { try file.write(buffer, at: offset0) } catch { failure = error }
            st.cond.lock()
            if let failure, st.error == nil { st.error = failure }
            st.pendingBytes -= freed
            st.doneRaw += UInt64(freed)
            st.sinceRelease += freed
            if st.sinceRelease >= batchBytes {
                // Keep resident memory bounded by what is in flight, not by the files read through mmap.
                st.sinceRelease = 0
                old?.file.releaseResidentPages()
                staged?.releaseResidentPages()
            }
            progress?(st.doneRaw, total)
            st.cond.broadcast()
        }
        if let e = st.error { throw e }
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
        var anchors: [Int: [UInt8]] = [:]   // by block of `old`, decoded once for its anchored tiles and the new ones
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
                    do {
                        if x.anchored && anchors[b] == nil { anchors[b] = try old.anchorValues(ofTile: i, codec: oldCodec) }
                        try old.decodeTile(i, into: scratch, codec: oldCodec, anchor: anchors[b])
                    } catch {
                        guard let onDamagedTile else { throw error }
                        onDamagedTile(i, error)
                        Self.fillNaN(scratch, dtype: old.tensors[t].dtype)
                    }
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
        // A segment after snapshot 0 is anchored to the block's snapshot-0 values (§5) when the chain starts with
        // linpred and the blocks are the old file's: its first snapshot then costs a step, not a value.
        let anchoring = anchorSegments && first > 0 && chain.anchorable && old.map { $0.layout.blockSize == B && $0.snapshotCount > 0 } == true
        var p = job.p0
        while p < job.p1 {
            let block = p / B
            let params = layout.blockParams(tensor: t, block: block)
            let raw = UnsafeRawBufferPointer(start: dst + (p - job.p0) * rowBytes, count: params * rowBytes)
            var anchor: [UInt8]? = nil
            if anchoring, let old {
                do {
                    anchor = try anchors[block] ?? old.anchorValues(ofTile: old.tileRange(tensor: t, block: block).lowerBound, codec: oldCodec)
                } catch {
                    // Repair: a damaged first tile leaves this tile unanchored (its values are already in `raw`).
                    guard onDamagedTile != nil else { throw error }
                }
            }
            let (stored, storedRaw) = anchor.map { a in a.withUnsafeBytes { codec.encode(raw, elementSize: e, params: params, snapshots: S, anchor: $0.baseAddress!) } }
                ?? codec.encode(raw, elementSize: e, params: params, snapshots: S)
            out.append(EncodedTile(tensor: t, block: block, stored: Array(stored), storedRaw: storedRaw, anchored: anchor != nil && !storedRaw,
                                   rawLength: raw.count, checksum: XXH64.hash(stored)))
            p += params
        }
        return out
    }

    /// Fills `buf` with the canonical quiet NaN of `dtype` (what a repaired, damaged tile reads as).
    static func fillNaN(_ buf: UnsafeMutableRawBufferPointer, dtype: DType) {
        let e = dtype.size
        var pattern: UInt64
        switch dtype {
        case .f32: pattern = 0x7FC0_0000
        case .f64: pattern = 0x7FF8_0000_0000_0000
        case .f16: pattern = 0x7E00
        case .bf16: pattern = 0x7FC0
        }
        for i in 0..<(buf.count / e) {
            withUnsafeBytes(of: pattern.littleEndian) { (buf.baseAddress! + i * e).copyMemory(from: $0.baseAddress!, byteCount: e) }
        }
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
