// End-to-end tests of the built `psnap` and `snapinfo` binaries: outputs, JSON, exit codes, error messages.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite struct CLITests {
    let psnap = productPath("psnap")
    let snapinfo = productPath("snapinfo")
    let demo = repoRoot + "/fixtures/demo-run"

    @Test func appendInfoTrajectoryCompactVerify() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/d.psnap"
        let files = try FileManager.default.contentsOfDirectory(atPath: demo).sorted()
        for f in files {
            let r = try runProcess(psnap, ["append", run, demo + "/" + f])
            #expect(r.status == 0, "\(r.err)")
        }
        let info = try runProcess(snapinfo, [run, "--json"])
        #expect(info.status == 0)
        let j = try JSONSerialization.jsonObject(with: Data(info.out.utf8)) as! [String: Any]
        #expect(j["schema"] as? String == "psnap-info/1")
        #expect((j["snapshots"] as! [String: Any])["count"] as? Int == files.count)
        #expect((j["snapshots"] as! [String: Any])["lastStep"] as? Int == 100)   // steps from the file names
        #expect((j["tensors"] as! [Any]).count == 6)
        let human = try runProcess(psnap, ["info", run])
        #expect(human.out.contains("fc2.weight") && human.out.contains("ratio"))
        let traj = try runProcess(psnap, ["trajectory", run, "fc3.weight", "3", "17"])
        #expect(traj.status == 0)
        #expect(traj.out.split(separator: "\n").count == files.count + 1)
        let byFlat = try runProcess(psnap, ["trajectory", run, "fc3.weight", String(3 * 256 + 17)])
        #expect(byFlat.out == traj.out)
        let compact = try runProcess(psnap, ["compact", run, "--json"])
        #expect(compact.status == 0, "\(compact.err)")
        #expect(try PSnapReader(path: run).segments.count == 1)
        #expect(try runProcess(psnap, ["verify", run]).status == 0)
        // An appended run keeps B = 1024; `--block-size auto` applies FORMAT §4.1: 6 f32 snapshots → 4096.
        #expect(try PSnapReader(path: run).header.blockSize == 1024)
        let auto = try runProcess(psnap, ["compact", run, "-o", dir + "/auto.psnap", "--block-size", "auto"])
        #expect(auto.status == 0, "\(auto.err)")
        #expect(try PSnapReader(path: dir + "/auto.psnap").header.blockSize == 4096)
        #expect(try runProcess(psnap, ["trajectory", dir + "/auto.psnap", "fc3.weight", "3", "17"]).out == traj.out)
        let bad = try runProcess(psnap, ["compact", run, "-o", dir + "/bad.psnap", "--block-size", "big"])
        #expect(bad.status == 64 && bad.err.contains("'auto'"))
        // A block size that is not a power of two is a usage error naming the option, in every command that takes one.
        for args in [["compact", run, "-o", dir + "/bad.psnap"], ["convert", demo, "-o", dir + "/bad.psnap"], ["append", dir + "/new.psnap", demo]] {
            let r = try runProcess(psnap, args + ["--block-size", "100"])
            #expect(r.status == 64 && r.err.contains("--block-size") && r.err.contains("100"), "\(args[0]): \(r.status) \(r.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/bad.psnap") && !FileManager.default.fileExists(atPath: dir + "/new.psnap"))
    }

    @Test func helpTeachesExitCodes() throws {
        let h = try runProcess(psnap, ["--help"])
        #expect(h.out.contains("Exit codes") && h.out.contains("append"))
        let a = try runProcess(psnap, ["append", "--help"])
        #expect(a.out.contains("--block-size") && a.out.contains("Exit codes"))
    }

    @Test func badInputsGiveClearErrorsAndExit65() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/e.psnap"
        // Not a .psnap file.
        try Data("hello, world".utf8).write(to: URL(fileURLWithPath: dir + "/x.psnap"))
        var r = try runProcess(snapinfo, [dir + "/x.psnap"])
        #expect(r.status == 65 && r.err.contains("too short"))
        try Data(repeating: 7, count: 500).write(to: URL(fileURLWithPath: dir + "/y.psnap"))
        r = try runProcess(snapinfo, [dir + "/y.psnap"])
        #expect(r.status == 65 && r.err.contains("bad magic"))
        // Unsupported dtype, named with file and tensor.
        try writeSafetensors(dir + "/i.safetensors", [("w", "I64", [2], [UInt8](repeating: 0, count: 16))])
        r = try runProcess(psnap, ["append", run, dir + "/i.safetensors"])
        #expect(r.status == 65 && r.err.contains("'w'") && r.err.contains("I64") && r.err.contains("i.safetensors"))
        // Truncated safetensors.
        try writeSafetensors(dir + "/t.safetensors", [("w", "F32", [4], [UInt8](repeating: 0, count: 8))])
        r = try runProcess(psnap, ["append", run, dir + "/t.safetensors"])
        #expect(r.status == 65 && r.err.contains("t.safetensors"))
        // A header longer than the file.
        var bogus: [UInt8] = []
        withUnsafeBytes(of: UInt64(1000).littleEndian) { bogus += $0 }
        try Data(bogus + Array("{}".utf8)).write(to: URL(fileURLWithPath: dir + "/h.safetensors"))
        r = try runProcess(psnap, ["append", run, dir + "/h.safetensors"])
        #expect(r.status == 65 && r.err.contains("truncated"))
        // A second snapshot with another shape is refused, naming the tensor; the run keeps its first snapshot.
        try writeSafetensors(dir + "/a.safetensors", [("w", "F32", [2], [UInt8](repeating: 1, count: 8))])
        try writeSafetensors(dir + "/b.safetensors", [("w", "F32", [3], [UInt8](repeating: 1, count: 12))])
        #expect(try runProcess(psnap, ["append", run, dir + "/a.safetensors"]).status == 0)
        r = try runProcess(psnap, ["append", run, dir + "/b.safetensors"])
        #expect(r.status == 65 && r.err.contains("tensor 'w' has shape [3], the file has [2]"))
        #expect(try PSnapReader(path: run).snapshotCount == 1)
        // Usage errors exit 64.
        r = try runProcess(psnap, ["trajectory", run, "w", "9"])
        #expect(r.status == 64 && r.err.contains("out of range"))
        r = try runProcess(psnap, ["append", run])
        #expect(r.status == 64)
    }
}
