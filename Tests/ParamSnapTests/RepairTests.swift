// `psnap repair`: a torn tail is dropped, damaged tiles fail by name or become NaN with --skip-damaged
// (listed in the output's attributes), and every intact value is copied bit-exact.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

@Suite struct RepairTests {
    let psnap = productPath("psnap")

    @Test func tornTailIsDroppedAndEverythingElseKept() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let r = try runProcess(psnap, ["repair", GoldenFixtures.dir + "/torn.psnap", "-o", dir + "/fixed.psnap"])
        #expect(r.status == 0, "\(r.err)")
        let fixed = try PSnapReader(path: dir + "/fixed.psnap")
        #expect(fixed.ignoredBytes == 0)
        #expect(fixed.segments == [0..<5])
        #expect(fixed.metadata.attributes?["repair.droppedTailBytes"] != nil)
        for k in 0..<5 {
            let want = GoldenFixtures.snapshot(k, tensors: GoldenFixtures.dtypeTensors)
            for t in 0..<GoldenFixtures.dtypeTensors.count { #expect(try fixed.tensorBytes(tensor: t, snapshot: k) == want[t]) }
        }
        #expect(try runProcess(psnap, ["verify", dir + "/fixed.psnap"]).status == 0)
    }

    @Test func damagedTilesFailByNameOrBecomeListedNaN() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/bad.psnap"
        var d = try Data(contentsOf: URL(fileURLWithPath: GoldenFixtures.dir + "/dtypes.psnap"))
        let r0 = try PSnapReader(path: GoldenFixtures.dir + "/dtypes.psnap")
        let victim = r0.tiles.firstIndex { $0.tensor == 0 && $0.firstSnapshot == 0 }!
        d[Int(r0.tiles[victim].offset) + 2] ^= 0x40
        try d.write(to: URL(fileURLWithPath: path))
        // Without the flag: refused, naming the tile, and no output left behind.
        let refused = try runProcess(psnap, ["repair", path, "-o", dir + "/a.psnap"])
        #expect(refused.status == 65)
        #expect(refused.err.contains("tile \(victim)") && refused.err.contains("layer.f32"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/a.psnap"))
        // With it: the damaged tile's values are NaN and listed; every other value is intact.
        let ok = try runProcess(psnap, ["repair", path, "-o", dir + "/b.psnap", "--skip-damaged"])
        #expect(ok.status == 0, "\(ok.err)")
        let fixed = try PSnapReader(path: dir + "/b.psnap")
        #expect(fixed.metadata.attributes?["repair.damaged"]?.description.contains("layer.f32") == true)
        let x = r0.tiles[victim]
        let B = Int(r0.header.blockSize)
        for k in 0..<5 {
            let want = GoldenFixtures.snapshot(k, tensors: GoldenFixtures.dtypeTensors)
            for t in 0..<GoldenFixtures.dtypeTensors.count {
                let got = try fixed.tensorBytes(tensor: t, snapshot: k)
                let e = GoldenFixtures.dtypeTensors[t].dtype.size
                for p in 0..<(got.count / e) {
                    let inVictim = t == 0 && p / B == Int(x.block) && k >= Int(x.firstSnapshot) && k < Int(x.firstSnapshot + x.snapshotCount)
                    let g = Array(got[(p * e)..<((p + 1) * e)])
                    if inVictim {
                        #expect(g == [0x00, 0x00, 0xC0, 0x7F], "parameter \(p) snapshot \(k) should be the canonical NaN")
                    } else {
                        #expect(g == Array(want[t][(p * e)..<((p + 1) * e)]), "tensor \(t) parameter \(p) snapshot \(k)")
                    }
                }
            }
        }
    }
}
