// `psnap similar`: the parameters whose trajectories correlate best with a query parameter's, exactly, in one pass.
import ArgumentParser
import Foundation
import ParamSnapCLICore
@_spi(Internals) import ParamSnap
import ParamSnapAnalysis

/// `psnap similar RUN (NAME INDEX… | --global G) [--top 50] [--on values|steps] [--include GLOB…]`.
package struct SimilarCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "similar",
        abstract: "The parameters whose trajectories correlate best with one parameter's (exact Pearson r, one pass).",
        discussion: """
        The query is a parameter of the run, by tensor name and index (flat or multi-index) or by --global index. Every selected parameter's trajectory (or its steps, --on steps) is centred and scaled to unit norm, and its Pearson correlation with the query is one dot product (a BLAS matrix product per block of parameters): exact, not approximate. Prints the --top best, best first; ties go to the lower global index. Constant trajectories have no defined correlation: they are left out and counted, as are trajectories holding NaN or infinity. The query itself is in the list (r = 1).

        Exit codes: 0 ok, 1 failure, 64 usage error (no such tensor or index, a constant query), 65 damaged run.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Argument(help: "Query: tensor name followed by a flat index or a multi-index.") var address: [String] = []
    @Option(help: "Query by global parameter index instead.") var global: Int?
    @Option(help: "How many parameters to print.") var top: Int = 50
    @Option(help: "Correlate values, or steps (consecutive differences).") var on: TrajectoryView = .values
    @Option(help: "Search only tensors whose name matches this glob; repeatable.") var include: [String] = []
    @Option(help: "Worker threads (default: all cores).") var workers: Int?
    @Flag(help: "Print CSV (rank,global,tensor,index,r).") var csv = false
    @Flag(help: "Print JSON.") var json = false

    package init() {}

    package func validate() throws {
        try OptionCheck.workers(workers)
        guard top >= 1 && top <= 1_000_000 else { throw ValidationError("--top is 1…1000000, not \(top)") }
        try TrajectoryCommand.checkAddress(address, global: global)
    }

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            let query: [Double], label: String
            if let g = global {
                query = try r.trajectory(global: g); label = "global \(g)"
            } else {
                let name = address[0], idx = address.dropFirst().compactMap { Int($0) }
                query = idx.count == 1 ? try r.trajectory(tensor: name, index: idx[0]) : try r.trajectory(tensor: name, multiIndex: idx)
                label = "\(name)\(idx)"
            }
            let tensors = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            let res = try Similar.search(r, queries: [query], top: top, view: on, tensors: tensors,
                                         workers: workers ?? ProcessInfo.processInfo.activeProcessorCount)
            let hits = res.hits[0]
            if json {
                struct Hit: Encodable { let rank: Int; let global: Int; let tensor: String; let index: Int; let r: Double }
                struct Out: Encodable { let query: String; let view: String; let searched: Int; let constant: Int; let nonFinite: Int; let hits: [Hit] }
                print(CLI.jsonString(Out(query: label, view: on.rawValue, searched: res.searched, constant: res.constant, nonFinite: res.nonFinite,
                                         hits: hits.enumerated().map { Hit(rank: $0.offset + 1, global: $0.element.global, tensor: r.tensors[$0.element.tensor].name,
                                                                           index: $0.element.index, r: $0.element.r) })))
            } else if csv {
                print("rank,global,tensor,index,r")
                for (i, h) in hits.enumerated() { print("\(i + 1),\(h.global),\(r.tensors[h.tensor].name),\(h.index),\(h.r)") }
            } else {
                print("query \(label), \(on.rawValue); \(CLI.group(res.searched)) parameters searched, \(res.constant) constant and \(res.nonFinite) non-finite left out")
                print("rank  r                    global      tensor[index]")
                for (i, h) in hits.enumerated() {
                    print(CLI.pad("\(i + 1)", 6) + CLI.pad("\(h.r)", 21) + CLI.pad("\(h.global)", 12) + "\(r.tensors[h.tensor].name)[\(h.index)]")
                }
            }
        }
    }
}
