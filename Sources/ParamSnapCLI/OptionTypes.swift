// Option values with structure, parsed by the argument parser itself (so a bad value is a usage error, exit 64, before
// any file is touched): --meta KEY=VALUE, --steps selections, --snapshots A:B, --stats lists.
import ArgumentParser
import ParamSnap
import PSnapImport
import ParamSnapStats

/// `--meta KEY=VALUE`: a number when VALUE is a finite number (JSON holds no NaN or infinity), else a string.
struct MetaEntry: ExpressibleByArgument, Sendable {
    let key: String
    let value: MetaValue
    init?(argument: String) {
        guard let eq = argument.firstIndex(of: "="), eq != argument.startIndex else { return nil }
        key = String(argument[..<eq])
        let v = String(argument[argument.index(after: eq)...])
        value = Double(v).flatMap { $0.isFinite ? MetaValue.number($0) : nil } ?? .string(v)
    }
}

/// `--steps START:STOP:STRIDE[,…]`.
extension StepSelection: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// `--snapshots A:B` (half-open; `A:` and `:B` allowed), checked against the run once it is open.
struct SnapshotRange: Sendable {
    let lower: Int
    let upper: Int?

    /// Parses A:B with integers, 0 ≤ A and A < B when both are given.
    static func parse(_ s: String) throws -> SnapshotRange {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw ValidationError("--snapshots wants A:B, got '\(s)'") }
        let a = parts[0].isEmpty ? 0 : Int(parts[0]), b = parts[1].isEmpty ? nil : Int(parts[1])
        guard let a, parts[1].isEmpty || b != nil else { throw ValidationError("--snapshots wants A:B with integers A and B, got '\(s)'") }
        guard a >= 0, b.map({ a < $0 }) ?? true else { throw ValidationError("--snapshots \(s) is empty or negative") }
        return SnapshotRange(lower: a, upper: b)
    }

    /// The range in a run of `count` snapshots.
    func range(count: Int) throws -> Range<Int> {
        let b = upper ?? count
        guard lower < b, b <= count else { throw ValidationError("--snapshots \(lower):\(upper.map(String.init) ?? "") is empty or outside 0:\(count)") }
        return lower..<b
    }
}

/// `--stats LIST`: statistic names, `moments` (mean, variance, skewness, kurtosis) and `all`, comma-separated.
enum StatisticsOption {
    static func parse(_ text: String) throws -> [TrajectoryStatistic] {
        var out: [TrajectoryStatistic] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            switch part {
            case "all": out += TrajectoryStatistic.allCases
            case "moments": out += [.mean, .variance, .skewness, .kurtosis]
            default:
                guard let s = TrajectoryStatistic(rawValue: part) else {
                    throw ValidationError("--stats: unknown statistic '\(part)' (known: \(TrajectoryStatistic.allCases.map(\.rawValue).joined(separator: ", ")), moments, all)")
                }
                out.append(s)
            }
        }
        guard !out.isEmpty else { throw ValidationError("--stats: no statistic given") }
        return out
    }
}

/// A size in bytes: a whole number with an optional unit, B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB
/// (powers of 1024), e.g. `64GiB`, `500MB`, `1048576`; at least 1 byte, at most 2⁶² bytes.
struct ByteSize: ExpressibleByArgument, Sendable {
    let bytes: Int
    init?(argument: String) {
        let s = argument.trimmingCharacters(in: .whitespaces)
        let digits = s.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let n = Int(digits) else { return nil }
        let units: [String: Int] = ["": 1, "B": 1, "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000, "TB": 1_000_000_000_000,
                                    "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40]
        guard let unit = units[s.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).uppercased()] else { return nil }
        let (v, overflow) = n.multipliedReportingOverflow(by: unit)
        guard !overflow, v >= 1, v <= 1 << 62 else { return nil }
        bytes = v
    }
    static var defaultCompletionKind: CompletionKind { .default }
}
