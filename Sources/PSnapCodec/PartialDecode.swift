// Partial decoding (spec §5, §5.1): one parameter's row, inflated planes kept for repeated reads, one snapshot's
// column; what an uncached trajectory read and the reader's tile cache use.
import PSnapFormat
import CZstd

extension TileCodec {
    // MARK: lenrans (§5.1)

    func lenransLayout(_ stored: UnsafeRawBufferPointer, elementSize e: Int, params: Int) throws(TileCodecError) -> LenRans.Layout {
        guard [1, 2, 4, 8].contains(e) else { throw .lenrans("element size \(e) (1, 2, 4 or 8 expected)") }
        do { return try lenransCoder.parse(stored, bitWidth: 8 * e, params: params) } catch { throw .lenrans(error.message) }
    }

    func lenransGroup(_ stored: UnsafeRawBufferPointer, _ layout: LenRans.Layout, group g: Int, into dst: UnsafeMutableRawPointer,
                              elementSize e: Int, params: Int, snapshots S: Int) throws(TileCodecError) {
        do {
            try lenransCoder.decodeGroup(stored, layout, group: g, elementSize: e, params: params, snapshots: S, into: dst)
        } catch { throw .lenrans(error.message) }
    }

    /// `lenrans` after at most one temporal stage: a row decodes from its group alone.
    var lenransRows: Bool {
        terminal == .lenrans && (transforms.isEmpty || (transforms.count == 1 && [.xor, .sub, .linpred].contains(transforms[0])))
    }

    /// Whether `decodeRow` can decode one parameter without reconstructing the whole tile: the chain must be
    /// (in encoding order) an optional temporal stage (xor, sub or linpred), an optional `lead`, `split`, an optional
    /// `bytedelta` (not after `lead`), an optional terminal stage.
    package var rowDecodable: Bool {
        var st = transforms[...]
        if st.first == .xor || st.first == .sub || st.first == .linpred { st = st.dropFirst() }
        // `lead` (a permutation) is followed by index arithmetic; with bytedelta a row would need two running sums.
        if st.first == .lead {
            st = st.dropFirst()
            return st == [.split] || (st.isEmpty && terminal != .zstdPlanes)
        }
        return st == [.split] || st == [.split, .bytedelta] || (st.isEmpty && terminal != .zstdPlanes) || lenransRows
    }

