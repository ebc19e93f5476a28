// Encodes a raw tile into stored bytes and back (spec §4, §5), with per-thread scratch and zstd contexts.
import CZstd

/// Why a stored tile could not be decoded (wrapped by the reader into a `FormatError` naming the tile).
public enum TileCodecError: Error, Equatable, Sendable {
    case zstd(String)
    case sizeMismatch(expected: Int, got: Int)
}

/// Per-thread scratch memory and zstd contexts for encoding and decoding tiles. Not thread-safe:
/// give each worker its own.
public final class TileCodec: @unchecked Sendable {
    public let chain: CodecChain
    private var a: UnsafeMutableRawBufferPointer = .init(start: nil, count: 0)
    private var b: UnsafeMutableRawBufferPointer = .init(start: nil, count: 0)
    private var r: UnsafeMutableRawBufferPointer = .init(start: nil, count: 0)
    private var cctx: OpaquePointer?
    private var dctx: OpaquePointer?

    public init(chain: CodecChain) { self.chain = chain }

    deinit {
        a.deallocate(); b.deallocate(); r.deallocate()
        if let cctx { ZSTD_freeCCtx(cctx) }
        if let dctx { ZSTD_freeDCtx(dctx) }
    }

    private static func ensure(_ buf: inout UnsafeMutableRawBufferPointer, _ n: Int) {
        if buf.count < n {
            buf.deallocate()
            buf = .allocate(byteCount: max(n, 64), alignment: 64)
        }
    }

    /// A scratch buffer of `n` bytes owned by this codec, for a decoded tile (valid until the next call).
    public func rawScratch(_ n: Int) -> UnsafeMutableRawBufferPointer {
        Self.ensure(&r, n)
        return UnsafeMutableRawBufferPointer(rebasing: r[0..<n])
    }

    /// Encodes one raw tile (`params × snapshots` elements of `elementSize` bytes, parameter-major).
    /// Returns the stored bytes (valid until the next call on this codec) and whether they are raw (§4).
    public func encode(_ raw: UnsafeRawBufferPointer, elementSize: Int, params: Int, snapshots: Int) -> (stored: UnsafeRawBufferPointer, storedRaw: Bool) {
        let n = raw.count
        precondition(n == params * snapshots * elementSize, "raw tile size")
        if n == 0 || chain.stages.isEmpty { return (raw, true) }
        let cap = max(n, ZSTD_compressBound(n))
        Self.ensure(&a, cap)
        Self.ensure(&b, cap)
        a.baseAddress!.copyMemory(from: raw.baseAddress!, byteCount: n)
        var cur = a, other = b
        let count = params * snapshots
        for stage in chain.stages {
            switch stage {
            case .xor, .sub:
                Transforms.temporal(cur.baseAddress!, elementSize: elementSize, params: params, snapshots: snapshots, xor: stage == .xor, encode: true)
            case .split:
                Transforms.split(from: cur.baseAddress!, to: other.baseAddress!, count: count, elementSize: elementSize)
                swap(&cur, &other)
            case .bytedelta:
                Transforms.byteDeltaEncode(cur.baseAddress!, count: count, elementSize: elementSize)
            case .zstd:
                if cctx == nil { cctx = ZSTD_createCCtx() }
                let r = ZSTD_compressCCtx(cctx, other.baseAddress!, other.count, cur.baseAddress!, n, chain.zstdLevel)
                // A compression error here (only memory exhaustion in practice) falls back to storing raw.
                if ZSTD_isError(r) != 0 || r >= n { return (raw, true) }
                return (UnsafeRawBufferPointer(rebasing: other[0..<r]), false)
            }
        }
        return (UnsafeRawBufferPointer(rebasing: cur[0..<n]), false)
    }

