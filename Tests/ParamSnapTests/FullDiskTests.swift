// A full disk (a small tmpfs mounted by the test): appends and converts fail with a clear "no space" error, nothing
// committed is lost, the file still opens, and appending works again once space is freed.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite(.enabled(if: getuid() == 0, "needs root to mount a small tmpfs"))
struct FullDiskTests {
    @Test func appendIntoAFullDiskLosesNothingAndResumes() throws {
        let mnt = tempDir()
        defer { _ = try? runProcess("/bin/umount", [mnt]); cleanup(mnt) }
        let m = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt])
        try #require(m.status == 0, "mount failed: \(m.err)")
        let inputs = try FileManager.default.contentsOfDirectory(atPath: repoRoot + "/fixtures/demo-run").sorted()
            .map { repoRoot + "/fixtures/demo-run/" + $0 }
        let sources = try inputs.map { try SafeTensorsFile(path: $0) }
        let run = mnt + "/full.psnap"
        let psnap = productPath("psnap")
        var committed = 0
        var failure: (status: Int32, out: String, err: String)?
        for k in 0..<40 {
            let r = try runProcess(psnap, ["append", run, inputs[k % inputs.count], "--step", String(k)])
            if r.status != 0 { failure = r; break }
            committed += 1
        }
        let f = try #require(failure, "the 3 MiB filesystem never filled up")
        #expect(f.status == 1)
        #expect(f.err.contains("no space left on device"), "\(f.err)")
        #expect(committed >= 2)
        // Everything committed before the failure is intact.
        let r = try PSnapReader(path: run)
        #expect(r.snapshotCount == committed)
        for k in 0..<committed {
            for (t, info) in r.tensors.enumerated() {
                #expect(try r.tensorBytes(tensor: t, snapshot: k) == Array(sources[k % inputs.count].bytes(named: info.name)!))
            }
        }
        #expect(try runProcess(psnap, ["verify", run]).status == 0)
        // Free space (grow the filesystem) and append again.
        let g = try runProcess("/bin/mount", ["-o", "remount,size=64m", mnt])
        try #require(g.status == 0, "remount failed: \(g.err)")
        let again = try runProcess(psnap, ["append", run, inputs[committed % inputs.count], "--step", String(committed)])
        #expect(again.status == 0, "\(again.err)")
        let after = try PSnapReader(path: run)
        #expect(after.snapshotCount == committed + 1)
        #expect(try runProcess(psnap, ["verify", run]).status == 0)
    }

    @Test func convertIntoAFullDiskFailsCleanlyAndWorksAfterSpaceIsFreed() throws {
        let mnt = tempDir()
        defer { _ = try? runProcess("/bin/umount", [mnt]); cleanup(mnt) }
        let m = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt])
        try #require(m.status == 0, "mount failed: \(m.err)")
        let demo = repoRoot + "/fixtures/demo-run"
        let psnap = productPath("psnap")
        // An existing run on the same filesystem must survive the failed convert untouched.
        let keep = mnt + "/keep.psnap"
        let first = try FileManager.default.contentsOfDirectory(atPath: demo).sorted().first!
        #expect(try runProcess(psnap, ["append", keep, demo + "/" + first]).status == 0)
        let kept = try Data(contentsOf: URL(fileURLWithPath: keep))
        // The demo run (6 snapshots) does not fit in what is left of 1 MiB.
        let out = mnt + "/demo.psnap"
        let r = try runProcess(psnap, ["convert", demo, "-o", out, "--quiet"])
        #expect(r.status == 1, "exit \(r.status): \(r.err)")
        #expect(r.err.contains("no space left on device"), "\(r.err)")
        #expect(!FileManager.default.fileExists(atPath: out), "a partial output under the final name")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: mnt).filter { $0 != "keep.psnap" }
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: keep)) == kept)
        #expect(try runProcess(psnap, ["verify", keep]).status == 0)
        // Free space: the same convert now works and reads back as the demo run.
        let g = try runProcess("/bin/mount", ["-o", "remount,size=64m", mnt])
        try #require(g.status == 0, "remount failed: \(g.err)")
        let ok = try runProcess(psnap, ["convert", demo, "-o", out, "--quiet"])
        #expect(ok.status == 0, "\(ok.err)")
        #expect(try PSnapReader(path: out).snapshotCount == 6)
        #expect(try runProcess(psnap, ["verify", out]).status == 0)
    }
}
