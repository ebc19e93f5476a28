// A safetensors reader (8-byte header length, JSON header, raw little-endian data), memory-mapped and fully checked; the dump errors.
@_spi(Internals) import ParamSnap
import Foundation

/// Why a safetensors file cannot be read; each case names the file and, where it applies, the tensor.
public enum DumpError: Error, Equatable, CustomStringConvertible, Sendable {
    case truncated(path: String, reason: String)
    case badHeader(path: String, reason: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    case badTensor(path: String, tensor: String, reason: String)
    /// A file whose content is not a well-formed dump of its kind (npy header, zip directory, index JSON…).
    case malformed(path: String, reason: String)
    /// A file (or folder) that holds nothing convertible.
    case unrecognized(path: String, reason: String)
    /// A tensor that differs between snapshots (set, shape or dtype); `path` is the snapshot that differs.
    case mismatch(path: String, tensor: String, reason: String)
    /// Two inputs give the same training step.
    case duplicateStep(step: Int64, first: String, second: String)
    /// A step that breaks the step rules (not after the previous one, past 2^63 − 1).
    case badStep(path: String, reason: String)
    /// Nothing to convert after discovery and filtering.
    case noInputs(reason: String)

    public var description: String {
        switch self {
        case .truncated(let p, let r): return "\(p): truncated: \(r)"
        case .badHeader(let p, let r): return "\(p): bad safetensors header: \(r)"
        case .unsupportedDType(let p, let t, let d): return "\(p): tensor '\(t)' has dtype \(d); supported: F32, F16, BF16, F64"
        case .badTensor(let p, let t, let r): return "\(p): tensor '\(t)': \(r)"
        case .malformed(let p, let r): return "\(p): malformed: \(r)"
        case .unrecognized(let p, let r): return "\(p): \(r)"
        case .mismatch(let p, let t, let r): return "\(p): tensor '\(t)': \(r)"
        case .duplicateStep(let s, let a, let b): return "step \(s) appears twice: \(a) and \(b) (give one of them, or pick steps with --steps)"
        case .badStep(let p, let r): return "\(p): \(r)"
        case .noInputs(let r): return "no inputs: \(r)"
        }
    }
}

/// A memory-mapped safetensors file.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Largest header accepted (as the safetensors reference implementation's `MAX_HEADER_SIZE`).
    public static let maxHeaderSize = 100_000_000

    public struct Entry: Sendable {
        public let info: TensorInfo
        /// Byte range inside the data section.
        public let begin: Int
        public let end: Int
    }

    public let path: String
    public let file: MappedFile
    /// Tensors in data-offset order.
    public let entries: [Entry]
    /// The header's `__metadata__` (string → string).
    public let metadata: [String: String]
    let dataStart: Int

    /// Opens and validates `path`. Tensors of other dtypes are refused unless `skipUnsupported`, which drops them
    /// and lists them in `skipped`.
    public private(set) var skipped: [(name: String, dtype: String)] = []

