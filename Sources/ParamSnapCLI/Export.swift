// `psnap export`: rebuild the checkpoint at one snapshot of a run as safetensors, .npz, or .npy files.
import PSnapImport
import ArgumentParser
import ParamSnapCLICore
import Foundation
@_spi(Internals) import ParamSnap

/// `psnap export RUN.psnap --snapshot K -o OUT`.
package struct ExportCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Rebuild the checkpoint at one snapshot as safetensors, .npz or .npy files (bit-identical values).",
        discussion: """
        Picks the snapshot by index (--snapshot K, 0-based; negative counts from the end) or by training step \
        (--step N). The output kind follows OUT:
          OUT.safetensors   one safetensors file: names, shapes, dtypes as stored;
                            the snapshot's metadata as __metadata__ (strings)
          OUT.npz           one uncompressed .npz, a member per tensor (NAME.npy)
          OUT.npy           a single tensor (select it with --include)
          OUT/ (a folder)   one NAME.npy per tensor

        NumPy has no bfloat16: bf16 tensors go to .npy/.npz as uint16 bit patterns (view them with \
        ml_dtypes.bfloat16); safetensors keeps BF16. Files are written under a temporary name and renamed when \
        complete; existing files are replaced only with --force, and never the run itself (exit 64). A progress \
        line is shown on a terminal.

        Examples:
          psnap export run.psnap --snapshot=-1 -o last.safetensors
          psnap export run.psnap --step 1200 -o step-1200.npz --include 'blocks.0.*'
          psnap export run.psnap --snapshot 0 -o init/        # init/fc1.weight.npy, …

        Exit codes: 0 ok, 1 failure (I/O, OUT exists), 64 usage error (no such snapshot, step or tensor), \
        65 damaged run or a run with no snapshots.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(help: "Snapshot index (0-based; --snapshot=-1 is the last).") var snapshot: Int?
    @Option(help: "Training step of the snapshot.") var step: Int64?
    @Option(name: .shortAndLong, help: "Output: FILE.safetensors, FILE.npz, FILE.npy, or a folder for one .npy per tensor.") var output: String
    @Option(help: "Export only tensors whose name matches this glob; repeatable.") var include: [String] = []
    @Flag(help: "Replace existing output files.") var force = false

    package init() {}

    package func validate() throws {
        if (snapshot == nil) == (step == nil) { throw ValidationError("give exactly one of --snapshot K and --step N") }
    }

    package func run() throws {
        try CLI.guarded {
            let start = Date()
            let r = try PSnapReader(path: runPath)
            guard r.snapshotCount > 0 else { throw BadInput.noSnapshots(runPath) }
            let k = try SnapshotExport.snapshotIndex(r, index: snapshot, step: step)
            let chosen = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            defer { bar.finish() }   // also before an error message
            let bytesOut = try SnapshotExport.write(r, snapshot: k, tensors: chosen, to: output, kind: SnapshotExport.Kind(output: output),
                                                    force: force, progress: bar.update)
            bar.finish()
            let secs = Date().timeIntervalSince(start)
            print("exported snapshot \(k) (step \(r.snapshots[k].step)): \(chosen.count) tensor(s), \(CLI.bytes(bytesOut)) → \(output) in \(String(format: "%.2f", secs)) s")
        }
    }
}
