// `snapinfo` / `psnap info`: human and JSON summaries of a .psnap file, its tiles, and verification.
import ArgumentParser
import Foundation
@_spi(Internals) import ParamSnap

/// `snapinfo FILE` / `psnap info FILE`.
package struct InfoCommand: ParsableCommand, ParsableArguments {
    package static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Summarise a .psnap file: tensors, snapshots, segments, codec, sizes and ratios.",
        discussion: """
        Reads the newest valid commit (a torn tail left by a killed writer is ignored and reported). --json \
        prints the stable schema documented in spec/SNAPINFO.md; --tiles lists the physical layout; --verify \
        checks every tile's checksum and decode and names each damaged tile (with a progress line on a terminal). \
        When the writer has returned dead space to the filesystem (holes), the space on disk is shown beside the \
        file's length.

        Exit codes: 0 ok, 1 failure (I/O), 64 usage error, 65 damaged or invalid file.
        """)

    @Argument(help: "The .psnap file.") var file: String
    @Flag(help: "Print JSON (schema psnap-info/1, see spec/SNAPINFO.md).") var json = false
    @Flag(help: "List every live tile: tensor, block, snapshots, offset, stored and raw bytes, flags.") var tiles = false
    @Flag(name: .customLong("snapshots"), help: "List every snapshot with its step, epoch, time and metadata.") var listSnapshots = false
    @Flag(help: "Verify every tile (checksum and decode); exit 65 naming each damaged tile.") var verify = false

    package init() {}

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: file)
            let bar = ProgressBar(enabled: verify && CLI.stderrIsTerminal)
            let damage = verify ? r.verifyAll(progress: { done, total in bar.update(done, total) }) : []
            bar.finish()
            if json {
                print(CLI.jsonString(InfoReport.make(r, tiles: tiles, snapshots: listSnapshots, damage: verify ? damage : nil)))
            } else {
                printHuman(r, damage: damage)
            }
            if !damage.isEmpty { throw ExitCode(65) }
        }
    }

    /// What `snapinfo` prints for `r`, line by line (also the run summary of `psnap report`).
    package func humanLines(_ r: PSnapReader, damage: [TileDamage]) -> [String] {
        var out: [String] = []
        func print(_ s: String) { out.append(s) }
        let raw = r.liveRawBytes
        let stored = r.liveTileBytes
        let snaps = r.snapshots
        if let m = r.manifest {
            print("run         \(file)  (sharded: \(m.shards.count) shard(s), \(CLI.bytes(r.fileBytes)), format \(r.header.majorVersion).\(r.header.minorVersion); spec/SHARDS.md)")
            for (name, sh) in zip(r.shards.indices.map(r.shardName), r.shards).prefix(12) {
                let i = m.shards.first { $0.file == name }!
                print("  \(i.file)  \(i.parts.count) part(s)  \(sh.snapshotCount) snapshot(s)  \(CLI.bytes(sh.fileBytes))  commit \(sh.footer.commitSequence)")
            }
            if m.shards.count > 12 { print("  … (\(m.shards.count - 12) more: manifest.json lists them)") }
        } else {
            print("file        \(file)  (\(CLI.bytes(UInt64(r.file.bytes.count))), format \(r.header.majorVersion).\(r.header.minorVersion), commit \(r.footer.commitSequence))")
        }
        print("tensors     \(r.tensors.count)  (\(CLI.group(r.parameterCount)) parameters)")
        if let f = snaps.first, let l = snaps.last {
            print("snapshots   \(snaps.count)  (steps \(f.step) … \(l.step))")
        } else {
            print("snapshots   0")
        }
        let segs = r.segments
        print("segments    \(segs.count)  \(segs.prefix(12).map { "\($0.lowerBound)..<\($0.upperBound)" }.joined(separator: " "))\(segs.count > 12 ? " …" : "")")
        print("block size  \(r.header.blockSize) parameters  (\(r.tiles.count) tiles)")
        print("codec       \(r.header.codecChain)")
        print("stored      \(CLI.bytes(stored)) of \(CLI.bytes(raw)) raw  (ratio \(CLI.ratio(raw, stored)))")
        print("dead space  \(CLI.bytes(r.deadBytes))  (write amplification \(String(format: "%.2f", r.writeAmplification))×; `psnap compact` removes it)")
        if let a = r.allocatedBytes {
            print("on disk     \(CLI.bytes(a)) allocated of \(CLI.bytes(r.fileBytes))  (the writer returned dead space to the filesystem as holes)")
        }
        if r.ignoredBytes > 0 { print("ignored     \(r.ignoredBytes) bytes after the newest commit (torn tail of an interrupted write)") }
        print("")
        let per = InfoReport.perTensor(r)
        let w = max(6, min(48, r.tensors.map { $0.name.count }.max() ?? 6))
        print("\(CLI.pad("tensor", w))  dtype  \(CLI.pad("shape", 14))  \(CLI.lpad("params", 12))  \(CLI.lpad("raw", 10))  \(CLI.lpad("stored", 10))  ratio")
        for (i, t) in r.tensors.enumerated() {
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            print("\(CLI.pad(t.name, w))  \(CLI.pad(t.dtype.rawValue, 5))  \(CLI.pad(shape, 14))  \(CLI.lpad(CLI.group(r.layout.parameterCounts[i]), 12))  \(CLI.lpad(CLI.bytes(per[i].raw), 10))  \(CLI.lpad(CLI.bytes(per[i].stored), 10))  \(CLI.ratio(per[i].raw, per[i].stored))")
        }
        if listSnapshots {
            print("")
            print("snapshot  step        epoch       time                      metadata")
            for (k, s) in snaps.enumerated() {
                let meta = (s.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                let time = Date(timeIntervalSince1970: s.time).ISO8601Format()
                print("\(CLI.lpad(String(k), 8))  \(CLI.pad(String(s.step), 10))  \(CLI.pad(s.epoch.map { String($0) } ?? "-", 10))  \(CLI.pad(time, 24))  \(meta)")
            }
        }
        if tiles {
            print("")
            print("tile      tensor  block     snapshots      offset        stored         raw  flags")
            for (i, x) in r.tiles.enumerated() {
                print("\(CLI.lpad(String(i), 6))  \(CLI.lpad(String(x.tensor), 8))  \(CLI.lpad(String(x.block), 5))  \(CLI.lpad("\(x.firstSnapshot)..<\(x.firstSnapshot + x.snapshotCount)", 12))  \(CLI.lpad(String(x.offset), 10))  \(CLI.lpad(String(x.storedLength), 10))  \(CLI.lpad(String(x.rawLength), 10))  \(x.storedRaw ? "raw" : x.anchored ? "anchored" : "-")")
            }
        }
        if verify {
            print("")
            if damage.isEmpty {
                print("verify      all \(r.tiles.count) tiles intact (checksums and decode)")
            } else {
                print("verify      \(damage.count) of \(r.tiles.count) tiles damaged:")
                for d in damage {
                    print("  tile \(d.tile): tensor '\(d.tensor)' block \(d.block), parameters \(d.parameters.lowerBound)..<\(d.parameters.upperBound), snapshots \(d.snapshots.lowerBound)..<\(d.snapshots.upperBound), offset \(d.offset): \(d.reason)")
                }
            }
        }
        return out
    }

    func printHuman(_ r: PSnapReader, damage: [TileDamage]) {
        for line in humanLines(r, damage: damage) { Swift.print(line) }
    }
}

