// Step selections (`--steps`), step numbers in file names, natural order and the tensor-name glob.
@_spi(Internals) import ParamSnap
import Foundation

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

}