    /// Decodes only parameter `row` of a tile (its `snapshots` values) into `out` (`snapshots × elementSize` bytes).
    /// Raw planes are read in place; compressed ones are inflated; the byte transforms touch only this row
    /// (plus a fast byte sum for bytedelta).
    @_spi(Internals) public func decodeRow(_ stored: UnsafeRawBufferPointer, storedRaw: Bool, row: Int, into out: UnsafeMutableRawPointer,
                          elementSize e: Int, params: Int, snapshots S: Int) throws(TileCodecError) {
        let n = params * S * e
        let rowBytes = S * e
        if storedRaw || chain.stages.isEmpty {
            guard stored.count == n else { throw .sizeMismatch(expected: n, got: stored.count) }
            out.copyMemory(from: stored.baseAddress! + row * rowBytes, byteCount: rowBytes)
            return
        }
        if lenransRows {
            // Only the row's group: G rows instead of the tile.
            let layout = try lenransLayout(stored, elementSize: e, params: params)
            let g = row / layout.groupRows
            Self.ensure(&a, layout.groupRows * rowBytes)
            try lenransGroup(stored, layout, group: g, into: a.baseAddress!, elementSize: e, params: params, snapshots: S)
            out.copyMemory(from: a.baseAddress! + (row - g * layout.groupRows) * rowBytes, byteCount: rowBytes)
            undoTemporal(out, elementSize: e, snapshots: S)
            return
        }
        // Planes are inflated only up to this row's end.
        let lead = transforms.contains(.lead)
        guard let planes = try inflate(stored, storedRaw: false, elementSize: e, params: params, snapshots: S, keep: false,
                                       prefix: S == 0 ? 0 : Transforms.leadIndex(row, S - 1, params: params, snapshots: S, lead: lead) + 1) else {
            let full = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 64)
            defer { full.deallocate() }
            try decode(stored, storedRaw: false, into: full, elementSize: e, params: params, snapshots: S)
            out.copyMemory(from: full.baseAddress! + row * rowBytes, byteCount: rowBytes)
            return
        }
        decodeRow(planes, row: row, into: out, elementSize: e, snapshots: S)
    }

    /// Undoes the terminal stage of a row-decodable tile (see `rowDecodable`) and returns where each plane's bytes
    /// are: raw planes in place in `stored`, inflated ones in a buffer that the result owns when `keep` (so it can
    /// be cached; it points into `stored` too, so it must not outlive it) or in this codec's scratch otherwise
    /// (valid until the next call). Nil when the chain needs a full decode (or the tile is stored raw).
    /// `prefix` (values per plane; scratch inflates of `zstdplanes` tiles only): inflate at least each plane's first values.
    @_spi(Internals) public func inflate(_ stored: UnsafeRawBufferPointer, storedRaw: Bool, elementSize e: Int, params: Int, snapshots S: Int,
                        keep: Bool, prefix: Int? = nil) throws(TileCodecError) -> InflatedTile? {
        guard !storedRaw, !chain.stages.isEmpty, rowDecodable else { return nil }
        let n = params * S * e
        if lenransRows {
            // Kept tiles are decoded whole (a row is then a copy); a scratch inflate has nothing to offer over decodeRow.
            guard keep else { return nil }
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, n), alignment: 64)
            do { try decode(stored, storedRaw: false, into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<n]), elementSize: e, params: params, snapshots: S) } catch {
                buf.deallocate()
                throw error
            }
            return InflatedTile(storage: buf, planes: [UnsafeRawPointer(buf.baseAddress!)], split: false, final: true)
        }
        let count = params * S
        let lead = transforms.contains(.lead)
        let split = transforms.contains(.split)
        var pointers: [UnsafeRawPointer] = []
        pointers.reserveCapacity(e)
        switch terminal {
        case .zstdPlanes?:
            let planes = try planeTable(stored, n: n, elementSize: e)
            let inflatedCount = planes.filter { !$0.raw }.count
            let buf: UnsafeMutableRawBufferPointer
            if keep { buf = .allocate(byteCount: max(1, inflatedCount * count), alignment: 64) } else { Self.ensure(&a, n); buf = a }
            var used = 0
            do {
                for k in 0..<e {
                    let p = planes[k]
                    if p.raw {
                        pointers.append(stored.baseAddress! + p.offset)
                    } else {
                        let dst = buf.baseAddress! + used * count
                        let frame = UnsafeRawBufferPointer(rebasing: stored[p.offset..<(p.offset + p.length)])
                        if let want = prefix, !keep {
                            try zstdFramePrefix(frame, into: dst, n: count, want: min(count, want), firstBlock: firstBlock(params: params))
                        } else {
                            try zstdFrame(frame, into: dst, n: count)
                        }
                        pointers.append(UnsafeRawPointer(dst))
                        used += 1
                    }
                }
            } catch {
                if keep { buf.deallocate() }
                throw error
            }
            return InflatedTile(storage: keep ? buf : nil, planes: pointers, split: split, lead: lead, params: params)
        default:
            let base: UnsafeRawPointer
            var owned: UnsafeMutableRawBufferPointer? = nil
            if terminal == nil {
                guard stored.count == n else { throw .sizeMismatch(expected: n, got: stored.count) }
                base = stored.baseAddress!
            } else {
                let buf: UnsafeMutableRawBufferPointer
                if keep { buf = .allocate(byteCount: n, alignment: 64) } else { Self.ensure(&a, n); buf = a }
                do { try inflate(stored, into: buf.baseAddress!, n: n, elementSize: e, snapshots: S) } catch {
                    if keep { buf.deallocate() }
                    throw error
                }
                base = UnsafeRawPointer(buf.baseAddress!)
                if keep { owned = buf }
            }
            for k in 0..<(split ? e : 1) { pointers.append(base + k * count) }
            return InflatedTile(storage: owned, planes: pointers, split: split, lead: lead, params: params)
        }
    }

    /// Row `row` (its `snapshots` values) of an inflated tile into `out` (`snapshots × elementSize` bytes).
    @_spi(Internals) public func decodeRow(_ t: InflatedTile, row: Int, into out: UnsafeMutableRawPointer, elementSize e: Int, snapshots S: Int) {
        decodeRowPrefix(t, row: row, count: S, into: out, elementSize: e, snapshots: S)
    }

    /// The first `count` values of row `row` (a tile of `snapshots` per row) into `out`.
    func decodeRowPrefix(_ t: InflatedTile, row: Int, count n: Int, into out: UnsafeMutableRawPointer, elementSize e: Int, snapshots S: Int) {
        if t.final {
            out.copyMemory(from: t.planes[0] + row * S * e, byteCount: n * e)
            return
        }
        if t.lead {
            // Element 0 of the row is at `row`, elements 1... at P + row·(S − 1) (§5 stage 6).
            let P = t.params
            if t.split {
                let o = out.assumingMemoryBound(to: UInt8.self)
                for k in 0..<e {
                    let plane = t.planes[k].assumingMemoryBound(to: UInt8.self)
                    if n > 0 { o[k] = plane[row] }
                    let rest = P + row * (S - 1) - 1
                    for s in 1..<max(1, n) { o[s * e + k] = plane[rest + s] }
                }
            } else {
                if n > 0 { out.copyMemory(from: t.planes[0] + row * e, byteCount: e) }
                if n > 1 { (out + e).copyMemory(from: t.planes[0] + (P + row * (S - 1)) * e, byteCount: (n - 1) * e) }
            }
        } else if t.split {
            let first = row * S
            let o = out.assumingMemoryBound(to: UInt8.self)
            let delta = transforms.contains(.bytedelta)
            for k in 0..<e {
                let plane = t.planes[k].assumingMemoryBound(to: UInt8.self)
                if delta {
                    var acc = Transforms.byteSum(plane, count: first)
                    for s in 0..<n { acc = acc &+ plane[first + s]; o[s * e + k] = acc }
                } else {
                    for s in 0..<n { o[s * e + k] = plane[first + s] }
                }
            }
        } else {
            out.copyMemory(from: t.planes[0] + row * S * e, byteCount: n * e)
        }
        undoTemporal(out, elementSize: e, snapshots: n)
    }

    /// Undoes the chain's leading temporal stage (if any) on one row of `n` values.
    func undoTemporal(_ out: UnsafeMutableRawPointer, elementSize e: Int, snapshots n: Int) {
        if let f = transforms.first, f == .xor || f == .sub {
            Transforms.temporal(out, elementSize: e, params: 1, snapshots: n, xor: f == .xor, encode: false)
        } else if transforms.first == .linpred {
            Transforms.linpredDecode(out, elementSize: e, params: 1, snapshots: n)
        }
    }

    /// The whole raw tile from an inflated one, as a final `InflatedTile` owning `params × snapshots × elementSize` bytes.
    @_spi(Internals) public func decodeFully(_ t: InflatedTile, elementSize e: Int, params: Int, snapshots S: Int) -> InflatedTile {
        if t.final { return t }
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, params * S * e), alignment: 64)
        for p in 0..<params { decodeRowPrefix(t, row: p, count: S, into: buf.baseAddress! + p * S * e, elementSize: e, snapshots: S) }
        return InflatedTile(storage: buf, planes: [UnsafeRawPointer(buf.baseAddress!)], split: false, final: true)
    }

    /// Snapshot 0 of every parameter (an anchored tile's anchor, §5.2) into `out` (`params × elementSize` bytes). With
    /// `lead` (and no `bytedelta`) it is the planes' first `params` bytes, each element decoded on its own (a first
    /// `linpred` residual is the value itself); otherwise as `decodeColumn`. Measured: the row-by-row path took
    /// 50 ns a parameter, most of an append's time on a 22.7 M-parameter run.
    @_spi(Internals) public func decodeFirstColumn(_ t: InflatedTile, into out: UnsafeMutableRawPointer, elementSize e: Int, params: Int, snapshots S: Int) {
        guard !t.final, t.lead, !transforms.contains(.bytedelta) else {
            decodeColumn(t, column: 0, into: out, elementSize: e, params: params, snapshots: S)
            return
        }
        // An aligned column of 2- or 4-byte values whose planes are split: gather the planes, unzigzag and map in one
        // typed pass the compiler vectorises (the anchors of every append and merge are read this way, RATIONALE §C.7).
        if t.split, transforms.first == .linpred, e == 2 || e == 4, Int(bitPattern: out) % e == 0 {
            func gather<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) {
                let o = out.assumingMemoryBound(to: T.self)
                let p0 = t.planes[0].assumingMemoryBound(to: UInt8.self), p1 = t.planes[1].assumingMemoryBound(to: UInt8.self)
                if e == 2 {
                    for p in 0..<params { o[p] = Transforms.monotone(Transforms.unzigzag(T(p0[p]) | T(p1[p]) &<< 8)).littleEndian }
                } else {
                    let p2 = t.planes[2].assumingMemoryBound(to: UInt8.self), p3 = t.planes[3].assumingMemoryBound(to: UInt8.self)
                    for p in 0..<params {
                        let z = T(p0[p]) | T(p1[p]) &<< 8 | T(p2[p]) &<< 16 | T(p3[p]) &<< 24
                        o[p] = Transforms.monotone(Transforms.unzigzag(z)).littleEndian
                    }
                }
            }
            if e == 2 { gather(UInt16.self) } else { gather(UInt32.self) }
            return
        }
        if t.split {
            let o = out.assumingMemoryBound(to: UInt8.self)
            for k in 0..<e {
                let plane = t.planes[k].assumingMemoryBound(to: UInt8.self)
                for p in 0..<params { o[p &* e &+ k] = plane[p] }
            }
        } else {
            out.copyMemory(from: t.planes[0], byteCount: params * e)
        }
        guard transforms.first == .linpred else { return }   // xor, sub: snapshot 0 is kept as it is
        func run<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) {
            for p in 0..<params {
                let z = T(littleEndian: out.loadUnaligned(fromByteOffset: p * e, as: T.self))
                out.storeBytes(of: Transforms.monotone(Transforms.unzigzag(z)).littleEndian, toByteOffset: p * e, as: T.self)
            }
        }
        switch e {
        case 1: run(UInt8.self)
        case 2: run(UInt16.self)
        case 4: run(UInt32.self)
        default: run(UInt64.self)
        }
    }

    /// Snapshot `column` of every parameter of an inflated tile into `out` (`params × elementSize` bytes).
    @_spi(Internals) public func decodeColumn(_ t: InflatedTile, column: Int, into out: UnsafeMutableRawPointer, elementSize e: Int, params: Int, snapshots S: Int) {
        if t.final {
            let src = t.planes[0] + column * e
            switch e {
            case 4: for p in 0..<params { (out + p * 4).storeBytes(of: src.loadUnaligned(fromByteOffset: p * S * 4, as: UInt32.self), as: UInt32.self) }
            case 2: for p in 0..<params { (out + p * 2).storeBytes(of: src.loadUnaligned(fromByteOffset: p * S * 2, as: UInt16.self), as: UInt16.self) }
            default: for p in 0..<params { (out + p * e).copyMemory(from: src + p * S * e, byteCount: e) }
            }
            return
        }
        // Temporal stages make element `column` depend on the row's earlier elements: decode each row up to it.
        let upTo = column + 1
        Self.ensure(&b, upTo * e)
        let row = b.baseAddress!
        for p in 0..<params {
            decodeRowPrefix(t, row: p, count: upTo, into: row, elementSize: e, snapshots: S)
            (out + p * e).copyMemory(from: row + column * e, byteCount: e)
        }
    }
}

/// A tile with its terminal stage undone (`TileCodec.inflate`): where each byte plane is. Owns the buffer of the
/// planes it inflated when made with `keep`; raw planes point into the file's stored bytes.
@_spi(Internals) public final class InflatedTile: @unchecked Sendable {
    let storage: UnsafeMutableRawBufferPointer?
    /// Bytes this tile owns (what a cache should count).
    @_spi(Internals) public var bytes: Int { storage?.count ?? 0 }
    let planes: [UnsafeRawPointer]
    let split: Bool
    /// Elements in `lead` order (§5 stage 6) in a tile of `params` rows.
    let lead: Bool
    let params: Int
    /// The raw tile itself (every stage undone): planes[0] is the parameter-major tile.
    @_spi(Internals) public let final: Bool

    init(storage: UnsafeMutableRawBufferPointer?, planes: [UnsafeRawPointer], split: Bool, final: Bool = false,
         lead: Bool = false, params: Int = 0) {
        self.storage = storage; self.planes = planes; self.split = split; self.final = final
        self.lead = lead; self.params = params
    }

    deinit { storage?.deallocate() }
}
