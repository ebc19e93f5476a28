// Golden fixtures: tiny files written here must equal fixtures/golden byte for byte, and `snapinfo --json` of each
// must equal the committed JSON. PSNAP_REGENERATE_FIXTURES=1 rewrites them (after a deliberate format change).
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite(.serialized) struct GoldenTests {
    @Test(arguments: GoldenFixtures.all.map(\.0))
    func fixtureBytesAreStable(name: String) throws {
        let tmp = tempDir(); defer { cleanup(tmp) }
        let built = tmp + "/" + name
        try GoldenFixtures.all.first { $0.0 == name }!.1(built)
        let golden = GoldenFixtures.dir + "/" + name
        if GoldenFixtures.regenerate {
            try FileManager.default.createDirectory(atPath: GoldenFixtures.dir, withIntermediateDirectories: true)
            _ = try? FileManager.default.removeItem(atPath: golden)
            try FileManager.default.copyItem(atPath: built, toPath: golden)
            let json = try runProcess(productPath("snapinfo"), [golden, "--json", "--tiles", "--snapshots"])
            try json.out.write(toFile: golden + ".json", atomically: true, encoding: .utf8)
        }
        let a = try Data(contentsOf: URL(fileURLWithPath: built))
        let b = try Data(contentsOf: URL(fileURLWithPath: golden))
        #expect(a == b, "\(name): written bytes differ from fixtures/golden/\(name) (a format change must regenerate fixtures and bump the version)")
        let json = try runProcess(productPath("snapinfo"), [golden, "--json", "--tiles", "--snapshots"])
        #expect(json.status == 0, "\(json.err)")
        #expect(json.out == (try String(contentsOfFile: golden + ".json", encoding: .utf8)), "\(name): snapinfo --json differs from \(name).json")
    }

    @Test func fixturesReadBackTheirValues() throws {
        let r = try PSnapReader(path: GoldenFixtures.dir + "/dtypes.psnap")
        #expect(r.segments == [0..<2, 2..<4, 4..<5])
        for k in 0..<5 {
            let want = GoldenFixtures.snapshot(k, tensors: GoldenFixtures.dtypeTensors)
            for t in 0..<GoldenFixtures.dtypeTensors.count {
                #expect(try r.tensorBytes(tensor: t, snapshot: k) == want[t])
            }
        }
        let s = try PSnapReader(path: GoldenFixtures.dir + "/segments.psnap")
        #expect(s.segments == [0..<4, 4..<5, 5..<6])
        #expect(s.deadBytes > 0)
        let torn = try PSnapReader(path: GoldenFixtures.dir + "/torn.psnap")
        #expect(torn.snapshotCount == 5)
        #expect(torn.ignoredBytes > 0)
        let c = try PSnapReader(path: GoldenFixtures.dir + "/compacted.psnap")
        #expect(c.segments == [0..<5])
        for k in 0..<5 {
            let want = GoldenFixtures.snapshot(k, tensors: GoldenFixtures.dtypeTensors)
            for t in 0..<GoldenFixtures.dtypeTensors.count { #expect(try c.tensorBytes(tensor: t, snapshot: k) == want[t]) }
        }
    }
}
