// `psnap compact` and `psnap verify`: rewrite a run in the read-optimal layout; check every checksum.
import ArgumentParser
import ParamSnapCLICore
import Foundation
@_spi(Internals) import ParamSnap
import PSnapImport

/// `psnap compact RUN [-o OUT]`.
package struct CompactCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "compact",
        abstract: "Rewrite a run so every parameter block has one tile spanning all snapshots (spec §10).",
        discussion: """
        Streams block by block (memory bounded by --memory), writes a temporary file beside the output, fsyncs it \
        and renames it into place, so an interrupted compact leaves the input untouched. Removes the dead space \
        left by merging. --block-size, --codec and --level re-encode the run. A progress line is shown on a terminal.

        In place, a symlink's target is compacted (the link stays) and the file keeps its mode and owner. -o never \
        names the run itself, and replaces an existing file only with --force.

        Exit codes: 0 ok, 1 failure (I/O, full disk, locked, OUT exists), 64 usage error, 65 damaged run.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(name: .shortAndLong, help: "Output file (default: replace RUN).") var output: String?
    @Flag(help: "Replace an existing output file (never RUN itself: omit -o to compact in place).") var force = false
    @Option(help: "Parameters per block of the output: a power of two, or 'auto' for the largest B whose tile (B × snapshots × element size) fits 256 KiB, within 64…4096 (spec §4.1; what convert uses, with convert's zstd level rule unless --level). Default: the input's.") var blockSize: String?
    @Option(help: "Codec chain of the output, e.g. split,bytedelta,zstdplanes (default: the input's).") var codec: String?
    @Option(help: "zstd level of the output (default: the input's).") var level: Int32?
    @Option(help: ArgumentHelp(OptionCheck.minMatchHelp)) var minMatch: Int32 = Spec.zstdMinMatch
    @Option(help: "Memory budget in MiB.") var memory: Int = 1024
    @Flag(help: "Print a JSON report.") var json = false

    package init() {}

    package func validate() throws {
        try OptionCheck.blockSize(blockSize, allowAuto: true)
        try OptionCheck.memory(memory)
        try OptionCheck.level(level)
        try OptionCheck.minMatch(minMatch)
        if let codec { try OptionCheck.codec(codec, level: level) }
    }

    package func run() throws {
        try CLI.guarded {
            let start = Date()
            if let output { try OutputPath.check(output: output, inputs: [runPath], force: force) }
            let before = try PSnapReader(path: runPath)
            let B = blockSize.map { $0 == "auto" ? Spec.compactBlockSize(snapshots: before.snapshotCount, tensors: before.tensors) : Int($0)! }   // checked in validate()
            var chain: CodecChain? = nil
            // --block-size auto also takes convert's level rule (spec §5), never lowering the input's.
            let inputLevel = before.header.codecChain.zstdLevel
            let outLevel = level ?? (blockSize == "auto" ? max(inputLevel, Spec.compactZstdLevel(before.tensors)) : inputLevel)
            if codec != nil || level != nil || outLevel != inputLevel {
                chain = try CodecChain(parsing: codec ?? before.header.codecChain.stages.map(\.description).joined(separator: ","), zstdLevel: outLevel)
            }
            var options = WriterOptions()
            options.memoryBudget = memory << 20
            options.zstdMinMatch = minMatch
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            defer { bar.finish() }   // also before an error message
            options.progress = { done, total in bar.update(done, total) }
            let beforeSize = before.file.bytes.count
            let out = output ?? runPath
            let report = try SnapshotWriter.compact(input: runPath, output: out, blockSize: B, chain: chain, options: options)
            bar.finish()
            let after = try PSnapReader(path: out)
            let secs = Date().timeIntervalSince(start)
            if json {
                struct Out: Encodable { let output: String; let snapshots: Int; let tiles: Int; let bytesBefore: Int; let bytesAfter: Int; let rawBytes: UInt64; let seconds: Double }
                print(CLI.jsonString(Out(output: out, snapshots: report.snapshots, tiles: report.tilesWritten, bytesBefore: beforeSize,
                                         bytesAfter: after.file.bytes.count, rawBytes: report.rawBytes, seconds: secs)))
            } else {
                print("compacted \(runPath) → \(out): \(report.snapshots) snapshots, \(report.tilesWritten) tiles, \(CLI.bytes(UInt64(beforeSize))) → \(CLI.bytes(UInt64(after.file.bytes.count))) (ratio \(CLI.ratio(report.rawBytes, after.liveTileBytes))) in \(String(format: "%.2f", secs)) s")
            }
        }
    }
}

/// `psnap verify RUN`.
package struct VerifyCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every checksum (header, footer, index, metadata, tiles) and that every tile decodes.",
        discussion: """
        Reads every tile once, on all cores; a progress line is shown on a terminal.

        Exit codes: 0 intact, 65 damaged (each bad tile is named with its tensor, parameters and snapshots), \
        1 I/O failure.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Flag(help: "Print JSON.") var json = false

    package init() {}

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            let damage = r.verifyAll(progress: { done, total in bar.update(done, total) })
            bar.finish()
            if json {
                struct Out: Encodable { let file: String; let tiles: Int; let ignoredBytes: UInt64; let damaged: [InfoReport.Damage] }
                print(CLI.jsonString(Out(file: runPath, tiles: r.tiles.count, ignoredBytes: r.ignoredBytes, damaged: damage.map(InfoReport.Damage.init))))
            } else if damage.isEmpty {
                print("\(runPath): OK (\(r.tiles.count) tiles, \(r.snapshotCount) snapshots\(r.ignoredBytes > 0 ? ", \(r.ignoredBytes) bytes of torn tail ignored" : ""))")
            } else {
                for d in damage {
                    print("\(runPath): tile \(d.tile): tensor '\(d.tensor)' block \(d.block), parameters \(d.parameters.lowerBound)..<\(d.parameters.upperBound), snapshots \(d.snapshots.lowerBound)..<\(d.snapshots.upperBound), offset \(d.offset): \(d.reason)")
                }
                print("\(runPath): DAMAGED (\(damage.count) of \(r.tiles.count) tiles)")
            }
            if !damage.isEmpty { throw ExitCode(65) }
        }
    }
}