    /// Decodes stored bytes into `out` (exactly the raw tile's size).
    public func decode(_ stored: UnsafeRawBufferPointer, storedRaw: Bool, into out: UnsafeMutableRawBufferPointer,
                       elementSize: Int, params: Int, snapshots: Int) throws(TileCodecError) {
        let n = out.count
        precondition(n == params * snapshots * elementSize, "raw tile size")
        if storedRaw || chain.stages.isEmpty {
            guard stored.count == n else { throw .sizeMismatch(expected: n, got: stored.count) }
            if n > 0 { out.baseAddress!.copyMemory(from: stored.baseAddress!, byteCount: n) }
            return
        }
        if n == 0 { return }
        // Work backwards through the chain. The final result must land in `out`; use `a` as the other buffer.
        Self.ensure(&a, n)
        var cur: UnsafeMutableRawBufferPointer
        var other: UnsafeMutableRawBufferPointer
        let count = params * snapshots
        let stages = chain.stages
        // Count buffer swaps so the last stage writes into `out`.
        let swaps = stages.filter { $0 == .split }.count
        let startInOut = swaps % 2 == 0
        cur = startInOut ? out : UnsafeMutableRawBufferPointer(rebasing: a[0..<n])
        other = startInOut ? UnsafeMutableRawBufferPointer(rebasing: a[0..<n]) : out
        var rest = stages[...]
        if stages.last == .zstd {
            rest = stages.dropLast()
            if dctx == nil { dctx = ZSTD_createDCtx() }
            let size = ZSTD_getFrameContentSize(stored.baseAddress, stored.count)
            if size == ZSTD_CONTENTSIZE_ERROR { throw .zstd("not a zstd frame") }
            if size != ZSTD_CONTENTSIZE_UNKNOWN && size != UInt64(n) { throw .sizeMismatch(expected: n, got: Int(clamping: size)) }
            let r = ZSTD_decompressDCtx(dctx, cur.baseAddress!, n, stored.baseAddress, stored.count)
            if ZSTD_isError(r) != 0 { throw .zstd(String(cString: ZSTD_getErrorName(r))) }
            guard r == n else { throw .sizeMismatch(expected: n, got: r) }
        } else {
            guard stored.count == n else { throw .sizeMismatch(expected: n, got: stored.count) }
            cur.baseAddress!.copyMemory(from: stored.baseAddress!, byteCount: n)
        }
        for stage in rest.reversed() {
            switch stage {
            case .xor, .sub:
                Transforms.temporal(cur.baseAddress!, elementSize: elementSize, params: params, snapshots: snapshots, xor: stage == .xor, encode: false)
            case .split:
                Transforms.unsplit(from: cur.baseAddress!, to: other.baseAddress!, count: count, elementSize: elementSize)
                swap(&cur, &other)
            case .bytedelta:
                Transforms.byteDeltaDecode(cur.baseAddress!, count: count, elementSize: elementSize)
            case .zstd:
                preconditionFailure("zstd validated as last stage")
            }
        }
    }

    /// Whether `decodeRow` can decode one parameter without reconstructing the whole tile: the chain must be
    /// (in encoding order) an optional temporal stage, `split`, an optional `bytedelta`, an optional `zstd`.
    var rowDecodable: Bool {
        var st = chain.stages[...]
        if st.last == .zstd { st = st.dropLast() }
        if st.first == .xor || st.first == .sub { st = st.dropFirst() }
        return st == [.split] || st == [.split, .bytedelta] || st.isEmpty
    }

    /// Decodes only parameter `row` of a tile (its `snapshots` values) into `out` (`snapshots × elementSize` bytes).
    /// zstd must still inflate the whole tile; the byte transforms touch only this row (plus a fast byte sum).
    public func decodeRow(_ stored: UnsafeRawBufferPointer, storedRaw: Bool, row: Int, into out: UnsafeMutableRawPointer,
                          elementSize e: Int, params: Int, snapshots S: Int) throws(TileCodecError) {
        let n = params * S * e
        let rowBytes = S * e
        if storedRaw || chain.stages.isEmpty {
            guard stored.count == n else { throw .sizeMismatch(expected: n, got: stored.count) }
            out.copyMemory(from: stored.baseAddress! + row * rowBytes, byteCount: rowBytes)
            return
        }
        guard rowDecodable else {
            let full = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 64)
            defer { full.deallocate() }
            try decode(stored, storedRaw: false, into: full, elementSize: e, params: params, snapshots: S)
            out.copyMemory(from: full.baseAddress! + row * rowBytes, byteCount: rowBytes)
            return
        }
        let buf: UnsafeRawPointer
        if chain.stages.last == .zstd {
            Self.ensure(&a, n)
            if dctx == nil { dctx = ZSTD_createDCtx() }
            let size = ZSTD_getFrameContentSize(stored.baseAddress, stored.count)
            if size == ZSTD_CONTENTSIZE_ERROR { throw .zstd("not a zstd frame") }
            if size != ZSTD_CONTENTSIZE_UNKNOWN && size != UInt64(n) { throw .sizeMismatch(expected: n, got: Int(clamping: size)) }
            let r = ZSTD_decompressDCtx(dctx, a.baseAddress!, n, stored.baseAddress, stored.count)
            if ZSTD_isError(r) != 0 { throw .zstd(String(cString: ZSTD_getErrorName(r))) }
            guard r == n else { throw .sizeMismatch(expected: n, got: r) }
            buf = UnsafeRawPointer(a.baseAddress!)
        } else {
            guard stored.count == n else { throw .sizeMismatch(expected: n, got: stored.count) }
            buf = stored.baseAddress!
        }
        let stages = chain.stages
        let count = params * S
        if stages.contains(.split) {
            let first = row * S
            let o = out.assumingMemoryBound(to: UInt8.self)
            for k in 0..<e {
                let plane = buf.assumingMemoryBound(to: UInt8.self) + k * count
                if stages.contains(.bytedelta) {
                    var acc = Transforms.byteSum(plane, count: first)
                    for s in 0..<S { acc = acc &+ plane[first + s]; o[s * e + k] = acc }
                } else {
                    for s in 0..<S { o[s * e + k] = plane[first + s] }
                }
            }
        } else {
            out.copyMemory(from: buf + row * rowBytes, byteCount: rowBytes)
        }
        if let t = stages.first, t == .xor || t == .sub {
            Transforms.temporal(out, elementSize: e, params: 1, snapshots: S, xor: t == .xor, encode: false)
        }
    }
}
