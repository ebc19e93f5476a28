// `psnap append`: append checkpoint dumps (the inputs `psnap convert` takes) to a run, creating it on first use.
import PSnapImport
import ArgumentParser
import ParamSnapCLICore
import Foundation
@_spi(Internals) import ParamSnap

/// `psnap append RUN.psnap INPUT…`.
package struct AppendCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append checkpoint dumps to a .psnap run (created on first use).",
        discussion: """
        Inputs are what `psnap convert` takes, recognised the same way (see its --help): FILE.safetensors, a Hugging Face checkpoint-N/ folder or its model.safetensors.index.json (the shards form one snapshot), a folder holding such checkpoints, .npy and .npz files. F32, F16, BF16 and F64 tensors are stored; others are skipped with a note (--strict refuses them).

        Every input is read and checked before the run is touched, and all the snapshots found are committed together, durably, before this command returns: a failed append leaves the run as it was (a run it was creating is not left behind), and a killed append loses nothing that an earlier append committed. Small trailing segments are merged as the run grows (spec §10), so calling this once per epoch still gives parameter-major tiles; the space of what a merge replaced is returned to the filesystem after the commit (holes: the file keeps its length; a reader still holding an older commit keeps its tiles until it closes; spec §9), and `snapinfo` shows the space on disk. `psnap compact` gives the read-optimal layout and the smallest file.

        With one checkpoint per call the run is held to a space bound (--space-bound, 1.2 by default): when the segments a run keeps while it grows (each codes its first snapshot on its own) would make it more than 1.2 × its compact size, the append merges more of them, up to the whole run, so the disk a run needs stays near what `psnap compact` gives at every step; fine-tunes, whose steps change little, merge more often than runs trained from scratch.

        Steps follow the rules of `psnap convert`: the number in the file or checkpoint folder name (step-015 → 15, checkpoint-30 → 30; a sharded index without one: trainer_state.json's global_step), else the previous step + 1; snapshots are ordered by step (--order given: as listed). The steps of a run strictly increase: a step that is not after the run's last one is refused. Epoch, loss, learning rate … come from trainer_state.json, and the safetensors header's __metadata__ entries are kept as snapshot metadata (strings).

        Exit codes: 0 ok, 1 failure (I/O, full disk, file locked), 64 usage error, 65 bad input data (malformed files, unsupported dtype with --strict, tensors that differ from the run's, steps that do not increase).
        """)

    @Argument(help: "The .psnap run (created if missing).") var runPath: String
    @Argument(help: "Checkpoint files or folders (as psnap convert takes them).") var snapshots: [String]
    @Option(help: "Training step of the snapshot (only with a single snapshot).") var step: Int64?
    @Option(help: "Epoch of the snapshot (only with a single snapshot).") var epoch: Double?
    @Option(name: .customLong("meta"), help: "Snapshot metadata KEY=VALUE (numbers stored as numbers); repeatable.") var meta: [MetaEntry] = []
    @Option(help: "Snapshot order: 'step' (by the step number in each name) or 'given' (as listed).") var order: String = "step"
    @Flag(help: "Refuse tensors of unsupported dtypes instead of skipping them.") var strict = false
    @Option(help: "Parameters per block for a new run (power of two). Default: 1024 for f32, 2048 for bf16 and f16, 512 for f64 (the element size holding most parameters; spec §4.1).") var blockSize: Int?
    @Option(help: "Codec chain for a new run, comma-separated stages from: xor, sub, linpred, lead, split, bytedelta, zstd, zstdplanes, lenrans (spec §5). linpred,lenrans: 4–16 % smaller and 2–3× faster uncached single-trajectory reads, whole-file scans ~2.8× slower.") var codec: String = "linpred,lead,split,zstdplanes"
    @Option(help: "zstd level for a new run.") var level: Int32 = Spec.defaultZstdLevel
    @Option(help: ArgumentHelp(OptionCheck.minMatchHelp)) var minMatch: Int32 = Spec.zstdMinMatch
    @Flag(help: "Do not merge small trailing segments (spec §10).") var noMerge = false
    @Option(help: ArgumentHelp("Keep the run's live bytes within RATIO × what `psnap compact` would make of it after each one-snapshot append, merging further than the tiered plan when needed (spec §10 space bound; with the filesystem's partly used blocks `du` stays within ~1.25× at 1.2). 'off': the tiered plan alone, fewer bytes rewritten per append.", valueName: "RATIO")) var spaceBound: String = String(Spec.defaultSpaceBound)
    @Option(help: "Memory budget in MiB for staging and encoding.") var memory: Int = 1024
    @Flag(help: "Print a JSON report of the commit.") var json = false

    package init() {}

    package func validate() throws {
        if snapshots.count > 1 && (step != nil || epoch != nil) { throw ValidationError("--step and --epoch apply to a single snapshot") }
        guard order == "step" || order == "given" else { throw ValidationError("--order is 'step' or 'given', not '\(order)'") }
        try OptionCheck.blockSize(blockSize.map { String($0) })
        if let epoch, !epoch.isFinite { throw ValidationError("--epoch is a finite number, not \(epoch)") }
        try OptionCheck.memory(memory)
        try OptionCheck.codec(codec, level: level)
        try OptionCheck.minMatch(minMatch)
        if spaceBound != "off" {
            guard let r = Double(spaceBound), Spec.spaceBoundRange.contains(r) else {
                throw ValidationError("--space-bound is a ratio from \(Spec.spaceBoundRange.lowerBound) to \(Spec.spaceBoundRange.upperBound) (e.g. 1.2) or 'off', not '\(spaceBound)'")
            }
        }
    }

    package func run() throws {
        try CLI.guarded {
            let start = Date()
            try ShardedRun.refuseFolder(runPath, command: "append")
            var opts = ConvertOptions()
            opts.strict = strict
            opts.orderGiven = order == "given"
            let discovery = DumpDiscovery(options: opts)
            for input in snapshots { try discovery.add(path: input) }
            for n in discovery.notes { CLI.note(n) }
            // The run is appended to, not replaced; but it is never one of the files read.
            try OutputPath.check(output: runPath, inputs: snapshots + discovery.files, force: true)
            var found = discovery.snapshots
            if step != nil || epoch != nil {
                guard found.count == 1 else { throw ValidationError("--step and --epoch apply to a single snapshot; the inputs hold \(found.count)") }
                if let step { found[0].step = step }
                if let epoch { found[0].epoch = epoch }
            }
            for m in meta {
                for i in found.indices { found[i].metadata[m.key] = m.value }
            }
            let append = try DumpAppend(runPath: runPath, found: found, options: opts)
            var options = WriterOptions()
            options.memoryBudget = memory << 20
            options.merge = !noMerge
            options.spaceBound = spaceBound == "off" ? nil : Double(spaceBound)   // checked in validate()
            options.snapshotsPerSegment = Int.max
            options.blockSize = blockSize
            options.zstdMinMatch = minMatch
            options.chain = try CodecChain(parsing: codec, zstdLevel: level)
            let done = try append.commit(options: options, scratchPath: TempFiles.path(beside: runPath, .convertScratch))
            let secs = Date().timeIntervalSince(start)
            let report = done.commit, appended = append.conversion.snapshotInfos.count
            if json {
                struct Out: Encodable { let run: String; let snapshots: Int; let appended: Int; let tilesWritten: Int; let rawBytesWritten: UInt64; let storedBytesWritten: UInt64; let bytesAppended: UInt64; let bytesReclaimed: UInt64; let rewrittenFrom: Int; let builds: Int; let seconds: Double }
                print(CLI.jsonString(Out(run: runPath, snapshots: done.snapshots, appended: appended, tilesWritten: report.tilesWritten,
                                         rawBytesWritten: report.rawBytes, storedBytesWritten: report.storedBytes,
                                         bytesAppended: report.bytesAppended, bytesReclaimed: report.bytesReclaimed,
                                         rewrittenFrom: report.rewrittenFrom, builds: report.builds, seconds: secs)))
            } else {
                let merged = report.rewrittenFrom < done.snapshots - appended ? ", merged snapshots \(report.rewrittenFrom)..<\(done.snapshots) into one segment" : ""
                print("appended \(appended) snapshot(s) to \(runPath): \(done.snapshots) snapshots in \(done.segments) segment(s)\(merged); \(CLI.bytes(report.bytesAppended)) written\(report.bytesReclaimed > 0 ? ", \(CLI.bytes(report.bytesReclaimed)) of dead space returned to the filesystem" : "") in \(String(format: "%.2f", secs)) s")
            }
        }
    }
}
