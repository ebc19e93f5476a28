// `psnap append` takes what `psnap convert` takes (Hugging Face checkpoint folders, sharded indexes, folders of
// checkpoints) with the same step rules, and a failed append leaves the run as it was.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

private func f32(_ v: [Float]) -> [UInt8] { v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } } }

/// A Hugging Face Trainer `checkpoint-N/` folder: `model.safetensors`, or two shards and
/// `model.safetensors.index.json`; `trainer_state.json` with a log entry at `step`; an `optimizer.pt`.
func writeTrainerCheckpoint(_ folder: String, step: Int, sharded: Bool, value: Float) throws {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let tensors: [(String, String, [Int], [UInt8])] = [
        ("embed.weight", "F32", [4], f32((0..<4).map { value + Float($0) })),
        ("layer.weight", "F32", [2, 3], f32((0..<6).map { value * 2 + Float($0) })),
        ("head.bias", "F32", [3], f32([value, -value, 0])),
    ]
    if sharded {
        try writeSafetensors(folder + "/model-00001-of-00002.safetensors", Array(tensors[0..<2]))
        try writeSafetensors(folder + "/model-00002-of-00002.safetensors", [tensors[2]])
        let map = tensors.enumerated().map { "\"\($1.0)\": \"model-0000\($0 < 2 ? 1 : 2)-of-00002.safetensors\"" }.joined(separator: ", ")
        try Data("{\"metadata\": {\"total_size\": 52}, \"weight_map\": {\(map)}}".utf8).write(to: URL(fileURLWithPath: folder + "/model.safetensors.index.json"))
    } else {
        try writeSafetensors(folder + "/model.safetensors", tensors)
    }
    let state = "{\"global_step\": \(step), \"epoch\": \(Double(step) / 10), \"log_history\": [{\"step\": \(step), \"loss\": \(1.0 / Double(step)), \"learning_rate\": 0.001, \"epoch\": \(Double(step) / 10)}]}"
    try Data(state.utf8).write(to: URL(fileURLWithPath: folder + "/trainer_state.json"))
    try Data("pickle".utf8).write(to: URL(fileURLWithPath: folder + "/optimizer.pt"))
}

private func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

@Suite struct AppendInputsTests {
    let psnap = productPath("psnap")

