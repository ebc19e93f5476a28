// Dead space returned to the filesystem while appending (spec §9 "Space"): the disk bound, readers' locks, races.
import Foundation
import Glibc
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@testable import PSnapImport

@Suite struct SpaceTests {
    static func files(_ run: String, _ n: Int) throws -> [String] {
        let d = sharedData + "/" + run
        return Array(try FileManager.default.contentsOfDirectory(atPath: d).filter { $0.hasSuffix(".safetensors") }.sorted()
            .map { d + "/" + $0 }.prefix(n))
    }

    /// Blocks the file occupies (what `du` counts).
    static func allocated(_ path: String) -> UInt64 {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_blocks) * 512 : 0
    }

    /// One snapshot per writer (as `psnap append` runs once per checkpoint).
    static func appendOne(_ run: String, _ file: String, step: Int, spaceBound: Double? = Spec.defaultSpaceBound) throws -> CommitReport {
        let st = try SafeTensorsFile(path: file)
        let w = FileManager.default.fileExists(atPath: run)
            ? try SnapshotWriter.open(path: run, expecting: st.tensors)
            : try SnapshotWriter.create(path: run, tensors: st.tensors)
        w.options.snapshotsPerSegment = .max
        w.options.spaceBound = spaceBound
        try w.append(SnapshotInfo(step: Int64(step)), buffers: w.layout.tensors.map { st.bytes(named: $0.name)! })
        try w.close()
        return w.lastCommit
    }

    /// The temporary folder's filesystem punches holes (ext4, xfs, btrfs, tmpfs do): otherwise the bound below cannot hold.
    static func punchesHoles(in dir: String) throws -> Bool {
        let p = dir + "/probe"
        let w = try WritableFile(path: p, create: true)
        try w.write([UInt8](repeating: 7, count: 1 << 20), at: 0)
        try w.sync()
        let before = allocated(p)
        var r = SpaceReclaimer()
        _ = r.reclaim(fd: w.fd, tiles: [], indexOffset: UInt64(1 << 20) - 256, footerOffset: UInt64(1 << 20) - 128, previous: nil)
        w.close()
        defer { unlink(p) }
        return allocated(p) < before / 2
    }

    /// Appends `count` checkpoints of `run` one per writer; after each, allocated / compact size (`du` against what
    /// `psnap compact` makes of the run at that moment).
    static func appendRatios(_ run: String, count: Int, spaceBound: Double?, dir: String) throws -> (ratios: [Double], reclaimed: UInt64) {
        let path = dir + "/r.psnap", compacted = dir + "/c.psnap"
        var ratios: [Double] = [], reclaimed: UInt64 = 0
        for (k, f) in try Self.files(run, count).enumerated() {
            reclaimed += try Self.appendOne(path, f, step: k, spaceBound: spaceBound).bytesReclaimed
            _ = try SnapshotWriter.compact(input: path, output: compacted)
            let compact = try UInt64(FileManager.default.attributesOfItem(atPath: compacted)[.size] as! Int)
            ratios.append(Double(Self.allocated(path)) / Double(compact))
        }
        return (ratios, reclaimed)
    }

    /// The disk bound (§10 space bound, §9 "Space"): after every append of a real run (one snapshot per writer), the
    /// blocks the run occupies stay within 1.25× what `psnap compact` makes of it at that moment.
    @Test(arguments: [("tiny-gpt", 40), ("mlp-digits", 41), ("tiny-gpt-bf16", 41)])
    func diskUseStaysWithinAQuarterOfTheCompactSize(run: String, count: Int) throws {
        let dir = tempDir(); defer { cleanup(dir) }
        #expect(try Self.punchesHoles(in: dir), "the test folder's filesystem cannot punch holes")
        let (ratios, reclaimed) = try Self.appendRatios(run, count: count, spaceBound: Spec.defaultSpaceBound, dir: dir)
        for (k, r) in ratios.enumerated() { #expect(r <= 1.25, "\(run), after snapshot \(k): allocated / compact \(r)") }
        // The dead space really was there to return: merging rewrote most snapshots at least once.
        let r = try PSnapReader(path: dir + "/r.psnap")
        #expect(reclaimed > r.liveTileBytes / 2)
        #expect(r.allocatedBytes != nil && r.deadBytes > 0)
        #expect(r.verifyAll().isEmpty)
        print("\(run): worst allocated / compact \(ratios.max()!); \(reclaimed) bytes reclaimed over \(count) appends")
    }

    /// What the bound is for: on the bf16 run the tiered plan alone (each trailing segment starting with a snapshot
    /// coded on its own) goes past 1.25× at some appends.
    @Test func theTieredPlanAloneGoesPastTheBoundOnBF16() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let (ratios, _) = try Self.appendRatios("tiny-gpt-bf16", count: 41, spaceBound: nil, dir: dir)
        #expect(ratios.max()! > 1.25)
    }

    /// A reader that holds an older commit keeps every byte of it: the writer sees its lock and leaves the tiles the
    /// merge replaced; once the reader is gone, the next commit returns them.
    @Test func aReaderOfAnOlderCommitKeepsItsTilesUntilItCloses() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/r.psnap"
        let files = try Self.files("tiny-gpt", 6)
        for k in 0..<3 { _ = try Self.appendOne(path, files[k], step: k) }   // segments 1, 1, 1
        var reader: PSnapReader? = try PSnapReader(path: path)
        // The fourth snapshot merges all four into one segment: the reader's tiles are dead in the new commit.
        let merged = try Self.appendOne(path, files[3], step: 3)
        #expect(merged.rewrittenFrom == 0)
        let held = Self.allocated(path)
        let sources = try files.map { try SafeTensorsFile(path: $0) }
        for k in 0..<3 {
            for (t, info) in reader!.tensors.enumerated() {
                #expect(try reader!.tensorBytes(tensor: t, snapshot: k) == Array(sources[k].bytes(named: info.name)!))
            }
        }
        #expect(reader!.verifyAll().isEmpty)
        reader = nil
        let after = try Self.appendOne(path, files[4], step: 4)
        #expect(after.bytesReclaimed > 0)
        #expect(Self.allocated(path) < held, "the merged-away tiles were not returned once the reader closed")
        let r = try PSnapReader(path: path)
        #expect(r.verifyAll().isEmpty)
        for k in 0..<5 {
            for (t, info) in r.tensors.enumerated() where t % 3 == 0 {
                #expect(try r.tensorBytes(tensor: t, snapshot: k) == Array(sources[k].bytes(named: info.name)!))
            }
        }
    }

    /// Readers opening and reading over and over while another process appends one snapshot at a time (merging and
    /// returning space after each commit): every open sees a consistent commit, bit-exact (no punched tile read).
    @Test func readersDuringAppendsThatReturnSpaceReadEveryValue() throws {
        let files = try Self.files("tiny-gpt", 24)
        let sources = try files.map { try SafeTensorsFile(path: $0) }
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/c.psnap"
        let psnap = productPath("psnap")
        let script = files.enumerated().map { "\"\(psnap)\" append \"\(run)\" \"\($1)\" --step \($0) >/dev/null || exit 1" }.joined(separator: "\n")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", script]
        try p.run()
        var opens = 0
        while p.isRunning || opens == 0 {
            let r: PSnapReader
            do { r = try PSnapReader(path: run) } catch {
                #expect(opens == 0, "open failed after a commit existed: \(error)")
                if opens > 0 { break }
                usleep(2000)
                continue
            }
            opens += 1
            for k in stride(from: r.snapshotCount - 1, through: 0, by: -3) {
                for (t, info) in r.tensors.enumerated() where t % 4 == opens % 4 {
                    #expect(try r.tensorBytes(tensor: t, snapshot: k) == Array(sources[k].bytes(named: info.name)!))
                }
            }
        }
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(opens > 3)
        let r = try PSnapReader(path: run)
        #expect(r.snapshotCount == files.count)
        #expect(r.allocatedBytes != nil)
    }
}

