// The `psnap` umbrella command: subcommands over the ParamSnap library.
import ArgumentParser

/// `psnap`: one umbrella with subcommands.
public struct PsnapCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "psnap", abstract: "Store and study parameter trajectories (.psnap).",
        subcommands: [InfoCommand.self])
    public init() {}
}

public struct InfoCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "info")
    public init() {}
    public func run() throws {}
}
