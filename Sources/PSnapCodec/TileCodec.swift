// Encodes a raw tile into stored bytes and back (spec §4, §5), with per-thread scratch and zstd contexts.
import PSnapFormat
import CZstd

/// Why a stored tile could not be decoded (wrapped by the reader into a `FormatError` naming the tile).
@_spi(Internals) public enum TileCodecError: Error, Equatable, Sendable {
    case zstd(String)
    case sizeMismatch(expected: Int, got: Int)
    case badPlaneTable(String)
    case lenrans(String)
}

extension TileCodecError: CustomStringConvertible {
    @_spi(Internals) public var description: String {
        switch self {
        case .zstd(let m): return "zstd: \(m)"
        case .sizeMismatch(let e, let g): return "decoded \(g) bytes, expected \(e)"
        case .badPlaneTable(let m): return "zstdplanes: \(m)"
        case .lenrans(let m): return "lenrans: \(m)"
        }
    }
}

/// Per-thread scratch memory and zstd contexts for encoding and decoding tiles. Not thread-safe:
/// give each worker its own.
@_spi(Internals) public final class TileCodec: @unchecked Sendable {
    @_spi(Internals) public let chain: CodecChain
    var a: UnsafeMutableRawBufferPointer = .init(start: nil, count: 0)
    var b: UnsafeMutableRawBufferPointer = .init(start: nil, count: 0)
    var r: UnsafeMutableRawBufferPointer = .init(start: nil, count: 0)
    var c: UnsafeMutableRawBufferPointer = .init(start: nil, count: 0)
    var cctx: OpaquePointer?
    /// The zstd parameters `cctx` holds (nil: not set yet).
    var cctxParameters: FrameParameters? = nil
    /// The shortest match zstd may take when this codec encodes tiles of 2-byte values (0: the level's own); `Spec.zstdMinMatch`
    /// by default. Tiles of 1-, 4- and 8-byte values always take the level's own (RATIONALE §A.9).
    @_spi(Internals) public let minMatch: Int32

    /// What a writer chooses for a tile's zstd frames beyond the chain's level (not recorded in the file, spec §5).
    struct FrameParameters: Equatable {
        /// `ZSTD_c_minMatch` (0: the level's own).
        var minMatch: Int32
        /// zstd's fast strategy (one hash table, no second search).
        var fast: Bool
    }

    /// The frame parameters of a tile: the shortest match in tiles of 2-byte values (RATIONALE §A.9), and the fast
    /// strategy in tiles of one snapshot, an append's, at the default level or below (a higher level asked is kept):
    /// zstd codes their 1–2 KiB planes at a fixed cost per frame, and the fast strategy was 22–36 % faster there and
    /// within 0.4 % of the size (smaller in bf16; RATIONALE §C.5).
    func frameParameters(elementSize: Int, snapshots: Int) -> FrameParameters {
        FrameParameters(minMatch: elementSize == 2 ? minMatch : 0,
                        fast: snapshots == 1 && chain.zstdLevel <= Spec.defaultZstdLevel)
    }

    /// Where the writer ends each plane's first zstd block: after the leading column when a `lead` tile is split into
    /// planes (its own statistics, and a short prefix to decode), else 0 (blocks of `planeBlockBytes` from the start).
    func firstBlock(params: Int) -> Int { transforms.contains(.lead) && transforms.contains(.split) ? params : 0 }

    /// The end of a plane's first block of `firstBlock` bytes in a plane of `n` bytes (0: no block of its own).
    static func firstBlockEnd(_ firstBlock: Int, planeBytes n: Int) -> Int { firstBlock > 0 && firstBlock < n ? firstBlock : 0 }
    var dctx: OpaquePointer?
    /// The length-preserving stages and the terminal compression stage, if any (§5).
    let transforms: [CodecStage]
    let terminal: CodecStage?
    lazy var lenransCoder = LenRans()

    @_spi(Internals) public init(chain: CodecChain, minMatch: Int32 = Spec.zstdMinMatch) {
        self.chain = chain
        self.minMatch = minMatch
        if let last = chain.stages.last, last.isTerminal {
            transforms = Array(chain.stages.dropLast()); terminal = last
        } else {
            transforms = chain.stages; terminal = nil
        }
    }

