// Corruption sweeps (spec §8.1, §12): truncate a fixture at every byte and flip every byte; each case must read
// correct data or throw a specific error — never a crash, never a wrong value.
import Foundation
import Testing
@testable import ParamSnap

@Suite struct CorruptionTests {
    static let fixture = GoldenFixtures.dir + "/dtypes.psnap"
    static let truth = (0..<5).map { GoldenFixtures.snapshot($0, tensors: GoldenFixtures.dtypeTensors) }

    /// Opens `path` and reads everything it claims; returns nil if it threw a library error, else snapshots read.
    static func readAll(_ path: String) -> (snapshots: Int, error: Error?) {
        do {
            let r = try PSnapReader(path: path)
            for k in 0..<r.snapshotCount {
                for t in 0..<r.tensors.count {
                    let got = try r.tensorBytes(tensor: t, snapshot: k)
                    if got != truth[k][t] { return (-1, nil) }   // a wrong value: the one unacceptable outcome
                }
            }
            for t in 0..<r.tensors.count where r.layout.parameterCounts[t] > 0 {
                _ = try r.trajectory(tensor: t, index: r.layout.parameterCounts[t] - 1)
            }
            return (r.snapshotCount, nil)
        } catch {
            return (0, error)
        }
    }

    static func isLibraryError(_ e: Error) -> Bool { e is FormatError || e is IOError }

    @Test func truncateAtEveryByte() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.fixture))
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/t.psnap"
        var opened = 0, refused = 0
        for n in 0..<data.count {
            try data.prefix(n).write(to: URL(fileURLWithPath: path))
            let (snaps, err) = Self.readAll(path)
            #expect(snaps >= 0, "truncated at \(n): a wrong value was returned")
            if let err {
                #expect(Self.isLibraryError(err), "truncated at \(n): unexpected error \(err)")
                refused += 1
            } else { opened += 1 }
        }
        // Every prefix that still holds a complete commit opens (§8.1 backward search), the rest are refused.
        #expect(opened > 0 && refused > 0)
    }

    @Test func flipEveryByte() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.fixture))
        let r = try PSnapReader(path: Self.fixture)
        let tileBytes = Set(r.tiles.flatMap { Int($0.offset)..<Int($0.offset + $0.storedLength) })
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/f.psnap"
        var caughtInTiles = 0
        for i in 0..<data.count {
            var d = data
            d[i] ^= 0x5A
            try d.write(to: URL(fileURLWithPath: path))
            let (snaps, err) = Self.readAll(path)
            #expect(snaps >= 0, "flip at \(i): a wrong value was returned")
            if let err { #expect(Self.isLibraryError(err), "flip at \(i): unexpected error \(err)") }
            if tileBytes.contains(i) {
                // A flipped live tile byte is always caught by its checksum, naming the tile.
                #expect(err != nil, "flip at \(i) inside a live tile was not detected")
                if case .tileChecksumMismatch(let tile, _, _, _)? = err as? FormatError {
                    #expect(tile.contains("tensor '"))
                    caughtInTiles += 1
                }
            }
        }
        #expect(caughtInTiles == tileBytes.count)
    }

    @Test func verifyNamesTheDamagedTile() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/v.psnap"
        var d = try Data(contentsOf: URL(fileURLWithPath: Self.fixture))
        let r0 = try PSnapReader(path: Self.fixture)
        let victim = r0.tiles.count / 2
        d[Int(r0.tiles[victim].offset)] ^= 1
        try d.write(to: URL(fileURLWithPath: path))
        let r = try PSnapReader(path: path)
        let damage = r.verifyAll()
        #expect(damage.map(\.tile) == [victim])
        #expect(damage.first?.tensor == GoldenFixtures.dtypeTensors[Int(r0.tiles[victim].tensor)].name)
        let cli = try runProcess(productPath("psnap"), ["verify", path])
        #expect(cli.status == 65)
        #expect(cli.out.contains("tile \(victim): tensor '"))
    }
}
