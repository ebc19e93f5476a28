// Tiered merging of trailing segments (spec §10): which snapshots a commit rewrites.
import PSnapFormat

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

}
