// A full disk (a 3 MiB tmpfs mounted by the test): appends fail with a clear "no space" error, nothing
// committed is lost, the file still opens, and appending works again once space is freed.
import Foundation
import Testing
@testable import ParamSnap

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
}
