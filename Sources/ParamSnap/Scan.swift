// The reader's parallel scan: every tile decoded once, on all cores, as a [parameters × snapshots] block.
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Foundation

/// One decoded tile handed to a scan body. Valid only during the call.
public struct TileBlock {
    /// Position of the tile in the reader's index.
    public let tileIndex: Int
    public let tensor: Int
    public let block: Int
    /// Flat index (in the tensor) of the block's first parameter.
    public let firstParameter: Int
    public let parameters: Int
    public let firstSnapshot: Int
    public let snapshots: Int
    public let dtype: DType
    /// Raw bit patterns, parameter-major: element `p·snapshots + s`.
    public let raw: UnsafeRawBufferPointer

    /// The values as Doubles into `dst` (parameters × snapshots, row-major).
    public func values(into dst: UnsafeMutableBufferPointer<Double>) {
        ValueConversion.toDoubles(raw, dtype: dtype, into: dst)
    }
}

struct UncheckedBox<T>: @unchecked Sendable { var value: T }

extension PSnapReader {
    /// Decodes every live tile (optionally only of `tensors`) on `workers` threads, in file order, calling
    /// `body(tile, worker)`; each worker has its own scratch. The first error stops the scan and is rethrown.
    /// `progress(done, total)` (raw bytes of the scanned tiles) is called after each tile, from the workers.
    public func scan(tensors selected: Set<Int>? = nil, workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                     progress: (@Sendable (UInt64, UInt64) -> Void)? = nil,
                     _ body: @escaping @Sendable (TileBlock, Int) throws -> Void) throws {
        var order = Array(tiles.indices)
        if let selected { order = order.filter { selected.contains(Int(tiles[$0].tensor)) } }
        order.sort { tiles[$0].offset < tiles[$1].offset }
        try scan(tiles: order, workers: workers, progress: progress, body)
    }

    /// Raw bytes of the live tiles of `selected` tensors (all when nil): the `total` a scan's progress counts to.
    public func scanBytes(tensors selected: Set<Int>? = nil) -> UInt64 {
        tiles.reduce(0) { selected?.contains(Int($1.tensor)) == false ? $0 : $0 &+ $1.rawLength }
    }

    /// Decodes the tiles `jobs` (indices into `tiles`, in that order) on `workers` threads, as `scan(tensors:)` does.
    func scan(tiles jobs: [Int], workers: Int, progress: (@Sendable (UInt64, UInt64) -> Void)? = nil,
              _ body: @escaping @Sendable (TileBlock, Int) throws -> Void) throws {
        let lock = NSLock()
        var firstError: Error?
        let state = UncheckedBox(value: (lock, jobs))
        let n = max(1, min(workers, jobs.count))
        let shared = UncheckedBox(value: self)
        let counter = UncheckedBox(value: UnsafeMutablePointer<Int>.allocate(capacity: 1))
        counter.value.initialize(to: 0)
        let total = progress == nil ? 0 : jobs.reduce(UInt64(0)) { $0 &+ tiles[$1].rawLength }
        let doneBytes = UncheckedBox(value: UnsafeMutablePointer<UInt64>.allocate(capacity: 1))
        doneBytes.value.initialize(to: 0)
        defer { doneBytes.value.deallocate() }
        let errBox = UncheckedBox(value: UnsafeMutablePointer<Error?>.allocate(capacity: 1))
        errBox.value.initialize(to: nil)
        defer { counter.value.deallocate(); errBox.value.deinitialize(count: 1); errBox.value.deallocate() }
        DispatchQueue.concurrentPerform(iterations: n) { worker in
            let reader = shared.value
            let codec = TileCodec(chain: reader.header.codecChain)
            let (lock, jobs) = state.value
            // A streaming pass: resident memory bounded by the scratch buffers, not by the file.
            var release = ResidentPageReleaser(file: reader.file)
            defer { release.flush() }
            while true {
                lock.lock()
                if errBox.value.pointee != nil || counter.value.pointee >= jobs.count { lock.unlock(); return }
                let j = jobs[counter.value.pointee]
                counter.value.pointee += 1
                lock.unlock()
                let x = reader.tiles[j]
                let t = Int(x.tensor), b = Int(x.block)
                do {
                    let scratch = codec.rawScratch(Int(x.rawLength))
                    try reader.decodeTile(j, into: scratch, codec: codec)
                    try body(TileBlock(tileIndex: j, tensor: t, block: b, firstParameter: b * reader.layout.blockSize,
                                       parameters: reader.layout.blockParams(tensor: t, block: b),
                                       firstSnapshot: Int(x.firstSnapshot), snapshots: Int(x.snapshotCount),
                                       dtype: reader.tensors[t].dtype, raw: UnsafeRawBufferPointer(scratch)), worker)
                    release.done(Int(x.offset)..<Int(x.offset + x.storedLength))
                    if let progress {
                        lock.lock(); doneBytes.value.pointee &+= x.rawLength; let d = doneBytes.value.pointee; lock.unlock()
                        progress(d, total)
                    }
                } catch {
                    lock.lock()
                    if errBox.value.pointee == nil { errBox.value.pointee = error }
                    lock.unlock()
                    return
                }
            }
        }
        firstError = errBox.value.pointee
        if let firstError { throw firstError }
    }
}
