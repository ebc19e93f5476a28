// The zip container of `.npz` files (PKWARE APPNOTE): central directory, zip64, local headers; over buffers, no I/O.
@_spi(Internals) import ParamSnap
import Foundation

/// One member of a zip archive, located from its central directory entry and local header.
package struct ZipMember: Equatable, Sendable {
    package var name: String
    /// 0 stored, 8 deflate (others are refused by the converter).
    package var method: UInt16
    package var crc32: UInt32
    package var compressedSize: Int
    package var uncompressedSize: Int
    /// Offset of the member's (compressed) data in the archive.
    package var dataOffset: Int
}

/// The zip container of `.npz` files (PKWARE APPNOTE: end of central directory, zip64, central and local headers).
package enum ZipArchive {
    static let eocdSignature: UInt32 = 0x0605_4B50
    static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    static let zip64EocdSignature: UInt32 = 0x0606_4B50
    static let centralSignature: UInt32 = 0x0201_4B50
    static let localSignature: UInt32 = 0x0403_4B50

    /// Whether `buf` starts like a zip archive.
    package static func looksLikeZip(_ buf: UnsafeRawBufferPointer) -> Bool {
        buf.count >= 4 && buf[0] == 0x50 && buf[1] == 0x4B && ((buf[2] == 3 && buf[3] == 4) || (buf[2] == 5 && buf[3] == 6))
    }

    /// The central directory's entry count, offset and size, from the end-of-central-directory record (and its zip64
    /// record), checked against the buffer.
    private static func centralDirectory(_ buf: UnsafeRawBufferPointer, path: String) throws(DumpError) -> (UInt64, UInt64, UInt64) {
        func bad(_ r: String) -> DumpError { .malformed(path: path, reason: "zip: \(r)") }
        let n = buf.count
        let r = ByteReader(base: buf)
        var eocd = -1
        var o = n - 22
        while o >= max(0, n - 22 - 65535) {
            if r.u32(o) == eocdSignature, o + 22 + Int(r.u16(o + 20)) == n { eocd = o; break }
            o -= 1
        }
        if eocd < 0 {
            // Tolerate trailing garbage after the comment, but say when the archive is cut.
            o = n - 22
            while o >= max(0, n - 22 - 65535) { if r.u32(o) == eocdSignature { eocd = o; break }; o -= 1 }
        }
        guard eocd >= 0 else { throw .truncated(path: path, reason: "no zip end-of-central-directory record (the file is cut or not a zip)") }
        var entries = UInt64(r.u16(eocd + 10))
        var cdSize = UInt64(r.u32(eocd + 12))
        var cdOffset = UInt64(r.u32(eocd + 16))
        guard r.u16(eocd + 4) == 0 || r.u16(eocd + 4) == 0xFFFF else { throw bad("archives spanning several disks are not supported") }
        if entries == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            guard eocd >= 20, r.u32(eocd - 20) == zip64LocatorSignature else { throw bad("zip64 sizes without a zip64 locator") }
            let z = r.u64(eocd - 20 + 8)
            guard n >= 56, z <= UInt64(n - 56), r.u32(Int(z)) == zip64EocdSignature else { throw bad("zip64 end record at \(z) is missing") }
            entries = r.u64(Int(z) + 32)
            cdSize = r.u64(Int(z) + 40)
            cdOffset = r.u64(Int(z) + 48)
        }
        guard cdOffset <= UInt64(n), cdSize <= UInt64(n) - cdOffset else {
            throw .truncated(path: path, reason: "central directory \(cdOffset)+\(cdSize) outside the \(n)-byte file")
        }
        guard entries <= cdSize / 46 else { throw bad("\(entries) entries cannot fit a \(cdSize)-byte central directory") }
        return (entries, cdOffset, cdSize)
    }

    /// Every member of the archive in `buf`, in central-directory order. Encrypted members and archives spanning
    /// disks are refused; every offset and length is checked against the buffer.
    package static func members(_ buf: UnsafeRawBufferPointer, path: String) throws(DumpError) -> [ZipMember] {
        func bad(_ r: String) -> DumpError { .malformed(path: path, reason: "zip: \(r)") }
        let n = buf.count
        let r = ByteReader(base: buf)
        guard n >= 22 else { throw .truncated(path: path, reason: "\(n) bytes, a zip archive needs at least 22") }
        let (entries, cdOffset, cdSize) = try centralDirectory(buf, path: path)
        var out: [ZipMember] = []
        var c = Int(cdOffset)
        let cdEnd = Int(cdOffset + cdSize)
        for e in 0..<Int(entries) {
            guard c + 46 <= cdEnd, r.u32(c) == centralSignature else { throw bad("central directory entry \(e) is damaged") }
            let flags = r.u16(c + 8)
            let method = r.u16(c + 10)
            let crc = r.u32(c + 16)
            var csize = UInt64(r.u32(c + 20)), usize = UInt64(r.u32(c + 24))
            let nameLen = Int(r.u16(c + 28)), extraLen = Int(r.u16(c + 30)), commentLen = Int(r.u16(c + 32))
            var local = UInt64(r.u32(c + 42))
            guard c + 46 + nameLen + extraLen + commentLen <= cdEnd else { throw bad("central directory entry \(e) overruns the directory") }
            let name = String(decoding: buf[(c + 46)..<(c + 46 + nameLen)], as: UTF8.self)
            // zip64 extended information: the 0xFFFFFFFF fields, in order usize, csize, local offset.
            var x = c + 46 + nameLen
            let xEnd = x + extraLen
            while x + 4 <= xEnd {
                let id = r.u16(x), len = Int(r.u16(x + 2))
                guard x + 4 + len <= xEnd else { throw bad("member '\(name)': extra field overruns its entry") }
                if id == 1 {
                    var f = x + 4
                    func next() throws(DumpError) -> UInt64 {
                        guard f + 8 <= x + 4 + len else { throw bad("member '\(name)': zip64 field too short") }
                        defer { f += 8 }
                        return r.u64(f)
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                x += 4 + len
            }
            guard flags & 1 == 0 else { throw bad("member '\(name)' is encrypted") }
            guard n >= 30, local <= UInt64(n - 30), r.u32(Int(local)) == localSignature else {
                throw bad("member '\(name)': local header at \(local) is missing")
            }
            let l = Int(local)
            let data = UInt64(l + 30) + UInt64(r.u16(l + 26)) + UInt64(r.u16(l + 28))
            guard data <= UInt64(n), csize <= UInt64(n) - data else {
                throw .truncated(path: path, reason: "member '\(name)' data \(data)+\(csize) outside the \(n)-byte file")
            }
            guard usize <= UInt64(Int.max / 2) else { throw bad("member '\(name)': size \(usize) is absurd") }
            out.append(ZipMember(name: name, method: method, crc32: crc, compressedSize: Int(csize), uncompressedSize: Int(usize),
                                 dataOffset: Int(data)))
            c += 46 + nameLen + extraLen + commentLen
        }
        return out
    }

    /// A local file header for a stored (uncompressed) member (zip64 sizes in an extra field when they need it).
    package static func localHeader(name: String, crc32: UInt32, size: UInt64) -> [UInt8] {
        let big = size >= 0xFFFF_FFFF
        var w = ByteWriter()
        w.u32(localSignature); w.u16(big ? 45 : 20); w.u16(0x0800); w.u16(0); w.u16(0); w.u16(0x21)
        w.u32(crc32); w.u32(big ? 0xFFFF_FFFF : UInt32(size)); w.u32(big ? 0xFFFF_FFFF : UInt32(size))
        w.u16(UInt16(name.utf8.count)); w.u16(big ? 20 : 0)
        w.raw(Array(name.utf8))
        if big { w.u16(1); w.u16(16); w.u64(size); w.u64(size) }
        return w.bytes
    }

    /// The central directory and end records for stored members `(name, crc, size, local header offset)` that
    /// start at `offset` in the archive.
    package static func directory(_ members: [(name: String, crc32: UInt32, size: UInt64, offset: UInt64)], at offset: UInt64) -> [UInt8] {
        var w = ByteWriter()
        for m in members {
            let bigSize = m.size >= 0xFFFF_FFFF, bigOff = m.offset >= 0xFFFF_FFFF
            var extra = ByteWriter()
            if bigSize || bigOff {
                extra.u16(1); extra.u16(UInt16((bigSize ? 16 : 0) + (bigOff ? 8 : 0)))
                if bigSize { extra.u64(m.size); extra.u64(m.size) }
                if bigOff { extra.u64(m.offset) }
            }
            w.u32(centralSignature); w.u16(45); w.u16(bigSize || bigOff ? 45 : 20); w.u16(0x0800); w.u16(0); w.u16(0); w.u16(0x21)
            w.u32(m.crc32); w.u32(bigSize ? 0xFFFF_FFFF : UInt32(m.size)); w.u32(bigSize ? 0xFFFF_FFFF : UInt32(m.size))
            w.u16(UInt16(m.name.utf8.count)); w.u16(UInt16(extra.bytes.count)); w.u16(0); w.u16(0); w.u16(0); w.u32(0)
            w.u32(bigOff ? 0xFFFF_FFFF : UInt32(m.offset))
            w.raw(Array(m.name.utf8)); w.raw(extra.bytes)
        }
        let cdSize = UInt64(w.bytes.count)
        let end = offset + cdSize
        let need64 = members.count >= 0xFFFF || offset >= 0xFFFF_FFFF || cdSize >= 0xFFFF_FFFF
        if need64 {
            w.u32(zip64EocdSignature); w.u64(44); w.u16(45); w.u16(45); w.u32(0); w.u32(0)
            w.u64(UInt64(members.count)); w.u64(UInt64(members.count)); w.u64(cdSize); w.u64(offset)
            w.u32(zip64LocatorSignature); w.u32(0); w.u64(end); w.u32(1)
        }
        w.u32(eocdSignature); w.u16(0); w.u16(0)
        w.u16(need64 ? 0xFFFF : UInt16(members.count)); w.u16(need64 ? 0xFFFF : UInt16(members.count))
        w.u32(need64 ? 0xFFFF_FFFF : UInt32(cdSize)); w.u32(need64 ? 0xFFFF_FFFF : UInt32(offset)); w.u16(0)
        return w.bytes
    }
}
