// The `psnap` umbrella command: subcommands over the ParamSnap library.
import PSnapImport
import ArgumentParser
import ParamSnapCLICore
import Foundation
@_spi(Internals) import ParamSnap
import PSnapImport

/// `psnap`: one umbrella with subcommands.
package struct PsnapCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "psnap",
        abstract: "Store and study how every parameter of a network moves during training (.psnap files).",
        discussion: """
        A .psnap file keeps every parameter's value at every snapshot, laid out parameter-major \
        (one trajectory per parameter), zstd-compressed and checksummed. See spec/FORMAT.md.

        Typical use from a training script that saves a safetensors file each epoch:
          psnap append run.psnap epoch-007.safetensors --step 7
          snapinfo run.psnap

        Exit codes: 0 ok, 1 failure (I/O, full disk), 64 usage error, 65 bad or damaged input data.
        """,
        version: ParamSnapVersion.version,
        subcommands: [InfoCommand.self, AppendCommand.self, CompactCommand.self, VerifyCommand.self, RepairCommand.self, TrajectoryCommand.self, MomentsCommand.self, ModesCommand.self, SimilarCommand.self, PairsCommand.self, GroupsCommand.self, ChartCommand.self, ReportCommand.self, FitCommand.self, ConvertCommand.self, ExportCommand.self, ShardCommand.self])
    package init() {}

    /// Parses and runs the command line as ArgumentParser's `main()` does, with two differences: a mistyped
    /// subcommand is named as such (with the closest names), and a usage error found while a subcommand runs shows
    /// that subcommand's usage, not the umbrella's.
    package static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // The first argument names a subcommand (`psnap help X`: the second).
        if let name = arguments.first == "help" ? arguments.dropFirst().first : arguments.first, !name.hasPrefix("-") {
            let names = configuration.subcommands.compactMap { $0.configuration.commandName }
            if !names.contains(name) && name != "help" {
                usageError("unknown subcommand '\(name)'\(NameSuggestion.hint(NameSuggestion.closest(to: name, in: names)))",
                           usage: usageString(), help: "psnap --help")
            }
        }
        do {
            var command = try parseAsRoot(arguments)
            do {
                try command.run()
            } catch let e as ValidationError {
                let sub = type(of: command)
                usageError(e.message, usage: usageString(for: sub), help: "psnap \(sub.configuration.commandName ?? "") --help")
            }
        } catch {
            exit(withError: error)
        }
    }

    /// Prints a usage error the way ArgumentParser does and exits 64.
    static func usageError(_ message: String, usage: String, help: String) -> Never {
        FileHandle.standardError.write(Data("Error: \(message)\nUsage: \(usage)\n  See '\(help)' for more information.\n".utf8))
        Foundation.exit(ExitCode.validationFailure.rawValue)
    }
}
