// Tests of `psnap convert` / `psnap export`: every input kind, bit-identical round trips on the shared runs,
// every error case, casts, and the temp-then-rename rule under SIGKILL.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

/// Counts mismatches found from several scan workers.
private final class MismatchCounter: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var count = 0
    private(set) var first: String?
    func add(_ what: String) { lock.lock(); count += 1; if first == nil { first = what }; lock.unlock() }
}

/// Compares every value of the run at `run` with `expected(snapshot, tensorName)` (raw bytes), through a full scan.
private func expectRunMatches(_ run: String, snapshots: Int, _ expected: @escaping @Sendable (Int, String) -> UnsafeRawBufferPointer) throws {
    let r = try PSnapReader(path: run)
    #expect(r.snapshotCount == snapshots)
    let bad = MismatchCounter()
    let names = r.tensors.map(\.name)
    try r.scan { tile, _ in
        let e = tile.dtype.size
        for s in 0..<tile.snapshots {
            let want = expected(tile.firstSnapshot + s, names[tile.tensor])
            for p in 0..<tile.parameters where memcmp(tile.raw.baseAddress! + (p * tile.snapshots + s) * e,
                                                      want.baseAddress! + (tile.firstParameter + p) * e, e) != 0 {
                bad.add("\(names[tile.tensor])[\(tile.firstParameter + p)] at snapshot \(tile.firstSnapshot + s)")
            }
        }
    }
    #expect(bad.count == 0, "first mismatch: \(bad.first ?? "")")
}

/// Little-endian bytes of Float values.
private func f32Bytes(_ v: [Float]) -> [UInt8] { v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } } }

/// An npy file with a hand-written header (to cover descr, order and versions the exporter never writes).
private func npy(_ header: String, _ data: [UInt8], version: UInt8 = 1) -> [UInt8] {
    var h = Array(header.utf8) + [0x0A]
    var out = NpyHeader.magic + [version, 0]
    if version == 1 { out += [UInt8(h.count & 0xFF), UInt8(h.count >> 8)] } else {
        withUnsafeBytes(of: UInt32(h.count).littleEndian) { out += $0 }
    }
    out += h
    h.removeAll()
    return out + data
}