/// `psnap repair RUN -o FIXED`.
package struct RepairCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Copy a damaged or torn run into a new, valid file.",
        discussion: """
        Keeps the newest commit (a torn tail left by a killed writer is dropped and reported) and copies every intact tile into FIXED, in the compact layout. Damaged tiles (bad checksum, undecodable) stop the repair with their names unless --skip-damaged, which stores them as NaN and lists them in FIXED's attributes (repair.damaged): nothing is guessed silently. FIXED is never the run itself, and replaces an existing file only with --force.

        A damaged newest commit (a footer record after the newest intact commit: spec §8.1) is recovered when its index and metadata are intact, rebuilding the footer from the fields that still prove themselves (§8.2; noted in repair.footer). When they are damaged too, the repair stops, naming the newest intact commit and its snapshot count; --discard-damaged-commits then keeps that commit and drops every snapshot committed after it (noted in repair.discardedCommits).

        Exit codes: 0 repaired, 65 damaged tiles or an unrecoverable commit without the flag that accepts the loss, 1 failure.
        """)

    @Argument(help: "The .psnap run to repair (not modified).") var runPath: String
    @Option(name: .shortAndLong, help: "The repaired copy (a new file, unless --force).") var output: String
    @Flag(help: "Replace an existing FIXED (never the run itself).") var force = false
    @Flag(help: "Store damaged tiles as NaN (listed in the output's attributes) instead of failing.") var skipDamaged = false
    @Flag(help: "When the newest commit cannot be recovered, keep the newest intact one and drop the snapshots committed after it.") var discardDamagedCommits = false
    @Flag(help: "Print JSON.") var json = false

    package init() {}

    package func run() throws {
        try CLI.guarded {
            try OutputPath.check(output: output, inputs: [runPath], force: force)
            var options = WriterOptions()
            options.overwrite = force
            let rep = try SnapshotWriter.repair(input: runPath, output: output, skipDamaged: skipDamaged,
                                                discardDamagedCommits: discardDamagedCommits, options: options)
            let damage = rep.damagedTiles
            if json {
                struct Out: Encodable {
                    let output: String; let snapshots: Int; let droppedTailBytes: UInt64; let damagedTiles: [String]
                    let recoveredFooter: String?; let discardedCommits: String?
                }
                print(CLI.jsonString(Out(output: output, snapshots: rep.snapshots, droppedTailBytes: rep.droppedTailBytes,
                                         damagedTiles: damage.map { "\($0.tensor)[\($0.parameters.lowerBound)..<\($0.parameters.upperBound)] snapshots \($0.snapshots.lowerBound)..<\($0.snapshots.upperBound)" },
                                         recoveredFooter: rep.recoveredFooter, discardedCommits: rep.discardedCommits)))
            } else {
                print("repaired \(runPath) → \(output): \(rep.snapshots) snapshots kept, \(rep.droppedTailBytes) bytes after the kept commit dropped, \(damage.count) damaged tile(s) stored as NaN")
                if let f = rep.recoveredFooter { print("  \(f)") }
                if let d = rep.discardedCommits { print("  discarded (--discard-damaged-commits): \(d)") }
                for d in damage {
                    print("  damaged: tensor '\(d.tensor)' parameters \(d.parameters.lowerBound)..<\(d.parameters.upperBound), snapshots \(d.snapshots.lowerBound)..<\(d.snapshots.upperBound): \(d.reason)")
                }
            }
        }
    }
}
