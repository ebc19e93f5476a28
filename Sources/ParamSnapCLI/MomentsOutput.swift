// `psnap moments` per-parameter statistics as text: CSV and JSON on stdout, .npy files with a stats.json beside them.
import ArgumentParser
import ParamSnapCLICore
import Foundation
import ParamSnap

/// Prints or writes the statistics of a moments output file (its tensors' "snapshots" are the statistics).
enum MomentsOutput {
    /// --csv and --json print one row per parameter: for small selections only.
    static let maxPrintedParameters = 1_000_000
    /// Statistics whose values are whole numbers (a count and snapshot indices), printed as integers.
    static let integerStatistics: Set<String> = ["count", "argmin", "argmax"]

    /// Each parameter's statistics, as text in the output dtype's shortest form (integers for counts and indices;
    /// `null` for NaN and ±Inf when `json`), passed to `row(tensor, index, values)` in file order.
    static func forEachParameter(_ m: PSnapReader, names: [String], json: Bool,
                                 _ row: (_ tensor: String, _ index: Int, _ values: [String]) -> Void) throws {
        let total = m.parameterCount
        guard total <= maxPrintedParameters else {
            throw ValidationError("--\(json ? "json" : "csv") is for small selections (\(CLI.group(total)) parameters); use --include, -o or --npy")
        }
        for (t, info) in m.tensors.enumerated() {
            let n = m.layout.parameterCounts[t]
            guard n > 0 else { continue }
            let rows = try m.trajectories(tensor: t, range: 0..<n)
            let S = m.snapshotCount
            for p in 0..<n {
                row(info.name, p, (0..<S).map { k in text(rows[p * S + k], dtype: info.dtype, integer: integerStatistics.contains(names[k]), json: json) })
            }
        }
    }

    static func text(_ v: Double, dtype: DType, integer: Bool, json: Bool) -> String {
        if json && !v.isFinite { return "null" }
        if integer, v.isFinite, v == v.rounded(), abs(v) < 9e15 { return String(Int64(v)) }
        return dtype == .f32 ? "\(Float(v))" : "\(v)"
    }

    /// CSV: tensor,index,<statistics…>.
    static func printCSV(_ m: PSnapReader, names: [String]) throws {
        print((["tensor", "index"] + names).joined(separator: ","))
        try forEachParameter(m, names: names, json: false) { tensor, p, values in
            print("\(tensor),\(p),\(values.joined(separator: ","))")
        }
    }

    /// JSON: an array of {"tensor", "index", <statistic>: value …}, one object per parameter, statistics in order.
    static func printJSON(_ m: PSnapReader, names: [String]) throws {
        let keys = names.map(JSONText.quoted)
        var first = true
        var name: (String, String)? = nil      // the current tensor's name and its JSON literal (encoded once per tensor)
        print("[")
        try forEachParameter(m, names: names, json: true) { tensor, p, values in
            if name?.0 != tensor { name = (tensor, JSONText.quoted(tensor)) }
            let fields = zip(keys, values).map { "\($0): \($1)" }.joined(separator: ", ")
            print("\(first ? "" : ",\n")  {\"tensor\": \(name!.1), \"index\": \(p), \(fields)}", terminator: "")
            first = false
        }
        print(first ? "]" : "\n]")
    }

    /// What `--npy DIR` wrote, as DIR/stats.json: the row order of every .npy and which file holds which tensor.
    struct NPYIndex: Encodable {
        struct Tensor: Encodable { let name: String; let file: String; let shape: [Int]; let parameters: Int }
        let schema = "psnap-moments-npy/1"
        let layout: String
        let statistics: [String]
        let dtype: String
        let source: String
        let sourceSnapshots: String
        let tensors: [Tensor]
    }

    /// One NPY v1.0 file per tensor, shape [statistics, parameters], dtype <f4 or <f8, and DIR/stats.json.
    /// Each file is written under a temporary name and renamed, never over the run, nor over a file unless `force`.
    static func writeNPY(_ m: PSnapReader, names: [String], directory: String, source: String, range: Range<Int>, force: Bool) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var listed: [NPYIndex.Tensor] = []
        for (t, info) in m.tensors.enumerated() {
            let n = m.layout.parameterCounts[t]
            var data: [UInt8] = []
            for k in 0..<m.snapshotCount { data += try m.tensorBytes(tensor: t, snapshot: k) }
            let descr = info.dtype == .f64 ? "<f8" : "<f4"
            var h = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(m.snapshotCount), \(n)), }"
            while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
            h += "\n"
            var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count & 0xFF), UInt8(h.utf8.count >> 8)]
            bytes += Array(h.utf8)
            bytes += data
            let path = MomentsCommand.npyPath(directory, info.name)
            try AtomicFile.write(path, inputs: [source], force: force) { w in try w(bytes) }
            let file = (path as NSString).lastPathComponent
            listed.append(.init(name: info.name, file: file, shape: info.shape, parameters: n))
        }
        let index = NPYIndex(layout: "each FILE.npy is [statistics, parameters]: row i is statistics[i], column j the tensor's flat (row-major) parameter j",
                             statistics: names, dtype: m.tensors.first?.dtype == .f64 ? "<f8" : "<f4", source: source,
                             sourceSnapshots: "\(range.lowerBound):\(range.upperBound)", tensors: listed)
        try AtomicFile.write(directory + "/stats.json", inputs: [source], force: force) { w in
            try w(Array((CLI.jsonString(index) + "\n").utf8))
        }
    }
}
