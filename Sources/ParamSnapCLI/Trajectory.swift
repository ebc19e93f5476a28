// `psnap trajectory`: print one parameter's values across all snapshots (a quick look, CSV or JSON).
import ArgumentParser
import Foundation
@_spi(Internals) import ParamSnap
import PSnapImport

/// `psnap trajectory RUN TENSOR INDEX…`.
public struct TrajectoryCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "trajectory",
        abstract: "Print one parameter's value at every snapshot.",
        discussion: """
        Address the parameter by tensor name and flat index (`fc1.weight 17`), by tensor name and
        multi-index (`fc1.weight 3 5`), or by global parameter index (`--global 123456`).
        Values are printed exactly (shortest round-trip decimal of the stored value).
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Argument(help: "Tensor name followed by a flat index or a multi-index.") var address: [String] = []
    @Option(help: "Global parameter index (tensors in file order, each row-major).") var global: Int?
    @Flag(help: "Print JSON.") var json = false

    public init() {}

    public func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            let values: [Double]
            var label: String
            if let g = global {
                values = try r.trajectory(global: g)
                label = "global \(g)"
            } else {
                guard address.count >= 2 else { throw ValidationError("give TENSOR INDEX… or --global N") }
                let idx = try address.dropFirst().map { s -> Int in
                    guard let v = Int(s) else { throw ValidationError("index '\(s)' is not an integer") }
                    return v
                }
                values = idx.count == 1 ? try r.trajectory(tensor: address[0], index: idx[0]) : try r.trajectory(tensor: address[0], multiIndex: idx)
                label = "\(address[0])\(idx)"
            }
            if json {
                struct Out: Encodable { let parameter: String; let steps: [Int64]; let values: [Double?] }
                print(CLI.jsonString(Out(parameter: label, steps: r.snapshots.map(\.step), values: values.map { $0.isFinite ? $0 : nil })))
            } else {
                print("snapshot,step,value")
                for (k, v) in values.enumerated() { print("\(k),\(r.snapshots[k].step),\(v)") }
            }
        }
    }
}
