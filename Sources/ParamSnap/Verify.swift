// Whole-file verification: every tile's checksum and decode, reported per bad tile (spec §6, §12).
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Foundation

/// One damaged tile found by `verify`.
public struct TileDamage: Sendable, Equatable {
    public let tile: Int
    public let tensor: String
    public let block: Int
    /// Flat parameter range inside the tensor.
    public let parameters: Range<Int>
    public let snapshots: Range<Int>
    public let offset: UInt64
    public let reason: String
}

extension PSnapReader {
    /// Checks every live tile's checksum and that it decodes to its raw length. Returns the damaged tiles.
    /// `progress(done, total)` (raw bytes of the tiles checked) is called after each tile, from the workers.
    public func verifyAll(workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                          progress: (@Sendable (UInt64, UInt64) -> Void)? = nil) -> [TileDamage] {
        let lock = NSLock()
        let found = UncheckedBox(value: UnsafeMutablePointer<[TileDamage]>.allocate(capacity: 1))
        found.value.initialize(to: [])
        defer { found.value.deinitialize(count: 1); found.value.deallocate() }
        let total = progress == nil ? 0 : scanBytes()
        let doneBytes = UncheckedBox(value: UnsafeMutablePointer<UInt64>.allocate(capacity: 1))
        doneBytes.value.initialize(to: 0)
        defer { doneBytes.value.deallocate() }
        let me = UncheckedBox(value: self)
        let n = tiles.count
        let w = max(1, min(workers, n))
        DispatchQueue.concurrentPerform(iterations: w) { k in
            let r = me.value
            let codec = TileCodec(chain: r.header.codecChain)
            var i = k
            // A streaming pass: resident memory bounded by the scratch buffers, not the file size.
            var release = ResidentPageReleaser(file: r.file)
            defer { release.flush() }
            while i < n {
                let x = r.tiles[i]
                do {
                    try r.verifyTile(i)
                    try r.decodeTile(i, into: codec.rawScratch(Int(x.rawLength)), codec: codec, checked: true)
                    release.done(Int(x.offset)..<Int(x.offset + x.storedLength))
                } catch {
                    let t = Int(x.tensor), b = Int(x.block)
                    let p0 = b * r.layout.blockSize
                    let d = TileDamage(tile: i, tensor: r.tensors[t].name, block: b,
                                       parameters: p0..<(p0 + r.layout.blockParams(tensor: t, block: b)),
                                       snapshots: Int(x.firstSnapshot)..<Int(x.firstSnapshot + x.snapshotCount),
                                       offset: x.offset, reason: "\(error)")
                    lock.lock(); found.value.pointee.append(d); lock.unlock()
                }
                if let progress {
                    lock.lock(); doneBytes.value.pointee &+= x.rawLength; let done = doneBytes.value.pointee; lock.unlock()
                    progress(done, total)
                }
                i += w
            }
        }
        return found.value.pointee.sorted { $0.tile < $1.tile }
    }
}
