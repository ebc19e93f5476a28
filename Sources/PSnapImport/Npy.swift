// The `.npy` header (NumPy format 1.0–3.0): parse and encode, with the small Python-literal parser it needs; no I/O.
@_spi(Internals) import ParamSnap
import Foundation

/// A parsed `.npy` header (NumPy format versions 1.0, 2.0 and 3.0).
package struct NpyHeader: Equatable, Sendable {
    /// The `descr` string, e.g. `<f4`.
    package var descr: String
    /// Whether the data is stored column-major (Fortran order).
    package var fortranOrder: Bool
    package var shape: [Int]
    /// Offset of the array data from the start of the buffer parsed.
    package var dataOffset: Int
    /// The dtype, nil when `descr` is not one ParamSnap stores (f2, f4, f8; bf16 has no NumPy descr).
    package var dtype: DType?
    /// Whether the data is big-endian (`>f4`): it must be byte-swapped.
    package var bigEndian: Bool

    /// `\x93NUMPY`.
    package static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
    /// Largest header accepted (NumPy itself refuses headers above 10,000 bytes by default).
    package static let maxHeaderSize = 1 << 20

    /// Parses the header at the start of `buf`; `path` only names the file in errors. The data itself is not
    /// checked here (its size is `product(shape) × element size` from `dataOffset`).
    package static func parse(_ buf: UnsafeRawBufferPointer, path: String) throws(DumpError) -> NpyHeader {
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
    package static func encode(dtype: DType, shape: [Int]) -> [UInt8] {
        let descr: String
        switch dtype {
        case .f32: descr = "<f4"
        case .f16: descr = "<f2"
        case .f64: descr = "<f8"
        case .bf16: descr = "<u2"
        }
        return encode(descr: descr, shape: shape)
    }

    /// The same header for any NumPy type string (`<u8`, `<f8`, …).
    package static func encode(descr: String, shape: [Int]) -> [UInt8] {
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
