// Pure parsers and encoders of checkpoint dump formats (npy header, zip directory, HF shard index, Trainer log):
// functions over buffers, no file I/O; every size and offset from the buffer is checked.
import Foundation

/// A parsed `.npy` header (NumPy format versions 1.0, 2.0 and 3.0).
public struct NpyHeader: Equatable, Sendable {
    /// The `descr` string, e.g. `<f4`.
    public var descr: String
    /// Whether the data is stored column-major (Fortran order).
    public var fortranOrder: Bool
    public var shape: [Int]
    /// Offset of the array data from the start of the buffer parsed.
    public var dataOffset: Int
    /// The dtype, nil when `descr` is not one ParamSnap stores (f2, f4, f8; bf16 has no NumPy descr).
    public var dtype: DType?
    /// Whether the data is big-endian (`>f4`): it must be byte-swapped.
    public var bigEndian: Bool

    /// `\x93NUMPY`.
    public static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
    /// Largest header accepted (NumPy itself refuses headers above 10,000 bytes by default).
    public static let maxHeaderSize = 1 << 20

    /// Parses the header at the start of `buf`; `path` only names the file in errors. The data itself is not
    /// checked here (its size is `product(shape) × element size` from `dataOffset`).
    public static func parse(_ buf: UnsafeRawBufferPointer, path: String) throws(DumpError) -> NpyHeader {
        func bad(_ r: String) -> DumpError { .malformed(path: path, reason: "npy header: \(r)") }
        guard buf.count >= 10 else { throw .truncated(path: path, reason: "\(buf.count) bytes, an npy header needs at least 10") }
        guard Array(buf[0..<6]) == magic else { throw bad("no \\x93NUMPY magic") }
        let major = buf[6]
        let headerLength: Int, start: Int
        switch major {
        case 1:
            headerLength = Int(UInt16(buf[8]) | UInt16(buf[9]) << 8); start = 10
        case 2, 3:
            guard buf.count >= 12 else { throw .truncated(path: path, reason: "npy v\(major) header length needs 12 bytes") }
            headerLength = Int(UInt32(buf[8]) | UInt32(buf[9]) << 8 | UInt32(buf[10]) << 16 | UInt32(buf[11]) << 24); start = 12
        default:
            throw bad("unknown format version \(major).\(buf[7])")
        }
        guard headerLength <= maxHeaderSize else { throw bad("header length \(headerLength) exceeds \(maxHeaderSize)") }
        guard headerLength <= buf.count - start else {
            throw .truncated(path: path, reason: "npy header of \(headerLength) bytes but only \(buf.count - start) follow")
        }
        guard let text = String(bytes: buf[start..<(start + headerLength)], encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw bad("header is not text")
        }
        var p = PyLiteralParser(text: Array(text.unicodeScalars))
        let dict: [String: PyLiteralParser.Value]
        do { dict = try p.parseDict() } catch { throw bad("header is not a Python dict literal (\(error.reason))") }
        guard case .string(let descr)? = dict["descr"] else { throw bad("no 'descr' string (structured arrays are not supported)") }
        guard case .bool(let fortran)? = dict["fortran_order"] else { throw bad("no 'fortran_order' True/False") }
        guard case .tuple(let dims)? = dict["shape"] else { throw bad("no 'shape' tuple") }
        guard dims.count <= Spec.maxDims else { throw bad("\(dims.count) dimensions (max \(Spec.maxDims))") }
        var shape: [Int] = []
        for d in dims {
            guard d >= 0 else { throw bad("negative dimension in shape \(dims)") }
            shape.append(d)
        }
        var dtype: DType? = nil
        var big = false
        let chars = Array(descr)
        if chars.count == 3, "<>=|".contains(chars[0]), chars[1] == "f" {
            big = chars[0] == ">"
            switch chars[2] {
            case "2": dtype = .f16
            case "4": dtype = .f32
            case "8": dtype = .f64
            default: dtype = nil
            }
        }
        return NpyHeader(descr: descr, fortranOrder: fortran, shape: shape, dataOffset: start + headerLength, dtype: dtype, bigEndian: big)
    }