    public init(path: String, skipUnsupported: Bool = false) throws {
        self.path = path
        file = try MappedFile(path: path)
        let buf = file.bytes
        guard buf.count >= 8 else { throw DumpError.truncated(path: path, reason: "\(buf.count) bytes, the header length needs 8") }
        let n = UInt64(littleEndian: buf.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(Self.maxHeaderSize) else { throw DumpError.badHeader(path: path, reason: "header length \(n) exceeds \(Self.maxHeaderSize)") }
        guard n <= UInt64(buf.count - 8) else { throw DumpError.truncated(path: path, reason: "header of \(n) bytes but only \(buf.count - 8) follow") }
        dataStart = 8 + Int(n)
        // Parsed with the exact parser: Foundation's would merge two names that differ only in Unicode
        // normalisation ("e\u{301}", "\u{e9}"), which are two tensors here (§1.1: names are bytes).
        let json: ExactJSON
        do { json = try ExactJSON.parse(UnsafeRawBufferPointer(rebasing: buf[8..<dataStart])) } catch {
            throw DumpError.badHeader(path: path, reason: "header is not JSON (\(error))")
        }
        guard let members = json.members else { throw DumpError.badHeader(path: path, reason: "header is not a JSON object") }
        var seen = Set<TensorName>()
        for m in members where !seen.insert(TensorName(m.key)).inserted {
            throw DumpError.badHeader(path: path, reason: "tensor name '\(m.key)' appears more than once")
        }
        var meta: [String: String] = [:]
        var list: [Entry] = []
        var skipped: [(String, String)] = []
        let dataSize = buf.count - dataStart
        for m in members {
            let name = m.key
            if name == "__metadata__" {
                for e in m.value.members ?? [] { meta[e.key] = e.value.string ?? e.value.text }
                continue
            }
            guard let d = m.value.members, Set(d.map { TensorName($0.key) }).count == d.count,
                  let dt = m.value["dtype"]?.string, case .array(let shapeAny)? = m.value["shape"],
                  case .array(let offs)? = m.value["data_offsets"], offs.count == 2 else {
                throw DumpError.badTensor(path: path, tensor: name, reason: "entry needs dtype, shape and data_offsets [begin, end], each once")
            }
            var shape: [Int] = []
            for s in shapeAny {
                guard let v = s.int64, v >= 0 else {
                    throw DumpError.badTensor(path: path, tensor: name, reason: "shape [\(shapeAny.map(\.text).joined(separator: ", "))] is not a list of non-negative integers")
                }
                shape.append(Int(v))
            }
            guard let b = offs[0].int64, let e = offs[1].int64, b >= 0, e >= b else {
                throw DumpError.badTensor(path: path, tensor: name, reason: "bad data_offsets [\(offs.map(\.text).joined(separator: ", "))]")
            }
            guard e <= Int64(dataSize) else {
                throw DumpError.truncated(path: path, reason: "tensor '\(name)' data ends at \(e), the data section has \(dataSize) bytes")
            }
            let dtype: DType
            switch dt {
            case "F32": dtype = .f32
            case "F16": dtype = .f16
            case "BF16": dtype = .bf16
            case "F64": dtype = .f64
            default:
                if skipUnsupported { skipped.append((name, dt)); continue }
                throw DumpError.unsupportedDType(path: path, tensor: name, dtype: dt)
            }
            let info = TensorInfo(name: name, dtype: dtype, shape: shape)
            guard let count = info.parameterCount, count.multipliedReportingOverflow(by: dtype.size).overflow == false,
                  count * dtype.size == Int(e - b) else {
                throw DumpError.badTensor(path: path, tensor: name, reason: "shape \(shape) × \(dt) does not match its \(e - b) data bytes")
            }
            list.append(Entry(info: info, begin: Int(b), end: Int(e)))
        }
        list.sort { $0.begin != $1.begin ? $0.begin < $1.begin : $0.info.key < $1.info.key }
        for i in 1..<max(1, list.count) where list[i].begin < list[i - 1].end {
            throw DumpError.badTensor(path: path, tensor: list[i].info.name, reason: "data overlaps tensor '\(list[i - 1].info.name)'")
        }
        entries = list
        metadata = meta
        self.skipped = skipped
    }

    /// Tensors declared (data-offset order).
    public var tensors: [TensorInfo] { entries.map(\.info) }

    /// Raw bytes of entry `i`.
    public func bytes(_ i: Int) -> UnsafeRawBufferPointer {
        let e = entries[i]
        return UnsafeRawBufferPointer(rebasing: file.bytes[(dataStart + e.begin)..<(dataStart + e.end)])
    }

    /// Raw bytes of the tensor called `name` (the same UTF-8 bytes).
    public func bytes(named name: String) -> UnsafeRawBufferPointer? {
        entries.firstIndex { TensorName.same($0.info.name, name) }.map { bytes($0) }
    }
}

extension DumpError: ParamSnapError {
    public var kind: ErrorKind { .corruptData }
}
