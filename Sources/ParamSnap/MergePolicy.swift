// Merging of trailing segments (spec §10): which snapshots a commit rewrites — tiered, then held to the space bound.
import PSnapFormat

/// One committed segment in the newest commit: its snapshots and the bytes it holds (its tiles and their index
/// entries).
public struct SegmentSpace: Sendable, Equatable {
    public var count: Int
    public var bytes: UInt64
    public init(count: Int, bytes: UInt64) { self.count = count; self.bytes = bytes }
}

extension SnapshotWriter {
    /// §10 tiered merging: the first snapshot of the segment the staged snapshots end up in.
    public static func plannedMergeStart(segments: [Int], staged: Int, oldEnd: Int) -> Int {
        func tier(_ l: Int) -> Int { var t = 0, x = l; while x >= Spec.mergeFanout { x /= Spec.mergeFanout; t += 1 }; return t }
        var segs = segments + [staged]
        let F = Spec.mergeFanout
        while segs.count >= F {
            let tail = segs.suffix(F)
            let t0 = tier(tail.first!)
            guard tail.allSatisfy({ tier($0) == t0 }) else { break }
            let sum = tail.reduce(0, +)
            segs.removeLast(F)
            segs.append(sum)
        }
        return oldEnd + staged - segs.last!
    }

    /// §10 space bound: whether a run of `kept` segments (the first at snapshot 0) followed by one new segment of
    /// `newBytes` fits `bound` × its compact size. Each segment after the first costs at most `single` bytes more than
    /// its snapshots would in one tile (its first snapshot coded on its own; `single`: the newest one-snapshot
    /// segment, whose drift from snapshot 0 is the largest), so the compact size is at least total − j · single for
    /// the j segments after the first, and total ≤ bound × (total − j · single) is what is checked.
    public static func fitsSpaceBound(kept: [SegmentSpace], newBytes: UInt64, fixedBytes: UInt64, single: UInt64, bound: Double) -> Bool {
        let j = Double(kept.count)   // segments after the first: kept[1...] and the new one
        let total = Double(fixedBytes + kept.reduce(0) { $0 + $1.bytes } + newBytes)
        return j * Double(single) * bound <= (bound - 1) * total
    }

    /// §10: the tiered plan, then, if the run would exceed `bound` × its compact size, the latest earlier segment
    /// start that keeps it within (the segments from there merged with the staged ones; a merged segment at least
    /// as long as the one before it takes that one too, so lengths keep falling). `single`: bytes of the newest
    /// one-snapshot segment (nil: none known, the tiered plan stands). `before`: a start already found too late
    /// (its new segment was built and measured): only earlier starts are considered.
    public static func boundedMergeStart(segments: [SegmentSpace], staged: Int, oldEnd: Int, fixedBytes: UInt64,
                                         single: UInt64?, bound: Double?, before: Int? = nil) -> Int {
        let tiered = plannedMergeStart(segments: segments.map(\.count), staged: staged, oldEnd: oldEnd)
        guard let bound, let single, single > 0, tiered > 0 else { return before.map { min($0, tiered) } ?? tiered }
        var starts: [Int] = [], s = 0
        for seg in segments { starts.append(s); s += seg.count }
        let limit = min(before ?? .max, tiered)
        let newEnd = oldEnd + staged
        // The new segment's bytes if it starts at segment k (segments.count: the staged snapshots alone), counting
        // what is merged at its present size (merging only shrinks it).
        func fits(_ k: Int) -> Bool {
            let merged = segments[k...].reduce(0) { $0 + $1.bytes } + UInt64(staged) * single
            return fitsSpaceBound(kept: Array(segments[..<k]), newBytes: merged, fixedBytes: fixedBytes, single: single, bound: bound)
        }
        if before == nil {
            let k = starts.firstIndex(of: tiered) ?? segments.count
            if fits(k) { return tiered }
        }
        var k = (starts.lastIndex { $0 < limit } ?? 0)
        while k > 0 {
            let cascades = newEnd - starts[k] >= segments[k - 1].count
            if !cascades && fits(k) { return starts[k] }
            k -= 1
        }
        return 0
    }
}
