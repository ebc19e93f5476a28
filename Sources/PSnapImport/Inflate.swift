// zlib raw inflate (deflate members of .npz archives, windowBits −15) and CRC-32, streamed in chunks.
@_spi(Internals) import ParamSnap
import CZlib

/// Raw-deflate decompression and CRC-32 over buffers.
package enum RawInflate {
    /// Inflates the raw deflate stream `src`, handing the output to `sink` in chunks of at most `chunk` bytes;
    /// `sink` returns false to stop early (enough output seen). Returns the bytes produced. Throws `.malformed`
    /// naming `path` and `member` when the stream is corrupt, or `.truncated` when it ends early.
    @discardableResult
    package static func inflate(_ src: UnsafeRawBufferPointer, path: String, member: String, chunk: Int = 4 << 20,
                               sink: (UnsafeRawBufferPointer) throws -> Bool) throws -> Int {
        var s = z_stream()
        guard inflateInit2_(&s, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DumpError.malformed(path: path, reason: "member '\(member)': zlib initialisation failed")
        }
        defer { inflateEnd(&s) }
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { out.deallocate() }
        var remaining = src.count
        var next = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: Bytef.self))
        var total = 0
        while true {
            if s.avail_in == 0 && remaining > 0 {
                let n = min(remaining, 1 << 30)
                s.next_in = next
                s.avail_in = uInt(n)
                next = next.map { $0 + n }
                remaining -= n
            }
            s.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            s.avail_out = uInt(chunk)
            let rc = CZlib.inflate(&s, Z_NO_FLUSH)
            let produced = chunk - Int(s.avail_out)
            total += produced
            if produced > 0, try !sink(UnsafeRawBufferPointer(rebasing: out[0..<produced])) { return total }
            if rc == Z_STREAM_END { return total }
            if rc == Z_BUF_ERROR && s.avail_in == 0 && remaining == 0 {
                throw DumpError.truncated(path: path, reason: "member '\(member)': deflate stream ends early after \(total) bytes")
            }
            guard rc == Z_OK || rc == Z_BUF_ERROR else {
                let msg = s.msg.map { String(cString: $0) } ?? "error \(rc)"
                throw DumpError.malformed(path: path, reason: "member '\(member)': corrupt deflate data (\(msg))")
            }
        }
    }

    /// CRC-32 (zip's) of `buf`, continuing from `crc`.
    package static func crc32(_ buf: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = UInt(crc)
        var p = buf.baseAddress?.assumingMemoryBound(to: Bytef.self)
        var n = buf.count
        while n > 0, let q = p {
            let k = min(n, 1 << 30)
            c = CZlib.crc32(c, q, uInt(k))
            p = q + k
            n -= k
        }
        return UInt32(truncatingIfNeeded: c)
    }
}
