// The tensor-name glob of every `--include`/`--exclude` option (convert, append, export, moments): one matcher.

/// Selects tensors by name.
public enum TensorNameFilter {
    /// fnmatch(3)-style glob: `*`, `?`, `[...]` (with `!` or `^` negation); `*` also matches dots and slashes.
    public static func matches(_ pattern: String, _ name: String) -> Bool {
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
