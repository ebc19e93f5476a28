// Sharded runs (spec/SHARDS.md): every command answers on a run sharded 1, 2 and 7 ways (with tensors split into
// parameter ranges) exactly as on the one file; a missing, damaged or disagreeing shard and a hostile manifest are
// named; a snapshot only some shards hold is not shown; commands that rewrite one file refuse the folder.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) import ParamSnap
import PSnapFormat
import ParamSnapAnalysis

@Suite struct ShardTests {
    let psnap = productPath("psnap")

    /// tiny-gpt converted to one file, and the same run sharded `ways` ways: the smallest shard size at which the
    /// plan makes that many shards (tensors that straddle shards are split into parameter ranges).
    func makeRuns(_ dir: String, ways: [Int]) throws -> (file: String, folders: [String]) {
        let file = dir + "/run.psnap"
        let c = try runProcess(psnap, ["convert", sharedData + "/tiny-gpt", "-o", file, "--quiet"])
        #expect(c.status == 0, "\(c.err)")
        let r = try PSnapReader(path: file)
        let raw = Int(r.liveRawBytes)
        var folders: [String] = []
        for k in ways {
            var size = raw / k + 1
            while ShardManifest.plan(tensors: r.tensors, blockSize: r.layout.blockSize, snapshots: r.snapshotCount, shardBytes: size).count > k {
                size += size / 50
            }
            let out = dir + "/sharded-\(k)"
            let s = try runProcess(psnap, ["shard", file, "-o", out, "--shard-size", String(size)])
            #expect(s.status == 0, "\(s.err)")
            folders.append(out)
        }
        return (file, folders)
    }

    /// Every value of a .psnap file (each tensor at each snapshot).
    func values(_ path: String) throws -> [[UInt8]] {
        let r = try PSnapReader(path: path)
        return try (0..<r.snapshotCount).flatMap { k in try r.tensors.indices.map { try r.tensorBytes(tensor: $0, snapshot: k) } }
    }

