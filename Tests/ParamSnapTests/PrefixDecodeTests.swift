// Prefix decodes (a row or the leading column of a tile from the first blocks of each plane's zstd frame, spec §5):
// the values equal the tile's, wherever the wanted prefix ends, and a damaged frame is an error, not a trap.
import Foundation
import Testing
@_spi(Internals) @testable import PSnapCodec
import PSnapFormat
import PSnapTestSupport

@Suite struct PrefixDecodeTests {
    /// A fine-tune-like tile: large first values, then small steps (so each plane's frame holds several blocks and
    /// later blocks copy from earlier ones), parameter-major, `params` × `snapshots` elements of `e` bytes.
    static func tile(params P: Int, snapshots S: Int, elementSize e: Int, seed: UInt64) -> [UInt8] {
        var g = SeededRNG(seed: seed)
        var out = [UInt8](repeating: 0, count: P * S * e)
        for p in 0..<P {
            var v = g.next()
            for s in 0..<S {
                if g.next() % 4 == 0 { v &+= g.next() % 7 &- 3 }
                for k in 0..<e { out[(p * S + s) * e + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
            }
        }
        return out
    }

    @Test(arguments: [2, 4])
    func rowsAndLeadingColumnFromPrefixesEqualTheTile(elementSize e: Int) throws {
        let P = 2048, S = 40   // planes of 80 KiB: the leading column's block, then blocks of 32 KiB
        let raw = Self.tile(params: P, snapshots: S, elementSize: e, seed: UInt64(e))
        let codec = TileCodec(chain: .default)
        let stored = raw.withUnsafeBytes { Array(codec.encode($0, elementSize: e, params: P, snapshots: S).stored) }
        #expect(stored.count < raw.count / 2, "the tile compresses (its planes are zstd frames)")
        try stored.withUnsafeBytes { st in
            // Rows near the start (a prefix of the frames), in the middle, at the end (the whole frames).
            for row in [0, 1, 2, 100, 700, 800, 1500, 2046, 2047] {
                let want = P + row * (S - 1) + S - 1   // elements up to the row's last one, in lead order
                guard let t = try codec.inflate(st, storedRaw: false, elementSize: e, params: P, snapshots: S, keep: false,
                                                prefix: want) else { Issue.record("not row-decodable"); return }
                var out = [UInt8](repeating: 0, count: S * e)
                out.withUnsafeMutableBytes { codec.decodeRow(t, row: row, into: $0.baseAddress!, elementSize: e, snapshots: S) }
                #expect(out == Array(raw[(row * S * e)..<((row + 1) * S * e)]), "row \(row), e = \(e)")
            }
            // The leading column alone (what an append reads as its anchors).
            guard let t = try codec.inflate(st, storedRaw: false, elementSize: e, params: P, snapshots: S, keep: false, prefix: P)
            else { Issue.record("not row-decodable"); return }
            var column = [UInt8](repeating: 0, count: P * e)
            column.withUnsafeMutableBytes { codec.decodeFirstColumn(t, into: $0.baseAddress!, elementSize: e, params: P, snapshots: S) }
            var first: [UInt8] = []
            for p in 0..<P { first += raw[(p * S * e)..<(p * S * e + e)] }
            #expect(column == first)
            // Into a buffer that is not aligned to the element (the byte-wise path), the same values.
            var shifted = [UInt8](repeating: 0, count: P * e + 1)
            shifted.withUnsafeMutableBytes { codec.decodeFirstColumn(t, into: $0.baseAddress! + 1, elementSize: e, params: P, snapshots: S) }
            #expect(Array(shifted[1...]) == first)
        }
    }

    /// Anchored tiles (§5.2) through the whole-tile codec: the anchor taken inside `linpred`'s encoding gives the same
    /// stored bytes as the anchor pass before an unanchored encode, and decoding then adding the anchor back gives the
    /// tile, for both chains that start with `linpred`, anchors aligned or not.
    @Test(arguments: [2, 4, 8])
    func anchoredTilesRoundTripThroughTheCodec(elementSize e: Int) throws {
        for (P, S) in [(2048, 1), (1000, 2), (777, 5), (256, 40)] {
            let raw = Self.tile(params: P, snapshots: S, elementSize: e, seed: UInt64(e * 100 + S))
            // Anchors near the values (a drift since snapshot 0, as in a run): each row's first value, low byte replaced.
            var g = SeededRNG(seed: UInt64(e * 1000 + S))
            var anchors = [UInt8](repeating: 0, count: P * e)
            for p in 0..<P {
                for k in 0..<e { anchors[p * e + k] = raw[p * S * e + k] }
                anchors[p * e] = UInt8(truncatingIfNeeded: g.next())
            }
            let shiftedAnchors = [UInt8](repeating: 0, count: 1) + anchors   // an unaligned copy too
            for (chain, name) in [(CodecChain.default, "default"), (try CodecChain(parsing: "linpred,lenrans", zstdLevel: 3), "lenrans")] {
                let codec = TileCodec(chain: chain)
                for aligned in [true, false] {
                    try (aligned ? anchors : shiftedAnchors).withUnsafeBytes { ab in
                        let anchorPtr = ab.baseAddress! + (aligned ? 0 : 1)
                        let (stored, storedRaw) = raw.withUnsafeBytes { r in
                            let (st, sr) = codec.encode(r, elementSize: e, params: P, snapshots: S, anchor: anchorPtr)
                            return (Array(st), sr)
                        }
                        #expect(!storedRaw, "\(name), e = \(e), \(P)×\(S): an anchored tile near its anchors compresses")
                        // The same bytes as the anchor pass followed by an ordinary encode.
                        var pre = raw
                        pre.withUnsafeMutableBytes { Transforms.anchor($0.baseAddress!, elementSize: e, params: P, snapshots: S, anchor: anchorPtr, add: false) }
                        let want = pre.withUnsafeBytes { Array(codec.encode($0, elementSize: e, params: P, snapshots: S).stored) }
                        let sameBytes = stored == want
                        #expect(sameBytes, "\(name), e = \(e), \(P)×\(S), aligned \(aligned): stored bytes")
                        var out = [UInt8](repeating: 0, count: raw.count)
                        try stored.withUnsafeBytes { st in
                            try out.withUnsafeMutableBytes {
                                try codec.decode(st, storedRaw: storedRaw, into: $0, elementSize: e, params: P, snapshots: S)
                                TileCodec.unanchor($0.baseAddress!, elementSize: e, params: P, snapshots: S, anchor: anchorPtr)
                            }
                        }
                        let sameValues = out == raw
                        #expect(sameValues, "\(name), e = \(e), \(P)×\(S), aligned \(aligned): decoded values")
                    }
                }
            }
        }
    }

    @Test func damagedFramesAreErrorsNotTraps() throws {
        let P = 2048, S = 40, e = 2
        let raw = Self.tile(params: P, snapshots: S, elementSize: e, seed: 7)
        let codec = TileCodec(chain: .default)
        let stored = raw.withUnsafeBytes { Array(codec.encode($0, elementSize: e, params: P, snapshots: S).stored) }
        var failures = 0
        // Cut the tile short, or overwrite bytes inside the first plane's frame: every prefix read either fails with an
        // error or returns (the tile checksum, checked before any decode, is what tells a damaged tile from a sound one).
        var damaged: [[UInt8]] = [Array(stored.prefix(stored.count - 1)), Array(stored.prefix(40))]
        for at in stride(from: 8 * e + 4, to: min(stored.count, 8 * e + 400), by: 37) {
            var d = stored
            d[at] ^= 0xA5
            damaged.append(d)
        }
        for d in damaged {
            do {
                _ = try d.withUnsafeBytes { try codec.inflate($0, storedRaw: false, elementSize: e, params: P, snapshots: S, keep: false, prefix: P) }
            } catch {
                failures += 1
            }
        }
        #expect(failures >= 2, "truncated tiles are refused")
    }
}