    deinit {
        a.deallocate(); b.deallocate(); r.deallocate(); c.deallocate()
        if let cctx { ZSTD_freeCCtx(cctx) }
        if let dctx { ZSTD_freeDCtx(dctx) }
    }

    static func ensure(_ buf: inout UnsafeMutableRawBufferPointer, _ n: Int) {
        if buf.count < n {
            buf.deallocate()
            buf = .allocate(byteCount: max(n, 64), alignment: 64)
        }
    }

    /// A scratch buffer of `n` bytes owned by this codec, for a decoded tile (valid until the next call).
    @_spi(Internals) public func rawScratch(_ n: Int) -> UnsafeMutableRawBufferPointer {
        Self.ensure(&r, n)
        return UnsafeMutableRawBufferPointer(rebasing: r[0..<n])
    }

    // MARK: encode

    /// Encodes one raw tile (`params × snapshots` elements of `elementSize` bytes, parameter-major).
    /// Returns the stored bytes (valid until the next call on this codec) and whether they are raw (§4).
    /// `anchor` (one element per parameter: its value at snapshot 0; chains starting with `linpred` only): encode the
    /// tile anchored (§5), unless it is stored raw (the raw tile itself, never anchored).
    @_spi(Internals) public func encode(_ raw: UnsafeRawBufferPointer, elementSize: Int, params: Int, snapshots: Int,
                                        anchor: UnsafeRawPointer? = nil) -> (stored: UnsafeRawBufferPointer, storedRaw: Bool) {
        let n = raw.count
        precondition(n == params * snapshots * elementSize, "raw tile size")
        if n == 0 || chain.stages.isEmpty { return (raw, true) }
        let cap = max(n, ZSTD_compressBound(n) + 8 * elementSize)
        Self.ensure(&a, cap)
        Self.ensure(&b, cap)
        a.baseAddress!.copyMemory(from: raw.baseAddress!, byteCount: n)
        // The anchor is taken inside the first stage, `linpred`'s encoding (only each row's first residual changes, §5.2).
        precondition(anchor == nil || chain.anchorable, "anchored tiles need linpred first")
        var cur = a, other = b
        let count = params * snapshots
        var rest = transforms[...]
        if rest.prefix(2) == [.split, .bytedelta] {
            // The default chain's hot path: one fused pass instead of two.
            Transforms.splitByteDelta(from: cur.baseAddress!, to: other.baseAddress!, count: count, elementSize: elementSize)
            swap(&cur, &other)
            rest = rest.dropFirst(2)
        }
        for (i, stage) in rest.enumerated() {
            switch stage {
            case .xor, .sub:
                Transforms.temporal(cur.baseAddress!, elementSize: elementSize, params: params, snapshots: snapshots, xor: stage == .xor, encode: true)
            case .linpred:
                Transforms.linpredEncode(from: cur.baseAddress!, to: other.baseAddress!, elementSize: elementSize, params: params, snapshots: snapshots,
                                         anchor: i == 0 ? anchor : nil)
                swap(&cur, &other)
            case .lead:
                Transforms.lead(from: cur.baseAddress!, to: other.baseAddress!, params: params, snapshots: snapshots, elementSize: elementSize, encode: true)
                swap(&cur, &other)
            case .split:
                Transforms.split(from: cur.baseAddress!, to: other.baseAddress!, count: count, elementSize: elementSize)
                swap(&cur, &other)
            case .bytedelta:
                Transforms.byteDeltaEncode(cur.baseAddress!, count: count, elementSize: elementSize)
            case .zstd, .zstdPlanes, .lenrans:
                preconditionFailure("terminal stage validated last")
            }
        }
        if terminal == .lenrans {
            guard let z = encodeLenrans(cur, into: other, elementSize: elementSize, params: params, snapshots: snapshots, limit: n) else { return (raw, true) }
            return (UnsafeRawBufferPointer(rebasing: other[0..<z]), false)
        }
        if cctx == nil, terminal != nil { cctx = ZSTD_createCCtx() }
        let frame = frameParameters(elementSize: elementSize, snapshots: snapshots)
        switch terminal {
        case nil:
            return (UnsafeRawBufferPointer(rebasing: cur[0..<n]), false)
        case .zstd?:
            let z = compressFrame(cur.baseAddress!, n, into: other.baseAddress!, capacity: other.count, parameters: frame)
            // A compression error (memory exhaustion in practice) or no gain: store the raw tile.
            if ZSTD_isError(z) != 0 || z >= n { return (raw, true) }
            return (UnsafeRawBufferPointer(rebasing: other[0..<z]), false)
        case .zstdPlanes?:
            let out = encodePlanes(cur, into: other, elementSize: elementSize, planeBytes: count, parameters: frame,
                                   firstBlock: firstBlock(params: params))
            if out >= n { return (raw, true) }
            return (UnsafeRawBufferPointer(rebasing: other[0..<out]), false)
        default:
            preconditionFailure("unknown terminal stage")
        }
    }

