// Returning dead space to the filesystem after each commit (spec §9 "Space", §10): hole punching of the bytes the
// newest commit no longer references, unless a reader still holds an older commit that may read them.
import PSnapFormat
import CFileSpace
import Glibc

/// What the writer knows about returning space on this file.
struct SpaceReclaimer {
    /// False once the filesystem said it cannot punch holes (then the file keeps its dead space until compaction).
    var supported = true

    /// Byte ranges of the file the commit at `footerOffset` uses (header, live tiles, its index, metadata, footer),
    /// sorted and merged.
    static func liveExtents(tiles: [TileIndexEntry], indexOffset: UInt64, end: UInt64) -> [Range<UInt64>] {
        var r: [Range<UInt64>] = [0..<UInt64(Spec.headerSize), indexOffset..<end]
        r.reserveCapacity(tiles.count + 2)
        for t in tiles where t.storedLength > 0 { r.append(t.offset..<(t.offset + t.storedLength)) }
        r.sort { $0.lowerBound < $1.lowerBound }
        var merged: [Range<UInt64>] = []
        for x in r {
            if let last = merged.last, x.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, x.upperBound)
            } else {
                merged.append(x)
            }
        }
        return merged
    }

    /// The gaps between `live` extents below `end`, shrunk to whole filesystem blocks of `blockBytes`.
    static func deadBlocks(live: [Range<UInt64>], end: UInt64, blockBytes: UInt64) -> [Range<UInt64>] {
        var gaps: [Range<UInt64>] = []
        var at: UInt64 = 0
        for x in live {
            if x.lowerBound > at { gaps.append(at..<x.lowerBound) }
            at = max(at, x.upperBound)
        }
        if end > at { gaps.append(at..<end) }
        return gaps.compactMap { g in
            let a = (g.lowerBound + blockBytes - 1) / blockBytes * blockBytes
            let b = g.upperBound / blockBytes * blockBytes
            return a < b ? a..<b : nil
        }
    }

    /// After a commit: punches the blocks no part of the newest commit uses. Tiles only older commits use are
    /// punched only when no reader holds a lock below `footerOffset` (§9); the previous commit's index and metadata
    /// (which readers parse at open and never read again) are punched in any case. Best effort: the commit is already
    /// durable, so a failure here loses nothing; it returns the bytes punched.
    mutating func reclaim(fd: Int32, tiles: [TileIndexEntry], indexOffset: UInt64, footerOffset: UInt64,
                          previous: (indexOffset: UInt64, footerOffset: UInt64)?) -> UInt64 {
        guard supported, fd >= 0 else { return 0 }
        var st = stat()
        let blockBytes = UInt64(max(4096, fstat(fd, &st) == 0 ? Int(st.st_blksize) : 4096))
        let olderReaders = psnap_range_locked(fd, 0, Int64(footerOffset)) != 0
        let dead: [Range<UInt64>]
        if !olderReaders {
            dead = Self.deadBlocks(live: Self.liveExtents(tiles: tiles, indexOffset: indexOffset, end: footerOffset + UInt64(Spec.footerSize)),
                                   end: footerOffset, blockBytes: blockBytes)
        } else if let p = previous {
            dead = Self.deadBlocks(live: [0..<p.indexOffset, p.footerOffset..<footerOffset], end: footerOffset, blockBytes: blockBytes)
        } else {
            dead = []
        }
        var punched: UInt64 = 0
        for g in dead {
            // Already a hole (punched by an earlier commit): skip the call.
            let next = psnap_seek_data(fd, Int64(g.lowerBound))
            if next < 0 || UInt64(next) >= g.upperBound { continue }
            let from = max(g.lowerBound, UInt64(next) / blockBytes * blockBytes)
            let err = psnap_punch_hole(fd, Int64(from), Int64(g.upperBound - from))
            if err == EOPNOTSUPP || err == ENOSYS || err == EINVAL { supported = false; return punched }
            if err == 0 { punched += g.upperBound - from }
        }
        return punched
    }
}
