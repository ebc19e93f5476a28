// psnap-peer-probe: in-process read latencies of a .psnap, printed as one JSON line.
//   psnap-peer-probe traj FILE INDICES.txt [--warmup 100]   trajectory(global:) of each listed global parameter
//   psnap-peer-probe tensor FILE NAME SNAPSHOT [--n 20]      tensorBytes(tensor:snapshot:)
// Latencies in µs (p50, p99, all samples); the file is read once first so the page cache is warm.
import Foundation
import ParamSnap

func nowNs() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
func pct(_ xs: [Double], _ q: Double) -> Double { let s = xs.sorted(); return s[min(s.count - 1, Int((Double(s.count - 1) * q).rounded()))] }
func warm(_ path: String) { if let h = FileHandle(forReadingAtPath: path) { while !(h.readData(ofLength: 1 << 24)).isEmpty {}; try? h.close() } }
func emit(_ d: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: d, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

let a = Array(CommandLine.arguments.dropFirst())
func opt(_ n: String, _ d: Int) -> Int { a.firstIndex(of: n).map { Int(a[$0 + 1])! } ?? d }
do {
    guard a.count >= 3 else { throw NSError(domain: "usage: traj FILE INDICES | tensor FILE NAME SNAPSHOT", code: 64) }
    let path = a[1]
    warm(path)
    let t0 = nowNs()
    let r = try PSnapReader(path: path)
    // PSNAP_CACHE_BYTES: the reader's tile cache size (default PSnapReader.defaultCacheBytes; 0 turns it off).
    if let c = ProcessInfo.processInfo.environment["PSNAP_CACHE_BYTES"].flatMap({ Int($0) }) { r.cacheBytes = c }
    let openUs = Double(nowNs() - t0) / 1e3
    switch a[0] {
    case "traj":
        let idx = try String(contentsOfFile: a[2], encoding: .utf8).split(whereSeparator: \.isNewline).map { Int($0)! }
        var sink = 0.0
        for g in idx.prefix(opt("--warmup", 100)) { sink += try r.trajectory(global: g)[0] }
        var lat: [Double] = []
        for g in idx {
            let t = nowNs()
            let v = try r.trajectory(global: g)
            lat.append(Double(nowNs() - t) / 1e3)
            sink += v[v.count - 1]
        }
        emit(["p50_us": pct(lat, 0.5), "p99_us": pct(lat, 0.99), "n": lat.count, "open_us": openUs, "sink": sink.isFinite ? 0 : 1])
    case "tensor":
        let t = try r.tensorIndex(named: a[2]), k = Int(a[3])!
        var lat: [Double] = []
        var sink = 0
        _ = try r.tensorBytes(tensor: t, snapshot: k)
        for _ in 0..<opt("--n", 20) {
            let t1 = nowNs()
            let b = try r.tensorBytes(tensor: t, snapshot: k)
            lat.append(Double(nowNs() - t1) / 1e3)
            sink &+= Int(b[b.count / 2])
        }
        emit(["p50_us": pct(lat, 0.5), "min_us": lat.min()!, "n": lat.count, "bytes": r.layout.parameterCounts[t] * r.tensors[t].dtype.size, "sink": sink])
    default: throw NSError(domain: "unknown mode \(a[0])", code: 64)
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8)); exit(1)
}