    /// A version 1.0 header for a C-order little-endian array, padded so the data starts on a 64-byte boundary.
    /// bf16 has no NumPy dtype: it is written as `<u2` (its bit patterns; view them with ml_dtypes.bfloat16).
    public static func encode(dtype: DType, shape: [Int]) -> [UInt8] {
        let descr: String
        switch dtype {
        case .f32: descr = "<f4"
        case .f16: descr = "<f2"
        case .f64: descr = "<f8"
        case .bf16: descr = "<u2"
        }
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = magic + [1, 0]
        let n = dict.utf8.count
        out += [UInt8(n & 0xFF), UInt8(n >> 8)]
        out += Array(dict.utf8)
        return out
    }
}

/// A minimal parser of the Python literal in an npy header: a dict of string keys whose values are strings,
/// booleans, integers or tuples of integers.
struct PyLiteralParser {
    enum Value: Equatable { case string(String), bool(Bool), int(Int), tuple([Int]) }
    struct Failure: Error { let reason: String }
    let text: [Unicode.Scalar]
    var i = 0

    init(text: [Unicode.Scalar]) { self.text = text }

    mutating func skipSpace() { while i < text.count, text[i].properties.isWhitespace { i += 1 } }

    mutating func expect(_ c: Unicode.Scalar) throws(Failure) {
        skipSpace()
        guard i < text.count, text[i] == c else { throw Failure(reason: "expected '\(c)' at character \(i)") }
        i += 1
    }

    mutating func peek() -> Unicode.Scalar? { skipSpace(); return i < text.count ? text[i] : nil }

    mutating func parseString() throws(Failure) -> String {
        skipSpace()
        guard i < text.count, text[i] == "'" || text[i] == "\"" else { throw Failure(reason: "expected a string at character \(i)") }
        let q = text[i]
        i += 1
        var s = String.UnicodeScalarView()
        while i < text.count, text[i] != q {
            if text[i] == "\\" { i += 1; guard i < text.count else { break } }
            s.append(text[i]); i += 1
        }
        guard i < text.count else { throw Failure(reason: "unterminated string") }
        i += 1
        return String(s)
    }

    mutating func parseInt() throws(Failure) -> Int {
        skipSpace()
        var digits = ""
        if i < text.count, text[i] == "-" { digits.append("-"); i += 1 }
        while i < text.count, ("0"..."9").contains(text[i]) { digits.unicodeScalars.append(text[i]); i += 1 }
        if i < text.count, text[i] == "L" { i += 1 }   // Python 2 long suffix
        guard let v = Int(digits) else { throw Failure(reason: "expected an integer at character \(i)") }
        return v
    }

    mutating func parseValue() throws(Failure) -> Value {
        guard let c = peek() else { throw Failure(reason: "unexpected end") }
        switch c {
        case "'", "\"": return .string(try parseString())
        case "(", "[":
            let close: Unicode.Scalar = c == "(" ? ")" : "]"
            i += 1
            var items: [Int] = []
            while peek() != close {
                items.append(try parseInt())
                if peek() == "," { i += 1 } else { break }
            }
            try expect(close)
            return .tuple(items)
        case "T", "F":
            for (word, v) in [("True", true), ("False", false)] {
                let w = Array(word.unicodeScalars)
                if i + w.count <= text.count, Array(text[i..<(i + w.count)]) == w { i += w.count; return .bool(v) }
            }
            throw Failure(reason: "unknown word at character \(i)")
        default:
            return .int(try parseInt())
        }
    }

    mutating func parseDict() throws(Failure) -> [String: Value] {
        try expect("{")
        var out: [String: Value] = [:]
        while peek() != "}" {
            let k = try parseString()
            try expect(":")
            out[k] = try parseValue()
            if peek() == "," { i += 1 } else { break }
        }
        try expect("}")
        return out
    }
}

