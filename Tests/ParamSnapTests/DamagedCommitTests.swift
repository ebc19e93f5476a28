// A damaged newest commit is damage, not a torn tail (spec §8.1), and repair rebuilds its footer (§8.2): every bit
// of the newest footer flipped, forged footers past the caps, damaged index or metadata, and the bounded survey.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite struct DamagedCommitTests {
    let psnap = productPath("psnap")
    let snapinfo = productPath("snapinfo")

    /// dtypes.psnap: 5 snapshots in segments of 2, 2, 1 (the commit before the newest holds 4), so older intact commits exist.
    var source: String { GoldenFixtures.dir + "/dtypes.psnap" }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// Every value of the run at `path` equals the golden source's.
    func expectAllSnapshots(_ path: String, _ comment: Comment) throws {
        let r = try PSnapReader(path: path)
        #expect(r.snapshotCount == 5, comment)
        for k in 0..<r.snapshotCount {
            let want = GoldenFixtures.snapshot(k, tensors: GoldenFixtures.dtypeTensors)
            for t in 0..<GoldenFixtures.dtypeTensors.count {
                #expect(try r.tensorBytes(tensor: t, snapshot: k) == want[t], comment)
            }
        }
        #expect(r.snapshots == (0..<5).map(GoldenFixtures.info), comment)
    }

    @Test func everyBitOfTheNewestFooterIsDamageAndRepairRecoversEverySnapshot() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let original = try bytes(source)
        let F = try PSnapReader(path: source).footerOffset
        var flips = 0
        for bit in 0..<(Spec.footerSize * 8) {
            var d = original
            d[Int(F) + bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            let path = dir + "/flip.psnap"
            try d.write(to: URL(fileURLWithPath: path))
            // The reader refuses: never a silent fall-back to the 3-snapshot commit before it.
            do {
                let r = try PSnapReader(path: path)
                Issue.record("bit \(bit): opened with \(r.snapshotCount) snapshots")
            } catch let FormatError.damagedCommit(offset, _, _, intact) {
                #expect(offset == F, "bit \(bit)")
                #expect(intact?.snapshotCount == 4, "bit \(bit): the older commit is named")
            }
            // Repair rebuilds the footer and keeps all 5 snapshots, bit-exact.
            let out = dir + "/fixed-\(bit).psnap"
            let rep = try SnapshotWriter.repair(input: path, output: out, skipDamaged: false)
            #expect(rep.recoveredFooter != nil && rep.discardedCommits == nil, "bit \(bit)")
            try expectAllSnapshots(out, "bit \(bit)")
            unlink(out)
            flips += 1
        }
        #expect(flips == 1024)
    }

    @Test func commandsRefuseADamagedCommitAndLeaveTheFileAsItWas() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        var d = try bytes(source)
        let F = Int(try PSnapReader(path: source).footerOffset)
        d[F + 85] ^= 0x10   // inside snapshotCount
        let path = dir + "/run.psnap"
        try d.write(to: URL(fileURLWithPath: path))
        let v = try runProcess(psnap, ["verify", path])
        #expect(v.status == 65 && v.err.contains("damaged commit at offset \(F)"), "\(v.out) \(v.err)")
        let si = try runProcess(snapinfo, [path, "--verify"])
        #expect(si.status == 65 && si.err.contains("offset \(F)"))
        // compact in place, append and a second compact to a new name: refused, the run untouched.
        #expect(try runProcess(psnap, ["compact", path]).status == 65)
        #expect(try runProcess(psnap, ["compact", path, "-o", dir + "/c.psnap"]).status == 65)
        let dump = dir + "/epoch-9.safetensors"
        let names = ["F32", "F16", "BF16", "F64", "F32", "F32"]
        let snap = GoldenFixtures.snapshot(5, tensors: GoldenFixtures.dtypeTensors)
        try writeSafetensors(dump, GoldenFixtures.dtypeTensors.enumerated().map { ($1.name, names[$0], $1.shape, snap[$0]) })
        #expect(try runProcess(psnap, ["append", path, dump]).status == 65)
        #expect(try bytes(path) == d)
        // repair through the CLI: all 5 snapshots, the footer note printed.
        let r = try runProcess(psnap, ["repair", path, "-o", dir + "/fixed.psnap"])
        #expect(r.status == 0 && r.out.contains("footer at offset \(F) recovered"), "\(r.out) \(r.err)")
        try expectAllSnapshots(dir + "/fixed.psnap", "CLI repair")
    }

    @Test func aFooterPastASanityCapIsDamageNotATornTail() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let d = try bytes(source)
        let r0 = try PSnapReader(path: source)
        let F = Int(r0.footerOffset)
        // Forged footers whose own checksum holds but whose content breaks a §11 cap.
        func forge(_ name: String, _ mutate: (inout Footer) -> Void) throws -> String {
            var f = r0.footer
            mutate(&f)
            var forged = d
            forged.replaceSubrange(F..<(F + Spec.footerSize), with: f.encode())
            let path = dir + "/" + name
            try forged.write(to: URL(fileURLWithPath: path))
            do { _ = try PSnapReader(path: path); Issue.record("\(name) opened") } catch let FormatError.damagedCommit(offset, reason, _, intact) {
                #expect(offset == UInt64(F) && reason.contains("cap") && intact?.snapshotCount == 4, "\(name): \(reason)")
            }
            #expect(try runProcess(psnap, ["verify", path]).status == 65)
            return path
        }
        // snapshotCount past the cap: index and metadata still prove themselves, so repair rebuilds the count.
        let count = try forge("count.psnap") { $0.snapshotCount = (1 << 32) + 1 }
        let rep = try runProcess(psnap, ["repair", count, "-o", dir + "/count-fixed.psnap"])
        #expect(rep.status == 0 && rep.out.contains("rebuilt snapshotCount"), "\(rep.out) \(rep.err)")
        try expectAllSnapshots(dir + "/count-fixed.psnap", "snapshot count cap")
        // Metadata past its cap: the footer points nowhere usable, so the loss must be accepted by name.
        let meta = try forge("meta.psnap") { f in f.metadataLength = Spec.maxMetadataBytes + 1; f.metadataOffset = UInt64(F) &- f.metadataLength }
        let refused = try runProcess(psnap, ["repair", meta, "-o", dir + "/a.psnap"])
        #expect(refused.status == 65 && refused.err.contains("--discard-damaged-commits") && refused.err.contains("4 snapshot"), "\(refused.err)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/a.psnap"))
        let kept = try runProcess(psnap, ["repair", meta, "-o", dir + "/b.psnap", "--discard-damaged-commits"])
        #expect(kept.status == 0, "\(kept.err)")
        let b = try PSnapReader(path: dir + "/b.psnap")
        #expect(b.snapshotCount == 4)
        if case .string(let s)? = b.metadata.attributes?["repair.discardedCommits"] { #expect(s.contains("offset \(F)")) } else { Issue.record("no loss note") }
    }

    @Test func damagedIndexOrMetadataOfTheNewestCommitNeedsTheFlag() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let d = try bytes(source)
        let r0 = try PSnapReader(path: source)
        for (what, at) in [("index", Int(r0.footer.indexOffset) + 3), ("metadata", Int(r0.footer.metadataOffset) + 10)] {
            var x = d
            x[at] ^= 0x01
            let path = dir + "/\(what).psnap"
            try x.write(to: URL(fileURLWithPath: path))
            do { _ = try PSnapReader(path: path); Issue.record("\(what): opened") } catch FormatError.damagedCommit(_, let reason, _, let intact) {
                #expect(reason.contains(what == "index" ? "tile index checksum" : "metadata checksum"), "\(reason)")
                #expect(intact?.snapshotCount == 4)
            }
            #expect(throws: FormatError.self) { try SnapshotWriter.repair(input: path, output: dir + "/no.psnap", skipDamaged: false) }
            let rep = try SnapshotWriter.repair(input: path, output: dir + "/\(what)-fixed.psnap", skipDamaged: false, discardDamagedCommits: true)
            #expect(rep.snapshots == 4 && rep.discardedCommits != nil)
        }
    }

    @Test func aTornTailStaysATornTail() throws {
        // The golden torn file: a partial footer (fewer than 128 bytes after its magic) is a torn write.
        let r = try PSnapReader(path: GoldenFixtures.dir + "/torn.psnap")
        #expect(r.snapshotCount == 5 && r.ignoredBytes > 0)
        // Tile bytes after the last commit (a writer killed before its footer): ignored, appending resumes.
        let dir = tempDir(); defer { cleanup(dir) }
        var d = try bytes(source)
        var rng = SeededRNG(seed: testSeed(13))
        d.append(contentsOf: (0..<5000).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        let path = dir + "/torn.psnap"
        try d.write(to: URL(fileURLWithPath: path))
        let t = try PSnapReader(path: path)
        #expect(t.snapshotCount == 5 && t.ignoredBytes == 5000)
        let w = try SnapshotWriter.open(path: path)
        #expect(w.truncatedBytes == 5000)
        try w.close()
    }

    @Test func theSurveyOverManyForgedFootersIsLinear() throws {
        // 10,000 forged footers, each with a valid checksum and pointing at an index region that covers most of the
        // file: the survey hashes disjoint regions only (at most the file's size), whatever their number.
        let d = try bytes(source)
        let r0 = try PSnapReader(path: source)
        var file = d
        let padding = [UInt8](repeating: 0x20, count: 1 << 20)
        file.append(contentsOf: padding)
        for _ in 0..<10_000 {
            let F = UInt64(file.count)
            let metaLen: UInt64 = 16
            let f = Footer(commitSequence: 9, previousFooterOffset: r0.footerOffset, indexOffset: 64, indexLength: (F - metaLen - 64) / 64 * 64,
                           indexChecksum: 1, metadataOffset: 0, metadataLength: 0, metadataChecksum: 2, snapshotCount: 5, tileCount: 0, parameterCount: 0)
            var g = f
            g.indexOffset = F - metaLen - g.indexLength
            g.tileCount = g.indexLength / 64
            g.metadataOffset = F - metaLen
            g.metadataLength = metaLen
            file.append(contentsOf: g.encode())
        }
        let survey = file.withUnsafeBytes { CommitSearch.survey($0, blockSize: Int(r0.header.blockSize)) }
        #expect(survey.damaged.count == 10_000)
        #expect(survey.intact?.footerOffset == r0.footerOffset)
        #expect(survey.bytesHashed <= UInt64(file.count), "\(survey.bytesHashed) bytes hashed for a \(file.count)-byte file")
    }
}

