// The per-commit metadata block (spec §7): tensors, snapshots and attributes as JSON.
import FoundationEssentials

/// A metadata value: a string or a number (§1.3, §7).
public enum MetaValue: Codable, Equatable, Sendable, CustomStringConvertible {
    case string(String)
    case number(Double)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "metadata values must be strings or numbers")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        // JSON has no NaN/Infinity (§7): a diverged run's loss is kept as the string "nan", "inf" or "-inf".
        case .number(let d): if d.isFinite { try c.encode(d) } else { try c.encode(d.isNaN ? "nan" : (d > 0 ? "inf" : "-inf")) }
        }
    }

    public var description: String {
        switch self {
        case .string(let s): return s
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        }
    }
}

/// §1.1 A tensor declaration. Equal when name (as bytes, see `TensorName`), dtype and shape are equal.
public struct TensorInfo: Codable, Equatable, Sendable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]

    public init(name: String, dtype: DType, shape: [Int]) {
        self.name = name; self.dtype = dtype; self.shape = shape
    }

    public static func == (a: TensorInfo, b: TensorInfo) -> Bool {
        TensorName.same(a.name, b.name) && a.dtype == b.dtype && a.shape == b.shape
    }

    /// Number of parameters (product of the shape); nil if it overflows 63 bits or a dim is negative.
    public var parameterCount: Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (r, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = r
        }
        return n
    }
}

/// §1.3 A snapshot's description.
public struct SnapshotInfo: Codable, Equatable, Sendable {
    public var step: Int64
    public var epoch: Double?
    public var time: Double
    public var metadata: [String: MetaValue]?

    public init(step: Int64, epoch: Double? = nil, time: Double = 0, metadata: [String: MetaValue]? = nil) {
        self.step = step; self.epoch = epoch; self.time = time; self.metadata = metadata
    }
}

/// §7 `spaceBoundSingle`: a writer's note of the newest one-snapshot segment it built (§10 space bound).
public struct SingleSegmentNote: Codable, Equatable, Sendable {
    /// The segment's first (only) snapshot.
    public var snapshot: Int
    /// Its tiles and their index entries.
    public var bytes: UInt64
    public init(snapshot: Int, bytes: UInt64) { self.snapshot = snapshot; self.bytes = bytes }
}

/// §7 The metadata block.
public struct FileMetadata: Codable, Equatable, Sendable {
    public var format: String = "psnap"
    public var tensors: [TensorInfo]
    public var snapshots: [SnapshotInfo]
    public var attributes: [String: MetaValue]?
    public var writer: String?
    /// §7, §10: a writer's hint, not data; a reader ignores it, and one that does not decode is dropped.
    public var spaceBoundSingle: SingleSegmentNote?

    public init(tensors: [TensorInfo], snapshots: [SnapshotInfo] = [], attributes: [String: MetaValue]? = nil,
                writer: String? = ParamSnapVersion.writer) {
        self.tensors = tensors; self.snapshots = snapshots; self.attributes = attributes; self.writer = writer
    }

    /// §7: only `tensors` and `snapshots` are required; `format` SHOULD be present but readers ignore it.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decodeIfPresent(String.self, forKey: .format) ?? "psnap"
        tensors = try c.decode([TensorInfo].self, forKey: .tensors)
        snapshots = try c.decode([SnapshotInfo].self, forKey: .snapshots)
        attributes = try c.decodeIfPresent([String: MetaValue].self, forKey: .attributes)
        writer = try c.decodeIfPresent(String.self, forKey: .writer)
        spaceBoundSingle = (try? c.decodeIfPresent(SingleSegmentNote.self, forKey: .spaceBoundSingle)) ?? nil
    }

    /// Canonical JSON bytes (sorted keys, so equal metadata gives equal bytes).
    public func encode() -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding these plain value types cannot fail; a failure would be a library bug.
        return Array(try! e.encode(self))
    }

    /// Decodes and validates (§7) metadata JSON.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(FormatError) -> FileMetadata {
        let m: FileMetadata
        do {
            m = try JSONDecoder().decode(FileMetadata.self, from: Data(bytes))
        } catch {
            throw .badMetadata("JSON does not decode: \(Self.describe(error))")
        }
        try m.validate()
        return m
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c): return c.debugDescription
        case DecodingError.keyNotFound(let k, let c): return "missing key '\(k.stringValue)' at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.typeMismatch(_, let c): return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
        case DecodingError.valueNotFound(_, let c): return "missing value at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        default: return "\(error)"
        }
    }

    /// §7 checks that do not need the footer.
    public func validate() throws(FormatError) {
        guard tensors.count <= Spec.maxTensors else { throw .badMetadata("\(tensors.count) tensors exceed the cap \(Spec.maxTensors)") }
        var seen = Set<TensorName>()   // by bytes: "e\u{301}" and "\u{e9}" are two names (§1.1)
        var total = 0
        for (i, t) in tensors.enumerated() {
            guard !t.name.isEmpty else { throw .badMetadata("tensor \(i) has an empty name") }
            guard t.name.utf8.count <= Spec.maxNameBytes else { throw .badMetadata("tensor \(i) name longer than \(Spec.maxNameBytes) bytes") }
            guard seen.insert(t.key).inserted else { throw .badMetadata("duplicate tensor name '\(t.name)'") }
            guard t.shape.count <= Spec.maxDims else { throw .badMetadata("tensor '\(t.name)' has \(t.shape.count) dims (max \(Spec.maxDims))") }
            guard let n = t.parameterCount else { throw .badMetadata("tensor '\(t.name)' shape \(t.shape) is negative or overflows 63 bits") }
            let (s, o) = total.addingReportingOverflow(n)
            guard !o else { throw .badMetadata("total parameter count overflows 63 bits at tensor '\(t.name)'") }
            total = s
        }
    }

    /// Total parameters over all tensors (valid after `validate`).
    public var parameterCount: Int { tensors.reduce(0) { $0 + ($1.parameterCount ?? 0) } }
}

/// Library version strings.
public enum ParamSnapVersion {
    public static let version = "0.1.0"
    public static let writer = "paramsnap \(version)"
}
