// Tensor names are byte strings: "e\u{301}" and "\u{e9}" (canonically equivalent, distinct bytes) are two tensors in
// the format, the dump parsers, the writer, the readers (Swift and Python) and the CLI; and junk in an input
// folder (dangling symlinks, symlink loops, FIFOs) is skipped with a note.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

/// Two names Swift's `String ==` calls equal: decomposed and precomposed e-acute.
let decomposed = "e\u{301}", precomposed = "\u{e9}"

private func f32(_ v: [Float]) -> [UInt8] { v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } } }

/// Whether `text` holds the bytes of `part` (`String.contains` matches canonically equivalent text).
private func holdsBytes(_ text: String, _ part: String) -> Bool {
    let h = Array(text.utf8), n = Array(part.utf8)
    return n.isEmpty || (0...max(-1, h.count - n.count)).contains { Array(h[$0..<($0 + n.count)]) == n }
}

@Suite struct NameBytesTests {
    let psnap = productPath("psnap")

    @Test func formatWriterAndReaderKeepCanonicallyEquivalentNamesApart() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let a = TensorInfo(name: decomposed, dtype: .f32, shape: [2]), b = TensorInfo(name: precomposed, dtype: .f32, shape: [2])
        #expect(a != b)
        try FileMetadata(tensors: [a, b]).validate()
        #expect(throws: FormatError.self) { try FileMetadata(tensors: [a, a]).validate() }
        #expect(SnapshotWriter.firstDifference(file: [a, b], given: [b, a]) == nil)
        #expect(SnapshotWriter.firstDifference(file: [a], given: [b]) != nil)
        let path = dir + "/n.psnap"
        let w = try SnapshotWriter.create(path: path, tensors: [a, b])
        try SnapshotWriter.withBuffers([f32([1, 2]), f32([3, 4])]) { try w.append(SnapshotInfo(step: 0), buffers: $0) }
        try w.close()
        let r = try PSnapReader(path: path)
        #expect(r.tensors.map { Array($0.name.utf8) } == [Array(decomposed.utf8), Array(precomposed.utf8)])
        #expect(try r.tensorIndex(named: decomposed) == 0 && r.tensorIndex(named: precomposed) == 1)
        #expect(try r.tensorBytes(tensor: precomposed, snapshot: 0) == f32([3, 4]))
        #expect(throws: ReaderError.self) { try r.tensorIndex(named: "e") }
        // Reopening for append compares the layout by bytes too.
        let again = try SnapshotWriter.open(path: path, expecting: [a, b])
        try again.close()
        #expect(throws: IOError.self) { try SnapshotWriter.open(path: path, expecting: [a, a]) }
    }

    @Test func writerAppendByNameKeysByBytes() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let w = try SnapshotWriter.create(path: dir + "/k.psnap", tensors: [TensorInfo(name: decomposed, dtype: .f32, shape: [1]),
                                                                          TensorInfo(name: precomposed, dtype: .f32, shape: [1])])
        try w.append(SnapshotInfo(step: 0), tensors: [TensorName(decomposed): f32([1]), TensorName(precomposed): f32([2])])
        #expect(throws: IOError.self) { try w.append(SnapshotInfo(step: 1), tensors: [TensorName(decomposed): f32([1])]) }
        try w.close()
        #expect(try PSnapReader(path: dir + "/k.psnap").tensorBytes(tensor: decomposed, snapshot: 0) == f32([1]))
        #expect(TensorName(decomposed) != TensorName(precomposed) && Set([TensorName(decomposed), TensorName(precomposed)]).count == 2)
    }

    @Test func dumpParsersKeepNameBytes() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        // A safetensors header with both names (one written escaped): two tensors, each with its own data.
        let path = dir + "/step-0.safetensors"
        try writeSafetensors(path, [("e\\u0301", "F32", [1], f32([1])), (precomposed, "F32", [1], f32([2]))])
        let st = try SafeTensorsFile(path: path)
        #expect(st.tensors.count == 2)
        #expect(st.bytes(named: decomposed).map(Array.init) == f32([1]) && st.bytes(named: precomposed).map(Array.init) == f32([2]))
        // The same name twice, once escaped, is one name written twice.
        let dup = dir + "/dup.safetensors"
        try writeSafetensors(dup, [("e\\u0301", "F32", [1], f32([1])), (decomposed, "F32", [1], f32([2]))])
        #expect(throws: DumpError.self) { try SafeTensorsFile(path: dup) }
        // A shard index maps both names.
        let index = Data(#"{"metadata": {}, "weight_map": {"e\u0301": "a.safetensors", "\u00e9": "b.safetensors"}}"#.utf8)
        let map = try HFShardIndex.parse(index, path: "i.json")
        #expect(map.count == 2 && Set(map.values) == ["a.safetensors", "b.safetensors"])
        #expect(throws: DumpError.self) { try HFShardIndex.parse(Data(#"{"weight_map": {"w": "a", "\u0077": "b"}}"#.utf8), path: "i.json") }
        // Conversion: both tensors in one snapshot are not "twice in" it.
        let d = DumpDiscovery(options: ConvertOptions())
        try d.add(path: path)
        let c = try DumpConversion(d.snapshots, options: ConvertOptions())
        #expect(c.tensors.map { Array($0.name.utf8) } == [Array(decomposed.utf8), Array(precomposed.utf8)])
    }

    @Test func exactJSONParserIsStrictAndBounded() throws {
        func parse(_ s: String) throws -> ExactJSON { try Array(s.utf8).withUnsafeBytes { try ExactJSON.parse($0) } }
        let v = try parse(#" {"a": [1, -2.5e3, true, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"], "a": {}} "#)
        #expect(v.members?.count == 2 && v["a"]?.string == nil)
        #expect(try parse(#"["\ud83d\ude00"]"#) == .array([.string("\u{1F600}")]))
        #expect(try parse("12").int64 == 12 && parse("2.0").int64 == 2 && parse("2.5").int64 == nil && parse("1e30").int64 == nil)
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "\"\\ud800\"", "\"\\x\"", "\"a\nb\"", "tru", "{} x", "[1] [2]"] {
            #expect(throws: ExactJSON.Failure.self, "\(bad)") { try parse(bad) }
        }
        #expect(throws: ExactJSON.Failure.self) { try [UInt8]([0x22, 0xC3, 0x28, 0x22]).withUnsafeBytes { try ExactJSON.parse($0) } }   // bad UTF-8
        #expect(throws: ExactJSON.Failure.self) { try parse(String(repeating: "[", count: 1_000_000)) }
        #expect(throws: Never.self) { try parse(String(repeating: "[", count: 60) + String(repeating: "]", count: 60)) }
    }

    @Test func cliConvertsLooksUpExportsAndGlobsNamesByBytes() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        try writeSafetensors(dir + "/step-0.safetensors", [(decomposed, "F32", [2], f32([1, 2])), (precomposed, "F32", [2], f32([3, 4]))])
        // An npz written by NumPy with both names, and a sharded checkpoint whose index maps both.
        let py = try runProcess("/usr/bin/env", ["python3", "-c", "import numpy as np, sys; np.savez(sys.argv[1], **{'e\\u0301': np.array([5, 6], '<f4'), '\\u00e9': np.array([7, 8], '<f4')})", dir + "/step-1.npz"])
        #expect(py.status == 0, "\(py.err)")
        let ck = dir + "/checkpoint-2"
        try FileManager.default.createDirectory(atPath: ck, withIntermediateDirectories: true)
        try writeSafetensors(ck + "/model-00001-of-00002.safetensors", [(decomposed, "F32", [2], f32([9, 10]))])
        try writeSafetensors(ck + "/model-00002-of-00002.safetensors", [(precomposed, "F32", [2], f32([11, 12]))])
        try Data(#"{"weight_map": {"e\u0301": "model-00001-of-00002.safetensors", "\u00e9": "model-00002-of-00002.safetensors"}}"#.utf8)
            .write(to: URL(fileURLWithPath: ck + "/model.safetensors.index.json"))
        let run = dir + "/n.psnap"
        let c = try runProcess(psnap, ["convert", dir + "/step-0.safetensors", dir + "/step-1.npz", ck, "-o", run])
        #expect(c.status == 0, "\(c.err)")
        let r = try PSnapReader(path: run)
        #expect(r.tensors.count == 2 && r.snapshotCount == 3)
        #expect(try r.tensorBytes(tensor: precomposed, snapshot: 2) == f32([11, 12]) && r.tensorBytes(tensor: decomposed, snapshot: 1) == f32([5, 6]))
        // Lookups by name on the command line.
        let t1 = try runProcess(psnap, ["trajectory", run, decomposed, "1"])
        let t2 = try runProcess(psnap, ["trajectory", run, precomposed, "1"])
        #expect(t1.status == 0 && t1.out.contains("2,2,10") && t2.status == 0 && t2.out.contains("2,2,12"), "\(t1.out)\(t1.err)\(t2.out)\(t2.err)")
        // `?` is one character in every --include: it matches the precomposed name only.
        let m = try runProcess(psnap, ["moments", run, "--include", "?", "--csv"])
        #expect(m.status == 0 && holdsBytes(m.out, precomposed + ",") && !holdsBytes(m.out, decomposed), "\(m.err)")
        let x = try runProcess(psnap, ["convert", dir + "/step-0.safetensors", "--include", "?", "-o", dir + "/one.psnap"])
        #expect(x.status == 0, "\(x.err)")
        #expect(try PSnapReader(path: dir + "/one.psnap").tensors.map(\.name.utf8.count) == [2])
        // Exports keep both: a safetensors, an npz NumPy reads, a folder of .npy files.
        #expect(try runProcess(psnap, ["export", run, "--snapshot", "2", "-o", dir + "/back.safetensors"]).status == 0)
        let back = try SafeTensorsFile(path: dir + "/back.safetensors")
        #expect(back.bytes(named: decomposed).map(Array.init) == f32([9, 10]) && back.bytes(named: precomposed).map(Array.init) == f32([11, 12]))
        #expect(try runProcess(psnap, ["export", run, "--snapshot", "2", "-o", dir + "/back.npz"]).status == 0)
        let np = try runProcess("/usr/bin/env", ["python3", "-c", "import numpy as np, sys; z = np.load(sys.argv[1]); print(sorted((k.encode().hex(), z[k].tolist()) for k in z.files))", dir + "/back.npz"])
        #expect(np.out.contains("('65cc81', [9.0, 10.0])") && np.out.contains("('c3a9', [11.0, 12.0])"), "\(np.out)\(np.err)")
        #expect(try runProcess(psnap, ["export", run, "--snapshot", "2", "-o", dir + "/npys/"]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/npys").count == 2)
        // The independent Python reader agrees.
        let pr = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/psnap_reader.py", run, "--dump"])
        #expect(pr.status == 0, "\(pr.err)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(pr.out.utf8)) as? [String: Any])
        let names = try #require((j["tensors"] as? [[String: Any]])?.compactMap { $0["name"] as? String })
        #expect(names.map { Array($0.utf8) } == [Array(decomposed.utf8), Array(precomposed.utf8)])
    }

    @Test func junkInAFolderIsSkippedWithANote() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let runs = dir + "/runs"
        try FileManager.default.createDirectory(atPath: runs + "/sub", withIntermediateDirectories: true)
        for k in 0..<2 { try writeSafetensors(runs + "/step-\(k).safetensors", [("w", "F32", [2], f32([Float(k), 1]))]) }
        try writeSafetensors(runs + "/sub/step-2.safetensors", [("w", "F32", [2], f32([2, 1]))])
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: runs + "/dangling.safetensors", withDestinationPath: "gone.safetensors")
        try fm.createSymbolicLink(atPath: runs + "/loop-a", withDestinationPath: "loop-b")
        try fm.createSymbolicLink(atPath: runs + "/loop-b", withDestinationPath: "loop-a")
        try fm.createSymbolicLink(atPath: runs + "/self", withDestinationPath: "self")
        try fm.createSymbolicLink(atPath: runs + "/sub/up", withDestinationPath: "..")      // a loop through a folder
        let run = dir + "/j.psnap"
        let c = try runProcess(psnap, ["convert", runs, "-o", run])
        #expect(c.status == 0, "\(c.err)")
        #expect(try PSnapReader(path: run).snapshots.map(\.step) == [0, 1, 2])
        for needle in ["dangling.safetensors", "loop-a", "loop-b", "self", "sub/up"] {
            #expect(c.err.contains("note: skipped \(runs)/\(needle)"), "\(needle) not noted: \(c.err)")
        }
        let a = try runProcess(psnap, ["append", dir + "/a.psnap", runs])
        #expect(a.status == 0 && a.err.contains("dangling"), "\(a.err)")
        #expect(try PSnapReader(path: dir + "/a.psnap").snapshots.map(\.step) == [0, 1, 2])
        // Named explicitly, a dangling link is an error naming it.
        let e = try runProcess(psnap, ["convert", runs + "/dangling.safetensors", "-o", dir + "/e.psnap"])
        #expect(e.status == 65 && e.err.contains("dangling.safetensors"), "\(e.err)")
    }

    @Test func aFIFOInAFolderIsSkippedNotOpened() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        try writeSafetensors(dir + "/step-0.safetensors", [("w", "F32", [1], f32([1]))])
        #expect(mkfifo(dir + "/pipe", 0o600) == 0)   // opening it for reading would block until a writer comes
        let c = try runProcess(psnap, ["convert", dir, "-o", dir + "/f.psnap"])
        #expect(c.status == 0 && c.err.contains("note: skipped \(dir)/pipe"), "\(c.err)")
        let e = try runProcess(psnap, ["convert", dir + "/pipe", "-o", dir + "/g.psnap"])
        #expect(e.status == 65 && e.err.contains("pipe") && e.err.contains("not a regular file"), "\(e.err)")
    }
}
