// `psnap trajectory`: print one parameter's values across all snapshots (a quick look, CSV or JSON).
import ArgumentParser
import ParamSnapCLICore
import Foundation
@_spi(Internals) import ParamSnap
import PSnapImport

/// `psnap trajectory RUN TENSOR INDEX…`.
package struct TrajectoryCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "trajectory",
        abstract: "Print one parameter's value at every snapshot.",
        discussion: """
        Address the parameter by tensor name and flat index (`fc1.weight 17`), by tensor name and multi-index \
        (`fc1.weight 3 5`), or by global parameter index (`--global 123456`), not both. A mistyped tensor name \
        gets the closest names.

        Values are printed exactly, in the shortest decimal that reads back to the stored value in its own dtype \
        (f32 as f32, f16 as f16, f64 as f64; bf16 as the shortest f32 that holds the value), in CSV and JSON alike.

        Exit codes: 0 ok, 1 failure (I/O), 64 usage error (no such tensor or index), 65 damaged run.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Argument(help: "Tensor name followed by a flat index or a multi-index.") var address: [String] = []
    @Option(help: "Global parameter index (tensors in file order, each row-major).") var global: Int?
    @Flag(help: "Print JSON.") var json = false

    package init() {}

    package func validate() throws { try Self.checkAddress(address, global: global) }

    /// One parameter named by TENSOR INDEX… or by --global N, not both (trajectory, similar).
    static func checkAddress(_ address: [String], global: Int?) throws {
        if global != nil {
            guard address.isEmpty else { throw ValidationError("give TENSOR INDEX… or --global N, not both (got '\(address.joined(separator: " "))' and --global)") }
            return
        }
        guard address.count >= 2 else { throw ValidationError("give TENSOR INDEX… or --global N") }
        for s in address.dropFirst() where Int(s) == nil { throw ValidationError("index '\(s)' is not an integer") }
    }

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            let values: [Double]
            let label: String
            let dtype: DType
            if let g = global {
                values = try r.trajectory(global: g)
                label = "global \(g)"
                dtype = r.layout.locate(global: g).map { r.tensors[$0.tensor].dtype } ?? .f64
            } else {
                let idx = address.dropFirst().compactMap { Int($0) }   // checked in validate()
                values = idx.count == 1 ? try r.trajectory(tensor: address[0], index: idx[0]) : try r.trajectory(tensor: address[0], multiIndex: idx)
                label = "\(address[0])\(idx)"
                dtype = r.tensors[try r.tensorIndex(named: address[0])].dtype
            }
            if json {
                print(CLI.jsonString(JSONTrajectory(parameter: label, steps: r.snapshots.map(\.step), values: values, dtype: dtype)))
            } else {
                print("snapshot,step,value")
                for (k, v) in values.enumerated() { print("\(k),\(r.snapshots[k].step),\(Self.shortest(v, dtype))") }
            }
        }
    }

    /// The shortest decimal that reads back to `v` as a value of `dtype` (v is exact: it came from that dtype).
    static func shortest(_ v: Double, _ dtype: DType) -> String {
        switch dtype {
        case .f64: return "\(v)"
        case .f16: return "\(Float16(v))"
        case .f32, .bf16: return "\(Float(v))"
        }
    }

    /// The JSON form: values in their dtype's shortest form (non-finite values as null).
    struct JSONTrajectory: Encodable {
        let parameter: String
        let steps: [Int64]
        let values: [Double]
        let dtype: DType

        enum Keys: String, CodingKey { case parameter, steps, values }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(parameter, forKey: .parameter)
            try c.encode(steps, forKey: .steps)
            var list = c.nestedUnkeyedContainer(forKey: .values)
            // The shortest decimal of the value's own dtype, read back as a Double: the encoder prints that decimal.
            for v in values {
                if let d = v.isFinite ? Double(TrajectoryCommand.shortest(v, dtype)) : nil { try list.encode(d) } else { try list.encodeNil() }
            }
        }
    }
}
