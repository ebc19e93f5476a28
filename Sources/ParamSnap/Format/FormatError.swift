// Errors of the format layer: one case per way a .psnap file can be malformed (spec §12).

/// A `.psnap` file (or a byte buffer claiming to be one) does not follow spec/FORMAT.md.
public enum FormatError: Error, Equatable, CustomStringConvertible, Sendable {
    case fileTooShort(size: UInt64)
    case badHeaderMagic
    case headerChecksumMismatch(expected: UInt64, actual: UInt64)
    case unsupportedMajorVersion(UInt16)
    case badHeaderField(String)
    case unknownCodecStage(UInt8)
    case invalidCodecChain(String)
    case noValidCommit(fileSize: UInt64)
    /// §8.1: the newest footer record is not a valid commit (damage, not a torn tail); `intact` is the newest
    /// intact commit before it, if any, and `damagedRecords` how many damaged footer records lie after that.
    case damagedCommit(offset: UInt64, reason: String, damagedRecords: Int, intact: IntactCommit?)
    /// §8.2: a damaged newest commit whose footer cannot be rebuilt (its index or metadata is damaged too).
    case unrecoverableCommit(offset: UInt64, reason: String, intact: IntactCommit?)
    case badFooter(offset: UInt64, reason: String)
    case indexChecksumMismatch(offset: UInt64, expected: UInt64, actual: UInt64)
    case metadataChecksumMismatch(offset: UInt64, expected: UInt64, actual: UInt64)
    case badMetadata(String)
    case badTileEntry(entry: UInt64, reason: String)
    case tileCoverage(tensor: String, block: UInt64, reason: String)
    case tileChecksumMismatch(tile: String, offset: UInt64, expected: UInt64, actual: UInt64)
    case tileDecode(tile: String, reason: String)
    case damagedTiles(count: Int, list: String)

    public var description: String {
        func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
        switch self {
        case .fileTooShort(let s): return "file too short: \(s) bytes, a .psnap file needs at least \(Spec.headerSize + Spec.footerSize)"
        case .badHeaderMagic: return "not a .psnap file: bad magic in the file header at offset 0"
        case .headerChecksumMismatch(let e, let a): return "file header checksum mismatch (expected \(hex(e)), got \(hex(a)))"
        case .unsupportedMajorVersion(let v): return "unsupported format major version \(v) (this reader knows \(Spec.majorVersion))"
        case .badHeaderField(let r): return "bad file header: \(r)"
        case .unknownCodecStage(let id): return "unknown codec stage \(id) in the header's codec chain"
        case .invalidCodecChain(let r): return "invalid codec chain: \(r)"
        case .noValidCommit(let s): return "no valid commit found in \(s) bytes (no footer passes its checks)"
        case .damagedCommit(let o, let r, let n, let intact):
            let before = intact.map { "the newest intact commit (footer at offset \($0.footerOffset)) holds \($0.snapshotCount) snapshot(s)" }
                ?? "no intact commit precedes it"
            return "damaged commit at offset \(o): \(r). A footer record after the newest intact commit is damage, not a torn tail "
                + "(§8.1), so nothing was discarded; \(n) damaged footer record(s), \(before). "
                + "`psnap repair RUN -o FIXED` recovers a commit whose index and metadata are intact"
        case .unrecoverableCommit(let o, let r, let intact):
            let keep = intact.map { "the newest intact commit (footer at offset \($0.footerOffset)) holds \($0.snapshotCount) snapshot(s): "
                + "--discard-damaged-commits keeps those and drops every snapshot committed after them" }
                ?? "no intact commit precedes it, so nothing can be recovered"
            return "damaged commit at offset \(o) cannot be recovered (its index or metadata is damaged too): \(r); \(keep)"
        case .badFooter(let o, let r): return "bad footer at offset \(o): \(r)"
        case .indexChecksumMismatch(let o, let e, let a): return "tile index checksum mismatch at offset \(o) (expected \(hex(e)), got \(hex(a)))"
        case .metadataChecksumMismatch(let o, let e, let a): return "metadata checksum mismatch at offset \(o) (expected \(hex(e)), got \(hex(a)))"
        case .badMetadata(let r): return "bad metadata: \(r)"
        case .badTileEntry(let i, let r): return "tile index entry \(i): \(r)"
        case .tileCoverage(let t, let b, let r): return "tensor '\(t)' block \(b): \(r)"
        case .tileChecksumMismatch(let t, let o, let e, let a): return "\(t): checksum mismatch (expected \(hex(e)), got \(hex(a))) at offset \(o)"
        case .tileDecode(let t, let r): return "\(t): cannot decode: \(r)"
        case .damagedTiles(let n, let l): return "\(n) damaged tile(s): \(l)"
        }
    }
}