/// §7 `spaceBoundSingle`, §10: the writer's note of the newest one-snapshot segment it built.
@Suite struct SingleSegmentNoteTests {
    static func appendOne(_ run: String, _ file: String, step: Int, note: SingleSegmentNote?? = .none) throws -> CommitReport {
        let st = try SafeTensorsFile(path: file)
        let w = FileManager.default.fileExists(atPath: run)
            ? try SnapshotWriter.open(path: run, expecting: st.tensors)
            : try SnapshotWriter.create(path: run, tensors: st.tensors)
        w.options.snapshotsPerSegment = .max
        if let note { w.metadata.spaceBoundSingle = note }   // .some(nil): forget it; .some(x): a planted one
        try w.append(SnapshotInfo(step: Int64(step)), buffers: w.layout.tensors.map { st.bytes(named: $0.name)! })
        try w.close()
        return w.lastCommit
    }

    /// A run whose tail was merged into one segment has no one-snapshot segment left to measure: without the note, each
    /// such append built one only to find it too big, then built the merge. With it, the merge is built at once; the
    /// run reads back bit-exact and within the bound either way.
    @Test func theNoteSparesBuildsAndKeepsTheBound() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let files = try SpaceTests.files("tiny-gpt-bf16", 41)
        var builds: [Bool: Int] = [:]
        for forget in [false, true] {
            let path = dir + "/r\(forget).psnap", compacted = dir + "/c.psnap"
            var total = 0, twice = 0
            for (k, f) in files.enumerated() {
                let rep = try Self.appendOne(path, f, step: k, note: forget ? .some(nil) : .none)
                total += rep.builds
                if rep.builds > 1 { twice += 1 }
                if k % 8 == 7 || k == files.count - 1 {
                    _ = try SnapshotWriter.compact(input: path, output: compacted)
                    let compact = try UInt64(FileManager.default.attributesOfItem(atPath: compacted)[.size] as! Int)
                    let r = Double(SpaceTests.allocated(path)) / Double(compact)
                    #expect(r <= 1.25, "after snapshot \(k)\(forget ? " (note forgotten)" : ""): allocated / compact \(r)")
                }
            }
            builds[forget] = total
            let r = try PSnapReader(path: path)
            #expect(r.verifyAll().isEmpty)
            let last = try SafeTensorsFile(path: files.last!)
            for (t, info) in r.tensors.enumerated() {
                #expect(try r.tensorBytes(tensor: t, snapshot: files.count - 1) == Array(last.bytes(named: info.name)!))
            }
            if !forget {
                let note = try #require(r.metadata.spaceBoundSingle)
                #expect(note.snapshot > 0 && note.snapshot < files.count && note.bytes > 0)
            }
            print("tiny-gpt-bf16, 41 appends\(forget ? " forgetting the note" : ""): \(total) builds, \(twice) commits built more than once")
        }
        #expect(builds[false]! < builds[true]!, "builds with the note \(builds[false]!), without \(builds[true]!)")
    }

    /// The note is a hint read from the file: one too large to be true is ignored, one that is large but possible makes
    /// the append merge the whole run (slower, never wrong), and one that is not an object of two numbers is dropped.
    @Test func aHostileNoteCostsNothingButTime() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let files = try SpaceTests.files("tiny-gpt-bf16", 6)
        let path = dir + "/r.psnap"
        for k in 0..<4 { _ = try Self.appendOne(path, files[k], step: k) }
        let size = try UInt64(FileManager.default.attributesOfItem(atPath: path)[.size] as! Int)
        let ignored = try Self.appendOne(path, files[4], step: 4, note: .some(SingleSegmentNote(snapshot: 3, bytes: .max)))
        #expect(ignored.builds >= 1)
        let replaced = try #require(try PSnapReader(path: path).metadata.spaceBoundSingle)
        #expect(replaced.snapshot == 4 && replaced.bytes < size, "the one-snapshot segment built is noted instead")
        let dear = try Self.appendOne(path, files[5], step: 5, note: .some(SingleSegmentNote(snapshot: 4, bytes: size)))
        #expect(dear.rewrittenFrom == 0 && dear.builds == 1)
        let r = try PSnapReader(path: path)
        #expect(r.verifyAll().isEmpty)
        for k in 0..<6 {
            let src = try SafeTensorsFile(path: files[k])
            for (t, info) in r.tensors.enumerated() { #expect(try r.tensorBytes(tensor: t, snapshot: k) == Array(src.bytes(named: info.name)!)) }
        }
        for bad in [#""x""#, #"{"snapshot": -1}"#, #"[1, 2]"#, #"{"snapshot": 1.5, "bytes": 10}"#] {
            let json = #"{"tensors": [{"name": "w", "dtype": "f32", "shape": [2]}], "snapshots": [], "spaceBoundSingle": "# + bad + "}"
            let m = try Array(json.utf8).withUnsafeBytes { try FileMetadata.decode($0) }
            #expect(m.spaceBoundSingle == nil && m.tensors.count == 1, "\(bad)")
        }
    }
}
