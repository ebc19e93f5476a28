// Outputs never destroy an input or an unrelated file: existing outputs need --force, an input is never an output
// (through symlinks and hard links too), in-place compaction keeps the file, and no temporary file outlives its run.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite struct OutputTests {
    let psnap = productPath("psnap")
    let demo = repoRoot + "/fixtures/demo-run"

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// A run of the demo checkpoints, one segment per snapshot (as `psnap append --no-merge` once per file).
    func multiSegmentRun(_ path: String) throws {
        var options = WriterOptions()
        options.merge = false
        options.snapshotsPerSegment = 1
        var w: SnapshotWriter? = nil
        for (k, f) in try FileManager.default.contentsOfDirectory(atPath: demo).sorted().enumerated() {
            let st = try SafeTensorsFile(path: demo + "/" + f)
            if w == nil { w = try SnapshotWriter.create(path: path, tensors: st.tensors, options: options) }
            let bytes = Dictionary(uniqueKeysWithValues: st.tensors.map { ($0.key, Array(st.bytes(named: $0.name)!)) })
            try w!.append(GoldenFixtures.info(k), tensors: bytes)
        }
        try w!.close()
    }

    @Test func existingOutputsAreReplacedOnlyWithForce() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/run.psnap", other = dir + "/other.bin"
        try multiSegmentRun(run)
        try Data("someone else's file".utf8).write(to: URL(fileURLWithPath: other))
        try FileManager.default.createDirectory(atPath: dir + "/npy", withIntermediateDirectories: true)
        try Data("old".utf8).write(to: URL(fileURLWithPath: dir + "/npy/fc1.weight.npy"))
        let cases: [[String]] = [
            ["compact", run, "-o", other],
            ["repair", run, "-o", other],
            ["moments", run, "-o", other],
            ["moments", run, "--across", "parameters", "-o", other],
            ["moments", run, "--include", "fc1.weight", "--npy", dir + "/npy"],
        ]
        for args in cases {
            let r = try runProcess(psnap, args)
            #expect(r.status == 1 && r.err.contains("already exists") && r.err.contains("--force"), "\(args): \(r.status) \(r.err)")
            #expect(try bytes(other) == Data("someone else's file".utf8), "\(args) changed an existing file")
            #expect(try bytes(dir + "/npy/fc1.weight.npy") == Data("old".utf8), "\(args) changed an existing file")
        }
        let forced = try runProcess(psnap, ["compact", run, "-o", other, "--force"])
        #expect(forced.status == 0, "\(forced.err)")
        #expect(try PSnapReader(path: other).segments.count == 1)
    }

    @Test func noCommandWritesOverOneOfItsInputs() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/run.psnap"
        try multiSegmentRun(run)
        let ckpt = dir + "/ckpts"
        try FileManager.default.copyItem(atPath: demo, toPath: ckpt)
        let first = ckpt + "/epoch-000.safetensors"
        // The same file under three names: itself, a symlink, a hard link (named so each command writes that kind).
        func aliases(_ target: String, _ ext: String) throws -> [String] {
            let sym = dir + "/sym-\(UUID().uuidString).\(ext)", hard = dir + "/hard-\(UUID().uuidString).\(ext)"
            try FileManager.default.createSymbolicLink(atPath: sym, withDestinationPath: target)
            try FileManager.default.linkItem(atPath: target, toPath: hard)
            return [target, sym, hard]
        }
        var cases: [[String]] = []
        for out in try aliases(first, "safetensors") {
            cases.append(["convert", ckpt, "-o", out, "--force"])              // an input found in a folder
            cases.append(["convert", first, "-o", out, "--force"])
            cases.append(["append", out, first])
        }
        for out in try aliases(run, "psnap") {
            cases.append(["compact", run, "-o", out, "--force"])
            cases.append(["repair", run, "-o", out, "--force"])
            cases.append(["moments", run, "-o", out, "--force"])
            cases.append(["moments", run, "--across", "parameters", "-o", out, "--force"])
        }
        for out in try aliases(run, "safetensors") { cases.append(["export", run, "--snapshot", "0", "-o", out, "--force"]) }
        let runBefore = try bytes(run), firstBefore = try bytes(first)
        for args in cases {
            let r = try runProcess(psnap, args)
            #expect(r.status == 64 && r.err.contains("is the input"), "\(args): \(r.status) \(r.err)")
            let out = args[args.firstIndex(of: "-o").map { $0 + 1 } ?? 1]
            #expect(r.err.contains("'\(out)'"), "\(args): the message names the output: \(r.err)")
            #expect(try bytes(run) == runBefore && bytes(first) == firstBefore, "\(args) changed an input")
        }
        // Replacing a file that is not an input is still allowed with --force.
        #expect(try runProcess(psnap, ["convert", first, "-o", dir + "/elsewhere.psnap"]).status == 0)
        #expect(try runProcess(psnap, ["convert", ckpt, "-o", dir + "/elsewhere.psnap", "--force"]).status == 0)
    }

    @Test func outputPathCheckComparesFilesNotNames() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let a = dir + "/a", b = dir + "/b"
        try Data([1]).write(to: URL(fileURLWithPath: a))
        try Data([1]).write(to: URL(fileURLWithPath: b))
        try FileManager.default.createSymbolicLink(atPath: dir + "/s", withDestinationPath: "a")
        try FileManager.default.linkItem(atPath: a, toPath: dir + "/h")
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        for out in [a, dir + "/s", dir + "/h", dir + "/sub/../a"] {
            #expect(throws: IOError.outputIsInput(output: out, input: a)) { try OutputPath.check(output: out, inputs: [b, a], force: true) }
        }
        try OutputPath.check(output: b, inputs: [a], force: true)
        try OutputPath.check(output: dir + "/new", inputs: [a], force: false)
        #expect(throws: IOError.exists(path: b)) { try OutputPath.check(output: b, inputs: [a], force: false) }
    }

    @Test func compactInPlaceRewritesASymlinksTargetAndKeepsItsMode() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/run.psnap", link = dir + "/link.psnap"
        try multiSegmentRun(run)
        let before = try PSnapReader(path: run)
        let want = try (0..<before.snapshotCount).map { k in try before.tensorBytes(tensor: 0, snapshot: k) }
        #expect(before.segments.count > 1)
        chmod(run, 0o600)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "run.psnap")
        let r = try runProcess(psnap, ["compact", link])
        #expect(r.status == 0, "\(r.err)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == "run.psnap", "the link stays a link")
        let after = try PSnapReader(path: run)
        #expect(after.segments.count == 1, "the target is compacted")
        #expect(try (0..<after.snapshotCount).map { k in try after.tensorBytes(tensor: 0, snapshot: k) } == want)
        var st = stat()
        #expect(stat(run, &st) == 0 && st.st_mode & 0o7777 == 0o600, "mode \(String(st.st_mode & 0o7777, radix: 8))")
        // Replacing a file with --force keeps its mode too.
        chmod(dir + "/run.psnap", 0o640)
        #expect(try runProcess(psnap, ["convert", demo, "-o", run, "--force"]).status == 0)
        #expect(stat(run, &st) == 0 && st.st_mode & 0o7777 == 0o640, "mode \(String(st.st_mode & 0o7777, radix: 8))")
    }

    /// Inputs large enough (random walks, 8 MiB; zstd level 19 takes about a second) that the signal lands while
    /// the output is being written.
    func slowConvertInputs(_ dir: String) throws -> [String] {
        var rng = SeededRNG(seed: testSeed(0x5167))
        let n = 1 << 19
        var x = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
        return try (0..<4).map { k in
            let path = dir + "/w_\(k).npy"
            var h = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(n),), }"
            while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
            h += "\n"
            var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count), 0] + Array(h.utf8)
            for p in 0..<n { x[p] += Float.random(in: -1e-3...1e-3, using: &rng) }
            x.withUnsafeBytes { out += $0 }
            try Data(out).write(to: URL(fileURLWithPath: path))
            return path
        }
    }

    @Test(arguments: [SIGINT, SIGTERM, SIGHUP])
    func aSignalLeavesNoTemporaryFile(signal sig: Int32) throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let inputs = try slowConvertInputs(dir)
        let out = dir + "/out.psnap"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: psnap)
        p.arguments = ["convert"] + inputs + ["-o", out, "--level", "19", "--quiet"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let tmp = TempFiles.path(beside: out, .output, pid: p.processIdentifier)
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: tmp) && p.isRunning && Date() < deadline { usleep(500) }
        #expect(FileManager.default.fileExists(atPath: tmp), "the output's temporary file never appeared")
        kill(p.processIdentifier, sig)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == sig, "ended by \(p.terminationReason) \(p.terminationStatus)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasSuffix(".npy") }
        #expect(left.isEmpty, "left behind: \(left)")
    }

    @Test func staleTemporaryFilesOfDeadProcessesAreRemovedByTheNextRun() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let out = dir + "/out.psnap"
        func deadPID() throws -> Int32 {
            let gone = Process()
            gone.executableURL = URL(fileURLWithPath: "/bin/true")
            try gone.run()
            gone.waitUntilExit()
            #expect(kill(gone.processIdentifier, 0) != 0 && errno == ESRCH)
            return gone.processIdentifier
        }
        let dead = try deadPID(), dead2 = try deadPID(), live = getpid()
        let stale = TempFiles.Kind.allCases.map { TempFiles.path(beside: out, $0, pid: dead) }
        let kept = [TempFiles.path(beside: out, .output, pid: live), TempFiles.path(beside: out, .staging, pid: live),
                    out + ".tmp-\(dead).bak", out + ".tmp-0\(dead)", out + ".tmp-x\(dead)", dir + "/other.psnap.tmp-\(dead)",
                    dir + "/notes.txt"]
        for f in stale + kept { try Data("x".utf8).write(to: URL(fileURLWithPath: f)) }
        // A symlink with a stale name is not a file of ours: left alone, and so is what it points to.
        try FileManager.default.createSymbolicLink(atPath: out + ".tmp-\(dead2)", withDestinationPath: dir + "/notes.txt")
        let r = try runProcess(psnap, ["convert", demo, "-o", out])
        #expect(r.status == 0, "\(r.err)")
        for f in stale { #expect(!FileManager.default.fileExists(atPath: f), "\(f) was left") }
        for f in kept + [out + ".tmp-\(dead2)"] { #expect(FileManager.default.fileExists(atPath: f), "\(f) was removed") }
        #expect(try bytes(dir + "/notes.txt") == Data("x".utf8))
    }

    /// Whatever is at this process's temporary name (a leftover, or a symlink to another file) is not written through.
    @Test func temporaryNamesAreCreatedNotReused() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let out = dir + "/out.psnap", victim = dir + "/victim.txt"
        try Data("precious".utf8).write(to: URL(fileURLWithPath: victim))
        let tensors = [TensorInfo(name: "w", dtype: .f32, shape: [4])]
        let data = [[UInt8](repeating: 1, count: 16)]
        for kind in [TempFiles.Kind.output, .staging] {
            try FileManager.default.createSymbolicLink(atPath: TempFiles.path(beside: out, kind), withDestinationPath: victim)
        }
        try SnapshotWriter.writeCompact(path: out, tensors: tensors, snapshots: [GoldenFixtures.info(0)], source: ArraySource(data: [data]))
        var options = WriterOptions()
        options.memoryBudget = 0   // every staged snapshot goes to the spill file
        let w = try SnapshotWriter.open(path: out, options: options)
        try w.append(GoldenFixtures.info(1), tensors: ["w": data[0]])
        try w.close()
        #expect(try bytes(victim) == Data("precious".utf8))
        #expect(try PSnapReader(path: out).snapshotCount == 2)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(left == ["out.psnap", "victim.txt"], "\(left)")
    }
}
