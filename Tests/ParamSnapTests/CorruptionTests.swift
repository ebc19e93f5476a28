// Corruption sweeps (spec §8.1, §12): truncate a fixture at every byte and flip every byte; each case must read
// correct data or throw a specific error — never a crash, never a wrong value.
import Foundation
import Testing
import PSnapTestSupport
@_spi(Internals) @testable import ParamSnap
@testable import PSnapFormat
@_spi(Internals) @testable import PSnapCodec
@testable import PSnapImport

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

/// Hostile files with valid checksums: a forged newest commit whose metadata lies.
@Suite struct HostileCommitTests {
    /// Appends a commit that reuses the newest commit's index with `edit` applied to its metadata JSON, checksummed.
    static func forge(_ path: String, index: [UInt8]? = nil, footerEdit: (inout Footer) -> Void = { _ in }, _ edit: (inout [String: Any]) -> Void) throws {
        let r = try PSnapReader(path: path)
        let bytes = r.file.bytes
        let idx = index ?? Array(bytes[Int(r.footer.indexOffset)..<Int(r.footer.indexOffset + r.footer.indexLength)])
        var meta = try JSONSerialization.jsonObject(with: Data(bytes[Int(r.footer.metadataOffset)..<Int(r.footer.metadataOffset + r.footer.metadataLength)])) as! [String: Any]
        edit(&meta)
        let m = Array(try JSONSerialization.data(withJSONObject: meta))
        let end = UInt64(bytes.count)
        var f = Footer(commitSequence: r.footer.commitSequence + 1, previousFooterOffset: r.footerOffset, indexOffset: end,
                       indexLength: UInt64(idx.count), indexChecksum: XXH64.hash(idx), metadataOffset: end + UInt64(idx.count),
                       metadataLength: UInt64(m.count), metadataChecksum: XXH64.hash(m), snapshotCount: r.footer.snapshotCount,
                       tileCount: UInt64(idx.count / 64), parameterCount: r.footer.parameterCount)
        footerEdit(&f)
        let h = FileHandle(forWritingAtPath: path)!
        h.seekToEndOfFile()
        h.write(Data(idx + m + f.encode()))
        try h.close()
    }

    @Test func hugeDeclaredTensorWithoutSnapshotsOpensWithoutAllocating() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/huge.psnap"
        var o = WriterOptions(); o.blockSize = 1
        try SnapshotWriter.create(path: path, tensors: [TensorInfo(name: "w", dtype: .f32, shape: [1 << 40])], options: o).close()
        let r = try PSnapReader(path: path)
        #expect(r.parameterCount == 1 << 40)
        #expect(try r.trajectory(global: (1 << 40) - 1).isEmpty)
    }

    @Test func metadataClaimingMoreBlocksThanTilesIsRefused() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/lie.psnap"
        try FileManager.default.copyItem(atPath: GoldenFixtures.dir + "/dtypes.psnap", toPath: path)
        try Self.forge(path, footerEdit: { $0.parameterCount = 1 << 40 }) { meta in
            var t = meta["tensors"] as! [[String: Any]]
            t[0]["shape"] = [1 << 40]
            meta["tensors"] = t
        }
        #expect(throws: FormatError.self) { try PSnapReader(path: path) }
    }

    @Test func snapshotCountMismatchIsRefused() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/count.psnap"
        try FileManager.default.copyItem(atPath: GoldenFixtures.dir + "/dtypes.psnap", toPath: path)
        try Self.forge(path) { meta in meta["snapshots"] = Array((meta["snapshots"] as! [Any]).prefix(2)) }
        #expect(throws: FormatError.self) { try PSnapReader(path: path) }
    }

    @Test func unknownDtypeIsRefusedByName() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let path = dir + "/dtype.psnap"
        try FileManager.default.copyItem(atPath: GoldenFixtures.dir + "/dtypes.psnap", toPath: path)
        try Self.forge(path) { meta in
            var t = meta["tensors"] as! [[String: Any]]
            t[0]["dtype"] = "i8"
            meta["tensors"] = t
        }
        #expect { try PSnapReader(path: path) } throws: { "\($0)".contains("bad metadata") }
    }
}
