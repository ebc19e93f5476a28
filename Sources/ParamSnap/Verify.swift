// Whole-file verification: every tile's checksum and decode, reported per bad tile (spec §6, §12).
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Foundation
import Synchronization

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
        let found = Mutex<[TileDamage]>([])
        let counter = ProgressCounter(total: progress == nil ? 0 : scanBytes(), report: progress)
        // Damage is collected, not thrown: every tile is checked. A streaming pass, as a scan.
        try? parallelForEach(count: tiles.count, workers: workers, state: { _ in
            (codec: TileCodec(chain: header.codecChain), release: ResidentPageReleaser(file: file))
        }, { w, i in
            let x = tiles[i]
            do {
                try verifyTile(i)
                try decodeTile(i, into: w.codec.rawScratch(Int(x.rawLength)), codec: w.codec, checked: true)
                w.release.done(Int(x.offset)..<Int(x.offset + x.storedLength), in: fileOf(tile: i))
            } catch {
                let t = Int(x.tensor), b = Int(x.block)
                let p0 = b * layout.blockSize
                let d = TileDamage(tile: i, tensor: tensors[t].name, block: b,
                                   parameters: p0..<(p0 + layout.blockParams(tensor: t, block: b)),
                                   snapshots: Int(x.firstSnapshot)..<Int(x.firstSnapshot + x.snapshotCount),
                                   offset: x.offset, reason: "\(error)")
                found.withLock { $0.append(d) }
            }
            counter.add(x.rawLength)
        }, finish: { $0.release.flush() })
        return found.withLock { $0 }.sorted { $0.tile < $1.tile }
    }
}
