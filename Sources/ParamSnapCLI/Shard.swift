// `psnap shard`: a run split into a sharded run (spec/SHARDS.md) by copying its tiles.
import ArgumentParser
import ParamSnapCLICore
import Foundation
@_spi(Internals) import ParamSnap
import PSnapFormat

/// `psnap shard RUN -o FOLDER --shard-size SIZE`.
package struct ShardCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "shard",
        abstract: "Split a run into a sharded run: a folder of shard .psnap files and a manifest (spec/SHARDS.md).",
        discussion: """
        Every command that reads a run accepts the folder and answers as on the one file, bit for bit: the shards \
        hold the file's own tiles, copied (checksums verified as they are read, nothing re-encoded). Tensors are \
        kept whole while they fit a shard; a tensor larger than --shard-size is split into ranges of whole blocks \
        over several shards. The size counts raw bytes (parameters × snapshots × element size), so a shard's file \
        is smaller by the run's compression ratio.

        The shards are written first, each under a temporary name then renamed, and the manifest last: an \
        interrupted split leaves no run in FOLDER. FOLDER is created if missing; a manifest or shard file already \
        there is refused unless --force. RUN may itself be a sharded run (re-sharding to another size).

        `psnap append`, `compact` and `repair` work on one file: run them on each shard file.

        Exit codes: 0 ok, 1 failure (I/O, full disk, FOLDER holds a run), 64 usage error, 65 damaged run.
        """)

    @Argument(help: "The .psnap run (or a sharded run's folder).") var runPath: String
    @Option(name: .shortAndLong, help: "The sharded run's folder.") var output: String
    @Option(help: "Largest raw size of a shard: e.g. 64GiB, 500MB, 1048576.") var shardSize: ByteSize
    @Flag(help: "Replace a manifest and shard files already in FOLDER.") var force = false
    @Flag(help: "Print a JSON report.") var json = false

    package init() {}

    package func run() throws {
        try CLI.guarded {
            let start = Date()
            let r = try PSnapReader(path: runPath)
            guard OutputPath.resolved(output) != OutputPath.resolved(runPath) else {
                throw ValidationError("-o names the run itself: give another folder")
            }
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            let report = try ShardedRun.split(r, into: output, shardBytes: shardSize.bytes, force: force, progress: { d, t in bar.update(d, t) })
            bar.finish()
            let secs = Date().timeIntervalSince(start)
            if json {
                struct Shard: Encodable { let file: String; let parts: Int; let bytes: UInt64 }
                struct Out: Encodable { let run: String; let folder: String; let shards: [Shard]; let tiles: Int; let storedBytes: UInt64; let seconds: Double }
                print(CLI.jsonString(Out(run: runPath, folder: output, shards: report.shards.map { Shard(file: $0.file, parts: $0.parts, bytes: $0.bytes) },
                                         tiles: report.tiles, storedBytes: report.storedBytes, seconds: secs)))
            } else {
                print("sharded \(runPath) → \(output): \(report.shards.count) shard(s), \(report.tiles) tiles, \(CLI.bytes(report.storedBytes)) in \(String(format: "%.2f", secs)) s")
                for s in report.shards { print("  \(s.file)  \(s.parts) part(s)  \(CLI.bytes(s.bytes))") }
            }
        }
    }
}
