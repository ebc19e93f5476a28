// CLI tests of option bounds and exit codes: no trap, no runaway memory, one meaning per exit code, no hang.
import Foundation
import Testing
import PSnapTestSupport
@testable import ParamSnap

@Suite struct CLILimitsTests {
    let psnap = productPath("psnap")
    let snapinfo = productPath("snapinfo")
    let demo = repoRoot + "/fixtures/demo-run"

    /// A one-tensor f32 run with `snapshots` snapshots of `params` parameters in blocks of `blockSize`.
    static func smallRun(_ path: String, snapshots: Int, params: Int = 4, blockSize: Int = 1024) throws {
        var options = WriterOptions()
        options.blockSize = blockSize
        let w = try SnapshotWriter.create(path: path, tensors: [TensorInfo(name: "w", dtype: .f32, shape: [params])], options: options)
        for k in 0..<snapshots {
            var b: [UInt8] = []
            for i in 0..<params { withUnsafeBytes(of: Float(i * k).bitPattern.littleEndian) { b += $0 } }
            try w.append(SnapshotInfo(step: Int64(k)), tensors: ["w": b])
        }
        try w.close()
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// Worker counts outside 1…max(64, 4 × cores) are usage errors naming --workers (100000 workers once took 20 GB).
    @Test func workerCountsAreBounded() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/r.psnap"
        // Blocks of one parameter: cheap per worker even where a count is not refused.
        try Self.smallRun(run, snapshots: 3, blockSize: 1)
        for w in ["-1", "0", "100000"] {
            for mode in [["--csv"], ["--across", "parameters"]] {
                let r = try runProcess(psnap, ["moments", run, "--workers=\(w)"] + mode)
                #expect(r.status == 64 && r.err.contains("--workers") && r.err.contains(w), "--workers \(w) \(mode): \(r.status) \(r.err)")
                #expect(r.out.isEmpty)
            }
        }
        let ok = try runProcess(psnap, ["moments", run, "--workers", "2", "--csv"])
        #expect(ok.status == 0, "\(ok.err)")
    }