    /// Every snapshot of `a` equals `b`'s: tensors, step, epoch, time, metadata and every tensor's bytes.
    func expectSameRun(_ a: String, _ b: String) throws {
        let x = try PSnapReader(path: a), y = try PSnapReader(path: b)
        #expect(x.tensors == y.tensors && x.snapshots == y.snapshots, "\(a) vs \(b): \(x.snapshots) vs \(y.snapshots)")
        guard x.tensors == y.tensors, x.snapshotCount == y.snapshotCount else { return }
        for t in x.tensors.indices { for k in 0..<x.snapshotCount { #expect(try x.tensorBytes(tensor: t, snapshot: k) == y.tensorBytes(tensor: t, snapshot: k)) } }
    }

    @Test func appendTakesTrainerCheckpointsAsConvertDoes() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let out = dir + "/output"
        try writeTrainerCheckpoint(out + "/checkpoint-5", step: 5, sharded: false, value: 1)
        try writeTrainerCheckpoint(out + "/checkpoint-15", step: 15, sharded: true, value: 2)
        let converted = dir + "/converted.psnap"
        #expect(try runProcess(psnap, ["convert", out, "-o", converted]).status == 0)
        #expect(try PSnapReader(path: converted).snapshots.map(\.step) == [5, 15])
        // One checkpoint folder at a time, the trailing slash or not.
        let byFolder = dir + "/folders.psnap"
        for input in [out + "/checkpoint-5", out + "/checkpoint-15/"] {
            let r = try runProcess(psnap, ["append", byFolder, input])
            #expect(r.status == 0 && r.err.contains("optimizer.pt"), "\(input): \(r.err)")
        }
        try expectSameRun(byFolder, converted)
        // The sharded checkpoint by its index.
        let byIndex = dir + "/index.psnap"
        #expect(try runProcess(psnap, ["append", byIndex, out + "/checkpoint-5"]).status == 0)
        let r = try runProcess(psnap, ["append", byIndex, out + "/checkpoint-15/model.safetensors.index.json"])
        #expect(r.status == 0, "\(r.err)")
        try expectSameRun(byIndex, converted)
        // The whole output folder in one append.
        let whole = dir + "/whole.psnap"
        let w = try runProcess(psnap, ["append", whole, out, "--json"])
        #expect(w.status == 0 && w.out.contains("\"appended\" : 2"), "\(w.out)\(w.err)")
        try expectSameRun(whole, converted)
        #expect(try PSnapReader(path: whole).snapshots.map { $0.metadata?["learning_rate"] } == [.number(0.001), .number(0.001)])
        // --step names one snapshot; a folder holding two is a usage error.
        let s = try runProcess(psnap, ["append", dir + "/s.psnap", out, "--step", "3"])
        #expect(s.status == 64 && s.err.contains("single snapshot"), "\(s.err)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/s.psnap"))
    }

    @Test func aFailedAppendLeavesTheRunAsItWas() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let ck = dir + "/checkpoint-15"
        try writeTrainerCheckpoint(ck, step: 15, sharded: true, value: 2)
        let shards = [ck + "/model-00001-of-00002.safetensors", ck + "/model-00002-of-00002.safetensors"]
        func expectRefused(_ run: String, _ inputs: [String], _ needles: [String]) throws {
            let before = bytes(run)
            let r = try runProcess(psnap, ["append", run] + inputs)
            #expect(r.status == 65, "\(inputs): \(r.status) \(r.err)")
            for n in needles { #expect(r.err.contains(n), "\(inputs): '\(n)' not in \(r.err)") }
            #expect(bytes(run) == before, "\(inputs) changed \(run)")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("scratch") || $0.contains(".tmp") }
            #expect(leftovers.isEmpty, "\(leftovers)")
        }
        // A sharded checkpoint's shard files are not snapshots (their numbers are shard numbers, not steps).
        let fresh = dir + "/fresh.psnap"
        try expectRefused(fresh, shards, ["model-00001-of-00002.safetensors", "shard", "model.safetensors.index.json"])
        #expect(!FileManager.default.fileExists(atPath: fresh))
        let run = dir + "/run.psnap"
        try writeSafetensors(dir + "/step-1.safetensors", [("w", "F32", [2], f32([1, 2]))])
        #expect(try runProcess(psnap, ["append", run, dir + "/step-1.safetensors"]).status == 0)
        try expectRefused(run, shards, ["shard"])
        // A bad input after a good one: nothing of either is committed (a new run is not created at all).
        try writeSafetensors(dir + "/step-2.safetensors", [("w", "F32", [2], f32([3, 4]))])
        try writeSafetensors(dir + "/step-3.safetensors", [("w", "F32", [3], f32([5, 6, 7]))])
        try writeSafetensors(dir + "/step-4.safetensors", [("w", "F32", [2], f32([1]))])   // truncated
        try expectRefused(run, [dir + "/step-2.safetensors", dir + "/step-3.safetensors"], ["step-3.safetensors", "'w'", "shape [3]"])
        try expectRefused(run, [dir + "/step-2.safetensors", dir + "/step-4.safetensors"], ["step-4.safetensors", "'w'", "4 data bytes"])
        try expectRefused(fresh, [dir + "/step-2.safetensors", dir + "/step-4.safetensors"], ["step-4.safetensors"])
        #expect(!FileManager.default.fileExists(atPath: fresh))
        #expect(try PSnapReader(path: run).snapshots.map(\.step) == [1])
    }

    @Test func appendKeepsTheStepRulesOfConvert() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        for s in ["step-3", "step-5", "step-9", "step-10", "step-99999999999999999999", "last"] {
            try writeSafetensors(dir + "/\(s).safetensors", [("w", "F32", [1], f32([1]))])
        }
        let f = { (s: String) in dir + "/\(s).safetensors" }
        let run = dir + "/r.psnap"
        #expect(try runProcess(psnap, ["append", run, f("step-5")]).status == 0)
        let before = bytes(run)
        for (input, needle) in [("step-5", "step 5 is not after"), ("step-3", "step 3 is not after")] {
            let r = try runProcess(psnap, ["append", run, f(input)])
            #expect(r.status == 65 && r.err.contains(needle) && r.err.contains("strictly increase"), "\(input): \(r.err)")
        }
        #expect(bytes(run) == before)
        // A step number past 2^63 − 1 is refused (not read as no number), by append and by convert.
        for args in [["append", dir + "/big.psnap", f("step-99999999999999999999")], ["convert", f("step-99999999999999999999"), "-o", dir + "/big.psnap"]] {
            let r = try runProcess(psnap, args)
            #expect(r.status == 65 && r.err.contains("99999999999999999999") && r.err.contains("exceeds"), "\(args[0]): \(r.err)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/big.psnap"))
        }
        // After the largest step there is no "previous step + 1": a clear error, not an arithmetic trap.
        let top = dir + "/top.psnap"
        #expect(try runProcess(psnap, ["append", top, f("last"), "--step", String(Int64.max)]).status == 0)
        let topBefore = bytes(top)
        let t = try runProcess(psnap, ["append", top, f("last")])
        #expect(t.status == 65 && t.err.contains(String(Int64.max)), "\(t.status) \(t.err)")
        #expect(bytes(top) == topBefore)
        // Inputs are ordered by step as convert orders them (a shell glob lists step-10 before step-9).
        #expect(try runProcess(psnap, ["append", run, f("step-10"), f("step-9")]).status == 0)
        #expect(try PSnapReader(path: run).snapshots.map(\.step) == [5, 9, 10])
        let g = try runProcess(psnap, ["append", dir + "/g.psnap", f("step-10"), f("step-9"), "--order", "given"])
        #expect(g.status == 65 && g.err.contains("step 9 comes after step 10"), "\(g.err)")
        // The same rules in convert: a step below its predecessor in the order given is refused; a lone snapshot
        // without a step number is step 0.
        let c = try runProcess(psnap, ["convert", f("step-10"), f("step-9"), "--order", "given", "-o", dir + "/c.psnap"])
        #expect(c.status == 65 && c.err.contains("step 9 comes after step 10"), "\(c.err)")
        #expect(try runProcess(psnap, ["convert", f("last"), "-o", dir + "/l.psnap"]).status == 0)
        #expect(try PSnapReader(path: dir + "/l.psnap").snapshots.map(\.step) == [0])
    }

