// "Did you mean …?": the names closest to a mistyped tensor name, glob or subcommand, by edit distance.

/// Suggestions for a name (or an `fnmatch`-style glob) that matched nothing: the closest candidates by edit distance
/// (insertions, deletions, substitutions and swaps of two neighbours cost 1; a glob's `*`, `?` and `[...]` match
/// as they would in `TensorNameFilter.matches`, so `fc1.wieght*` suggests `fc1.weight`).
public enum NameSuggestion {
    /// At most this many edits make a suggestion (fewer for short names: half their length, at least 1).
    public static let maxDistance = 3

    /// The names of `candidates` closest to `name` (at most `limit`, nearest first, ties in the candidates' order).
    public static func closest(to name: String, in candidates: [String], limit: Int = 3) -> [String] {
        rank(Array(name.unicodeScalars).map(Token.literal), candidates, limit: limit)
    }

    /// The names of `candidates` that `pattern` (a glob) comes closest to matching, for a glob that matches none.
    public static func closest(toGlob pattern: String, in candidates: [String], limit: Int = 3) -> [String] {
        rank(tokens(pattern), candidates, limit: limit)
    }

    /// " (did you mean 'a' or 'b'?)", or "" when there is nothing to suggest.
    public static func hint(_ suggestions: [String]) -> String {
        guard let last = suggestions.last else { return "" }
        let quoted = suggestions.dropLast().map { "'\($0)'" }
        return " (did you mean \(quoted.isEmpty ? "" : quoted.joined(separator: ", ") + " or ")'\(last)'?)"
    }

    enum Token: Equatable {
        case literal(Unicode.Scalar)
        case any
        case star
        case set([ClosedRange<UInt32>], negated: Bool)

        func matches(_ c: Unicode.Scalar) -> Bool {
            switch self {
            case .literal(let l): return l == c
            case .any: return true
            case .star: return true
            case .set(let ranges, let negated): return ranges.contains { $0.contains(c.value) } != negated
            }
        }
    }

    /// A glob as tokens, with the bracket rules of `TensorNameFilter.matches` (an unclosed `[` is a literal).
    static func tokens(_ pattern: String) -> [Token] {
        let p = Array(pattern.unicodeScalars)
        var out: [Token] = []
        var i = 0
        while i < p.count {
            switch p[i] {
            case "*": out.append(.star); i += 1
            case "?": out.append(.any); i += 1
            case "[":
                var k = i + 1, negated = false, first = true
                var ranges: [ClosedRange<UInt32>] = []
                if k < p.count, p[k] == "!" || p[k] == "^" { negated = true; k += 1 }
                while k < p.count, p[k] != "]" || first {
                    first = false
                    if k + 2 < p.count, p[k + 1] == "-", p[k + 2] != "]" {
                        ranges.append(min(p[k].value, p[k + 2].value)...max(p[k].value, p[k + 2].value)); k += 3
                    } else {
                        ranges.append(p[k].value...p[k].value); k += 1
                    }
                }
                if k < p.count { out.append(.set(ranges, negated: negated)); i = k + 1 } else { out.append(.literal("[")); i += 1 }
            default: out.append(.literal(p[i])); i += 1
            }
        }
        return out
    }

    static func rank(_ pattern: [Token], _ candidates: [String], limit: Int) -> [String] {
        let literals = pattern.filter { $0 != .star }.count
        let allowed = min(maxDistance, max(1, literals / 2))
        var scored: [(distance: Int, order: Int, name: String)] = []
        for (k, c) in candidates.enumerated() {
            let d = distance(pattern, Array(c.unicodeScalars), cap: allowed)
            if d <= allowed { scored.append((d, k, c)) }
        }
        scored.sort { ($0.distance, $0.order) < ($1.distance, $1.order) }
        var seen = Set<TensorName>()   // names are byte strings: canonically equivalent names are distinct
        return Array(scored.map(\.name).filter { seen.insert(TensorName($0)).inserted }.prefix(limit))
    }

    /// Edits needed for `pattern` to match `name` (optimal string alignment: a swap of neighbours is one edit);
    /// anything above `cap` is reported as `cap + 1` early.
    static func distance(_ pattern: [Token], _ name: [Unicode.Scalar], cap: Int) -> Int {
        let m = pattern.count, n = name.count
        // Longer than any suggestion could be, whatever the stars absorb: skip the table.
        if !pattern.contains(.star) && abs(m - n) > cap { return cap + 1 }
        var prev2 = [Int](repeating: 0, count: n + 1)
        var prev = Array(0...n)
        var cur = [Int](repeating: 0, count: n + 1)
        for i in 0..<m {
            let t = pattern[i]
            cur[0] = prev[0] + (t == .star ? 0 : 1)
            var rowMin = cur[0]
            for j in 0..<n {
                if t == .star {
                    cur[j + 1] = min(prev[j + 1], cur[j])
                } else {
                    cur[j + 1] = min(prev[j] + (t.matches(name[j]) ? 0 : 1), prev[j + 1] + 1, cur[j] + 1)
                    if i > 0, j > 0, case .literal(let a) = t, case .literal(let b) = pattern[i - 1], a == name[j - 1], b == name[j] {
                        cur[j + 1] = min(cur[j + 1], prev2[j - 1] + 1)
                    }
                }
                rowMin = min(rowMin, cur[j + 1])
            }
            // Row minima never decrease (a swap costs at least what the substitution before it did): stop early.
            if rowMin > cap { return cap + 1 }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[n]
    }
}