    /// The `lenrans` stage (§5.1) of `cur` into `out`: its length, or nil when it would not be below `limit`.
    private func encodeLenrans(_ cur: UnsafeMutableRawBufferPointer, into out: UnsafeMutableRawBufferPointer, elementSize: Int,
                               params: Int, snapshots: Int, limit: Int) -> Int? {
        func code<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) -> Int? {
            lenransCoder.encode(cur.baseAddress!.assumingMemoryBound(to: T.self), as: T.self, params: params, snapshots: snapshots,
                                groupRows: LenRans.defaultGroupRows, into: out, limit: limit)
        }
        switch elementSize {
        case 1: return code(UInt8.self)
        case 2: return code(UInt16.self)
        case 4: return code(UInt32.self)
        case 8: return code(UInt64.self)
        default: return nil
        }
    }

    /// The `zstdplanes` stage (§5) of `cur`'s E planes into `out`: E plane descriptors, then each plane as a zstd frame,
    /// or raw when zstd saves less than 1/32 of it. Returns the bytes written.
    /// `firstBlock` > 0: the first zstd block of each plane ends there (the leading column of a `lead` tile, so that
    /// it decodes from a short prefix and its statistics do not mix with the residuals after it).
    private func encodePlanes(_ cur: UnsafeMutableRawBufferPointer, into other: UnsafeMutableRawBufferPointer, elementSize e: Int,
                              planeBytes: Int, parameters: FrameParameters, firstBlock: Int = 0) -> Int {
        var out = 8 * e
        for k in 0..<e {
            let src = cur.baseAddress! + k * planeBytes
            let dst = other.baseAddress! + out
            var z = compressInBlocks(src, planeBytes, into: dst, capacity: other.count - out, firstBlock: firstBlock, parameters: parameters)
            if parameters.minMatch > 0 && z >= planeBytes - planeBytes * 3 / 8 && z < planeBytes - planeBytes / 32 {
                // A plane zstd shrinks by less than 3/8 (yet enough to be kept) is mostly noise, where the short matches a long
                // minimum skips can still pay (they did in mlp-digits' f32 planes): code it again with the level's own minimum
                // and keep the smaller (RATIONALE §A.9). Planes stored raw either way are not tried again.
                Self.ensure(&c, ZSTD_compressBound(planeBytes))
                let y = compressInBlocks(src, planeBytes, into: c.baseAddress!, capacity: c.count, firstBlock: firstBlock,
                                         parameters: FrameParameters(minMatch: 0, fast: parameters.fast))
                if ZSTD_isError(y) == 0 && y < z {
                    dst.copyMemory(from: c.baseAddress!, byteCount: y)
                    z = y
                }
            }
            var descriptor: UInt64
            if ZSTD_isError(z) == 0 && z < planeBytes - planeBytes / 32 {
                descriptor = UInt64(z)
                out += z
            } else {
                dst.copyMemory(from: src, byteCount: planeBytes)
                descriptor = UInt64(planeBytes) | Spec.planeStoredRawBit
                out += planeBytes
            }
            (other.baseAddress! + 8 * k).storeBytes(of: descriptor.littleEndian, as: UInt64.self)
        }
        return out
    }

    // MARK: decode

    /// Inflates the terminal stage into `dst` (n bytes).
    func inflate(_ stored: UnsafeRawBufferPointer, into dst: UnsafeMutableRawPointer, n: Int, elementSize e: Int,
                         snapshots S: Int) throws(TileCodecError) {
        switch terminal {
        case nil:
            guard stored.count == n else { throw .sizeMismatch(expected: n, got: stored.count) }
            dst.copyMemory(from: stored.baseAddress!, byteCount: n)
        case .zstd?:
            try zstdFrame(stored, into: dst, n: n)
        case .zstdPlanes?:
            let planes = try planeTable(stored, n: n, elementSize: e)
            for k in 0..<e {
                let p = planes[k]
                if p.raw {
                    (dst + k * (n / e)).copyMemory(from: stored.baseAddress! + p.offset, byteCount: p.length)
                } else {
                    try zstdFrame(UnsafeRawBufferPointer(rebasing: stored[p.offset..<(p.offset + p.length)]), into: dst + k * (n / e), n: n / e)
                }
            }
        case .lenrans?:
            let params = S == 0 ? 0 : n / e / S
            let layout = try lenransLayout(stored, elementSize: e, params: params)
            for g in 0..<layout.groups.count {
                try lenransGroup(stored, layout, group: g, into: dst + g * layout.groupRows * S * e, elementSize: e, params: params, snapshots: S)
            }
        default:
            preconditionFailure("unknown terminal stage")
        }
    }

    /// §5 frame checks before decoding `src` to `n` bytes: a zstd frame, of content size n when it states one,
    /// exactly one frame with nothing after it (ZSTD_decompressDCtx would also accept several).
    func checkFrame(_ src: UnsafeRawBufferPointer, n: Int) throws(TileCodecError) {
        if dctx == nil { dctx = ZSTD_createDCtx() }
        let size = ZSTD_getFrameContentSize(src.baseAddress, src.count)
        if size == ZSTD_CONTENTSIZE_ERROR { throw .zstd("not a zstd frame") }
        if size != ZSTD_CONTENTSIZE_UNKNOWN && size != UInt64(n) { throw .sizeMismatch(expected: n, got: Int(clamping: size)) }
        let frame = ZSTD_findFrameCompressedSize(src.baseAddress, src.count)
        if ZSTD_isError(frame) != 0 { throw .zstd(String(cString: ZSTD_getErrorName(frame))) }
        guard frame == src.count else { throw .zstd("\(src.count - frame) bytes follow the zstd frame (one frame expected)") }
    }

    func zstdFrame(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawPointer, n: Int) throws(TileCodecError) {
        try checkFrame(src, n: n)
        let z = ZSTD_decompressDCtx(dctx, dst, n, src.baseAddress, src.count)
        if ZSTD_isError(z) != 0 { throw .zstd(String(cString: ZSTD_getErrorName(z))) }
        guard z == n else { throw .sizeMismatch(expected: n, got: z) }
    }

    /// Plane bytes per zstd block: the writer ends a block (a flush; still one frame, spec §5) every 32 KiB of plane,
    /// so an uncached row read stops after the blocks up to its row. 32 KiB measured best of 8/16/32 KiB and one
    /// block (RATIONALE §A.4): ratio −0.1 %, uncached trajectory p50 −20…30 %.
    static let planeBlockBytes = 32 << 10

    /// One zstd frame of `n` bytes whose blocks each cover at most `planeBlockBytes` of input, so that a reader can
    /// stop after the blocks it needs. Returns the frame size, a zstd error code (as `ZSTD_compressCCtx`), or Int.max
    /// when the frame does not fit `capacity`.
    func compressInBlocks(_ src: UnsafeRawPointer, _ n: Int, into dst: UnsafeMutableRawPointer, capacity: Int, firstBlock: Int = 0,
                          parameters: FrameParameters) -> Int {
        let blockBytes = Self.planeBlockBytes
        let first = Self.firstBlockEnd(firstBlock, planeBytes: n)
        if first == 0 && (blockBytes <= 0 || n <= blockBytes) { return compressFrame(src, n, into: dst, capacity: capacity, parameters: parameters) }
        setParameters(parameters)
        _ = ZSTD_CCtx_setPledgedSrcSize(cctx, UInt64(n))
        var output = ZSTD_outBuffer(dst: dst, size: capacity, pos: 0)
        var at = 0
        while at < n {
            let len = at == 0 && first > 0 ? first : min(blockBytes, n - at)
            let last = at + len == n
            var input = ZSTD_inBuffer(src: src + at, size: len, pos: 0)
            while true {
                let r = ZSTD_compressStream2(cctx, &output, &input, last ? ZSTD_e_end : ZSTD_e_flush)
                if ZSTD_isError(r) != 0 { _ = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only); return r }
                if r == 0 && input.pos == input.size { break }
                // Output full: larger than any useful result, so the caller stores the plane raw.
                if output.pos == output.size { _ = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only); return Int.max }
            }
            at += len
        }
        return output.pos
    }

    /// The level of the chain and `p`, on a context with no session under way. Parameters are set again only when
    /// they differ from the previous frame's: resetting them for every frame cost 4 % of zstd's time on the 2 KiB planes
    /// of one-snapshot tiles.
    private func setParameters(_ p: FrameParameters) {
        if cctxParameters == p {
            _ = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only)
            return
        }
        _ = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters)
        _ = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, chain.zstdLevel)
        if p.minMatch > 0 { _ = ZSTD_CCtx_setParameter(cctx, ZSTD_c_minMatch, p.minMatch) }
        if p.fast { _ = ZSTD_CCtx_setParameter(cctx, ZSTD_c_strategy, Int32(ZSTD_fast.rawValue)) }
        cctxParameters = p
    }

    /// One zstd frame of `n` bytes in one block run (as `ZSTD_compressCCtx`, with the parameters given).
    private func compressFrame(_ src: UnsafeRawPointer, _ n: Int, into dst: UnsafeMutableRawPointer, capacity: Int,
                               parameters: FrameParameters) -> Int {
        setParameters(parameters)
        return ZSTD_compress2(cctx, dst, capacity, src, n)
    }

    /// The first `want` of a frame's `n` bytes (a block-by-block decode that stops at the block holding the last byte
    /// wanted: an uncached row needs only its plane's prefix). Same frame checks as `zstdFrame`; the rest of the
    /// frame is not read, which the tile checksum (checked before any decode) makes safe.
    /// `firstBlock`: where the writer ended the first block (`compressInBlocks`; the leading column of a `lead` tile).
    func zstdFramePrefix(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawPointer, n: Int, want: Int,
                         firstBlock: Int = 0) throws(TileCodecError) {
        // Our writer ends a block after `firstBlock` bytes, then every `planeBlockBytes`: when the wanted bytes reach
        // into the last block, the whole frame must be decoded anyway, in one call. (Only a choice of speed: the
        // block-by-block decode below reads any frame.) Without counting the first block, the planes of every tile
        // under 32 KiB a plane were decoded whole when only their leading column was wanted (an append's anchors).
        let first = Self.firstBlockEnd(firstBlock, planeBytes: n)
        let lastBlockStart = first + (n - first - 1) / Self.planeBlockBytes * Self.planeBlockBytes
        if want > lastBlockStart { return try zstdFrame(src, into: dst, n: n) }
        try checkFrame(src, n: n)
        // The buffer-less API decodes block by block straight into `dst` (which holds the window: the frame's output
        // from its start), so it stops after the block holding the last byte wanted, with no copies through zstd's
        // own buffers. With ZSTD_decompressStream, used before, the leading column of a real 16 KiB plane cost as much
        // as the whole plane: 30 µs against 0.2–5 µs now (RATIONALE §C.5).
        let begun = ZSTD_decompressBegin(dctx)
        if ZSTD_isError(begun) != 0 { throw .zstd(String(cString: ZSTD_getErrorName(begun))) }
        var ip = 0, op = 0
        while op < want {
            let need = ZSTD_nextSrcSizeToDecompress(dctx)
            if need == 0 { break }   // the frame ended
            guard need <= src.count - ip else { throw .zstd("frame truncated: \(need) bytes wanted at \(ip) of \(src.count)") }
            let r = ZSTD_decompressContinue(dctx, dst + op, n - op, src.baseAddress! + ip, need)
            if ZSTD_isError(r) != 0 { throw .zstd(String(cString: ZSTD_getErrorName(r))) }
            ip += need
            op += r
        }
        guard op >= want else { throw .sizeMismatch(expected: n, got: op) }
    }

    struct Plane { let offset: Int; let length: Int; let raw: Bool }

    /// §5 `zstdplanes` descriptors, checked against the stored length.
    func planeTable(_ stored: UnsafeRawBufferPointer, n: Int, elementSize e: Int) throws(TileCodecError) -> [Plane] {
        guard stored.count >= 8 * e else { throw .badPlaneTable("\(stored.count) stored bytes cannot hold \(e) plane descriptors") }
        var planes: [Plane] = []
        var offset = 8 * e
        for k in 0..<e {
            let d = UInt64(littleEndian: stored.loadUnaligned(fromByteOffset: 8 * k, as: UInt64.self))
            let raw = d & Spec.planeStoredRawBit != 0
            let len = d & ~Spec.planeStoredRawBit
            guard len <= UInt64(stored.count - offset) else { throw .badPlaneTable("plane \(k) of \(len) bytes overruns the tile") }
            guard !raw || len == UInt64(n / e) else { throw .badPlaneTable("raw plane \(k) has \(len) bytes, expected \(n / e)") }
            planes.append(Plane(offset: offset, length: Int(len), raw: raw))
            offset += Int(len)
        }
        guard offset == stored.count else { throw .badPlaneTable("planes hold \(offset) bytes, the tile stores \(stored.count)") }
        return planes
    }

    /// Undoes the anchoring of a decoded anchored tile, row or column (§5): `params × snapshots` elements at `values`,
    /// `anchor` one element per parameter.
    @_spi(Internals) public static func unanchor(_ values: UnsafeMutableRawPointer, elementSize: Int, params: Int, snapshots: Int, anchor: UnsafeRawPointer) {
        Transforms.anchor(values, elementSize: elementSize, params: params, snapshots: snapshots, anchor: anchor, add: true)
    }

    /// Decodes stored bytes into `out` (exactly the raw tile's size).
    @_spi(Internals) public func decode(_ stored: UnsafeRawBufferPointer, storedRaw: Bool, into out: UnsafeMutableRawBufferPointer,
                       elementSize: Int, params: Int, snapshots: Int) throws(TileCodecError) {
        let n = out.count
        precondition(n == params * snapshots * elementSize, "raw tile size")
        if storedRaw || chain.stages.isEmpty {
            guard stored.count == n else { throw .sizeMismatch(expected: n, got: stored.count) }
            if n > 0 { out.baseAddress!.copyMemory(from: stored.baseAddress!, byteCount: n) }
            return
        }
        if n == 0 { return }
        Self.ensure(&a, n)
        let count = params * snapshots
        // The result must land in `out`: start in `out` or in `a` depending on how many buffer swaps follow.
        let swaps = transforms.filter { $0 == .split || $0 == .lead }.count
        var cur = swaps % 2 == 0 ? out : UnsafeMutableRawBufferPointer(rebasing: a[0..<n])
        var other = swaps % 2 == 0 ? UnsafeMutableRawBufferPointer(rebasing: a[0..<n]) : out
        try inflate(stored, into: cur.baseAddress!, n: n, elementSize: elementSize, snapshots: snapshots)
        var rest = transforms[...]
        if rest.suffix(2) == [.split, .bytedelta] {
            // The first version's default chain: one fused pass instead of two.
            Transforms.byteDeltaUnsplit(from: cur.baseAddress!, to: other.baseAddress!, count: count, elementSize: elementSize)
            swap(&cur, &other)
            rest = rest.dropLast(2)
        }
        for stage in rest.reversed() {
            switch stage {
            case .xor, .sub:
                Transforms.temporal(cur.baseAddress!, elementSize: elementSize, params: params, snapshots: snapshots, xor: stage == .xor, encode: false)
            case .linpred:
                Transforms.linpredDecode(cur.baseAddress!, elementSize: elementSize, params: params, snapshots: snapshots)
            case .lead:
                Transforms.lead(from: cur.baseAddress!, to: other.baseAddress!, params: params, snapshots: snapshots, elementSize: elementSize, encode: false)
                swap(&cur, &other)
            case .split:
                Transforms.unsplit(from: cur.baseAddress!, to: other.baseAddress!, count: count, elementSize: elementSize)
                swap(&cur, &other)
            case .bytedelta:
                Transforms.byteDeltaDecode(cur.baseAddress!, count: count, elementSize: elementSize)
            case .zstd, .zstdPlanes, .lenrans:
                preconditionFailure("terminal stage validated last")
            }
        }
    }
}