private func write(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

@Suite struct ConvertFormatTests {
    @Test func npyHeadersParseAndBadOnesAreNamed() throws {
        let ok = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", [])
        let h = try ok.withUnsafeBytes { try NpyHeader.parse($0, path: "a.npy") }
        #expect(h.dtype == .f32 && h.shape == [2, 3] && !h.fortranOrder && !h.bigEndian && h.dataOffset == ok.count)
        let v2 = npy("{\"descr\": \">f8\", \"fortran_order\": True, \"shape\": (4,)}", [], version: 2)
        let h2 = try v2.withUnsafeBytes { try NpyHeader.parse($0, path: "b.npy") }
        #expect(h2.dtype == .f64 && h2.bigEndian && h2.fortranOrder && h2.shape == [4])
        let scalar = try npy("{'descr': '<f2', 'fortran_order': False, 'shape': (), }", []).withUnsafeBytes { try NpyHeader.parse($0, path: "c.npy") }
        #expect(scalar.shape == [] && scalar.dtype == .f16)
        let int = try npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", []).withUnsafeBytes { try NpyHeader.parse($0, path: "d.npy") }
        #expect(int.dtype == nil && int.descr == "<i8")
        // Every truncation of a valid header is an error naming the file, never a crash.
        for n in 0..<ok.count {
            #expect(throws: DumpError.self) { try Array(ok[0..<n]).withUnsafeBytes { try NpyHeader.parse($0, path: "a.npy") } }
        }
        for bad in ["{'descr': '<f4', 'shape': (2,)}", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "[1, 2]", "{'descr': '<f4'"] {
            #expect(throws: DumpError.self) { try npy(bad, []).withUnsafeBytes { try NpyHeader.parse($0, path: "x.npy") } }
        }
        // The exporter's header reads back and aligns the data to 64 bytes.
        let enc = NpyHeader.encode(dtype: .f64, shape: [5, 7])
        let back = try enc.withUnsafeBytes { try NpyHeader.parse($0, path: "e.npy") }
        #expect(back.shape == [5, 7] && back.dtype == .f64 && back.dataOffset == enc.count && enc.count % 64 == 0)
    }

    @Test func zipDirectoryRoundTripsAndRejectsDamage() throws {
        let payload: [UInt8] = Array("hello npz".utf8)
        let crc = payload.withUnsafeBytes { RawInflate.crc32($0) }
        let local = ZipArchive.localHeader(name: "a.npy", crc32: crc, size: UInt64(payload.count))
        let archive = local + payload + ZipArchive.directory([("a.npy", crc, UInt64(payload.count), 0)], at: UInt64(local.count + payload.count))
        let m = try archive.withUnsafeBytes { try ZipArchive.members($0, path: "z.npz") }
        #expect(m.count == 1 && m[0].name == "a.npy" && m[0].method == 0 && m[0].crc32 == crc)
        #expect(Array(archive[m[0].dataOffset..<(m[0].dataOffset + m[0].compressedSize)]) == payload)
        // Cut anywhere: an error, never a crash or a member outside the buffer.
        for n in 0..<archive.count {
            let cut = Array(archive[0..<n])
            if let ms = try? cut.withUnsafeBytes({ try ZipArchive.members($0, path: "z.npz") }) {
                for x in ms { #expect(x.dataOffset + x.compressedSize <= n) }
            }
        }
    }

    @Test func stepsNamesGlobsAndLogs() throws {
        let s = try #require(StepSelection(parsing: "0:1000:10"))
        #expect(s.contains(0, first: 0) && s.contains(990, first: 0) && !s.contains(1000, first: 0) && !s.contains(15, first: 0))
        let open = try #require(StepSelection(parsing: "::5,7"))
        #expect(open.contains(3, first: 3) && open.contains(8, first: 3) && open.contains(7, first: 3) && !open.contains(4, first: 3))
        #expect(StepSelection(parsing: "1:2:0") == nil && StepSelection(parsing: "a:b") == nil && StepSelection(parsing: "1:2:3:4") == nil)
        let names = ["step-100", "step-9", "step-10", "step-010b", "step-2"]
        #expect(names.sorted(by: DumpNames.naturalLess) == ["step-2", "step-9", "step-10", "step-010b", "step-100"])
        #expect(try DumpNames.stepNumber("checkpoint-30", path: "c") == 30 && DumpNames.stepNumber("model", path: "m") == nil)
        #expect(DumpNames.arrayName(fromStem: "w_000") == "w" && DumpNames.arrayName(fromStem: "0042") == "tensor")
        #expect(TensorNameFilter.matches("blocks.*.bias", "blocks.0.attn.q_proj.bias") && !TensorNameFilter.matches("*.bias", "fc1.weight"))
        #expect(TensorNameFilter.matches("fc[12].weight", "fc2.weight") && !TensorNameFilter.matches("fc[!12].weight", "fc2.weight"))
        #expect(TensorNameFilter.matches("f?1.*", "fc1.weight") && TensorNameFilter.matches("*", ""))
        let log = try TrainerLog.parse(Data(#"{"global_step": 2, "epoch": 0.5, "log_history": [{"step": 1, "loss": 3.5, "learning_rate": 0.1}, {"step": 2, "loss": 3.0, "epoch": 0.5}]}"#.utf8), path: "t.json")
        let m = log.snapshotMetadata(step: 1)
        #expect(m.values["loss"] == .number(3.5) && m.values["learning_rate"] == .number(0.1) && m.epoch == nil)
        #expect(log.snapshotMetadata(step: 2).epoch == 0.5 && log.snapshotMetadata(step: 5).values.isEmpty)
    }

    @Test func bf16CastRoundsToNearestEvenAndKeepsNaNsQuiet() {
        #expect(DTypeCast.bf16(fromF32Bits: 0x3F80_8000) == 0x3F80)   // tie, even stays
        #expect(DTypeCast.bf16(fromF32Bits: 0x3F81_8000) == 0x3F82)   // tie, odd rounds up
        #expect(DTypeCast.bf16(fromF32Bits: 0x3F80_8001) == 0x3F81)
        #expect(DTypeCast.bf16(fromF32Bits: 0x7F80_0001) & 0x7FC0 == 0x7FC0)   // signalling NaN → quiet NaN
        #expect(DTypeCast.bf16(fromF32Bits: 0xFF80_0000) == 0xFF80)   // −inf
        #expect(DTypeCast.bf16(fromF32Bits: 0x7F7F_FFFF) == 0x7F80)   // rounds to +inf
        // f64 → bf16 is rounded once: 1 + 2^-8 + 2^-40 is just above the tie and must round up.
        let d: [Double] = [1 + 0x1p-8 + 0x1p-40]
        var out: UInt16 = 0
        d.withUnsafeBytes { DTypeCast.convert($0.baseAddress!, from: .f64, to: .bf16, count: 1, into: &out) }
        #expect(out == 0x3F81)
        #expect(DTypeCast.isLossy(from: .f32, to: .bf16) && !DTypeCast.isLossy(from: .bf16, to: .f32))
    }
}

@Suite struct ConvertCLITests {
    let psnap = productPath("psnap")

    /// Converts `inputs` with `args`, expecting success.
    func convert(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try runProcess(psnap, ["convert"] + args)
    }

    @Test func hfTrainerLayoutRoundTripsBitExactWithMetadata() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/hf.psnap"
        let r = try convert([sharedData + "/hf-trainer-layout", "-o", run])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("optimizer.pt") && r.out.contains("4 snapshot(s)") && r.out.contains("ratio"))
        let steps = [15, 30, 45, 60]
        let sources = try steps.map { try SafeTensorsFile(path: sharedData + String(format: "/tiny-gpt/step-%03d.safetensors", $0)) }
        try expectRunMatches(run, snapshots: 4) { k, name in sources[k].bytes(named: name)! }
        let reader = try PSnapReader(path: run)
        #expect(reader.snapshots.map(\.step) == [15, 30, 45, 60])
        let s30 = reader.snapshots[1]
        #expect(s30.epoch.map { abs($0 - 30.0 / 348) < 1e-9 } == true)
        #expect(s30.metadata?["loss"] != nil && s30.metadata?["learning_rate"] != nil)
        // Export every snapshot back: bit-identical tensors, names, shapes, dtypes.
        for (k, step) in steps.enumerated() {
            let out = dir + "/c\(step).safetensors"
            let e = try runProcess(psnap, ["export", run, "--snapshot", String(k), "-o", out])
            #expect(e.status == 0, "\(e.err)")
            let back = try SafeTensorsFile(path: out)
            #expect(Set(back.tensors.map(\.name)) == Set(sources[k].tensors.map(\.name)))
            for t in sources[k].tensors {
                #expect(back.tensors.first { $0.name == t.name } == t)
                #expect(Array(back.bytes(named: t.name)!) == Array(sources[k].bytes(named: t.name)!), "step \(step) \(t.name)")
            }
            #expect(back.metadata["format"] == "pt" && back.metadata["loss"] != nil)
        }
        // By step, as .npz, and as a folder of .npy: the same bytes.
        #expect(try runProcess(psnap, ["export", run, "--step", "45", "-o", dir + "/c45.npz"]).status == 0)
        #expect(try runProcess(psnap, ["export", run, "--step", "45", "-o", dir + "/c45/", "--include", "blocks.1.*"]).status == 0)
        let again = dir + "/again.psnap"
        #expect(try convert([dir + "/c45.npz", "-o", again]).status == 0)
        let fromNpz = try PSnapReader(path: again)
        for t in sources[2].tensors {
            #expect(try fromNpz.tensorBytes(tensor: t.name, snapshot: 0) == Array(sources[2].bytes(named: t.name)!))
        }
        let npys = try FileManager.default.contentsOfDirectory(atPath: dir + "/c45").sorted()
        #expect(npys.count == 16 && npys.allSatisfy { $0.hasPrefix("blocks.1.") && $0.hasSuffix(".npy") })
        // The exported npz opens in NumPy.
        let py = try runProcess("/usr/bin/env", ["python3", "-c", "import numpy as np, sys; z=np.load(sys.argv[1]); print(len(z.files), z['lm_head.weight'].shape)", dir + "/c45.npz"])
        #expect(py.status == 0 && py.out.contains("37 (96, 80)"), "\(py.err)")
    }

    @Test func bf16AndMlpRunsRoundTripBitExact() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        for (folder, prefix, count) in [("tiny-gpt-bf16", "step-", 61), ("mlp-digits", "epoch-", 101)] {
            let run = dir + "/\(folder).psnap"
            let r = try convert([sharedData + "/" + folder, "-o", run, "--quiet"])
            #expect(r.status == 0, "\(r.err)")
            #expect(!r.err.contains("note:"))   // --quiet
            let sources = try (0..<count).map { try SafeTensorsFile(path: sharedData + "/\(folder)/\(prefix)" + String(format: "%03d", $0) + ".safetensors") }
            try expectRunMatches(run, snapshots: count) { k, name in sources[k].bytes(named: name)! }
            let last = dir + "/\(folder)-last.safetensors"
            #expect(try runProcess(psnap, ["export", run, "--snapshot=-1", "-o", last]).status == 0)
            let back = try SafeTensorsFile(path: last)
            for t in sources[count - 1].tensors { #expect(Array(back.bytes(named: t.name)!) == Array(sources[count - 1].bytes(named: t.name)!)) }
        }
        // mlp-digits' log has no steps: its entries are matched by epoch.
        let mlp = try PSnapReader(path: dir + "/mlp-digits.psnap")
        // The block size follows §4.1: 101 f32 snapshots → 512 (tiles of 206,848 bytes); 61 bf16 → 2048 (249,856 bytes).
        #expect(mlp.header.blockSize == 512)
        #expect(try PSnapReader(path: dir + "/tiny-gpt-bf16.psnap").header.blockSize == 2048)
        #expect(mlp.snapshots[10].epoch == 10 && mlp.snapshots[10].metadata?["test_accuracy"] != nil)
    }

    @Test func everyInputKindMixedInOneCall() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        // Four snapshots of one tensor w [2,3], each from another kind: safetensors, npy, npz (stored), raw.
        let values: [[Float]] = (0..<5).map { k in (0..<6).map { Float($0) * 0.5 + Float(k) * 0.01 } }
        try writeSafetensors(dir + "/step-0.safetensors", [("w", "F32", [2, 3], f32Bytes(values[0]))])
        try write(NpyHeader.encode(dtype: .f32, shape: [2, 3]) + f32Bytes(values[1]), dir + "/w_1.npy")
        // Column-major and big-endian arrays are transposed and swapped.
        var fortran: [Float] = []
        for c in 0..<3 { for r in 0..<2 { fortran.append(values[2][r * 3 + c]) } }
        try write(npy("{'descr': '>f4', 'fortran_order': True, 'shape': (2, 3), }", fortran.flatMap { withUnsafeBytes(of: $0.bitPattern.bigEndian) { Array($0) } }), dir + "/w_2.npy")
        try write(f32Bytes(values[3]), dir + "/w-3.raw")
        // A deflate-compressed npz written by NumPy itself.
        let py = try runProcess("/usr/bin/env", ["python3", "-c", "import numpy as np, sys; np.savez_compressed(sys.argv[1], w=np.arange(6, dtype='<f4').reshape(2, 3) * 0.5 + 0.04)", dir + "/snap-4.npz"])
        #expect(py.status == 0, "\(py.err)")
        let run = dir + "/mixed.psnap"
        let r = try convert([dir + "/step-0.safetensors", dir + "/w_1.npy", dir + "/w_2.npy", dir + "/w-3.raw", dir + "/snap-4.npz",
                             "--name", "w", "--shape", "2,3", "--dtype", "f32", "-o", run])
        #expect(r.status == 0, "\(r.err)")
        let reader = try PSnapReader(path: run)
        #expect(reader.snapshots.map(\.step) == [0, 1, 2, 3, 4])
        for k in 0..<5 {
            let want = k == 4 ? (0..<6).map { Float($0) * 0.5 + 0.04 } : values[k]
            #expect(try reader.tensorBytes(tensor: "w", snapshot: k) == f32Bytes(want), "snapshot \(k)")
        }
        // npz members are tensors; .npy names come from the stem without its step number.
        #expect(try convert([dir + "/w_1.npy", dir + "/w_2.npy", "-o", dir + "/n.psnap"]).status == 0)
        #expect(try PSnapReader(path: dir + "/n.psnap").tensors.map(\.name) == ["w"])
    }

    @Test func ordersStepsFiltersAndCasts() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        var rng = SeededRNG(seed: testSeed(0xC0)); let seed = rng.state
        let snaps = randomTrajectoryBits(&rng, dtype: .f32, params: 300, snapshots: 12)
        for (k, s) in snaps.enumerated() {
            try writeSafetensors(dir + "/step-\(k * 5).safetensors", [("a.weight", "F32", [300], s), ("a.bias", "F32", [3, 100], s),
                                                                                ("ids", "I64", [2], [UInt8](repeating: 0, count: 16))])
        }
        let run = dir + "/o.psnap"
        var r = try convert([dir, "-o", run, "--steps", "10:50:10", "--exclude", "*.bias"])
        #expect(r.status == 0, "seed \(seed): \(r.err)")
        #expect(r.err.contains("'ids'") && r.err.contains("I64"))   // skipped with a note
        var reader = try PSnapReader(path: run)
        #expect(reader.snapshots.map(\.step) == [10, 20, 30, 40] && reader.tensors.map(\.name) == ["a.weight"])
        #expect(try reader.tensorBytes(tensor: 0, snapshot: 1) == snaps[4], "seed \(seed)")
        // --order given keeps the list order; steps come from the names and must increase along it.
        r = try convert([dir + "/step-5.safetensors", dir + "/step-15.safetensors", "-o", dir + "/g.psnap", "--order", "given", "--include", "a.*"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try PSnapReader(path: dir + "/g.psnap").snapshots.map(\.step) == [5, 15])
        r = try convert([dir + "/step-15.safetensors", dir + "/step-5.safetensors", "-o", dir + "/h.psnap", "--order", "given"])
        #expect(r.status == 65 && r.err.contains("step-5.safetensors") && r.err.contains("strictly increase"), "\(r.err)")
        // --strict refuses the I64 tensor, naming file and tensor.
        r = try convert([dir + "/step-0.safetensors", "-o", dir + "/s.psnap", "--strict"])
        #expect(r.status == 65 && r.err.contains("'ids'") && r.err.contains("step-0.safetensors"))
        // --dtype bf16: lossy, said so, and rounded exactly as the reference rounding.
        r = try convert([dir + "/step-0.safetensors", dir + "/step-5.safetensors", "-o", dir + "/b.psnap", "--dtype", "bf16", "--include", "a.weight"])
        #expect(r.status == 0 && r.err.contains("LOSSY"), "\(r.err)")
        reader = try PSnapReader(path: dir + "/b.psnap")
        #expect(reader.tensors[0].dtype == .bf16)
        let got = try reader.tensorBytes(tensor: 0, snapshot: 1)
        for p in 0..<300 {
            let bits = UInt32(snaps[1][p * 4]) | UInt32(snaps[1][p * 4 + 1]) << 8 | UInt32(snaps[1][p * 4 + 2]) << 16 | UInt32(snaps[1][p * 4 + 3]) << 24
            let want = DTypeCast.bf16(fromF32Bits: bits)
            let have = UInt16(got[p * 2]) | UInt16(got[p * 2 + 1]) << 8
            let isNaN = bits & 0x7FFF_FFFF > 0x7F80_0000
            #expect(isNaN ? (have & 0x7FFF) > 0x7F80 : have == want, "seed \(seed): parameter \(p)")
        }
    }

    @Test func badInputsAreNamedWithFileAndTensor() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let ok = f32Bytes([1, 2, 3, 4])
        try writeSafetensors(dir + "/step-1.safetensors", [("w", "F32", [4], ok), ("b", "F32", [2], f32Bytes([0, 0]))])
        try writeSafetensors(dir + "/step-2.safetensors", [("w", "F32", [2, 2], ok), ("b", "F32", [2], f32Bytes([0, 0]))])
        try writeSafetensors(dir + "/step-3.safetensors", [("w", "F32", [4], ok)])
        try writeSafetensors(dir + "/step-4.safetensors", [("w", "F16", [4], [UInt8](repeating: 0, count: 8)), ("b", "F32", [2], f32Bytes([0, 0]))])
        try writeSafetensors(dir + "/step-5.safetensors", [("w", "F32", [4], Array(ok[0..<8]))],
                                      headerOverride: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#)
        try writeSafetensors(dir + "/other-1.safetensors", [("w", "F32", [4], ok), ("b", "F32", [2], f32Bytes([0, 0]))])
        let out = dir + "/e.psnap"
        func expectFailure(_ inputs: [String], _ code: Int32, _ needles: [String], _ extra: [String] = []) throws {
            let r = try convert(inputs.map { dir + "/" + $0 } + ["-o", out] + extra)
            #expect(r.status == code, "\(inputs): \(r.err)")
            for n in needles { #expect(r.err.contains(n), "\(inputs): '\(n)' not in: \(r.err)") }
            #expect(!FileManager.default.fileExists(atPath: out))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") || $0.contains("scratch") }
            #expect(leftovers.isEmpty, "\(leftovers)")
        }
        try expectFailure(["step-1.safetensors", "step-2.safetensors"], 65, ["step-2.safetensors", "'w'", "shape [2, 2]"])
        try expectFailure(["step-1.safetensors", "step-3.safetensors"], 65, ["step-3.safetensors", "'b'", "missing", "--allow-missing"])
        try writeSafetensors(dir + "/step-6.safetensors", [("w", "F32", [4], ok), ("b", "F32", [2], f32Bytes([0, 0]))])
        try expectFailure(["step-3.safetensors", "step-6.safetensors"], 65, ["step-6.safetensors", "'b'", "not in the first snapshot"], ["--order", "given"])
        try expectFailure(["step-1.safetensors", "step-4.safetensors"], 65, ["step-4.safetensors", "'w'", "dtype f16"])
        try expectFailure(["step-1.safetensors", "step-5.safetensors"], 65, ["step-5.safetensors", "truncated"])
        try expectFailure(["step-1.safetensors", "other-1.safetensors"], 65, ["step 1 appears twice", "other-1.safetensors"])
        try write(Array("not a checkpoint".utf8), dir + "/junk.bin")
        try expectFailure(["junk.bin"], 65, ["junk.bin", "not a safetensors"])
        try write(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }", ok), dir + "/short.npy")
        try expectFailure(["short.npy"], 65, ["short.npy", "truncated"])
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        try expectFailure(["empty"], 65, ["no inputs"])
        try expectFailure(["step-1.safetensors"], 65, ["no inputs", "--steps"], ["--steps", "100:200"])
        try expectFailure(["missing.safetensors"], 65, ["missing.safetensors", "no such file"])
        try expectFailure(["step-1.safetensors"], 64, ["--order"], ["--order", "random"])
        #expect(try runProcess(psnap, ["convert", "-o", out]).status == 64)
        // --allow-missing fills the absent tensor with NaN and says so in the snapshot's metadata.
        var r = try convert([dir + "/step-1.safetensors", dir + "/step-3.safetensors", "-o", out, "--allow-missing"])
        #expect(r.status == 0, "\(r.err)")
        let reader = try PSnapReader(path: out)
        #expect(reader.snapshots[1].metadata?["missing_tensors"] == .string("b"))
        #expect(try reader.trajectory(tensor: "b", index: 0)[1].isNaN)
        // An existing output is kept unless --force.
        let before = try Data(contentsOf: URL(fileURLWithPath: out))
        r = try convert([dir + "/step-3.safetensors", "-o", out])
        #expect(r.status == 1 && r.err.contains("already exists"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == before)
        r = try convert([dir + "/step-3.safetensors", "-o", out, "--force"])
        #expect(r.status == 0)
        #expect(try PSnapReader(path: out).tensors.count == 1)
        // export: unknown step is a usage error; existing output needs --force.
        #expect(try runProcess(psnap, ["export", out, "--step", "99", "-o", dir + "/x.safetensors"]).status == 64)
        #expect(try runProcess(psnap, ["export", out, "--snapshot", "0", "-o", dir + "/x.safetensors"]).status == 0)
        #expect(try runProcess(psnap, ["export", out, "--snapshot", "0", "-o", dir + "/x.safetensors"]).status == 1)
    }

    /// Hostile converter inputs: each header is refused with an error naming the file and what is wrong,
    /// by the parser and by `psnap convert` (exit 65, no output left behind).
    @Test func hostileSafetensorsHeadersAreRefusedByName() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let data16 = [UInt8](repeating: 0x3F, count: 16)
        func entry(_ n: String, _ dt: String, _ shape: String, _ b: Int, _ e: Int) -> String {
            "\"\(n)\":{\"dtype\":\"\(dt)\",\"shape\":\(shape),\"data_offsets\":[\(b),\(e)]}"
        }
        let cases: [(String, String, [String])] = [
            ("overlap", "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}", ["overlaps"]),
            ("out-of-range", "{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("b", "F32", "[4]", 16, 32) + "}", ["data ends at 32", "16 bytes"]),
            ("reversed", "{" + entry("a", "F32", "[0]", 12, 4) + "}", ["'a'", "data_offsets"]),
            ("negative", "{" + entry("a", "F32", "[4]", -16, 0) + "}", ["'a'", "data_offsets"]),
            ("absurd-shape", "{" + entry("a", "F32", "[4294967296,4294967296,4294967296]", 0, 16) + "}", ["'a'", "does not match"]),
            ("negative-dim", "{" + entry("a", "F32", "[-4]", 0, 16) + "}", ["'a'", "non-negative"]),
            ("fractional-dim", "{" + entry("a", "F32", "[2.5]", 0, 16) + "}", ["'a'", "non-negative"]),
            ("shape-mismatch", "{" + entry("a", "F32", "[3]", 0, 16) + "}", ["'a'", "does not match"]),
            ("duplicate-name", "{" + entry("w", "F32", "[2]", 0, 8) + "," + entry("w", "F32", "[2]", 8, 16) + "}", ["'w'", "more than once"]),
            ("unknown-dtype", "{" + entry("a", "I4", "[4]", 0, 16) + "}", ["'a'", "I4"]),
            ("not-json", "{\"a\": [1, 2", ["not JSON"]),
            ("not-object", "[1, 2, 3]", ["not a JSON object"]),
            ("missing-fields", "{\"a\": {\"dtype\": \"F32\"}}", ["'a'", "data_offsets"]),
        ]
        for (name, header, needles) in cases {
            let path = dir + "/\(name).safetensors"
            let h = Array(header.utf8)
            var bytes: [UInt8] = []
            withUnsafeBytes(of: UInt64(h.count).littleEndian) { bytes += $0 }
            try Data(bytes + h + data16).write(to: URL(fileURLWithPath: path))
            do {
                _ = try SafeTensorsFile(path: path)
                Issue.record("\(name): accepted")
            } catch let e as DumpError {
                for n in needles + [path] { #expect(e.description.contains(n), "\(name): '\(n)' not in \(e)") }
            }
            let out = dir + "/\(name).psnap"
            let r = try convert([path, "-o", out])
            #expect(r.status == 65, "\(name): exit \(r.status) \(r.err)")
            #expect(r.err.contains("\(name).safetensors"), "\(name): \(r.err)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
        // Header lengths that lie: longer than the file, and absurd.
        for (name, len, needle) in [("header-longer-than-file", UInt64(64), "only"), ("absurd-header-length", UInt64(1) << 62, "exceeds")] {
            let path = dir + "/\(name).safetensors"
            var bytes: [UInt8] = []
            withUnsafeBytes(of: len.littleEndian) { bytes += $0 }
            try Data(bytes + Array("{}".utf8)).write(to: URL(fileURLWithPath: path))
            #expect(throws: DumpError.self) { _ = try SafeTensorsFile(path: path) }
            let r = try convert([path, "-o", dir + "/x.psnap"])
            #expect(r.status == 65 && r.err.contains(needle) && r.err.contains(name), "\(name): \(r.err)")
        }
    }

    @Test func helpTeachesWithExamples() throws {
        let c = try runProcess(psnap, ["convert", "--help"])
        #expect(c.out.contains("Examples") && c.out.contains("--steps") && c.out.contains("LOSSY") && c.out.contains("Exit codes"))
        let e = try runProcess(psnap, ["export", "--help"])
        #expect(e.out.contains("Examples") && e.out.contains(".npz") && e.out.contains("Exit codes"))
    }

    @Test func killedConvertNeverLeavesAFileUnderTheFinalName() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        var rng = SeededRNG(seed: testSeed(0x5EED))
        let seed = rng.state
        // About 24 MiB of raw values: long enough in a debug build to be killed midway.
        var data = [UInt8](repeating: 0, count: 1 << 20)
        for k in 0..<24 {
            for i in stride(from: 0, to: data.count, by: 8) { withUnsafeBytes(of: rng.next()) { for j in 0..<8 { data[i + j] = $0[j] & 0x3F } } }
            try writeSafetensors(dir + "/step-\(k).safetensors", [("w", "F32", [data.count / 4], data)])
        }
        let out = dir + "/k.psnap"
        let old = dir + "/old.psnap"
        try writeSafetensors(dir + "/keep-0.safetensors", [("v", "F32", [1], f32Bytes([1]))])
        #expect(try convert([dir + "/keep-0.safetensors", "-o", old]).status == 0)
        let oldBytes = try Data(contentsOf: URL(fileURLWithPath: old))
        var kills = 0
        for attempt in 0..<4 {
            for target in [out, old] {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: psnap)
                p.arguments = ["convert"] + (0..<24).map { dir + "/step-\($0).safetensors" } + ["-o", target, "--force", "--quiet"]
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                try p.run()
                Thread.sleep(forTimeInterval: Double(rng.next() % 400_000 + 50_000) / 1_000_000)
                if p.isRunning { kill(p.processIdentifier, SIGKILL); kills += 1 }
                p.waitUntilExit()
                if p.terminationReason == .uncaughtSignal {
                    if target == out {
                        #expect(!FileManager.default.fileExists(atPath: out), "seed \(seed), attempt \(attempt): a killed convert left \(out)")
                    } else {
                        #expect(try Data(contentsOf: URL(fileURLWithPath: old)) == oldBytes, "seed \(seed): a killed convert --force changed the old file")
                    }
                } else if FileManager.default.fileExists(atPath: target) {
                    // Finished before the kill: the file is complete.
                    #expect(try PSnapReader(path: target).snapshotCount == 24)
                    if target == out { unlink(out) }
                }
            }
        }
        #expect(kills >= 4, "seed \(seed): only \(kills) converts were killed midway")
    }
}
