// `psnap similar`: the parameters whose trajectories correlate best with a query parameter's, exactly, in one pass.
import ArgumentParser
import Foundation
import ParamSnapCLICore
@_spi(Internals) import ParamSnap
import ParamSnapAnalysis

/// `psnap similar RUN (NAME INDEX… | --global G | --queries FILE) [--top 50] [--on values|steps] [--include GLOB…]`.
package struct SimilarCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "similar",
        abstract: "The parameters whose trajectories correlate best with one parameter's (exact Pearson r, one pass).",
        discussion: """
        The query is a parameter of the run, by tensor name and index (flat or multi-index) or by --global index; --queries FILE takes many at once, one per line (`NAME INDEX…` or a global index; `#` starts a comment), all answered by the same pass (one matrix product per block). Every selected parameter's trajectory (or its steps, --on steps) is centred and scaled to unit norm, and its Pearson correlation with the query is one dot product (a BLAS matrix product per block of parameters): exact, not approximate. Prints the --top best, best first; ties go to the lower global index. Constant trajectories have no defined correlation: they are left out and counted, as are trajectories holding NaN or infinity. The query itself is in the list (r = 1).

        --remove-modes K first computes the K principal modes of the searched selection (as `psnap modes` does, one more pass) and removes every trajectory's projection on them, the query's too, before correlating: raw trajectories of a run all share its schedule (most pairs correlate above 0.99), and what is left shows which parameters move alike beyond it. A trajectory the modes explain entirely is left out as constant.

        Exit codes: 0 ok, 1 failure, 64 usage error (no such tensor or index, a constant query), 65 damaged run.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Argument(help: "Query: tensor name followed by a flat index or a multi-index.") var address: [String] = []
    @Option(help: "Query by global parameter index instead.") var global: Int?
    @Option(help: "Many queries, one per line: NAME INDEX… or a global index.") var queries: String?
    @Option(help: "How many parameters to print.") var top: Int = 50
    @Option(help: "Correlate values, or steps (consecutive differences).") var on: TrajectoryView = .values
    @Option(help: "Search only tensors whose name matches this glob; repeatable.") var include: [String] = []
    @Option(name: .customLong("remove-modes"), help: "First remove every trajectory's projection on the K principal modes of the searched selection.") var removeModes: Int?
    @Option(help: "Worker threads (default: all cores).") var workers: Int?
    @Flag(help: "Print CSV (rank,global,tensor,index,r).") var csv = false
    @Flag(help: "Print JSON.") var json = false

    package init() {}

    package func validate() throws {
        try OptionCheck.workers(workers)
        guard top >= 1 && top <= 1_000_000 else { throw ValidationError("--top is 1…1000000, not \(top)") }
        if queries != nil {
            guard address.isEmpty && global == nil else { throw ValidationError("give --queries FILE, or one query, not both") }
        } else {
            try TrajectoryCommand.checkAddress(address, global: global)
        }
    }

    package func run() throws {
        try CLI.guarded {
            let r = try PSnapReader(path: runPath)
            var asked: [(label: String, values: [Double])] = []
            if let queries {
                // Read as any input file is (a FIFO or a folder refused by name, open errors with their errno).
                let file = try MappedFile(path: queries)
                guard let text = String(validating: file.bytes, as: UTF8.self) else {
                    throw ValidationError("\(queries) is not UTF-8 text (one query per line: NAME INDEX… or a global index)")
                }
                for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
                    let words = line.split(whereSeparator: \.isWhitespace).map(String.init)
                    guard !words.isEmpty else { continue }
                    if words.count == 1, let g = Int(words[0]) {
                        asked.append(("global \(g)", try r.trajectory(global: g)))
                    } else {
                        let idx = words.dropFirst().compactMap { Int($0) }
                        guard words.count >= 2, idx.count == words.count - 1 else {
                            throw ValidationError("\(queries):\(n + 1): a query is NAME INDEX… or a global index, not '\(line)'")
                        }
                        asked.append(("\(words[0])\(idx)", idx.count == 1 ? try r.trajectory(tensor: words[0], index: idx[0])
                                                                         : try r.trajectory(tensor: words[0], multiIndex: idx)))
                    }
                }
                guard !asked.isEmpty else { throw ValidationError("\(queries) holds no query") }
            } else if let g = global {
                asked = [("global \(g)", try r.trajectory(global: g))]
            } else {
                let name = address[0], idx = address.dropFirst().compactMap { Int($0) }
                asked = [("\(name)\(idx)", idx.count == 1 ? try r.trajectory(tensor: name, index: idx[0]) : try r.trajectory(tensor: name, multiIndex: idx))]
            }
            let tensors = try CLI.select(r.tensors.map(\.name), include: include, in: runPath)
            var modes: ModesResult?
            if let removeModes {
                let d = on == .values ? r.snapshotCount : r.snapshotCount - 1
                guard removeModes >= 1 && removeModes < d else { throw ValidationError("--remove-modes \(removeModes): 1 … \(max(1, d - 1)) (fewer than the row length, \(d))") }
                modes = try Modes.compute(r, k: removeModes, view: on, tensors: tensors, workers: workers ?? ProcessInfo.processInfo.activeProcessorCount)
            }
            let res = try Similar.search(r, queries: asked.map(\.values), top: top, view: on, removeModes: modes, tensors: tensors,
                                         workers: workers ?? ProcessInfo.processInfo.activeProcessorCount)
            if json {
                struct Hit: Encodable { let rank: Int; let global: Int; let tensor: String; let index: Int; let r: Double }
                struct Query: Encodable { let query: String; let hits: [Hit] }
                struct Out: Encodable { let view: String; let removedModes: Int; let searched: Int; let constant: Int; let nonFinite: Int; let queries: [Query] }
                let qs = zip(asked, res.hits).map { q, hits in
                    Query(query: q.label, hits: hits.enumerated().map { Hit(rank: $0.offset + 1, global: $0.element.global, tensor: r.tensors[$0.element.tensor].name,
                                                                            index: $0.element.index, r: $0.element.r) })
                }
                print(CLI.jsonString(Out(view: on.rawValue, removedModes: removeModes ?? 0, searched: res.searched, constant: res.constant, nonFinite: res.nonFinite, queries: qs)))
            } else if csv {
                print("query,rank,global,tensor,index,r")
                for (q, hits) in zip(asked, res.hits) {
                    for (i, h) in hits.enumerated() { print("\"\(q.label)\",\(i + 1),\(h.global),\(r.tensors[h.tensor].name),\(h.index),\(h.r)") }
                }
            } else {
                print("\(on.rawValue)\(removeModes.map { " less \($0) principal mode\($0 == 1 ? "" : "s")" } ?? ""); \(CLI.group(res.searched)) parameters searched, \(res.constant) constant and \(res.nonFinite) non-finite left out")
                for (q, hits) in zip(asked, res.hits) {
                    print("query \(q.label)")
                    print("rank  r                    global      tensor[index]")
                    for (i, h) in hits.enumerated() {
                        print(CLI.pad("\(i + 1)", 6) + CLI.pad("\(h.r)", 21) + CLI.pad("\(h.global)", 12) + "\(r.tensors[h.tensor].name)[\(h.index)]")
                    }
                }
            }
        }
    }
}
