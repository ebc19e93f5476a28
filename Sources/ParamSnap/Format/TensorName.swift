// Tensor names as byte strings (spec §1.1): compared, hashed and ordered by their UTF-8 bytes, never by
// Swift's `String` equality, which is Unicode canonical equivalence ("e\u{301}" == "\u{e9}").

/// A tensor name keyed by its UTF-8 bytes: two names are the same tensor only when their bytes are equal, so
/// `"e\u{301}"` and `"\u{e9}"` (distinct JSON keys, distinct names in a checkpoint) stay two tensors. Use it
/// as the key wherever tensors are looked up by name.
public struct TensorName: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The name as given.
    public let string: String
    /// Its UTF-8 bytes (what is compared and hashed).
    public let bytes: [UInt8]

    public init(_ string: String) {
        self.string = string
        bytes = Array(string.utf8)
    }

    public init(stringLiteral value: String) { self.init(value) }

    public static func == (a: TensorName, b: TensorName) -> Bool { a.bytes == b.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
    /// Byte order (the order of the names' UTF-8 bytes, as `memcmp`).
    public static func < (a: TensorName, b: TensorName) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
    public var description: String { string }

    /// Whether `a` and `b` name the same tensor (equal UTF-8 bytes).
    public static func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }
}

extension TensorInfo {
    /// The name as a byte-compared key.
    public var key: TensorName { TensorName(name) }
}
