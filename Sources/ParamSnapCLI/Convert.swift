// `psnap convert`: turn a folder (or list) of checkpoint dumps into one compact .psnap run, out of core.
import PSnapImport
import ArgumentParser
import ParamSnapCLICore
import Foundation
@_spi(Internals) import ParamSnap

/// `psnap convert INPUT… -o RUN.psnap`.
package struct ConvertCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert checkpoint dumps (safetensors, HF checkpoints, .npy, .npz, raw) into one .psnap run.",
        discussion: """
        Inputs are recognised by content and may be mixed in one call:
          FILE.safetensors   one snapshot (F32, F16, BF16, F64; other dtypes are
                             skipped with a note)
          DIR/model.safetensors.index.json
                             a sharded checkpoint (its shards form one snapshot)
          checkpoint-N/      a Hugging Face Trainer checkpoint: the model shards;
                             step N; epoch, loss, learning rate … from
                             trainer_state.json; optimizer.pt, scheduler.pt,
                             rng_state*.pth … skipped with a note
          FOLDER/            any folder holding the above (e.g. a run's output
                             dir), recursively
          FILE.npy           one array = one snapshot (tensor name: --name, else
                             the file stem without its step number: w_000.npy → w)
          FILE.npz           one snapshot, one tensor per member (stored or
                             deflate-compressed)
          FILE (raw)         little-endian values, with --dtype and --shape

        Snapshots are ordered by the step number in their name (natural order: step-9 < step-10 < step-100), \
        or as given with --order given, where an input without a number takes the previous step + 1. Steps \
        strictly increase: a step given twice, or one below its predecessor in the order given, is refused. Every \
        snapshot must hold the same tensors with the same shapes and dtypes; the error names the file and the \
        tensor that differ. Dangling symlinks, symlink loops and FIFOs in folders are skipped with a note. An \
        --include glob that matches no tensor is named, with the closest tensor names.

        The output is written in the compact layout directly (one tile per block spanning all snapshots), block \
        by block across all snapshots, from memory-mapped inputs: resident memory stays under --memory however \
        large the run, and all cores encode. It is written under a temporary name beside OUT and renamed only on \
        success, so a failed or killed convert never leaves a partial OUT, and an existing OUT is never replaced \
        without --force; OUT is never one of the files read (exit 64). A progress line is shown on a terminal.

        --dtype casts every tensor (default: keep each source dtype). Narrowing casts (f32 → bf16/f16, \
        f64 → f32 …) are LOSSY: values are rounded to nearest even, NaNs stay NaN; the run then no longer holds \
        the checkpoints' bits, and convert says so.

        Examples:
          psnap convert runs/tiny-gpt/ -o tiny.psnap
          psnap convert output/ -o run.psnap --steps 0:1000:10    # steps 0, 10, …, 990
          psnap convert checkpoint-*/ -o run.psnap --exclude '*.bias'
          psnap convert w_*.npy --name fc1.weight -o w.psnap
          psnap convert step-*.bin --dtype f32 --shape 256,64 --name w -o w.psnap
          psnap convert dumps/ -o run-bf16.psnap --dtype bf16      # lossy, half size

        Exit codes: 0 ok, 1 failure (I/O, full disk, OUT exists), 64 usage error, 65 bad input data \
        (malformed or truncated files, tensors that differ between snapshots, steps that do not increase, no inputs).
        """)

    @Argument(help: "Checkpoint files or folders (see above).") var inputs: [String] = []
    @Option(name: .shortAndLong, help: "The .psnap file to write.") var output: String
    @Option(help: "Snapshot order: 'step' (by the step number in each name) or 'given' (as listed).") var order: String = "step"
    @Option(help: "Steps to keep, python-slice-like over step numbers: START:STOP:STRIDE (STOP excluded), e.g. 0:1000:10, :500, 100:, or a single step; comma-separated for several.") var steps: StepSelection?
    @Option(help: "Keep only tensors whose name matches this glob (*, ?, [...]); repeatable.") var include: [String] = []
    @Option(help: "Drop tensors whose name matches this glob; repeatable.") var exclude: [String] = []
    @Option(help: "Output dtype: f32, f16, bf16 or f64 (narrowing is lossy). Also the dtype of raw inputs. Default: keep the source dtype.") var dtype: String?
    @Option(help: "Shape of raw inputs, e.g. 256,64 (with --dtype).") var shape: String?
    @Option(help: "Tensor name of .npy and raw inputs (default: the file stem without its step number).") var name: String?
    @Flag(help: "Refuse tensors of unsupported dtypes instead of skipping them.") var strict = false
    @Flag(help: "Take the union of the snapshots' tensors; fill absent ones with NaN and list them in the snapshot's metadata (missing_tensors).") var allowMissing = false
    @Option(help: "Memory budget in MiB (resident memory stays under it).") var memory: Int = 1024
    @Option(help: "Parameters per block (power of two). Default: the largest B whose tile (B × snapshots × element size) fits 256 KiB, within 64…4096 (spec §4.1): under 100 µs uncached single-trajectory reads up to 1,000 f32 snapshots. Larger B: slightly smaller files, slower random reads.") var blockSize: Int?
    @Option(help: "Codec chain, comma-separated stages from: xor, sub, linpred, lead, split, bytedelta, zstd, zstdplanes, lenrans (spec §5). linpred,lenrans: 4–16 % smaller and 2–3× faster uncached single-trajectory reads, whole-file scans ~2.8× slower.") var codec: String = "linpred,lead,split,zstdplanes"
    @Option(help: "zstd level. Default: 9 when most parameters are 2-byte (bf16, f16: 8–10 % smaller on fine-tunes, a third of the write speed; reads as fast), else 3 (spec §5).") var level: Int32?
    @Option(help: ArgumentHelp(OptionCheck.minMatchHelp)) var minMatch: Int32 = Spec.zstdMinMatch
    @Option(help: "Write a sharded run (spec/SHARDS.md): OUT is a folder of shard files of at most this raw size each (e.g. 64GiB, 500MB) and a manifest. The run is converted to one file inside OUT first (temporary space: the converted run), then split into shards by copying its tiles (psnap shard).") var shardSize: ByteSize?
    @Flag(help: "Replace OUT if it exists.") var force = false
    @Flag(name: .shortAndLong, help: "No progress bar and no notes (errors and the summary line only).") var quiet = false

    package init() {}

    static func parseDType(_ s: String) -> DType? {
        switch s.lowercased() {
        case "f32", "float32", "float": return .f32
        case "f16", "float16", "half": return .f16
        case "bf16", "bfloat16": return .bf16
        case "f64", "float64", "double": return .f64
        default: return nil
        }
    }

    static func parseShape(_ s: String) -> [Int]? {
        let t = s.trimmingCharacters(in: CharacterSet(charactersIn: "[]() "))
        if t.isEmpty { return [] }
        let parts = t.split(whereSeparator: { $0 == "," || $0 == "x" || $0 == "×" }).map { $0.trimmingCharacters(in: .whitespaces) }
        var out: [Int] = []
        for p in parts { guard let v = Int(p), v >= 0 else { return nil }; out.append(v) }
        return out
    }

    package func validate() throws {
        if inputs.isEmpty { throw ValidationError("no inputs: give checkpoint files or folders, e.g. psnap convert runs/tiny-gpt/ -o tiny.psnap") }
        guard order == "step" || order == "given" else { throw ValidationError("--order is 'step' or 'given', not '\(order)'") }
        if let dtype, Self.parseDType(dtype) == nil { throw ValidationError("--dtype '\(dtype)' is not one of f32, f16, bf16, f64") }
        if let shape {
            guard let dims = Self.parseShape(shape) else { throw ValidationError("--shape '\(shape)' is not a list of sizes like 256,64") }
            // The raw file's size is checked against the product later: it must be a number first.
            let elements = dims.reduce(Int?(1)) { p, d in p.flatMap { let (v, o) = $0.multipliedReportingOverflow(by: d); return o ? nil : v } }
            guard let elements, elements <= Int.max / 8 else { throw ValidationError("--shape '\(shape)' holds more values than any file can") }
            guard dtype != nil else { throw ValidationError("--shape (raw inputs) needs --dtype") }
        }
        try OptionCheck.memory(memory)
        try OptionCheck.codec(codec, level: level)
        try OptionCheck.minMatch(minMatch)
        try OptionCheck.blockSize(blockSize.map(String.init))
    }

    package func run() throws {
        try CLI.guarded {
            let start = Date()
            var opts = ConvertOptions()
            opts.include = include
            opts.exclude = exclude
            opts.dtype = dtype.flatMap(Self.parseDType)
            opts.rawShape = shape.flatMap(Self.parseShape)
            opts.arrayName = name
            opts.strict = strict
            opts.allowMissing = allowMissing
            opts.orderGiven = order == "given"
            opts.steps = steps
            let discovery = DumpDiscovery(options: opts)
            for input in inputs { try discovery.add(path: input) }
            _ = try CLI.select(discovery.tensorNames, include: include, in: "the inputs", quiet: quiet)
            // A sharded run: the file is written inside the folder under a temporary name, then split (psnap shard).
            let fileOutput: String
            var temp: TempFile? = nil
            if shardSize != nil {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
                try OutputPath.check(output: output + "/" + ShardManifest.fileName, inputs: inputs + discovery.files, force: force)
                temp = TempFile(beside: output + "/" + ShardManifest.fileName, .output)
                fileOutput = temp!.path
            } else {
                fileOutput = output
                try OutputPath.check(output: output, inputs: inputs + discovery.files, force: force)
            }
            defer { temp?.remove() }
            let conversion = try DumpConversion(discovery.snapshots, options: opts)
            if !quiet { for n in discovery.notes + conversion.notes { CLI.note(n) } }
            var options = WriterOptions()
            let B = blockSize ?? Spec.compactBlockSize(snapshots: conversion.snapshotInfos.count, tensors: conversion.tensors)
            options.blockSize = B
            options.chain = try CodecChain(parsing: codec, zstdLevel: level ?? Spec.compactZstdLevel(conversion.tensors))
            options.overwrite = force
            options.zstdMinMatch = minMatch
            // The writer's batches take budget/8 each; a few batches in flight plus input pages stay under the budget.
            options.memoryBudget = memory << 20
            let bar = ProgressBar(enabled: !quiet && CLI.stderrIsTerminal)
            defer { bar.finish() }   // also before an error message
            options.progress = { done, total in bar.update(done, total) }
            let source = try conversion.makeSource(scratchPath: TempFiles.path(beside: fileOutput, .convertScratch))
            let report = try SnapshotWriter.writeCompact(path: fileOutput, tensors: conversion.tensors, snapshots: conversion.snapshotInfos,
                                                         source: source, options: options)
            var shardNote = ""
            if let shardSize {
                let split = try ShardedRun.split(try PSnapReader(path: fileOutput), into: output, shardBytes: shardSize.bytes, force: force)
                shardNote = " in \(split.shards.count) shard(s)"
            }
            bar.finish()
            let secs = Date().timeIntervalSince(start)
            let size = shardSize != nil ? report.storedBytes : ((try? FileManager.default.attributesOfItem(atPath: output))?[.size] as? NSNumber)?.uint64Value ?? report.storedBytes
            let params = conversion.tensors.reduce(0) { $0 + ($1.parameterCount ?? 0) }
            let steps = conversion.snapshotInfos.map(\.step)
            let rate = secs > 0 ? Double(report.rawBytes) / 1e6 / secs : 0
            print("converted \(steps.count) snapshot(s) (steps \(steps.first!)…\(steps.last!)), \(conversion.tensors.count) tensor(s), \(CLI.group(params)) parameters → \(output): \(CLI.bytes(report.rawBytes)) raw → \(CLI.bytes(size)) stored (ratio \(CLI.ratio(report.rawBytes, size))), blocks of \(CLI.group(B)) parameters\(shardNote), in \(String(format: "%.2f", secs)) s (\(String(format: "%.0f", rate)) MB/s)")
        }
    }
}
