// Crash safety (spec §9): `psnap append` killed with SIGKILL at random moments; every committed snapshot reads
// back bit-exact, the torn tail is reported, and appending resumes.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite struct KillTests {
    @Test func killedAppendsLoseNothingCommitted() throws {
        let seed = testSeed(0x4B11)
        var rng = SeededRNG(seed: seed)
        let inputs = try FileManager.default.contentsOfDirectory(atPath: repoRoot + "/fixtures/demo-run").sorted()
            .map { repoRoot + "/fixtures/demo-run/" + $0 }
        let sources = try inputs.map { try SafeTensorsFile(path: $0) }
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/k.psnap"
        let psnap = productPath("psnap")
        var committed: [Int] = []          // input index of each committed snapshot
        var kills = 0, attempts = 0, tornTails = 0, killedUncommitted = 0
        while kills < 24 && attempts < 400 {
            attempts += 1
            let which = committed.count % inputs.count
            let p = Process()
            p.executableURL = URL(fileURLWithPath: psnap)
            p.arguments = ["append", run, inputs[which], "--step", String(committed.count), "--block-size", "256"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let delay = Double(rng.next() % 120_000) / 1_000_000   // 0–120 ms
            Thread.sleep(forTimeInterval: delay)
            var killed = false
            if p.isRunning { kill(p.processIdentifier, SIGKILL); killed = true }
            p.waitUntilExit()
            if killed && p.terminationReason == .uncaughtSignal { kills += 1 }
            guard FileManager.default.fileExists(atPath: run) else { continue }
            let r: PSnapReader
            do { r = try PSnapReader(path: run) } catch {
                // Killed before the first commit was complete: the file holds no commit yet.
                #expect(committed.isEmpty, "seed \(seed): a file with committed snapshots failed to open: \(error)")
                if !committed.isEmpty { return }
                unlink(run)
                continue
            }
            // The append either committed fully or not at all.
            #expect(r.snapshotCount == committed.count || r.snapshotCount == committed.count + 1, "seed \(seed)")
            if r.ignoredBytes > 0 { tornTails += 1 }
            if r.snapshotCount == committed.count + 1 { committed.append(which) } else if killed { killedUncommitted += 1 }
            for (k, src) in committed.enumerated() {
                for (t, info) in r.tensors.enumerated() {
                    let want = Array(sources[src].bytes(named: info.name)!)
                    #expect(try r.tensorBytes(tensor: t, snapshot: k) == want, "seed \(seed): snapshot \(k) tensor \(info.name) after \(kills) kills")
                }
            }
        }
        print("kill test: \(kills) kills, \(killedUncommitted) before their commit, \(tornTails) torn tails seen, \(committed.count) snapshots committed (seed \(seed))")
        #expect(kills >= 20, "only \(kills) appends were killed mid-way")
        // Appending resumes after all those kills, and a compacted copy is intact.
        let done = try runProcess(psnap, ["append", run, inputs[0], "--step", "999"])
        #expect(done.status == 0, "\(done.err)")
        #expect(try PSnapReader(path: run).snapshotCount == committed.count + 1)
        #expect(try runProcess(psnap, ["verify", run]).status == 0)
    }
}

@Suite struct ConcurrentReaderTests {
    /// Readers in this process open and read the file over and over while another process appends and compacts:
    /// each open sees a consistent committed state, bit-exact.
    @Test func readersDuringAppendsAndCompactionsSeeConsistentCommits() throws {
        let inputs = try FileManager.default.contentsOfDirectory(atPath: repoRoot + "/fixtures/demo-run").sorted()
            .map { repoRoot + "/fixtures/demo-run/" + $0 }
        let sources = try inputs.map { try SafeTensorsFile(path: $0) }
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/c.psnap"
        let psnap = productPath("psnap")
        var script = ""
        for k in 0..<12 {
            script += "\"\(psnap)\" append \"\(run)\" \"\(inputs[k % inputs.count])\" --step \(k) >/dev/null || exit 1\n"
            if k % 5 == 4 { script += "\"\(psnap)\" compact \"\(run)\" >/dev/null || exit 1\n" }
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", script]
        try p.run()
        var opens = 0, maxSeen = 0
        while p.isRunning || opens == 0 {
            let r: PSnapReader
            do { r = try PSnapReader(path: run) } catch {
                // Only before the first commit exists may an open fail (no file yet, or a file still being created).
                #expect(opens == 0, "open failed after a commit existed: \(error)")
                if opens > 0 { break }
                continue
            }
            opens += 1
            maxSeen = max(maxSeen, r.snapshotCount)
            for k in 0..<r.snapshotCount {
                for (t, info) in r.tensors.enumerated() where t % 2 == 0 {
                    #expect(try r.tensorBytes(tensor: t, snapshot: k) == Array(sources[k % inputs.count].bytes(named: info.name)!))
                }
            }
        }
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(opens > 3)
        #expect(try PSnapReader(path: run).snapshotCount == 12)
    }
}
