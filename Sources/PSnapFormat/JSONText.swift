// JSON text pieces for the few outputs written as text rather than through an Encodable type.
import FoundationEssentials

package enum JSONText {
    /// `s` as a JSON string literal (JSONEncoder's escaping, slashes left alone).
    package static func quoted(_ s: String) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        return String(decoding: try! e.encode(s), as: UTF8.self)   // encoding a String cannot fail
    }
}