    @Test func stepRules() throws {
        func snap(_ label: String, _ step: Int64?) -> DumpSnapshot { DumpSnapshot(label: label, step: step) }
        func steps(_ s: [DumpSnapshot], given: Bool = false, after: Int64? = nil) throws -> [Int64] {
            try DumpSteps.arrange(s, orderGiven: given, selection: nil, after: after.map { .init(step: $0, label: "run") }).map { $0.step! }
        }
        #expect(try steps([snap("b", 10), snap("a", 9)]) == [9, 10])
        #expect(try steps([snap("a", nil), snap("b", 7), snap("c", nil)], given: true) == [0, 7, 8])
        #expect(try steps([snap("a", nil)], after: 41) == [42])
        #expect(try steps([snap("a", nil)]) == [0])
        #expect(throws: DumpError.self) { try steps([snap("a", nil), snap("b", 1)]) }          // nothing to order by
        #expect(throws: DumpError.self) { try steps([snap("a", 3), snap("b", 3)]) }            // duplicate
        #expect(throws: DumpError.self) { try steps([snap("a", 3), snap("b", 2)], given: true) } // decreasing
        #expect(throws: DumpError.self) { try steps([snap("a", 3)], after: 3) }                // not after the run
        #expect(throws: DumpError.self) { try steps([snap("a", nil)], after: .max) }           // no step after 2^63 − 1
        #expect(throws: DumpError.self) { try steps([snap("a", .max), snap("b", nil)], given: true) }
        let sel = try #require(StepSelection(parsing: "::2"))
        #expect(try DumpSteps.arrange([snap("a", 4), snap("b", 1), snap("c", 3)], orderGiven: false, selection: sel, after: nil).map(\.label) == ["b", "c"])
        #expect(try DumpNames.stepNumber("model-00002-of-00002", path: "m") == nil && DumpNames.stepNumber("ckpt-7-00001-of-00002", path: "m") == 7)
        #expect(throws: DumpError.self) { try DumpNames.stepNumber("step-9223372036854775808", path: "s") }
    }

    @Test func aRunCreatedByAFailedAppendIsRemoved() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        // A big-endian .npy is byte-swapped through the scratch file; a scratch file that cannot be created fails
        // the commit after the run was created.
        var npy = NpyHeader.encode(dtype: .f32, shape: [2])
        npy[npy.firstIndex(of: UInt8(ascii: "<"))!] = UInt8(ascii: ">")
        try Data(npy + [0x3F, 0x80, 0, 0, 0x40, 0, 0, 0]).write(to: URL(fileURLWithPath: dir + "/w_1.npy"))
        let d = DumpDiscovery(options: ConvertOptions())
        try d.add(path: dir + "/w_1.npy")
        let run = dir + "/new.psnap"
        let append = try DumpAppend(runPath: run, found: d.snapshots, options: ConvertOptions())
        #expect(!append.runExists && !FileManager.default.fileExists(atPath: run))
        #expect(throws: (any Error).self) { try append.commit(options: WriterOptions(), scratchPath: dir + "/missing/scratch") }
        #expect(!FileManager.default.fileExists(atPath: run))
        let done = try append.commit(options: WriterOptions(), scratchPath: dir + "/scratch")
        #expect(done.snapshots == 1 && done.commit.snapshots == 1)
        #expect(try PSnapReader(path: run).tensorBytes(tensor: "w", snapshot: 0) == f32([1, 2]))
    }
}
