// Proof that the spec is complete: tools/psnap_reader.py, written from spec/FORMAT.md alone (Python, numpy +
// zstandard), reads every golden fixture to the same bytes as the Swift reader.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite struct IndependentReaderTests {
    static let fixtures = ["dtypes.psnap", "segments.psnap", "chains.psnap", "linpred.psnap", "lead.psnap", "anchored.psnap", "lenrans.psnap", "compacted.psnap", "torn.psnap"]

    @Test(arguments: fixtures)
    func pythonReaderAgreesWithSwiftReader(name: String) throws {
        let path = GoldenFixtures.dir + "/" + name
        let py = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/psnap_reader.py", path, "--dump"])
        try #require(py.status == 0, "python reader failed on \(name): \(py.err) (tools/setup-deps installs numpy + zstandard)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(py.out.utf8)) as? [String: Any])
        let r = try PSnapReader(path: path)
        #expect(j["snapshotCount"] as? Int == r.snapshotCount)
        #expect(j["ignoredBytes"] as? Int == Int(r.ignoredBytes))
        #expect(j["blockSize"] as? Int == Int(r.header.blockSize))
        let tensors = try #require(j["tensors"] as? [[String: Any]])
        #expect(tensors.map { $0["name"] as? String } == r.tensors.map(\.name))
        for (t, info) in r.tensors.enumerated() {
            let hex = try #require(tensors[t]["snapshots"] as? [String])
            #expect(hex.count == r.snapshotCount)
            for k in 0..<r.snapshotCount {
                let swift = try r.tensorBytes(tensor: t, snapshot: k).map { String(format: "%02x", $0) }.joined()
                #expect(hex[k] == swift, "\(name): tensor \(info.name) snapshot \(k)")
            }
        }
    }

    @Test func pythonReaderRefusesADamagedFile() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        var d = try Data(contentsOf: URL(fileURLWithPath: GoldenFixtures.dir + "/dtypes.psnap"))
        let r = try PSnapReader(path: GoldenFixtures.dir + "/dtypes.psnap")
        d[Int(r.tiles[0].offset) + 3] ^= 0x10
        try d.write(to: URL(fileURLWithPath: dir + "/bad.psnap"))
        let py = try runProcess("/usr/bin/env", ["python3", repoRoot + "/tools/psnap_reader.py", dir + "/bad.psnap", "--dump"])
        #expect(py.status == 65)
        #expect(py.err.contains("error:"))
    }
}
