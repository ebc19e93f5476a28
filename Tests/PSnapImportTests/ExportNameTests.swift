// Export to a folder: every tensor gets its own file (names that sanitise alike, NUL, dots, slashes), decided before
// anything is written; names too long for a file and NUL in a .npz are refused up front.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite struct ExportNameTests {
    let psnap = productPath("psnap")

    @Test func fileNamesAreDistinctAndSafe() throws {
        let names = ["a/b", "a_b", "a%2Fb", ".hidden", "..", "n\u{0}ul", "e\u{301}", "\u{e9}", "fc1.weight"]
        let files = try ExportFileNames.fileNames(for: names, in: "out")
        #expect(Set(files.map { Array($0.utf8) }).count == names.count, "\(files)")   // bytes: the file system compares bytes
        for f in files {
            #expect(!f.utf8.contains(UInt8(ascii: "/")) && !f.utf8.contains(0) && !f.hasPrefix("."), "\(f)")
        }
        #expect(files[0] == "a%2Fb.npy" && files[1] == "a_b.npy" && files[2] == "a%252Fb.npy" && files[8] == "fc1.weight.npy")
        let long = String(repeating: "x", count: 300)
        #expect(throws: DumpError.self) { try ExportFileNames.fileNames(for: ["ok", long], in: "out") }
    }

    @Test func aFolderExportWritesOneFilePerTensorOrNothing() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/run.psnap"
        let tensors = [TensorInfo(name: "a/b", dtype: .f32, shape: [2]), TensorInfo(name: "a_b", dtype: .f32, shape: [2]),
                       TensorInfo(name: "n\u{0}ul", dtype: .f32, shape: [1])]
        let w = try SnapshotWriter.create(path: run, tensors: tensors)
        let data: [[Float]] = [[1, 2], [3, 4], [5]]
        try SnapshotWriter.withBuffers(data.map { v in v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }) {
            try w.append(SnapshotInfo(step: 0), buffers: $0)
        }
        try w.close()
        let out = dir + "/export"
        let r = try runProcess(psnap, ["export", run, "--snapshot", "0", "-o", out + "/"])
        #expect(r.status == 0, "\(r.err)")
        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(files == ["a%2Fb.npy", "a_b.npy", "n%00ul.npy"], "\(files)")
        // Each file holds its own tensor's values (the last 4·n bytes after the npy header).
        for (f, v) in zip(["a%2Fb.npy", "a_b.npy", "n%00ul.npy"], data) {
            let b = try Data(contentsOf: URL(fileURLWithPath: out + "/" + f))
            let tail = b.suffix(4 * v.count)
            let got = stride(from: 0, to: tail.count, by: 4).map { i in Float(bitPattern: tail.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i, as: UInt32.self) }) }
            #expect(got == v, "\(f)")
        }
        // A NUL in a name cannot be a .npz member: refused, nothing written.
        let npz = try runProcess(psnap, ["export", run, "--snapshot", "0", "-o", dir + "/x.npz"])
        #expect(npz.status == 65 && npz.err.contains("NUL"), "\(npz.err)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.npz"))
    }
}
