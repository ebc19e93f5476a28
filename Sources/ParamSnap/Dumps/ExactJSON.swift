// A small RFC 8259 JSON parser for dump headers that keeps each object's members in order with their keys'
// exact bytes. Foundation's parsers build Swift dictionaries, which merge canonically equivalent keys
// ("e\u{301}" and "\u{e9}") and keep one of two equal keys silently: tensor names must survive as written.
import Foundation

/// A parsed JSON value. Objects keep every member in document order, duplicates included.
enum ExactJSON: Equatable, Sendable {
    case object([Member])
    case array([ExactJSON])
    case string(String)
    /// A number as written (`12`, `-0.5e3`), read exactly by `int64` and `double`.
    case number(String)
    case bool(Bool)
    case null

    struct Member: Equatable, Sendable {
        var key: String
        var value: ExactJSON
    }

    /// Why a text is not JSON (with the byte offset where it went wrong).
    struct Failure: Error, CustomStringConvertible {
        let reason: String
        let offset: Int
        var description: String { "\(reason) at byte \(offset)" }
    }

    /// Nesting deeper than this is refused (dump headers nest 3 deep; the bound keeps recursion shallow).
    static let maxDepth = 64

    /// Parses one JSON value filling `bytes` (whitespace around it allowed).
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> ExactJSON {
        var p = Parser(b: bytes)
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw p.fail("text after the JSON value") }
        return v
    }

    /// The members of an object (nil for other values).
    var members: [Member]? { if case .object(let m) = self { return m }; return nil }

    /// The value of the first member whose key has the bytes of `key`.
    subscript(key: String) -> ExactJSON? { members?.first { TensorName.same($0.key, key) }?.value }

    var string: String? { if case .string(let s) = self { return s }; return nil }

    /// An integral number as Int64 (`12`, also `12.0` or `1.2e1`); nil for fractions, out-of-range numbers and non-numbers.
    var int64: Int64? {
        guard case .number(let text) = self else { return nil }
        if let v = Int64(text) { return v }
        guard let d = Double(text), d.rounded() == d, d >= -0x1p63, d < 0x1p63 else { return nil }
        return Int64(d)
    }

    var double: Double? { if case .number(let text) = self { return Double(text) }; return nil }

    /// Compact JSON text of the value (for values kept as text, e.g. a non-string metadata entry).
    var text: String {
        switch self {
        case .string(let s): return "\"" + s.unicodeScalars.map { $0 == "\"" || $0 == "\\" ? "\\\($0)" : $0.value < 0x20 ? String(format: "\\u%04x", $0.value) : String($0) }.joined() + "\""
        case .number(let t): return t
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let a): return "[" + a.map(\.text).joined(separator: ",") + "]"
        case .object(let m): return "{" + m.map { ExactJSON.string($0.key).text + ":" + $0.value.text }.joined(separator: ",") + "}"
        }
    }

    private struct Parser {
        let b: UnsafeRawBufferPointer
        var i = 0

        func fail(_ reason: String) -> Failure { Failure(reason: reason, offset: i) }

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
        }

        mutating func literal(_ word: StaticString, _ v: ExactJSON) throws(Failure) -> ExactJSON {
            let w = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            guard b.count - i >= w.count, w.indices.allSatisfy({ b[i + $0] == w[$0] }) else { throw fail("unexpected character") }
            i += w.count
            return v
        }

        mutating func value(depth: Int) throws(Failure) -> ExactJSON {
            skipSpace()
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case UInt8(ascii: "{"):
                guard depth < ExactJSON.maxDepth else { throw fail("nested deeper than \(ExactJSON.maxDepth)") }
                i += 1
                var members: [Member] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                    let key = try string()
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    members.append(Member(key: key, value: try value(depth: depth + 1)))
                    skipSpace()
                    guard i < b.count else { throw fail("unterminated object") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard b[i] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
                    i += 1
                    return .object(members)
                }
            case UInt8(ascii: "["):
                guard depth < ExactJSON.maxDepth else { throw fail("nested deeper than \(ExactJSON.maxDepth)") }
                i += 1
                var items: [ExactJSON] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < b.count else { throw fail("unterminated array") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard b[i] == UInt8(ascii: "]") else { throw fail("expected ',' or ']'") }
                    i += 1
                    return .array(items)
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "n"): return try literal("null", .null)
            default: return try number()
            }
        }

        mutating func digits() -> Int {
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            return i - start
        }

        mutating func number() throws(Failure) -> ExactJSON {
            let start = i
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            let lead = i
            guard digits() > 0 else { throw fail("unexpected character") }
            if b[lead] == 0x30, i - lead > 1 { throw fail("number with a leading zero") }
            if i < b.count, b[i] == UInt8(ascii: ".") { i += 1; guard digits() > 0 else { throw fail("no digit after '.'") } }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw fail("no digit in the exponent") }
            }
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard b.count - i >= 4 else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt8
                switch c {
                case 0x30...0x39: d = c - 0x30
                case 0x41...0x46: d = c - 0x41 + 10
                case 0x61...0x66: d = c - 0x61 + 10
                default: throw fail("bad hex digit in \\u escape")
                }
                v = v << 4 | UInt32(d)
                i += 1
            }
            return v
        }

        /// A string starting at the opening quote; its content must be valid UTF-8, escapes are decoded.
        mutating func string() throws(Failure) -> String {
            i += 1
            var out: [UInt8] = []
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                guard c >= 0x20 else { throw fail("control character in a string") }
                guard c == UInt8(ascii: "\\") else { out.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { throw fail("unterminated string") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var v = try hex4()
                    if (0xD800..<0xDC00).contains(v) {
                        guard b.count - i >= 2, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else { throw fail("unpaired surrogate escape") }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate escape") }
                        v = 0x10000 + (v - 0xD800) << 10 + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(v) else { throw fail("unpaired surrogate escape") }
                    UTF8.encode(scalar) { out.append($0) }
                default: throw fail("bad escape")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
            return s
        }
    }
}
