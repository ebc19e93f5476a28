// A bounded, thread-safe LRU cache of inflated tiles (TileCodec.inflate) for the reader's point reads.
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Foundation

/// Inflated tiles by tile index, evicting the least recently used past `budget` bytes. Tiles enter it only after
/// their checksum was verified, so a hit skips both the checksum and zstd.
final class TileCache: @unchecked Sendable {
    private struct Entry { let tile: InflatedTile; var tick: UInt64; var uses: Int }
    private var entries: [Int: Entry] = [:]
    private var bytes = 0
    private var tick: UInt64 = 0
    private let lock = NSLock()
    private(set) var hits = 0, misses = 0
    private var limit: Int
    /// Bytes the cache may hold; lowering it evicts at once. Read and set under the lock (readers share the cache).
    var budget: Int {
        get { lock.lock(); defer { lock.unlock() }; return limit }
        set { lock.lock(); limit = newValue; evict(); lock.unlock() }
    }

    /// Tiles asked for at least once (a bit per tile): a tile enters the cache on its second request, so a random
    /// walk over a run much larger than the cache pays nothing for it (no allocation, no eviction).
    private var touched: [UInt64]

    init(budget: Int, tiles: Int) {
        limit = budget
        touched = [UInt64](repeating: 0, count: (tiles + 63) / 64)
    }

    /// Records a request for tile `i`; true if it had been requested before.
    func touch(_ i: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let w = i >> 6, bit = UInt64(1) << UInt64(i & 63)
        guard w < touched.count else { return false }
        let seen = touched[w] & bit != 0
        touched[w] |= bit
        return seen
    }

    /// The cached tile and how many times it was asked for before (0 on the first hit after `put`).
    func get(_ i: Int) -> (tile: InflatedTile, uses: Int)? {
        lock.lock(); defer { lock.unlock() }
        guard var e = entries[i] else { misses += 1; return nil }
        tick += 1
        e.tick = tick
        let uses = e.uses
        e.uses += 1
        entries[i] = e
        hits += 1
        return (e.tile, uses)
    }

    func put(_ i: Int, _ t: InflatedTile) {
        lock.lock(); defer { lock.unlock() }
        guard t.bytes <= limit / 4 else { return }   // one tile never takes over the cache
        if let old = entries[i] { bytes -= old.tile.bytes }
        tick += 1
        entries[i] = Entry(tile: t, tick: tick, uses: 1)
        bytes += t.bytes
        evict()
    }

    /// Drops least recently used entries until the cache fits its budget (lock held).
    private func evict() {
        guard bytes > limit else { return }
        // Oldest first; one sort per eviction round, amortised over the many entries it frees (a quarter).
        let order = entries.sorted { $0.value.tick < $1.value.tick }
        var k = 0
        while bytes > limit - limit / 4 && k < order.count {
            bytes -= order[k].value.tile.bytes
            entries[order[k].key] = nil
            k += 1
        }
    }
}