/// One member of a zip archive, located from its central directory entry and local header.
public struct ZipMember: Equatable, Sendable {
    public var name: String
    /// 0 stored, 8 deflate (others are refused by the converter).
    public var method: UInt16
    public var crc32: UInt32
    public var compressedSize: Int
    public var uncompressedSize: Int
    /// Offset of the member's (compressed) data in the archive.
    public var dataOffset: Int
}

/// The zip container of `.npz` files (PKWARE APPNOTE: end of central directory, zip64, central and local headers).
public enum ZipArchive {
    static let eocdSignature: UInt32 = 0x0605_4B50
    static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    static let zip64EocdSignature: UInt32 = 0x0606_4B50
    static let centralSignature: UInt32 = 0x0201_4B50
    static let localSignature: UInt32 = 0x0403_4B50

    /// Whether `buf` starts like a zip archive.
    public static func looksLikeZip(_ buf: UnsafeRawBufferPointer) -> Bool {
        buf.count >= 4 && buf[0] == 0x50 && buf[1] == 0x4B && ((buf[2] == 3 && buf[3] == 4) || (buf[2] == 5 && buf[3] == 6))
    }

    /// Every member of the archive in `buf`, in central-directory order. Encrypted members and archives spanning
    /// disks are refused; every offset and length is checked against the buffer.
    public static func members(_ buf: UnsafeRawBufferPointer, path: String) throws(DumpError) -> [ZipMember] {
        func bad(_ r: String) -> DumpError { .malformed(path: path, reason: "zip: \(r)") }
        let n = buf.count
        let r = ByteReader(base: buf)
        guard n >= 22 else { throw .truncated(path: path, reason: "\(n) bytes, a zip archive needs at least 22") }
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
    public static func localHeader(name: String, crc32: UInt32, size: UInt64) -> [UInt8] {
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
    public static func directory(_ members: [(name: String, crc32: UInt32, size: UInt64, offset: UInt64)], at offset: UInt64) -> [UInt8] {
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

/// `model.safetensors.index.json` of a sharded Hugging Face checkpoint.
public enum HFShardIndex {
    /// Tensor name → shard file name, from the index's `weight_map` (names keyed by their bytes: the exact
    /// parser keeps "e\u{301}" and "\u{e9}" apart; a name listed twice is refused). Shard names must be plain
    /// relative paths inside the checkpoint folder (no `..`, not absolute).
    public static func parse(_ data: Data, path: String) throws(DumpError) -> [TensorName: String] {
        let json: ExactJSON
        do { json = try data.withUnsafeBytes { b throws(ExactJSON.Failure) in try ExactJSON.parse(b) } } catch {
            throw .malformed(path: path, reason: "not JSON (\(error))")
        }
        guard json.members != nil else { throw .malformed(path: path, reason: "not a JSON object") }
        guard let map = json["weight_map"]?.members else { throw .malformed(path: path, reason: "no \"weight_map\" object") }
        var out: [TensorName: String] = [:]
        for m in map {
            guard let shard = m.value.string, !shard.isEmpty, !shard.hasPrefix("/"), !shard.split(separator: "/").contains("..") else {
                throw .malformed(path: path, reason: "weight_map entry for '\(m.key)' is not a shard file inside the folder")
            }
            guard out.updateValue(shard, forKey: TensorName(m.key)) == nil else {
                throw .malformed(path: path, reason: "weight_map lists tensor '\(m.key)' twice")
            }
        }
        return out
    }
}

/// The `log_history` of a Hugging Face `trainer_state.json` (or a log shaped like it).
public struct TrainerLog: Sendable {
    /// `global_step`, when present.
    public var globalStep: Int64?
    /// `epoch` of the state, when present.
    public var epoch: Double?
    /// Numeric fields of each log entry.
    public var entries: [[String: Double]]

    /// Parses the JSON of a trainer state; non-numeric fields of log entries are ignored.
    public static func parse(_ data: Data, path: String) throws(DumpError) -> TrainerLog {
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .malformed(path: path, reason: "not a JSON object")
        }
        func num(_ v: Any?) -> Double? {
            guard let n = v as? NSNumber else { return nil }
            return n.doubleValue
        }
        var log = TrainerLog(globalStep: num(obj["global_step"]).flatMap { Int64(exactly: $0) }, epoch: num(obj["epoch"]), entries: [])
        for e in obj["log_history"] as? [Any] ?? [] {
            guard let d = e as? [String: Any] else { continue }
            var m: [String: Double] = [:]
            for (k, v) in d { if let x = num(v), x.isFinite { m[k] = x } }
            log.entries.append(m)
        }
        return log
    }

    /// Epoch and metadata (loss, learning rate, … as numbers) of `step`: the entries logged at that step, or, in
    /// logs without steps, the entries of that epoch. Empty when nothing was logged for it.
    public func snapshotMetadata(step: Int64) -> (epoch: Double?, values: [String: MetaValue]) {
        let hasSteps = entries.contains { $0["step"] != nil }
        var values: [String: MetaValue] = [:]
        var epoch: Double? = nil
        for e in entries {
            let match = hasSteps ? e["step"] == Double(step) : e["epoch"] == Double(step)
            guard match else { continue }
            for (k, v) in e where k != "step" && k != "epoch" { values[k] = .number(v) }
            if let x = e["epoch"] { epoch = x }
        }
        if epoch == nil, globalStep == step { epoch = self.epoch }
        return (epoch, values)
    }
}

/// `--steps`: Python-slice-like selections over step numbers, `start:stop:stride`, comma-separated.
public struct StepSelection: Equatable, Sendable {
    /// One `start:stop:stride` (or a single step when `single`).
    public struct Slice: Equatable, Sendable {
        public var start: Int64?
        public var stop: Int64?
        public var stride: Int64
        public var single: Bool
    }
    public var slices: [Slice]

    /// Parses `0:1000:10`, `:500`, `100:`, `::5`, `42`, or several of them separated by commas; nil when malformed.
    public init?(parsing text: String) {
        var out: [Slice] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let f = part.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            func int(_ s: String) -> Int64?? { s.isEmpty ? .some(nil) : Int64(s).map { .some($0) } }
            if f.count == 1 {
                guard let v = Int64(f[0]) else { return nil }
                out.append(Slice(start: v, stop: v == .max ? nil : v + 1, stride: 1, single: true))  // no overflow at Int64.max
                continue
            }
            guard f.count <= 3, let a = int(f[0]), let b = int(f[1]) else { return nil }
            var stride: Int64 = 1
            if f.count == 3, !f[2].isEmpty { guard let s = Int64(f[2]), s > 0 else { return nil }; stride = s }
            out.append(Slice(start: a, stop: b, stride: stride, single: false))
        }
        guard !out.isEmpty else { return nil }
        slices = out
    }

    /// Whether `step` is selected; `first` (the smallest step of the run) anchors a slice without a start.
    public func contains(_ step: Int64, first: Int64) -> Bool {
        slices.contains { s in
            let start = s.start ?? first
            guard step >= start else { return false }
            if let stop = s.stop, step >= stop { return false }
            // step ≥ start, so the distance fits in 64 bits unsigned (it may not fit in Int64: no trap).
            return UInt64(bitPattern: step &- start) % UInt64(s.stride) == 0
        }
    }
}

/// Names and orders.
public enum DumpNames {
    /// Natural order: runs of digits compare as numbers (step-9 < step-10 < step-100), the rest by character.
    public static func naturalLess(_ a: String, _ b: String) -> Bool {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        var i = 0, j = 0
        func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }
        while i < x.count, j < y.count {
            if isDigit(x[i]), isDigit(y[j]) {
                var i2 = i, j2 = j
                while i2 < x.count, isDigit(x[i2]) { i2 += 1 }
                while j2 < y.count, isDigit(y[j2]) { j2 += 1 }
                let da = String(String.UnicodeScalarView(x[i..<i2])).drop { $0 == "0" }
                let db = String(String.UnicodeScalarView(y[j..<j2])).drop { $0 == "0" }
                if da.count != db.count { return da.count < db.count }
                if da != db { return da < db }
                i = i2; j = j2
            } else {
                if x[i] != y[j] { return x[i].value < y[j].value }
                i += 1; j += 1
            }
        }
        return x.count - i < y.count - j
    }

    /// The step number in a file or folder name: its last run of ASCII digits (`step-015` → 15, `checkpoint-30`
    /// → 30), after dropping a shard suffix (`model-00001-of-00002` has none); nil when there is none. A number
    /// past the largest step (2^63 − 1) is refused, naming `path`, rather than read as no number.
    public static func stepNumber(_ name: String, path: String) throws(DumpError) -> Int64? {
        let scalars = Array(name.unicodeScalars)
        var end = scalars.count
        if let shard = shardSuffix(name) { end -= shard }
        var i = end
        while i > 0, !("0"..."9").contains(scalars[i - 1]) { i -= 1 }
        let last = i
        while i > 0, ("0"..."9").contains(scalars[i - 1]) { i -= 1 }
        guard i < last else { return nil }
        let digits = String(String.UnicodeScalarView(scalars[i..<last]))
        guard let v = Int64(digits) else {
            throw .badStep(path: path, reason: "step number \(digits) in the name exceeds the largest step, \(Int64.max)")
        }
        return v
    }

    /// The length in characters of a Hugging Face shard suffix `-NNNNN-of-NNNNN` ending `stem`, or nil.
    public static func shardSuffix(_ stem: String) -> Int? {
        guard let r = stem.range(of: "-[0-9]+-of-[0-9]+$", options: .regularExpression) else { return nil }
        return stem[r].unicodeScalars.count
    }

    /// A tensor name from a file stem: the stem without its step number and the separators around it
    /// (`w_000` → `w`, `fc1.weight-step-10` → `fc1.weight-step`), or `tensor` when nothing is left.
    public static func arrayName(fromStem stem: String) -> String {
        var s = Substring(stem)
        if let r = stem.range(of: "[0-9]+(?=[^0-9]*$)", options: .regularExpression) {
            s = stem[..<r.lowerBound] + stem[r.upperBound...]
        }
        let trimmed = s.trimmingCharacters(in: CharacterSet(charactersIn: "-_. "))
        return trimmed.isEmpty ? "tensor" : trimmed
    }

    /// fnmatch(3)-style glob: `*`, `?`, `[...]` (with `!` or `^` negation); `*` also matches dots and slashes.
    public static func globMatch(_ pattern: String, _ name: String) -> Bool {
        let p = Array(pattern.unicodeScalars), s = Array(name.unicodeScalars)
        var pi = 0, si = 0, starP = -1, starS = 0
        func classMatch(_ at: Int, _ c: Unicode.Scalar) -> (matched: Bool, next: Int)? {
            var k = at + 1
            var negate = false
            if k < p.count, p[k] == "!" || p[k] == "^" { negate = true; k += 1 }
            var matched = false, first = true
            while k < p.count, p[k] != "]" || first {
                first = false
                if k + 2 < p.count, p[k + 1] == "-", p[k + 2] != "]" {
                    if p[k].value <= c.value && c.value <= p[k + 2].value { matched = true }
                    k += 3
                } else {
                    if p[k] == c { matched = true }
                    k += 1
                }
            }
            guard k < p.count else { return nil }   // no closing bracket: a literal '['
            return (matched != negate, k + 1)
        }
        while si < s.count {
            if pi < p.count {
                switch p[pi] {
                case "*": starP = pi; starS = si; pi += 1; continue
                case "?": pi += 1; si += 1; continue
                case "[":
                    if let (m, next) = classMatch(pi, s[si]) {
                        if m { pi = next; si += 1; continue }
                    } else if s[si] == "[" { pi += 1; si += 1; continue }
                default:
                    if p[pi] == s[si] { pi += 1; si += 1; continue }
                }
            }
            guard starP >= 0 else { return false }
            pi = starP + 1; starS += 1; si = starS
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

/// dtype casts for `--dtype`: widening is exact; narrowing rounds to nearest even and keeps NaNs NaN (quiet).
public enum DTypeCast {
    /// Whether casting `from` → `to` can change values.
    public static func isLossy(from: DType, to: DType) -> Bool {
        switch (from, to) {
        case _ where from == to: return false
        case (.f16, .f32), (.f16, .f64), (.bf16, .f32), (.bf16, .f64), (.f32, .f64): return false
        default: return true
        }
    }

    /// float32 bits → bfloat16 bits, round to nearest even; NaNs stay NaN (quiet bit set).
    @inline(__always) public static func bf16(fromF32Bits b: UInt32) -> UInt16 {
        if b & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: b >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    /// float64 → bfloat16 with a single rounding (round-to-odd to float32 first, then nearest even).
    @inline(__always) static func bf16(fromDouble d: Double) -> UInt16 {
        var f = Float(d)
        if !d.isNaN, Double(f) != d {
            if abs(Double(f)) > abs(d) { f = Float(bitPattern: f.bitPattern &- 1) }  // toward zero (magnitude − 1 ulp)
            f = Float(bitPattern: f.bitPattern | 1)
        }
        return bf16(fromF32Bits: f.bitPattern)
    }

    /// Converts `count` little-endian elements of `from` at `src` into `to` at `dst`.
    public static func convert(_ src: UnsafeRawPointer, from: DType, to: DType, count: Int, into dst: UnsafeMutableRawPointer) {
        if from == to { dst.copyMemory(from: src, byteCount: count * from.size); return }
        @inline(__always) func f32(_ i: Int) -> Float {
            switch from {
            case .f32: return Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self)))
            case .bf16: return Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))) &<< 16)
            case .f16: return Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))))
            case .f64: return Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self))))
            }
        }
        if from == .f64 {
            for i in 0..<count {
                let d = Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self)))
                switch to {
                case .f32: (dst + i &* 4).storeBytes(of: Float(d).bitPattern.littleEndian, as: UInt32.self)
                case .f16: (dst + i &* 2).storeBytes(of: Float16(d).bitPattern.littleEndian, as: UInt16.self)
                case .bf16: (dst + i &* 2).storeBytes(of: bf16(fromDouble: d).littleEndian, as: UInt16.self)
                case .f64: break
                }
            }
            return
        }
        switch to {
        case .f32: for i in 0..<count { (dst + i &* 4).storeBytes(of: f32(i).bitPattern.littleEndian, as: UInt32.self) }
        case .f64: for i in 0..<count { (dst + i &* 8).storeBytes(of: Double(f32(i)).bitPattern.littleEndian, as: UInt64.self) }
        case .f16: for i in 0..<count { (dst + i &* 2).storeBytes(of: Float16(f32(i)).bitPattern.littleEndian, as: UInt16.self) }
        case .bf16: for i in 0..<count { (dst + i &* 2).storeBytes(of: bf16(fromF32Bits: f32(i).bitPattern).littleEndian, as: UInt16.self) }
        }
    }

    /// The quiet-NaN bit pattern of `dtype`, little-endian (fills tensors absent from a snapshot).
    public static func nanBytes(_ dtype: DType) -> [UInt8] {
        switch dtype {
        case .f32: return withUnsafeBytes(of: UInt32(0x7FC0_0000).littleEndian) { Array($0) }
        case .f16: return withUnsafeBytes(of: UInt16(0x7E00).littleEndian) { Array($0) }
        case .bf16: return withUnsafeBytes(of: UInt16(0x7FC0).littleEndian) { Array($0) }
        case .f64: return withUnsafeBytes(of: UInt64(0x7FF8_0000_0000_0000).littleEndian) { Array($0) }
        }
    }
}
