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
    /// §6 flag bit 1: the tile's values are stored relative to the block's snapshot-0 values (§5 `linpred`, anchored).
    public static let flagAnchored: UInt32 = 2
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
    /// §4.1: default parameters per block of a run written by appends (snapshot count unknown).
    public static let defaultBlockSize = 1024
    /// §4.1: raw bytes of a tile that a writer knowing the snapshot count aims at (convert, compact).
    public static let compactTileTargetBytes = 256 << 10
    /// §4.1: bounds of the chosen block size.
    public static let compactBlockSizeRange = 64...4096

    /// §4.1: the block size for a compact run of `snapshots` snapshots whose parameters are mostly `elementSize`
    /// bytes: the largest power of two B with B · snapshots · elementSize ≤ 256 KiB, kept within 64 … 4096.
    public static func compactBlockSize(snapshots: Int, elementSize: Int) -> Int {
        let perParam = max(1, snapshots) * max(1, elementSize)
        var b = compactBlockSizeRange.lowerBound
        while b * 2 <= compactBlockSizeRange.upperBound && b * 2 * perParam <= compactTileTargetBytes { b *= 2 }
        return b
    }

    /// §4.1: `compactBlockSize` for `tensors`, with the element size that holds the most parameters.
    public static func compactBlockSize(snapshots: Int, tensors: [TensorInfo]) -> Int {
        compactBlockSize(snapshots: snapshots, elementSize: dominantElementSize(tensors))
    }

    /// §4.1: the block size of a run created by an appending writer (snapshot count unknown): a tile's snapshot column
    /// holds `appendColumnBytes`, 4096 / e parameters (1024 for f32, 2048 for bf16 and f16, 512 for f64), so tiles hold
    /// the same raw bytes whatever the dtype.
    public static func appendBlockSize(_ tensors: [TensorInfo]) -> Int {
        max(compactBlockSizeRange.lowerBound, min(compactBlockSizeRange.upperBound, appendColumnBytes / max(1, dominantElementSize(tensors))))
    }
    /// §4.1: bytes of one snapshot of an appended run's tile (B · e).
    public static let appendColumnBytes = 4 << 10

    /// The element size that holds the most parameters of `tensors` (ties: the larger; none: 4).
    public static func dominantElementSize(_ tensors: [TensorInfo]) -> Int {
        var bySize: [Int: Int] = [:]
        for t in tensors { bySize[t.dtype.size, default: 0] += t.parameterCount ?? 0 }
        return bySize.max { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }?.key ?? 4
    }

    /// §5: the zstd level of a writer that knows the whole run (convert, compact to `--block-size auto`):
    /// `compactZstdLevel2Byte` when most parameters are 2-byte (bf16, f16), else `defaultZstdLevel`. Measured in
    /// RATIONALE §A.8: 2-byte runs gain 8–10 % on fine-tunes (0.6 % from scratch) for a third of the write speed.
    public static func compactZstdLevel(_ tensors: [TensorInfo]) -> Int32 {
        dominantElementSize(tensors) == 2 ? compactZstdLevel2Byte : defaultZstdLevel
    }
    /// §5: see `compactZstdLevel`.
    public static let compactZstdLevel2Byte: Int32 = 9
    /// §5: the shortest match this writer lets zstd take (`ZSTD_c_minMatch`) in tiles of 2-byte values (bf16, f16), at every
    /// level: a writer's choice, not recorded in the file, readers see no difference. Their planes are mostly literals;
    /// matches of 3–6 bytes in them cost more than the literals they replace (RATIONALE §A.9). Other tiles: the level's own.
    public static let zstdMinMatch: Int32 = 7
    /// The values `ZSTD_c_minMatch` takes (libzstd 1.5); 0 (the level's own) is also accepted by the writers.
    public static let zstdMinMatchRange: ClosedRange<Int32> = 3...7
    /// §5: the zstd levels a chain may name (libzstd 1.5's `ZSTD_minCLevel()`…`ZSTD_maxCLevel()`; PSnapCodec checks
    /// at start-up that the linked library agrees).
    public static let zstdLevels: ClosedRange<Int32> = -131072...22
    /// §5: default zstd level.
    public static let defaultZstdLevel: Int32 = 3
    /// §10: merge fanout.
    public static let mergeFanout = 4
    /// §10 space bound of appending writers: live bytes ≤ this × the compact size (what `du` reports stays within
    /// 1.25×; the rest is partly used filesystem blocks and the footers of earlier commits).
    public static let defaultSpaceBound = 1.2
    /// §10: the space bounds a writer takes (below 1.05 nearly every commit would merge the whole run).
    public static let spaceBoundRange: ClosedRange<Double> = 1.05...100

    // §11: sanity caps.
    public static let maxTensors = 1 << 24
    public static let maxDims = 16
    public static let maxNameBytes = 4096
    public static let maxMetadataBytes: UInt64 = 1 << 30
    public static let maxIndexBytes: UInt64 = 1 << 40
    public static let maxSnapshots: UInt64 = 1 << 32
    public static let maxTileRawBytes: UInt64 = (1 << 31) - 1
    public static let maxBlockSize: UInt64 = 1 << 24
    /// §4: a block size is a power of two in 1 … `maxBlockSize`.
    public static func isValidBlockSize(_ b: UInt64) -> Bool { b >= 1 && b <= maxBlockSize && b & (b - 1) == 0 }
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
