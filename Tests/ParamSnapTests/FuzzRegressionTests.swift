// Fuzz regressions: every file in fixtures/fuzz-regressions (inputs that crashed a fuzzer once, plus hand-made
// nasty files), the golden fixtures, and nasty variants made here (truncations, forged index fields, hostile
// metadata) go through the fuzz-reader's read-everything routine. A thrown error is fine; a crash is the bug.
// The routines are the fuzz targets' own (Sources/ParamSnapFuzzSupport), so the replay is exactly what fuzzed.
import Foundation
import Glibc
import Testing
import PSnapTestSupport
@_spi(Internals) import ParamSnap
import PSnapImport
import ParamSnapFuzzSupport

@Suite struct FuzzRegressionTests {
    static let regressions = repoRoot + "/fixtures/fuzz-regressions"
    static let golden = repoRoot + "/fixtures/golden"

    static func files(_ dir: String, suffix: String? = nil) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { n in
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: dir + "/" + n, isDirectory: &isDir)
            return !isDir.boolValue && !n.hasPrefix(".") && !n.hasSuffix(".md") && (suffix.map { n.hasSuffix($0) } ?? true)
        }.sorted().map { dir + "/" + $0 }
    }

    /// .psnap inputs at the top of the folder; dump-format inputs (fuzz-safetensors) in dumps/.
    static var regressionFiles: [String] { files(regressions) }
    static var dumpRegressionFiles: [String] { files(regressions + "/dumps") }
    static var goldenFiles: [String] { files(golden, suffix: ".psnap") }

    @Test func regressionFolderIsNotEmpty() {
        #expect(!Self.regressionFiles.isEmpty, "fixtures/fuzz-regressions holds the fuzzers' crash inputs")
    }

    @Test(arguments: regressionFiles + goldenFiles)
    func replay(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let dir = tempDir("fuzzreplay")
        defer { cleanup(dir) }
        ReadEverything.runAllVariants(bytes: bytes, path: dir + "/in.psnap", extras: true)
    }

    /// Every regression input through the dump parsers too (the fuzz-safetensors routine).
    @Test(arguments: dumpRegressionFiles + regressionFiles)
    func replayDumps(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let dir = tempDir("fuzzdumps")
        defer { cleanup(dir) }
        ReadEverything.dumps(bytes: bytes, path: dir + "/in.safetensors")
    }

    /// §7: metadata with only the required keys ("format" absent) opens and reads back.
    @Test func minimalMetadataOpens() throws {
        let r = try PSnapReader(path: Self.regressions + "/nasty-minimal-metadata.psnap")
        #expect(r.tensors.map(\.name) == ["w"])
        #expect(try r.trajectory(tensor: "w", index: 1) == [2])
    }

    /// `--steps` at the ends of Int64 (crashed fuzz-safetensors: overflow in parsing and in `contains`).
    @Test func stepSelectionAtInt64Limits() throws {
        let top = try #require(StepSelection(parsing: "9223372036854775807"))
        #expect(top.contains(.max, first: 0) && !top.contains(.max - 1, first: 0))
        let all = try #require(StepSelection(parsing: "-9223372036854775808:"))
        #expect(all.contains(.max, first: .min) && all.contains(0, first: 0))
        let strided = try #require(StepSelection(parsing: "::2"))
        #expect(strided.contains(0, first: .min) && !strided.contains(.max, first: .min))
    }

    /// Every golden file cut at awkward lengths, as is and with its checksums recomputed.
    @Test(arguments: goldenFiles)
    func truncations(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let dir = tempDir("fuzztrunc")
        defer { cleanup(dir) }
        let n = bytes.count
        for cut in Set([0, 1, 8, 63, 64, 65, 127, 191, 192, 193, n / 2, n - 129, n - 128, n - 127, n - 64, n - 1])
        where cut >= 0 && cut < n {
            ReadEverything.runAllVariants(bytes: Array(bytes[0..<cut]), path: dir + "/in.psnap")
        }
    }

    /// Each field of the first, a middle and the last index entry forged to extreme values (checksums fixed up, so
    /// the reader's own checks must catch them).
    @Test(arguments: goldenFiles)
    func forgedIndexEntries(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let dir = tempDir("fuzzindex")
        defer { cleanup(dir) }
        let f = bytes.count - 128
        // Only files whose last 128 bytes are the newest footer (not torn.psnap).
        guard Array(bytes[f..<(f + 8)]) == Spec.footerMagic else { return }
        let io = Int(ReadEverything.u64(bytes, f + 32)), tiles = Int(ReadEverything.u64(bytes, f + 88))
        guard tiles > 0 else { return }
        let size = UInt64(bytes.count)
        let values: [UInt64] = [0, 1, 63, 64, size - 1, size, 1 << 31, (1 << 31) - 1, 1 << 32, 1 << 62, 1 << 63, .max]
        for e in Set([0, tiles / 2, tiles - 1]) {
            for field in stride(from: 0, to: 56, by: 8) {
                for v in values {
                    var b = bytes
                    ReadEverything.put(&b, io + e * 64 + field, v)
                    ReadEverything.runAllVariants(bytes: b, path: dir + "/in.psnap")
                }
            }
            // Two live tiles sharing their stored bytes (the index rules do not forbid it).
            if tiles > 1 {
                var b = bytes
                let other = e == 0 ? 1 : 0
                for o in [32, 40] { ReadEverything.put(&b, io + e * 64 + o, ReadEverything.u64(bytes, io + other * 64 + o)) }
                ReadEverything.runAllVariants(bytes: b, path: dir + "/in.psnap")
            }
        }
    }

    /// The newest commit's metadata replaced by hostile JSON (footer lengths and checksums fixed up).
    @Test func hostileMetadata() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.golden + "/segments.psnap")))
        let dir = tempDir("fuzzmeta")
        defer { cleanup(dir) }
        let f = bytes.count - 128
        let mo = Int(ReadEverything.u64(bytes, f + 56))
        let snaps = #"[{"step":0,"time":0},{"step":1,"time":1}]"#
        let jsons = [
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[4611686018427387904,4]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[9223372036854775807]},{"name":"b","dtype":"f32","shape":[1]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[-1]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[16777216,16777216]}],"snapshots":\#(snaps)}"#,
            #"{"tensors":[{"name":"","dtype":"f32","shape":[]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[]},{"name":"a","dtype":"f32","shape":[]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"i8","shape":[]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}],"snapshots":[]}"#,
            #"{"tensors":[],"snapshots":\#(snaps)}"#,
            #"{"tensors":[{"name":"a","dtype":"f64","shape":[0]}],"snapshots":\#(snaps)}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[3]}],"snapshots":[{"step":1e300,"time":0}]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[3]}],"snapshots":[{"step":0,"time":1e999}]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[3]}],"snapshots":[{"step":0,"time":0,"metadata":{"x":[1]}}]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[3]}],"snapshots":[{"step":0,"time":0}],"tensors":[]}"#,
            "[", "", "null", "{}", String(repeating: "[", count: 10000),
        ]
        for j in jsons {
            for (sc, pc) in [(UInt64(0), UInt64(0)), (2, 0), (2, 1 << 62), (0, UInt64.max)] {
                var b = Array(bytes[0..<mo]) + Array(j.utf8) + Array(bytes[f...])
                let nf = b.count - 128
                ReadEverything.put(&b, nf + 64, UInt64(j.utf8.count))
                ReadEverything.put(&b, nf + 80, sc)
                ReadEverything.put(&b, nf + 96, pc)
                ReadEverything.runAllVariants(bytes: b, path: dir + "/in.psnap")
            }
        }
    }
}
