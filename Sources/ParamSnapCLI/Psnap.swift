// The `psnap` umbrella command: subcommands over the ParamSnap library.
import PSnapImport
import ArgumentParser
@_spi(Internals) import ParamSnap

/// `psnap`: one umbrella with subcommands.
public struct PsnapCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "psnap",
        abstract: "Store and study how every parameter of a network moves during training (.psnap files).",
        discussion: """
        A .psnap file keeps every parameter's value at every snapshot, laid out parameter-major
        (one trajectory per parameter), zstd-compressed and checksummed. See spec/FORMAT.md.

        Typical use from a training script that saves a safetensors file each epoch:
          psnap append run.psnap epoch-007.safetensors --step 7
          snapinfo run.psnap

        Exit codes: 0 ok, 1 failure (I/O, full disk), 64 usage error, 65 bad or damaged input data.
        """,
        version: ParamSnapVersion.version,
        subcommands: [InfoCommand.self, AppendCommand.self, CompactCommand.self, VerifyCommand.self, RepairCommand.self, TrajectoryCommand.self, MomentsCommand.self, ConvertCommand.self, ExportCommand.self])
    public init() {}
}