    @Test func everyCommandAnswersAsOnTheFile() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        var (file, folders) = try makeRuns(dir, ways: [1, 2, 7])
        // And shards smaller than the largest tensor: tensors split into parameter ranges.
        let split = dir + "/sharded-split"
        let largest = try PSnapReader(path: file).tensors.map { ($0.parameterCount ?? 0) * 61 * 4 }.max()!
        #expect(try runProcess(psnap, ["shard", file, "-o", split, "--shard-size", String(largest / 3)]).status == 0)
        folders.append(split)
        let manifests = try folders.map { try ShardManifest.decode(Data(contentsOf: URL(fileURLWithPath: $0 + "/manifest.json")), where: $0) }
        #expect(manifests.prefix(3).map(\.shards.count) == [1, 2, 7])
        #expect(manifests[3].shards.flatMap(\.parts).filter { $0.start > 0 }.count >= 3, "tensors split over shards")
        // Each command's output (files read back through `export`, so the paths inside them do not count).
        func answers(_ run: String, _ tag: String) throws -> [String] {
            let o = dir + "/out-" + tag
            try FileManager.default.createDirectory(atPath: o, withIntermediateDirectories: true)
            // (groups and fit on the split tensors only: the pass is the same, and the test stays quick.)
            // Commands whose standard output is the answer (JSON, CSV), then those that write it to files.
            let printing: [[String]] = [
                ["trajectory", run, "--global", "170001", "--json"],
                ["trajectory", run, "blocks.1.mlp.fc_in.weight", "77", "--json"],
                ["modes", run, "-k", "4", "--json"],
                ["moments", run, "--across", "parameters", "--json"],
                ["similar", run, "--global", "5000", "--top", "10", "--remove-modes", "2", "--json"],
                ["pairs", run, "--include", "blocks.0.ln*", "--min-r", "0.9", "--csv"],
                ["groups", run, "-k", "5", "--include", "blocks.0.mlp.fc_in.*", "--json"],
            ]
            let writing: [[String]] = [
                ["verify", run],
                ["export", run, "--snapshot", "17", "-o", o + "/e.safetensors"],
                ["moments", run, "-o", o + "/m.psnap"],
                ["fit", run, "--family", "linear,exp", "--include", "blocks.0.mlp.*", "-o", o + "/fit.psnap"],
                ["chart", run, "-o", o + "/c.png", "--counts", o + "/c.npy"],
            ]
            var out: [String] = []
            for cmd in printing + writing {
                let r = try runProcess(psnap, cmd)
                #expect(r.status == 0, "\(cmd): \(r.err)")
                if printing.contains(cmd) { out.append(r.out) }
            }
            for f in ["m.psnap", "fit.psnap"] { out.append(try values(o + "/" + f).map { Data($0).base64EncodedString() }.joined(separator: ",")) }
            for f in ["e.safetensors", "c.npy"] {
                out.append(try Data(contentsOf: URL(fileURLWithPath: o + "/" + f)).base64EncodedString())
            }
            return out
        }
        let expected = try answers(file, "file")
        #expect(expected.count == 11 && expected.allSatisfy { !$0.isEmpty })
        for (k, folder) in folders.enumerated() {
            let got = try answers(folder, "sharded\(k)")
            for (i, (a, b)) in zip(expected, got).enumerated() { #expect(a == b, "\(folder): answer \(i) differs") }
        }
        // The library's own reads: every trajectory of a split tensor and a snapshot of it.
        let one = try PSnapReader(path: file), seven = try PSnapReader(path: folders[3])
        #expect(seven.isSharded && seven.layout.parameterCount == one.layout.parameterCount && seven.tiles.count == one.tiles.count)
        for g in Swift.stride(from: 0, to: one.parameterCount, by: 997) { #expect(try one.trajectory(global: g) == (try seven.trajectory(global: g))) }
        for t in one.tensors.indices { #expect(try one.tensorBytes(tensor: t, snapshot: 33) == (try seven.tensorBytes(tensor: t, snapshot: 33))) }
        // Opened for one tensor (what a distributed task does): only the shards holding it, the same global layout
        // and answers; another tensor is refused by name.
        let name = "blocks.0.mlp.fc_in.weight"
        let part = try PSnapReader(path: folders[3], tensors: [name])
        let t = try one.tensorIndex(named: name)
        #expect(part.shards.count >= 2 && part.shards.count < seven.shards.count && part.layout.parameterCount == one.parameterCount)
        #expect(try part.tensorBytes(tensor: t, snapshot: 60) == (try one.tensorBytes(tensor: t, snapshot: 60)))
        let g0 = one.layout.parameterOffsets[t]
        for g in Swift.stride(from: g0, to: g0 + one.layout.parameterCounts[t], by: 331) { #expect(try part.trajectory(global: g) == (try one.trajectory(global: g))) }
        let a = try Density.compute(part, tensors: [t], width: 200, height: 100), b = try Density.compute(one, tensors: [t], width: 200, height: 100)
        #expect(a.counts == b.counts && a.lo == b.lo && a.hi == b.hi)
        do {
            _ = try part.trajectory(global: 0)
            Issue.record("a tensor whose shards were not opened was read")
        } catch {
            #expect("\(error)".contains("did not open"), "\(error)")
        }
        #expect(throws: (any Error).self) { _ = try Density.compute(part, tensors: [0], width: 200, height: 100) }
    }

    @Test func missingDamagedAndDisagreeingShardsAreNamed() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let (_, folders) = try makeRuns(dir, ways: [7])
        let run = folders[0]
        func copy(_ tag: String) throws -> String {
            let c = dir + "/" + tag
            try FileManager.default.copyItem(atPath: run, toPath: c)
            return c
        }
        // A missing shard.
        let missing = try copy("missing")
        try FileManager.default.removeItem(atPath: missing + "/shard-00003.psnap")
        var r = try runProcess(psnap, ["info", missing])
        #expect(r.status != 0 && r.err.contains("shard-00003.psnap") && r.err.contains("missing"), "\(r.err)")
        // A damaged tile: verify names the shard; a read of it fails naming it.
        let damaged = try copy("damaged")
        let shard = damaged + "/shard-00002.psnap"
        let sr = try PSnapReader(path: shard)
        let x = sr.tiles[0]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
        bytes[Int(x.offset) + Int(x.storedLength) / 2] ^= 0x5A
        try bytes.write(to: URL(fileURLWithPath: shard))
        r = try runProcess(psnap, ["verify", damaged])
        #expect(r.status == 65 && r.out.contains("shard-00002.psnap") && r.out.contains("DAMAGED"), "\(r.out) \(r.err)")
        // A writer killed mid-append leaves a torn tail after its shard's newest commit: nothing published is lost.
        let killed = try copy("killed")
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: killed + "/shard-00004.psnap"))
        try h.seekToEnd(); try h.write(contentsOf: Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })); try h.close()
        let kr = try PSnapReader(path: killed), whole = try PSnapReader(path: run)
        #expect(kr.snapshotCount == whole.snapshotCount && kr.ignoredBytes == 100_000 && kr.verifyAll().isEmpty)
        #expect(try kr.trajectory(global: kr.parameterCount - 1) == (try whole.trajectory(global: kr.parameterCount - 1)))
        // A damaged footer: the open names the shard.
        let torn = try copy("torn")
        var tb = try Data(contentsOf: URL(fileURLWithPath: torn + "/shard-00005.psnap"))
        tb[tb.count - 20] ^= 0xFF
        try tb.write(to: URL(fileURLWithPath: torn + "/shard-00005.psnap"))
        r = try runProcess(psnap, ["moments", torn, "--across", "parameters", "--json"])
        #expect(r.status == 65 && r.err.contains("shard-00005.psnap") && r.err.contains("damaged shard"), "\(r.err)")
        // Hostile and malformed manifests, each named.
        let manifestPath = run + "/manifest.json"
        let good = try ShardManifest.decode(Data(contentsOf: URL(fileURLWithPath: manifestPath)), where: manifestPath)
        var cases: [(String, ShardManifest)] = []
        var m = good; m.shards[1].file = "../run.psnap"; cases.append(("not shard-NNNNN.psnap", m))
        m = good; m.shards[1].parts.removeLast(); cases.append(("in no shard", m))
        m = good; m.shards[2].parts[0].start += 1; m.shards[2].parts[0].count -= 1; cases.append(("not a multiple of the block size", m))
        m = good; m.version = 9; cases.append(("version 9", m))
        m = good; m.shards[0].parts[0].tensor = 999; cases.append(("names tensor 999", m))
        m = good; m.blockSize = 512; cases.append(("block size", m))
        for (i, (why, bad)) in cases.enumerated() {
            let c = try copy("manifest\(i)")
            try bad.encoded().write(to: URL(fileURLWithPath: c + "/manifest.json"))
            r = try runProcess(psnap, ["info", c])
            #expect(r.status != 0 && r.err.contains(why) && r.err.contains("manifest.json") || r.err.contains("shard disagrees"), "\(why): \(r.err)")
        }
        let junk = try copy("junk")
        try Data("{\"format\": 1}".utf8).write(to: URL(fileURLWithPath: junk + "/manifest.json"))
        r = try runProcess(psnap, ["info", junk])
        #expect(r.status == 65 && r.err.contains("malformed sharded-run manifest"), "\(r.err)")
        // A folder that is no run; commands that rewrite one file.
        r = try runProcess(psnap, ["info", dir])
        #expect(r.status != 0 && r.err.contains("not a sharded run"), "\(r.err)")
        for cmd in [["compact", run], ["repair", run, "-o", dir + "/x.psnap"], ["append", run, sharedData + "/tiny-gpt"]] {
            r = try runProcess(psnap, cmd)
            #expect(r.status != 0 && r.err.contains("is a sharded run"), "\(cmd): \(r.err)")
        }
        // Replacing a run with --force unpublishes it first: a split that fails part way (here: its second shard's
        // name is taken by a folder) leaves no manifest over a mix of old and new shards.
        let replaced = try copy("replaced")
        try FileManager.default.removeItem(atPath: replaced + "/shard-00001.psnap")
        try FileManager.default.createDirectory(atPath: replaced + "/shard-00001.psnap/x", withIntermediateDirectories: true)
        r = try runProcess(psnap, ["shard", dir + "/run.psnap", "-o", replaced, "--shard-size", "1500KB", "--force"])
        #expect(r.status != 0 && !FileManager.default.fileExists(atPath: replaced + "/manifest.json"), "\(r.status) \(r.err)")
        // The split never writes over an existing run without --force.
        r = try runProcess(psnap, ["shard", run + "/shard-00000.psnap", "-o", run, "--shard-size", "1MB"])
        #expect(r.status != 0 && r.err.contains("exists"), "\(r.err)")
    }

    @Test func aSnapshotOnlySomeShardsHoldIsNotShown() throws {
        // One writer per shard (one per training rank), each appending its own parameters, one snapshot per commit,
        // merging as usual (spec §10).
        let dir = tempDir(); defer { cleanup(dir) }
        let (file, folders) = try makeRuns(dir, ways: [2])
        let run = folders[0], a = run + "/shard-00000.psnap", b = run + "/shard-00001.psnap"
        let before = try runProcess(psnap, ["moments", run, "--across", "parameters", "--json", "--workers", "1"]).out
        func append(_ shard: String, step: Int64) throws {
            let w = try SnapshotWriter.open(path: shard)
            let zeros = w.metadata.tensors.map { [UInt8](repeating: 0, count: ($0.parameterCount ?? 0) * $0.dtype.size) }
            try SnapshotWriter.withBuffers(zeros) { try w.append(SnapshotInfo(step: step), buffers: $0) }
            try w.close()
        }
        // Shard b commits snapshot 61 first: the run still shows 0…60, as the file does.
        try append(b, step: 61)
        var r = try PSnapReader(path: run)
        #expect(r.snapshotCount == 61 && r.snapshots.last?.step == 60)
        #expect(try r.trajectory(global: r.parameterCount - 1) == (try PSnapReader(path: file).trajectory(global: r.parameterCount - 1)))
        #expect(try runProcess(psnap, ["moments", run, "--across", "parameters", "--json", "--workers", "1"]).out == before)
        // Shard a commits 61; b goes on to 64, its fourth one-snapshot segment merging 61…64 into one tile: the run
        // shows 0…61 (b read at its commit of 62 snapshots, whose space b's writer kept while ahead).
        try append(a, step: 61)
        for step in Int64(62)...64 { try append(b, step: step) }
        let merged = try PSnapReader(path: b)
        #expect(merged.snapshotCount == 65 && merged.tiles.contains { $0.firstSnapshot == 61 && $0.snapshotCount == 4 })
        r = try PSnapReader(path: run)
        #expect(r.snapshotCount == 62 && r.snapshots.last?.step == 61)
        #expect(try r.verifyAll().isEmpty)
        let last = try r.trajectory(global: r.parameterCount - 1), first = try r.trajectory(global: 0)
        #expect(last.count == 62 && last.last == 0 && first.last == 0)
        #expect(Array(last.prefix(61)) == (try PSnapReader(path: file).trajectory(global: r.parameterCount - 1)))
        // A shard rewritten by compact past what the others hold keeps no older commit: refused, naming it.
        let c = try runProcess(psnap, ["compact", b])
        #expect(c.status == 0, "\(c.err)")
        let e = try runProcess(psnap, ["info", run])
        #expect(e.status == 65 && e.err.contains("shard-00001.psnap") && e.err.contains("past 62"), "\(e.err)")
        // Shard a catching up makes every snapshot visible.
        for step in Int64(62)...64 { try append(a, step: step) }
        let now = try PSnapReader(path: run)
        #expect(now.snapshotCount == 65)
        #expect(try now.trajectory(global: 0).last == 0)
    }

    @Test func hostileManifestsGetErrorsNotTraps() throws {
        // Manifests with every number replaced by extremes, fields dropped or of the wrong type: each open throws a
        // named error or opens a consistent run; nothing traps (a trap would end the test process).
        let dir = tempDir(); defer { cleanup(dir) }
        let (_, folders) = try makeRuns(dir, ways: [7])
        let run = folders[0]
        let good = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/manifest.json"))) as! [String: Any]
        let extremes: [Any] = [0, -1, 1, 3, 1 << 31, Int.max, Int.min, -9_223_372_036_854_775_807, 1.5, "7", NSNull(), [Any](), [String: Any]()]
        var rng = SystemRandomNumberGenerator()
        func mutate(_ v: Any, depth: Int) -> Any {
            if let d = v as? [String: Any] {
                var o = d
                for k in d.keys where Int.random(in: 0..<6, using: &rng) == 0 { o[k] = Bool.random(using: &rng) ? nil : extremes.randomElement(using: &rng)! }
                for (k, x) in o where x is [String: Any] || x is [Any] { o[k] = mutate(x, depth: depth + 1) }
                return o
            }
            if let a = v as? [Any] {
                var o = a.map { mutate($0, depth: depth + 1) }
                if !o.isEmpty && Int.random(in: 0..<8, using: &rng) == 0 { o.remove(at: Int.random(in: 0..<o.count, using: &rng)) }
                if !o.isEmpty && Int.random(in: 0..<8, using: &rng) == 0 { o.append(o[0]) }
                return o
            }
            return Int.random(in: 0..<10, using: &rng) == 0 ? extremes.randomElement(using: &rng)! : v
        }
        let target = dir + "/hostile"
        try FileManager.default.copyItem(atPath: run, toPath: target)
        var refused = 0, opened = 0
        for _ in 0..<300 {
            let bad = mutate(good, depth: 0)
            try JSONSerialization.data(withJSONObject: bad).write(to: URL(fileURLWithPath: target + "/manifest.json"))
            do {
                let r = try PSnapReader(path: target)
                // Whatever opened is consistent: every tile lies in its shard and every trajectory reads.
                _ = try r.trajectory(global: r.parameterCount - 1)
                opened += 1
            } catch {
                #expect(!"\(error)".isEmpty)
                refused += 1
            }
        }
        #expect(refused > 200, "\(refused) refused, \(opened) opened")
    }
}
