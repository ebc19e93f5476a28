// Every constant of the .psnap format, with the spec/FORMAT.md section that defines it.

/// Constants of the `.psnap` format (spec/FORMAT.md).
public enum Spec {
    /// §3: `\x89PSNAP\r\n`.
    public static let headerMagic: [UInt8] = [0x89, 0x50, 0x53, 0x4E, 0x41, 0x50, 0x0D, 0x0A]
    /// §3, §8: format version written by this library.
    public static let majorVersion: UInt16 = 1
    public static let minorVersion: UInt16 = 0
    /// §3: size of the file header.
    public static let headerSize = 64
    /// §3: bytes covered by the header checksum.
    public static let headerChecksummed = 56
    /// §3: stage slots in the header's codec chain.
    public static let maxChainStages = 8
    /// §6: size of one tile index entry.
    public static let tileIndexEntrySize = 64
    /// §6: flag bit 0, stored raw.
    public static let flagStoredRaw: UInt32 = 1
    /// §8: `PSNAPFTR`.
    public static let footerMagic: [UInt8] = Array("PSNAPFTR".utf8)
    /// §8: `PSNAPEND`.
    public static let footerEndMagic: [UInt8] = Array("PSNAPEND".utf8)
    /// §8: size of a footer.
    public static let footerSize = 128
    /// §8: bytes covered by the footer checksum.
    public static let footerChecksummed = 112
    /// §5 `zstdplanes`: bit 63 of a plane descriptor, the plane is stored raw.
    public static let planeStoredRawBit: UInt64 = 1 << 63
    /// §4.1: default parameters per block.
    public static let defaultBlockSize = 1024
    /// §5: default zstd level.
    public static let defaultZstdLevel: Int32 = 3
    /// §10: merge fanout.
    public static let mergeFanout = 4

    // §11: sanity caps.
    public static let maxTensors = 1 << 24
    public static let maxDims = 16
    public static let maxNameBytes = 4096
    public static let maxMetadataBytes: UInt64 = 1 << 30
    public static let maxIndexBytes: UInt64 = 1 << 40
    public static let maxSnapshots: UInt64 = 1 << 32
    public static let maxTileRawBytes: UInt64 = (1 << 31) - 1
    public static let maxBlockSize: UInt64 = 1 << 24
}

/// §1.2: element types.
public enum DType: String, Sendable, Codable, CaseIterable {
    case f32, f16, bf16, f64

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .f64: return 8
        }
    }
}