@Suite struct TruncatedCommitTests {
    @Test func aFileCutInsideItsNewestFooterIsDamageAndRepairKeepsEverySnapshot() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let source = GoldenFixtures.dir + "/compacted.psnap"   // one commit after the empty first: nothing older to fall back to
        let d = try Data(contentsOf: URL(fileURLWithPath: source))
        let F = Int(try PSnapReader(path: source).footerOffset)
        for cut in 1..<Spec.footerSize {
            let path = dir + "/cut.psnap"
            try d.prefix(d.count - cut).write(to: URL(fileURLWithPath: path))
            let kept = Spec.footerSize - cut
            guard kept >= 8 else {
                // Not even the footer magic is left: nothing marks a commit, so it reads as a torn tail.
                let r = try PSnapReader(path: path)
                #expect(r.snapshotCount == 0 && r.ignoredBytes > 0, "cut \(cut)")
                continue
            }
            // Damage, not a torn tail: the compacted run has no older commit holding its snapshots.
            do { _ = try PSnapReader(path: path); Issue.record("cut \(cut): opened") } catch let FormatError.damagedCommit(offset, reason, _, _) {
                #expect(offset == UInt64(F) && reason.contains("cut short"), "cut \(cut): \(reason)")
            }
            let out = dir + "/fixed-\(cut).psnap"
            if kept >= 56 {
                // The index checksum is left (and the metadata's from 80 bytes on): every snapshot is recovered.
                let rep = try SnapshotWriter.repair(input: path, output: out, skipDamaged: false)
                #expect(rep.recoveredFooter != nil && (kept >= 80) == !(rep.recoveredFooter!.contains("unproven")), "cut \(cut): \(rep.recoveredFooter ?? "")")
                let r = try PSnapReader(path: out)
                #expect(r.snapshotCount == 5, "cut \(cut)")
                for k in 0..<5 {
                    let want = GoldenFixtures.snapshot(k, tensors: GoldenFixtures.dtypeTensors)
                    for t in 0..<want.count { #expect(try r.tensorBytes(tensor: t, snapshot: k) == want[t], "cut \(cut)") }
                }
                unlink(out)
            } else {
                // Nothing proves the index: the loss must be accepted by name.
                #expect(throws: FormatError.self, "cut \(cut)") { try SnapshotWriter.repair(input: path, output: out, skipDamaged: false) }
                #expect(!FileManager.default.fileExists(atPath: out))
            }
        }
    }
}