    /// --memory sizes the writer's buffers: nonsense (0, negative, more than the physical memory) is refused as a
    /// usage error naming the option, before any output is created.
    @Test func memoryBudgetsAreBounded() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = try demoRun(in: dir)
        let out = dir + "/out.psnap"
        for m in ["0", "-5", "99999999999999"] {
            for args in [["append", out, demo + "/epoch-000.safetensors"], ["convert", demo, "-o", out], ["compact", run, "-o", out]] {
                let r = try runProcess(psnap, args + ["--memory=\(m)"])
                #expect(r.status == 64 && r.err.contains("--memory") && r.err.contains(m), "\(args[0]) --memory \(m): \(r.status) \(r.err)")
                #expect(!exists(out), "\(args[0]) --memory \(m) created its output")
            }
        }
    }

    /// --space-bound takes a ratio from 1.05 to 100 or 'off': anything else is a usage error naming it, and nothing
    /// is written; 'off' appends with the tiered plan alone (three one-snapshot appends stay three segments, where
    /// the default merges a run this small into one).
    @Test func spaceBoundsAreChecked() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let out = dir + "/out.psnap"
        for b in ["0.5", "1", "-2", "nan", "inf", "1e9", "loose"] {
            let r = try runProcess(psnap, ["append", out, demo + "/epoch-000.safetensors", "--space-bound=\(b)"])
            #expect(r.status == 64 && r.err.contains("--space-bound") && r.err.contains(b), "--space-bound \(b): \(r.status) \(r.err)")
            #expect(!exists(out), "--space-bound \(b) created the run")
        }
        let epochs = try FileManager.default.contentsOfDirectory(atPath: demo).filter { $0.hasSuffix(".safetensors") }.sorted().prefix(3)
        for (bound, segments) in [("off", 3), ("1.2", 1)] {
            let run = dir + "/\(bound).psnap"
            for f in epochs {
                let r = try runProcess(psnap, ["append", run, demo + "/" + f, "--space-bound", bound])
                #expect(r.status == 0, "\(r.err)")
            }
            #expect(try PSnapReader(path: run).segments.count == segments, "--space-bound \(bound)")
        }
    }

    /// --min-match outside 0 and 3…7 is a usage error in the writers, named, and nothing is written; 0 (zstd's own) and
    /// 7 both write files that read back the same values.
    @Test func minMatchIsCheckedAndBothEndsRead() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let out = dir + "/out.psnap"
        let run = try demoRun(in: dir)
        for cmd in [["append", out, demo + "/epoch-000.safetensors"], ["convert", demo, "-o", out], ["compact", run, "-o", out]] {
            for m in ["2", "8", "-1", "x"] {
                let r = try runProcess(psnap, cmd + ["--min-match=\(m)"])
                #expect(r.status == 64 && r.err.contains("--min-match") && r.err.contains(m), "\(cmd[0]) --min-match \(m): \(r.status) \(r.err)")
                #expect(!exists(out), "\(cmd[0]) --min-match \(m) wrote its output")
            }
        }
        var values: [[UInt8]] = []
        for m in ["0", "7"] {
            let o = dir + "/m\(m).psnap"
            let r = try runProcess(psnap, ["convert", demo, "-o", o, "--min-match", m])
            #expect(r.status == 0, "\(r.err)")
            let rd = try PSnapReader(path: o)
            values.append(try (0..<rd.snapshotCount).flatMap { k in try (0..<rd.tensors.count).flatMap { try rd.tensorBytes(tensor: $0, snapshot: k) } })
        }
        #expect(values[0] == values[1] && !values[0].isEmpty)
    }

    /// A bad --codec or --level is a usage error (64) in every command, named, and nothing is written.
    @Test func codecAndLevelErrorsAreUsageErrors() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = try demoRun(in: dir)
        let out = dir + "/out.psnap"
        let commands = [["append", out, demo + "/epoch-000.safetensors"], ["convert", demo, "-o", out], ["compact", run, "-o", out],
                        ["moments", run, "-o", out]]
        for args in commands {
            for (bad, option) in [(["--codec", "split,bogus"], "--codec"), (["--level", "99"], "--level"), (["--codec", "zstd,split"], "--codec")] {
                let r = try runProcess(psnap, args + bad)
                #expect(r.status == 64 && r.err.contains(option), "\(args[0]) \(bad): \(r.status) \(r.err)")
                #expect(!exists(out), "\(args[0]) \(bad) created its output")
            }
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: run))
        let inPlace = try runProcess(psnap, ["compact", run, "--level", "-999999"])
        #expect(inPlace.status == 64 && inPlace.err.contains("--level"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: run)) == before)
    }

    /// A run with no snapshots has no statistics and no checkpoint to export: bad input data (65), said so.
    @Test func aRunWithNoSnapshotsIsBadInputForMomentsAndExport() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/empty.psnap"
        try Self.smallRun(run, snapshots: 0)
        #expect(try PSnapReader(path: run).snapshotCount == 0)
        let cases = [["moments", run, "-o", dir + "/m.psnap"], ["moments", run, "--csv"], ["moments", run, "--across", "parameters"],
                     ["export", run, "--snapshot", "0", "-o", dir + "/x.npz"], ["export", run, "--snapshot=-1", "-o", dir + "/x.npz"]]
        for args in cases {
            let r = try runProcess(psnap, args)
            #expect(r.status == 65 && r.err.contains("has no snapshots") && r.err.contains("empty.psnap"), "\(args): \(r.status) \(r.err)")
        }
        #expect(!exists(dir + "/m.psnap") && !exists(dir + "/x.npz"))
        // Listings still describe it.
        #expect(try runProcess(snapinfo, [run]).status == 0)
        #expect(try runProcess(psnap, ["verify", run]).status == 0)
    }

    /// A FIFO (or a folder) where a run is expected is refused at once, naming the path and what it is (a FIFO
    /// used to block `snapinfo` forever, waiting for a writer).
    @Test func readersRefuseAnythingButARegularFile() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let fifo = dir + "/run.psnap"
        #expect(mkfifo(fifo, 0o600) == 0)
        let cases: [(String, [String])] = [(snapinfo, [fifo]), (psnap, ["verify", fifo]), (psnap, ["moments", fifo, "--csv"]),
                                           (psnap, ["compact", fifo]), (psnap, ["append", fifo, demo + "/epoch-000.safetensors"])]
        for (exe, args) in cases {
            let r = try runProcess(exe, args, timeout: 10)
            #expect(!r.timedOut, "\(args) blocked on the FIFO")
            #expect(r.status == 1 && r.err.contains("run.psnap") && r.err.contains("FIFO"), "\(args): \(r.status) \(r.err)")
        }
        // An input of convert that is no checkpoint file is refused as input data, naming it.
        let convert = try runProcess(psnap, ["convert", fifo, "-o", dir + "/c.psnap"], timeout: 10)
        #expect(!convert.timedOut && convert.status == 65 && convert.err.contains("run.psnap"), "\(convert.status) \(convert.err)")
        // A folder is read as a sharded run (spec/SHARDS.md): one without a manifest is refused as such.
        let folder = try runProcess(snapinfo, [dir], timeout: 20)
        #expect(folder.status == 64 && folder.err.contains("without manifest.json: not a sharded run"), "\(folder.err)")
    }

    /// `trajectory RUN NAME I --global G` names two parameters: refused (it used to print one and ignore the other).
    @Test func trajectoryRefusesTwoAddresses() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/r.psnap"
        try Self.smallRun(run, snapshots: 2)
        let r = try runProcess(psnap, ["trajectory", run, "w", "0", "--global", "3"])
        #expect(r.status == 64 && r.err.contains("--global") && r.out.isEmpty, "\(r.status) \(r.err)")
        #expect(try runProcess(psnap, ["trajectory", run, "--global", "3"]).status == 0)
        let bad = try runProcess(psnap, ["trajectory", run, "w", "99999999999999999999"])
        #expect(bad.status == 64 && bad.err.contains("not an integer"))
    }

    /// Numbers from options are checked before anything is written: a NaN epoch, a raw shape too large to exist,
    /// a --snapshots range that is not two integers, an out-of-range snapshot.
    @Test func numericOptionsAreCheckedBeforeAnyFileIsTouched() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let out = dir + "/new.psnap"
        for e in ["nan", "inf", "-inf"] {
            let r = try runProcess(psnap, ["append", out, demo + "/epoch-000.safetensors", "--epoch", e])
            #expect(r.status == 64 && r.err.contains("--epoch"), "--epoch \(e): \(r.status) \(r.err)")
            #expect(!exists(out), "--epoch \(e) left a run behind")
        }
        // A raw shape whose product overflows is refused as an option, not misreported as a short file.
        try Data(count: 64).write(to: URL(fileURLWithPath: dir + "/w-0.bin"))
        let shape = try runProcess(psnap, ["convert", dir + "/w-0.bin", "--dtype", "f32", "--shape", "9223372036854775807,2", "-o", out])
        #expect(shape.status == 64 && shape.err.contains("--shape"), "\(shape.status) \(shape.err)")
        #expect(!exists(out))
        let run = dir + "/r.psnap"
        try Self.smallRun(run, snapshots: 3)
        for s in ["1:x", "9223372036854775808:", ":-1", "2:1", "0:4"] {
            let r = try runProcess(psnap, ["moments", run, "--csv", "--snapshots", s])
            #expect(r.status == 64 && r.err.contains("--snapshots"), "--snapshots \(s): \(r.status) \(r.err)")
        }
        for k in ["3", "-4", "9223372036854775807", "-9223372036854775808"] {
            let r = try runProcess(psnap, ["export", run, "--snapshot=\(k)", "-o", dir + "/x.npz"])
            #expect(r.status == 64 && r.err.contains("out of range"), "--snapshot \(k): \(r.status) \(r.err)")
        }
        #expect(!exists(dir + "/x.npz"))
    }
}
