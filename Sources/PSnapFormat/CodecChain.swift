// The codec chain (spec §5): stage ids and the rules a chain follows; the stages themselves are in PSnapCodec.

/// §5 A codec stage.
public enum CodecStage: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case xor = 1
    case sub = 2
    case split = 3
    case bytedelta = 4
    case linpred = 5
    case lead = 6
    case zstd = 16
    case zstdPlanes = 17
    case lenrans = 18

    public var description: String {
        switch self {
        case .xor: return "xor"
        case .sub: return "sub"
        case .split: return "split"
        case .bytedelta: return "bytedelta"
        case .linpred: return "linpred"
        case .lead: return "lead"
        case .zstd: return "zstd"
        case .zstdPlanes: return "zstdplanes"
        case .lenrans: return "lenrans"
        }
    }

    /// Terminal (length-changing) stages must come last (§5).
    public var isTerminal: Bool { self == .zstd || self == .zstdPlanes || self == .lenrans }

    /// Parses a stage name as written in `description`.
    public init?(name: String) {
        guard let s = CodecStage.allCases.first(where: { $0.description == name }) else { return nil }
        self = s
    }
}

/// §5 A file's codec chain: stages in encoding order and the zstd level.
public struct CodecChain: Equatable, Sendable, CustomStringConvertible {
    public let stages: [CodecStage]
    public let zstdLevel: Int32
    /// §5.2: whether tiles of this chain may be anchored (its first stage is `linpred`).
    public var anchorable: Bool { stages.first == .linpred }

    /// §5 default: linpred, lead, split, zstdplanes at level 3 (spec/RATIONALE.md §A, §A.7).
    public static let `default` = try! CodecChain(stages: [.linpred, .lead, .split, .zstdPlanes], zstdLevel: Spec.defaultZstdLevel)
    /// The default before `lead` existed (kept for the golden fixtures and comparisons).
    public static let linpredSplit = try! CodecChain(stages: [.linpred, .split, .zstdPlanes], zstdLevel: Spec.defaultZstdLevel)
    /// The default of format 1.0 before `linpred` existed (kept for the golden fixtures and comparisons).
    public static let splitByteDelta = try! CodecChain(stages: [.split, .bytedelta, .zstdPlanes], zstdLevel: Spec.defaultZstdLevel)

    /// The zstd levels a chain may use (libzstd's range: negative levels are its fast modes).
    public static var zstdLevels: ClosedRange<Int32> { Spec.zstdLevels }

    public init(stages: [CodecStage], zstdLevel: Int32 = Spec.defaultZstdLevel) throws(FormatError) {
        guard stages.count <= Spec.maxChainStages else { throw .invalidCodecChain("\(stages.count) stages (max \(Spec.maxChainStages))") }
        if let z = stages.firstIndex(where: \.isTerminal), z != stages.count - 1 {
            throw .invalidCodecChain("\(stages[z]) must be the last stage")
        }
        if stages.contains(where: \.isTerminal) {
            guard Spec.zstdLevels.contains(zstdLevel) else {
                throw .invalidCodecChain("zstd level \(zstdLevel) outside \(Spec.zstdLevels.lowerBound)...\(Spec.zstdLevels.upperBound)")
            }
        }
        self.stages = stages
        self.zstdLevel = zstdLevel
    }

    init(ids: [UInt8], zstdLevel: Int32) throws(FormatError) {
        var s: [CodecStage] = []
        for id in ids {
            guard let st = CodecStage(rawValue: id) else { throw .unknownCodecStage(id) }
            s.append(st)
        }
        try self.init(stages: s, zstdLevel: zstdLevel)
    }

    /// Parses "xor,split,bytedelta,zstd" (the level is given separately).
    public init(parsing text: String, zstdLevel: Int32) throws(FormatError) {
        var s: [CodecStage] = []
        for part in text.split(separator: ",") where !part.isEmpty {
            guard let st = CodecStage(name: part.trimmingCharacters(in: " ")) else {
                throw .invalidCodecChain("unknown stage '\(part)' (known: \(CodecStage.allCases.map(\.description).joined(separator: ", ")))")
            }
            s.append(st)
        }
        try self.init(stages: s, zstdLevel: zstdLevel)
    }

    public var description: String {
        stages.isEmpty ? "none" : stages.map { $0.isTerminal ? "\($0)(\(zstdLevel))" : $0.description }.joined(separator: " → ")
    }
}

extension Substring {
    func trimmingCharacters(in c: Character) -> String {
        var s = self
        while s.first == c { s.removeFirst() }
        while s.last == c { s.removeLast() }
        return String(s)
    }
}