/// The `--json` schema psnap-info/1 (spec/SNAPINFO.md).
package struct InfoReport: Encodable {
    struct Codec: Encodable { let stages: [String]; let zstdLevel: Int32 }
    struct Snapshots: Encodable { let count: Int; let firstStep: Int64?; let lastStep: Int64? }
    struct Tensor: Encodable {
        let name: String; let dtype: String; let shape: [Int]; let parameters: Int
        let rawBytes: UInt64; let storedBytes: UInt64; let ratio: Double
    }
    struct Tile: Encodable {
        let tensor: UInt32; let block: UInt64; let firstSnapshot: UInt64; let snapshotCount: UInt64
        let offset: UInt64; let storedLength: UInt64; let rawLength: UInt64; let storedRaw: Bool; let anchored: Bool; let checksum: String
    }
    struct Snapshot: Encodable {
        let index: Int; let step: Int64; let epoch: Double?; let time: Double; let metadata: [String: MetaValue]?
    }
    /// A damaged tile as `--json` reports it (snapinfo --verify, psnap verify).
    package struct Damage: Encodable {
        let tile: Int; let tensor: String; let block: Int; let parameters: [Int]; let snapshots: [Int]; let offset: UInt64; let reason: String
        package init(_ d: TileDamage) {
            tile = d.tile; tensor = d.tensor; block = d.block; parameters = [d.parameters.lowerBound, d.parameters.upperBound]
            snapshots = [d.snapshots.lowerBound, d.snapshots.upperBound]; offset = d.offset; reason = d.reason
        }
    }
    let schema = "psnap-info/1"
    let formatVersion: String
    let fileBytes: UInt64
    let committedBytes: UInt64
    let ignoredBytes: UInt64
    let commitSequence: UInt64
    let blockSize: UInt64
    let codec: Codec
    let parameters: Int
    let snapshots: Snapshots
    let segments: [[Int]]
    let tileCount: Int
    let rawBytes: UInt64
    let storedBytes: UInt64
    let ratio: Double
    let deadBytes: UInt64
    let writeAmplification: Double
    let allocatedBytes: UInt64?
    let attributes: [String: MetaValue]?
    let tensors: [Tensor]
    let tiles: [Tile]?
    let snapshotList: [Snapshot]?
    let damagedTiles: [Damage]?
    /// A sharded run's shards (spec/SHARDS.md); absent for one file.
    struct Shard: Encodable { let file: String; let parts: Int; let snapshots: Int; let fileBytes: UInt64; let commitSequence: UInt64 }
    let shards: [Shard]?

    static func perTensor(_ r: PSnapReader) -> [(raw: UInt64, stored: UInt64)] {
        var per = [(raw: UInt64, stored: UInt64)](repeating: (0, 0), count: r.tensors.count)
        for x in r.tiles { per[Int(x.tensor)].raw += x.rawLength; per[Int(x.tensor)].stored += x.storedLength }
        return per
    }

    static func make(_ r: PSnapReader, tiles: Bool, snapshots: Bool, damage: [TileDamage]?) -> InfoReport {
        let per = perTensor(r)
        let raw = per.reduce(0) { $0 + $1.raw }, stored = per.reduce(0) { $0 + $1.stored }
        func ratio(_ a: UInt64, _ b: UInt64) -> Double { b == 0 ? 0 : (Double(a) / Double(b) * 1e4).rounded() / 1e4 }
        return InfoReport(
            formatVersion: "\(r.header.majorVersion).\(r.header.minorVersion)",
            fileBytes: r.fileBytes, committedBytes: r.committedSize, ignoredBytes: r.ignoredBytes,
            commitSequence: r.footer.commitSequence, blockSize: r.header.blockSize,
            codec: Codec(stages: r.header.codecChain.stages.map(\.description), zstdLevel: r.header.codecChain.zstdLevel),
            parameters: r.parameterCount,
            snapshots: Snapshots(count: r.snapshotCount, firstStep: r.snapshots.first?.step, lastStep: r.snapshots.last?.step),
            segments: r.segments.map { [$0.lowerBound, $0.count] },
            tileCount: r.tiles.count, rawBytes: raw, storedBytes: stored, ratio: ratio(raw, stored),
            deadBytes: r.deadBytes, writeAmplification: (r.writeAmplification * 1e4).rounded() / 1e4,
            allocatedBytes: r.allocatedBytes,
            attributes: r.metadata.attributes,
            tensors: r.tensors.enumerated().map { i, t in
                Tensor(name: t.name, dtype: t.dtype.rawValue, shape: t.shape, parameters: r.layout.parameterCounts[i],
                       rawBytes: per[i].raw, storedBytes: per[i].stored, ratio: ratio(per[i].raw, per[i].stored))
            },
            tiles: tiles ? r.tiles.map {
                Tile(tensor: $0.tensor, block: $0.block, firstSnapshot: $0.firstSnapshot, snapshotCount: $0.snapshotCount,
                     offset: $0.offset, storedLength: $0.storedLength, rawLength: $0.rawLength, storedRaw: $0.storedRaw, anchored: $0.anchored,
                     checksum: String(format: "%016lx", $0.checksum))
            } : nil,
            snapshotList: snapshots ? r.snapshots.enumerated().map {
                Snapshot(index: $0.offset, step: $0.element.step, epoch: $0.element.epoch, time: $0.element.time, metadata: $0.element.metadata)
            } : nil,
            damagedTiles: damage?.map(Damage.init),
            shards: r.manifest.map { m in zip(r.shards.indices.map(r.shardName), r.shards).map { name, sh in
                Shard(file: name, parts: m.shards.first { $0.file == name }?.parts.count ?? 0, snapshots: sh.snapshotCount, fileBytes: sh.fileBytes,
                      commitSequence: sh.footer.commitSequence)
            } })
    }
}

/// `snapinfo FILE`: the same as `psnap info FILE`, under the name users know.
package struct SnapinfoCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "snapinfo", abstract: InfoCommand.configuration.abstract, discussion: InfoCommand.configuration.discussion,
        version: ParamSnapVersion.version)
    @OptionGroup var info: InfoCommand
    package init() {}
    package func run() throws { try info.run() }
}
