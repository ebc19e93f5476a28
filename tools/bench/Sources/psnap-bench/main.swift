// psnap-bench: measures ParamSnap in release builds (append MB/s, ratio, trajectory latency, open time, RSS) beside zstd.
import Foundation
@_spi(Internals) import ParamSnap
@_spi(Internals) import PSnapCodec
import PSnapImport

// MARK: helpers

func peakRSSMiB() -> Double {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = Double(line.split(separator: " ").dropFirst().first { !$0.isEmpty }.map(String.init) ?? "0") ?? 0
        return kb / 1024
    }
    return -1
}

func now() -> Double { Date().timeIntervalSince1970 }

func shell(_ cmd: String) -> (Double, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = ["-c", cmd]
    let o = Pipe()
    p.standardOutput = o
    let t0 = now()
    try! p.run()
    let d = o.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (now() - t0, String(decoding: d, as: UTF8.self))
}

func percentile(_ xs: [Double], _ q: Double) -> Double {
    let s = xs.sorted()
    return s[min(s.count - 1, Int(Double(s.count - 1) * q))]
}

struct Rng {
    var s: UInt64
    mutating func next() -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Approximately normal (sum of 4 uniforms, centred, unit variance).
    mutating func gauss() -> Float {
        let x = next()
        let a = Float(x & 0xFFFF) + Float((x >> 16) & 0xFFFF) + Float((x >> 32) & 0xFFFF) + Float(x >> 48)
        return (a / 65535 - 2) * 1.7320508
    }
}

/// A synthetic run of realistic trajectories: per-parameter random walks with drift and per-tensor step scales,
/// plus constant parameters (frozen) and spiky ones (rare large jumps).
struct SyntheticRun {
    let tensors: [TensorInfo]
    let scales: [Float]
    var state: [[Float]]
    var drift: [[Float]]
    var rng = Rng(s: 42)

    init(parameters: Int, tensorCount: Int) {
        var t: [TensorInfo] = []
        var left = parameters
        for i in 0..<tensorCount {
            let n = i == tensorCount - 1 ? left : parameters / tensorCount
            left -= n
            t.append(TensorInfo(name: "layers.\(i).weight", dtype: .f32, shape: [n]))
        }
        tensors = t
        var r = Rng(s: 7)
        scales = t.indices.map { i in Float(1e-4) * Float(1 + i % 5) }
        state = t.map { info in (0..<info.parameterCount!).map { _ in r.gauss() * 0.02 } }
        drift = t.indices.map { i in (0..<t[i].parameterCount!).map { _ in r.gauss() * 1e-5 } }
    }

    /// Advances one snapshot and returns its tensors' bytes.
    mutating func next() -> [[UInt8]] {
        var out: [[UInt8]] = []
        for i in tensors.indices {
            let sc = scales[i]
            var st = state[i]
            let dr = drift[i]
            st.withUnsafeMutableBufferPointer { s in
                for p in 0..<s.count {
                    let kind = p % 64
                    if kind == 0 { continue }                          // frozen parameter
                    var step = dr[p] + sc * rng.gauss()
                    if kind == 1 && rng.next() % 50 == 0 { step *= 100 } // a spike
                    s[p] += step
                }
            }
            state[i] = st
            out.append(st.withUnsafeBytes { Array($0) })
        }
        return out
    }
}

// MARK: commands

func benchAppend(args: [String]) throws {
    // psnap-bench append DIR [--gib 4] [--snapshots 64] [--per-segment 16] [--memory-mib 1024]
    let dir = args.first ?? "/tmp/psnap-bench"
    func opt(_ n: String, _ d: Double) -> Double { args.firstIndex(of: n).map { Double(args[$0 + 1])! } ?? d }
    let gib = opt("--gib", 4), snaps = Int(opt("--snapshots", 64)), per = Int(opt("--per-segment", 16))
    let memMiB = Int(opt("--memory-mib", 1024)), level = Int32(opt("--level", 3))
    let params = Int(gib * 1_073_741_824 / 4 / Double(snaps))
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let run = dir + "/synthetic.psnap", rawPath = dir + "/synthetic.raw"
    unlink(run); unlink(rawPath)
    var gen = SyntheticRun(parameters: params, tensorCount: 24)
    var o = WriterOptions()
    o.snapshotsPerSegment = per
    o.memoryBudget = memMiB << 20
    o.chain = try CodecChain(stages: CodecChain.default.stages, zstdLevel: level)
    let w = try SnapshotWriter.create(path: run, tensors: gen.tensors, options: o)
    let rawFile = FileHandle(forWritingAtPath: { FileManager.default.createFile(atPath: rawPath, contents: nil); return rawPath }())!
    var genSecs = 0.0, appendSecs = 0.0
    for k in 0..<snaps {
        let t0 = now()
        let snap = gen.next()
        genSecs += now() - t0
        for b in snap { rawFile.write(Data(b)) }
        let t1 = now()
        try SnapshotWriter.withBuffers(snap) { try w.append(SnapshotInfo(step: Int64(k), time: now()), buffers: $0) }
        appendSecs += now() - t1
    }
    let t2 = now()
    try w.close()
    appendSecs += now() - t2
    try rawFile.close()
    let raw = Double(params) * 4 * Double(snaps)
    let r = try PSnapReader(path: run)
    let rss = peakRSSMiB()
    // The peer: zstd CLI at the same level, 2 threads, on the same raw bytes (snapshot-major, as dumped).
    _ = shell("cat \(rawPath) > /dev/null")
    let (zsecs, _) = shell("zstd -T2 -\(level) -q -c \(rawPath) > \(dir)/synthetic.raw.zst")
    let zsize = Double((try FileManager.default.attributesOfItem(atPath: dir + "/synthetic.raw.zst")[.size] as! NSNumber).intValue)
    let t3 = now()
    try SnapshotWriter.compact(input: run, output: dir + "/synthetic.compact.psnap", options: o)
    let compactSecs = now() - t3
    let c = try PSnapReader(path: dir + "/synthetic.compact.psnap")
    print(String(format: "append: %.2f GiB raw (%ld params × %ld snapshots, %ld per segment, budget %ld MiB)", raw / 1073741824, params, snaps, per, memMiB))
    print(String(format: "  psnap append  %.0f MB/s  (%.1f s; generator %.1f s excluded)  ratio %.3f live, file %.2f GiB (write amplification %.2f)",
                 raw / appendSecs / 1e6, appendSecs, genSecs, raw / Double(r.liveTileBytes), Double(r.file.bytes.count) / 1073741824,
                 Double(r.file.bytes.count) / Double(r.liveTileBytes)))
    print(String(format: "  zstd -T2 -%d   %.0f MB/s  (%.1f s)  ratio %.3f", level, raw / zsecs / 1e6, zsecs, raw / zsize))
    print(String(format: "  psnap compact %.0f MB/s  (%.1f s)  ratio %.3f", raw / compactSecs / 1e6, compactSecs, raw / Double(c.liveTileBytes)))
    print(String(format: "  peak RSS %.0f MiB (budget %ld MiB; the generator holds %.0f MiB of state)", rss, memMiB, Double(params) * 8 / 1048576))
    unlink(rawPath); unlink(dir + "/synthetic.raw.zst")
}

func benchRead(args: [String]) throws {
    // psnap-bench read FILE [--n 1000] [--no-verify] [--no-cache]: random single-trajectory reads, warm page cache;
    // --no-cache turns the reader's inflated-tile cache off, so every read inflates its rows (the first read of a tile).
    let path = args[0]
    let n = args.firstIndex(of: "--n").map { Int(args[$0 + 1])! } ?? 1000
    let verify = !args.contains("--no-verify")
    let t0 = now()
    let r = try PSnapReader(path: path, verifyChecksums: verify)
    if args.contains("--no-cache") { r.cacheBytes = 0 }
    let openMs = (now() - t0) * 1000
    var rng = Rng(s: 99)
    var lat: [Double] = []
    // Warm the page cache, then time.
    _ = shell("cat \(path) > /dev/null")
    var sink = 0.0
    for _ in 0..<n {
        let g = Int(rng.next() % UInt64(r.parameterCount))
        let t = now()
        let v = try r.trajectory(global: g)
        lat.append((now() - t) * 1e6)
        sink += v[0]
    }
    let tileRaw = Double(r.tiles.reduce(UInt64(0)) { $0 + $1.rawLength }) / Double(max(1, r.tiles.count))
    print(String(format: "read %@: open %.2f ms (%ld tiles), trajectory of %ld snapshots p50 %.1f µs p99 %.1f µs (mean raw tile %.0f KiB)%@",
                 (path as NSString).lastPathComponent, openMs, r.tiles.count, r.snapshotCount, percentile(lat, 0.5), percentile(lat, 0.99),
                 tileRaw / 1024, sink.isNaN ? " " : ""))
}

func benchTensor(args: [String]) throws {
    // psnap-bench tensor FILE NAME [--repeat 5]: the whole tensor's trajectories as raw values (the read the Python
    // package's `run[name][...]` and `run.trajectories(name)` make), median MB/s of raw values.
    let path = args[0], name = args[1]
    let reps = args.firstIndex(of: "--repeat").map { Int(args[$0 + 1])! } ?? 5
    let r = try PSnapReader(path: path)
    let t = try r.tensorIndex(named: name)
    let n = r.layout.parameterCounts[t], bytes = n * r.snapshotCount * r.tensors[t].dtype.size
    let out = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 16)
    defer { out.deallocate() }
    _ = shell("cat \(path) > /dev/null")
    var times: [Double] = []
    for _ in 0..<reps {
        let t0 = now()
        try r.trajectoriesBytes(tensor: t, range: 0..<n, into: out)
        times.append(now() - t0)
    }
    let med = times.sorted()[times.count / 2]
    print(String(format: "tensor %@ of %@: %ld parameters × %ld snapshots, %.1f MB raw in %.3f s (%.0f MB/s, median of %ld)",
                 name, (path as NSString).lastPathComponent, n, r.snapshotCount, Double(bytes) / 1e6, med, Double(bytes) / 1e6 / med, reps))
}

func benchOpen(args: [String]) throws {
    // psnap-bench open DIR: a file with ≥ 100,000 tiles (B = 64, 6.4 M params, 2 segments), open time.
    let dir = args.first ?? "/tmp/psnap-bench"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let path = dir + "/many-tiles.psnap"
    unlink(path)
    var o = WriterOptions(); o.blockSize = 64; o.snapshotsPerSegment = 2
    let params = 3_200_000
    let w = try SnapshotWriter.create(path: path, tensors: [TensorInfo(name: "w", dtype: .f32, shape: [params])], options: o)
    let zeros = [UInt8](repeating: 0, count: params * 4)
    for k in 0..<4 { try w.append(SnapshotInfo(step: Int64(k)), tensors: ["w": zeros]) }
    try w.close()
    var times: [Double] = []
    var tiles = 0
    for _ in 0..<7 {
        let t0 = now()
        let r = try PSnapReader(path: path)
        times.append((now() - t0) * 1000)
        tiles = r.tiles.count
    }
    print(String(format: "open: %ld tiles, index %.1f MiB: median %.1f ms, min %.1f ms", tiles, Double(tiles * 64) / 1048576, percentile(times, 0.5), times.min()!))
}

func benchReal(args: [String]) throws {
    // psnap-bench real DATA_DIR OUT_DIR: ratio and append speed on each shared run beside zstd -3 of the files.
    let data = args[0], out = args[1]
    try? FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let blockSizes = args.firstIndex(of: "--block-sizes").map { args[$0 + 1].split(separator: ",").map { Int($0)! } } ?? [Spec.defaultBlockSize]
    let chains = args.firstIndex(of: "--chains").map { args[$0 + 1].split(separator: ";").map(String.init) } ?? [CodecChain.default.stages.map(\.description).joined(separator: ",")]
    let levels = args.firstIndex(of: "--levels").map { args[$0 + 1].split(separator: ",").map { Int32($0)! } } ?? [3]
    let runs = args.firstIndex(of: "--runs").map { args[$0 + 1].split(separator: ",").map(String.init) } ?? ["tiny-gpt", "tiny-gpt-bf16", "mlp-digits"]
    for runName in runs {
        let dir = data + "/" + runName
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".safetensors") }.sorted().map { dir + "/" + $0 }
        let sts = try files.map { try SafeTensorsFile(path: $0) }
        let raw = Double(sts.reduce(0) { a, s in a + s.entries.reduce(0) { $0 + $1.end - $1.begin } })
        let (zsecs, zout) = shell("cat \(files.joined(separator: " ")) | zstd -3 -q -c | wc -c")
        let fileBytes = Double(files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? NSNumber)?.intValue ?? 0) })
        print(String(format: "%@: %ld snapshots, %.1f MB raw; zstd -3 of the files: ratio %.3f (%.0f MB/s)", runName, files.count, raw / 1e6,
                     fileBytes / Double(zout.trimmingCharacters(in: .whitespacesAndNewlines))!, fileBytes / zsecs / 1e6))
        for chainText in chains {
            for level in levels {
                for B in blockSizes {
                    let path = out + "/\(runName).psnap"
                    var o = WriterOptions(); o.blockSize = B; o.snapshotsPerSegment = files.count; o.overwrite = true
                    o.chain = try CodecChain(parsing: chainText, zstdLevel: level)
                    let t0 = now()
                    let w = try SnapshotWriter.create(path: path, tensors: sts[0].tensors, options: o)
                    for (k, s) in sts.enumerated() {
                        try w.append(SnapshotInfo(step: Int64(k)), buffers: w.layout.tensors.map { s.bytes(named: $0.name)! })
                    }
                    try w.close()
                    let secs = now() - t0
                    let r = try PSnapReader(path: path)
                    // Full decode speed (one thread) and random trajectory latency.
                    let codec = TileCodec(chain: r.header.codecChain)
                    // Best of five passes: on a shared VM the noise is one-sided.
                    var dsecs = Double.infinity
                    for _ in 0..<5 {
                        let t1 = now()
                        for i in r.tiles.indices { try r.decodeTile(i, into: codec.rawScratch(Int(r.tiles[i].rawLength)), codec: codec) }
                        dsecs = min(dsecs, now() - t1)
                    }
                    // Random trajectories: with the reader's inflated-tile cache (default size), then with it off
                    // (every read inflates its tiles: the latency of a run much larger than the cache).
                    var lat: [Double] = [], cold: [Double] = []
                    for pass in 0..<2 {
                        var rng = Rng(s: 5)
                        r.cacheBytes = pass == 0 ? PSnapReader.defaultCacheBytes : 0
                        for _ in 0..<1000 {
                            let g = Int(rng.next() % UInt64(r.parameterCount))
                            let t = now(); _ = try r.trajectory(global: g)
                            if pass == 0 { lat.append((now() - t) * 1e6) } else { cold.append((now() - t) * 1e6) }
                        }
                    }
                    print(String(format: "  %-28@ L%-2d B=%-6d ratio %.3f  write %.0f MB/s  decode %.0f MB/s (1 thread)  trajectory uncached p50 %.0f µs p99 %.0f µs",
                                 chainText as NSString, level, B, raw / Double(r.liveTileBytes), raw / secs / 1e6, raw / dsecs / 1e6,
                                 percentile(cold, 0.5), percentile(cold, 0.99)))
                    print(String(format: "  %-28@ L%-2d B=%-6d with the %ld MiB tile cache: trajectory p50 %.0f µs p99 %.0f µs",
                                 chainText as NSString, level, B, PSnapReader.defaultCacheBytes >> 20,
                                 percentile(lat, 0.5), percentile(lat, 0.99)))
                }
            }
        }
    }
}

func benchDecode(args: [String]) throws {
    // psnap-bench decode FILE... [--passes N]: whole-tile decode speed, one thread, min and median of N passes per file
    // (for A/B runs of two builds on a noisy VM: alternate the binaries, compare the minima).
    let passes = args.firstIndex(of: "--passes").map { Int(args[$0 + 1])! } ?? 15
    for path in args.prefix(while: { !$0.hasPrefix("--") }) {
        let r = try PSnapReader(path: path)
        let codec = TileCodec(chain: r.header.codecChain)
        let raw = Double(r.tiles.reduce(0) { $0 + Int($1.rawLength) })
        var secs: [Double] = []
        for _ in 0..<passes {
            let t1 = now()
            for i in r.tiles.indices { try r.decodeTile(i, into: codec.rawScratch(Int(r.tiles[i].rawLength)), codec: codec) }
            secs.append(now() - t1)
        }
        secs.sort()
        print(String(format: "%@: decode best %.0f MB/s, median %.0f MB/s (%ld passes)", (path as NSString).lastPathComponent,
                     raw / secs[0] / 1e6, raw / secs[secs.count / 2] / 1e6, passes))
    }
}

func benchKernels(args: [String]) throws {
    // psnap-bench kernels FILE: per-stage speeds on the file's tiles (one thread, MB/s of raw bytes).
    let r = try PSnapReader(path: args[0])
    let codec = TileCodec(chain: r.header.codecChain)
    let raw = r.tiles.reduce(0) { $0 + Int($1.rawLength) }
    let stored = r.tiles.reduce(0) { $0 + Int($1.storedLength) }
    func time(_ name: String, bytes: Int, _ body: () throws -> Void) rethrows {
        var best = Double.infinity
        for _ in 0..<5 { let t = now(); try body(); best = min(best, now() - t) }
        print(String(format: "  %-34@ %8.0f MB/s", name as NSString, Double(bytes) / best / 1e6))
    }
    print("kernels on \(r.tiles.count) tiles, \(raw) raw bytes, \(stored) stored")
    try time("xxh64 (stored bytes)", bytes: stored) { for i in r.tiles.indices { try r.verifyTile(i) } }
    try time("full tile decode (no checksum)", bytes: raw) {
        for i in r.tiles.indices {
            let x = r.tiles[i]
            try codec.decode(r.storedBytes(i), storedRaw: x.storedRaw, into: codec.rawScratch(Int(x.rawLength)), elementSize: r.tensors[Int(x.tensor)].dtype.size,
                             params: r.layout.blockParams(tensor: Int(x.tensor), block: Int(x.block)), snapshots: Int(x.snapshotCount))
        }
    }
    // Each length-preserving stage alone (chain = that stage, no terminal): decode = the stage's inverse + a copy.
    for stage in [CodecStage.linpred, .sub] {
        let lone = TileCodec(chain: try CodecChain(stages: [stage]))
        let e0 = r.tensors[Int(r.tiles[0].tensor)].dtype.size
        let x0 = r.tiles.max { $0.rawLength < $1.rawLength }!
        let params = r.layout.blockParams(tensor: Int(x0.tensor), block: Int(x0.block)), S = Int(x0.snapshotCount)
        let i0 = r.tiles.firstIndex(of: x0)!
        let rawTile = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(x0.rawLength), alignment: 64)
        try codec.decode(r.storedBytes(i0), storedRaw: x0.storedRaw, into: rawTile, elementSize: e0, params: params, snapshots: S)
        let enc = Array(lone.encode(UnsafeRawBufferPointer(rawTile), elementSize: e0, params: params, snapshots: S).stored)
        let reps = max(1, raw / Int(x0.rawLength))
        time("\(stage) alone: encode", bytes: reps * Int(x0.rawLength)) {
            for _ in 0..<reps { _ = lone.encode(UnsafeRawBufferPointer(rawTile), elementSize: e0, params: params, snapshots: S) }
        }
        try time("\(stage) alone: decode", bytes: reps * Int(x0.rawLength)) {
            try enc.withUnsafeBytes { s in for _ in 0..<reps { try lone.decode(s, storedRaw: false, into: rawTile, elementSize: e0, params: params, snapshots: S) } }
        }
        rawTile.deallocate()
    }
    var rng = Rng(s: 3)
    let picks = (0..<2000).map { _ in Int(rng.next() % UInt64(r.tiles.count)) }
    func lat(_ name: String, _ body: (Int) throws -> Void) rethrows {
        var xs: [Double] = []
        for i in picks { let t = now(); try body(i); xs.append((now() - t) * 1e6) }
        print(String(format: "  %-34@ p50 %6.1f µs  p99 %6.1f µs", name as NSString, percentile(xs, 0.5), percentile(xs, 0.99)))
    }
    let rowBuf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 64)
    try lat("row: checksum only") { i in try r.verifyTile(i) }
    try lat("row: decodeRow (no checksum)") { i in
        let x = r.tiles[i]
        let params = r.layout.blockParams(tensor: Int(x.tensor), block: Int(x.block))
        try codec.decodeRow(r.storedBytes(i), storedRaw: x.storedRaw, row: params / 2, into: rowBuf, elementSize: r.tensors[Int(x.tensor)].dtype.size,
                            params: params, snapshots: Int(x.snapshotCount))
    }
    try lat("row: trajectory() API") { i in
        let x = r.tiles[i]
        _ = try r.trajectory(tensor: Int(x.tensor), index: Int(x.block) * r.layout.blockSize)
    }
    let zc = try CodecChain(stages: [.zstd])
    let z = TileCodec(chain: zc)
    // zstd alone: decode stored frames into scratch (sizes via the stored raw length).
    if r.header.codecChain.stages.last == .zstd { try time("zstd decompress only", bytes: raw) {
        for i in r.tiles.indices where !r.tiles[i].storedRaw {
            let x = r.tiles[i]
            try z.decode(r.storedBytes(i), storedRaw: false, into: z.rawScratch(Int(x.rawLength)), elementSize: 1, params: Int(x.rawLength), snapshots: 1)
        }
    } }
    try time("encode (full chain)", bytes: raw) {
        for i in r.tiles.indices {
            let x = r.tiles[i]
            let buf = codec.rawScratch(Int(x.rawLength))
            try r.decodeTile(i, into: buf, codec: codec)
            let copy = Array(UnsafeRawBufferPointer(buf))
            _ = copy.withUnsafeBytes { codec.encode($0, elementSize: r.tensors[Int(x.tensor)].dtype.size, params: r.layout.blockParams(tensor: Int(x.tensor), block: Int(x.block)), snapshots: Int(x.snapshotCount)) }
        }
    }
}

/// Snapshots backed by anonymous memory (untouched pages read as the shared zero page: no RSS), with a few
/// planted values per snapshot so bit-exact reads beyond 2^32 can be checked.
struct PlantedZeros: SnapshotSource, @unchecked Sendable {
    let regions: [UnsafeMutableRawPointer]
    let bytes: Int
    var count: Int { regions.count }
    func tensorBytes(snapshot: Int, tensor: Int) -> UnsafeRawPointer { UnsafeRawPointer(regions[snapshot]) }
    func releaseResidentPages() {}
}

func benchScale(args: [String]) throws {
    // psnap-bench scale DIR [--params 4587520000] [--snapshots 2]: one tensor past 2^32 parameters, written, opened,
    // read beyond 2^32, scanned.
    let dir = args.first ?? "/tmp/psnap-scale"
    func opt(_ n: String, _ d: Double) -> Double { args.firstIndex(of: n).map { Double(args[$0 + 1])! } ?? d }
    let params = Int(opt("--params", 4_587_520_000)), snaps = Int(opt("--snapshots", 2))
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let path = dir + "/scale.psnap"
    unlink(path)
    let bytes = params * 4
    var regions: [UnsafeMutableRawPointer] = []
    let probes = [0, 12_345, (1 << 32) - 1, 1 << 32, (1 << 32) + 777_777, params - 1].filter { $0 < params }
    for k in 0..<snaps {
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)!
        precondition(p != MAP_FAILED, "mmap of \(bytes) bytes failed")
        for (i, g) in probes.enumerated() { p.storeBytes(of: Float(k * 100 + i + 1).bitPattern, toByteOffset: g * 4, as: UInt32.self) }
        regions.append(p)
    }
    let tensor = TensorInfo(name: "huge.weight", dtype: .f32, shape: [params])
    var o = WriterOptions(); o.memoryBudget = 512 << 20
    let t0 = now()
    try SnapshotWriter.writeCompact(path: path, tensors: [tensor], snapshots: (0..<snaps).map { SnapshotInfo(step: Int64($0)) },
                                    source: PlantedZeros(regions: regions, bytes: bytes), options: o)
    let writeSecs = now() - t0
    for r in regions { munmap(r, bytes) }
    let rssAfterWrite = peakRSSMiB()
    let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as! NSNumber).intValue
    var opens: [Double] = []
    var reader: PSnapReader? = nil
    for _ in 0..<3 { let t = now(); reader = try PSnapReader(path: path); opens.append((now() - t) * 1000) }
    let r = reader!
    var ok = true
    for (i, g) in probes.enumerated() {
        let v = try r.trajectory(global: g)
        for k in 0..<snaps where v[k] != Double(k * 100 + i + 1) { ok = false; print("MISMATCH at \(g) snapshot \(k): \(v[k])") }
        let z = try r.trajectory(global: g == 0 ? 1 : g - 1)   // a neighbour stays zero (unless itself a probe)
        if !probes.contains(g == 0 ? 1 : g - 1), z.contains(where: { $0 != 0 }) { ok = false; print("MISMATCH: neighbour of \(g) not zero") }
    }
    final class Count: @unchecked Sendable { var nonzero = 0; let lock = NSLock() }
    let c = Count()
    let t1 = now()
    try r.scan { tile, _ in
        var n = 0
        tile.raw.withMemoryRebound(to: UInt32.self) { for x in $0 where x != 0 { n += 1 } }
        if n > 0 { c.lock.lock(); c.nonzero += n; c.lock.unlock() }
    }
    let scanSecs = now() - t1
    if c.nonzero != probes.count * snaps { ok = false; print("MISMATCH: scan found \(c.nonzero) non-zero values, expected \(probes.count * snaps)") }
    print(String(format: "scale: %ld parameters (2^32 = 4294967296) × %ld snapshots, %.1f GB raw", params, snaps, Double(bytes * snaps) / 1e9))
    print(String(format: "  write (writeCompact) %.1f s (%.0f MB/s raw), file %.1f MB, %ld tiles, index %.1f MB, peak RSS %.0f MiB",
                 writeSecs, Double(bytes * snaps) / writeSecs / 1e6, Double(size) / 1e6, r.tiles.count, Double(r.footer.indexLength) / 1e6, rssAfterWrite))
    print(String(format: "  open %.0f ms (median of 3)  scan %.1f s (%.0f MB/s raw)  probes beyond 2^32 bit-exact: %@  peak RSS %.0f MiB",
                 percentile(opens, 0.5), scanSecs, Double(bytes * snaps) / scanSecs / 1e6, ok ? "yes" : "NO", peakRSSMiB()))
    if !ok { exit(1) }
}

/// Tensors of one snapshot laid end to end in one anonymous region (zero pages, a few planted values).
struct PlantedZeroTensors: SnapshotSource, @unchecked Sendable {
    let regions: [UnsafeMutableRawPointer]
    let tensorBytes: Int
    var count: Int { regions.count }
    func tensorBytes(snapshot: Int, tensor: Int) -> UnsafeRawPointer { UnsafeRawPointer(regions[snapshot] + tensor * tensorBytes) }
    func releaseResidentPages() {}
}

func benchScaleShards(args: [String]) throws {
    // psnap-bench scale-shards DIR [--tensors 16] [--params 67108864] [--snapshots 8] [--shards 8]: a run of
    // tensors × params f32 parameters (default 1.07·10⁹) written as one file, split into about --shards shards
    // (psnap shard), opened as a sharded run, read bit-exact at planted values and verified. DIR/run/ is then the
    // sharded run for tools/python/bench_dask.py (moments and modes on a LocalCluster).
    let dir = args.first ?? "/tmp/psnap-scale-shards"
    func opt(_ n: String, _ d: Int) -> Int { args.firstIndex(of: n).map { Int(args[$0 + 1])! } ?? d }
    let T = opt("--tensors", 16), params = opt("--params", 1 << 26), snaps = opt("--snapshots", 8), shards = opt("--shards", 8)
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let file = dir + "/run.psnap", folder = dir + "/run"
    unlink(file)
    try? FileManager.default.removeItem(atPath: folder)
    let tensorBytes = params * 4, total = T * params
    let probes = [0, 12_345, params - 1, params, total / 2 + 3, total - 1]
    var regions: [UnsafeMutableRawPointer] = []
    for k in 0..<snaps {
        let p = mmap(nil, T * tensorBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)!
        precondition(p != MAP_FAILED, "mmap of \(T * tensorBytes) bytes failed")
        for (i, g) in probes.enumerated() { p.storeBytes(of: Float(k * 100 + i + 1).bitPattern, toByteOffset: g * 4, as: UInt32.self) }
        regions.append(p)
    }
    let tensors = (0..<T).map { TensorInfo(name: "layer.\($0).weight", dtype: .f32, shape: [params]) }
    var o = WriterOptions(); o.memoryBudget = 512 << 20
    let t0 = now()
    try SnapshotWriter.writeCompact(path: file, tensors: tensors, snapshots: (0..<snaps).map { SnapshotInfo(step: Int64($0)) },
                                    source: PlantedZeroTensors(regions: regions, tensorBytes: tensorBytes), options: o)
    let writeSecs = now() - t0
    for r in regions { munmap(r, T * tensorBytes) }
    let raw = Double(total) * 4 * Double(snaps)
    let t1 = now()
    let split = try ShardedRun.split(try PSnapReader(path: file), into: folder, shardBytes: Int(raw) / shards + 1)
    let splitSecs = now() - t1
    var opens: [Double] = []
    var reader: PSnapReader? = nil
    for _ in 0..<3 { let t = now(); reader = try PSnapReader(path: folder); opens.append((now() - t) * 1000) }
    let r = reader!
    var ok = r.isSharded && r.parameterCount == total && r.snapshotCount == snaps
    for (i, g) in probes.enumerated() {
        let v = try r.trajectory(global: g)
        for k in 0..<snaps where v[k] != Double(k * 100 + i + 1) { ok = false; print("MISMATCH at \(g) snapshot \(k): \(v[k])") }
    }
    let t2 = now()
    let damage = r.verifyAll()
    let verifySecs = now() - t2
    if !damage.isEmpty { ok = false; print("DAMAGED: \(damage.count) tiles") }
    let indexBytes = r.shards.reduce(0) { $0 + $1.footer.indexLength }
    print(String(format: "scale-shards: %ld tensors × %ld parameters = %.3g parameters × %ld snapshots, %.1f GB raw", T, params, Double(total), snaps, raw / 1e9))
    print(String(format: "  write (writeCompact) %.1f s (%.0f MB/s raw); split into %ld shards %.1f s; %.1f MB on disk, %ld tiles, indexes %.1f MB in all",
                 writeSecs, raw / writeSecs / 1e6, split.shards.count, splitSecs, Double(r.fileBytes) / 1e6, r.tiles.count, Double(indexBytes) / 1e6))
    print(String(format: "  open the sharded run %.0f ms (median of 3); verify %.1f s (%.0f MB/s raw); planted values bit-exact: %@; peak RSS %.0f MiB",
                 percentile(opens, 0.5), verifySecs, raw / verifySecs / 1e6, ok ? "yes" : "NO", peakRSSMiB()))
    print("  sharded run: \(folder)")
    if !ok { exit(1) }
}

let argv = Array(CommandLine.arguments.dropFirst())
guard let cmd = argv.first else {
    print("""
    usage: psnap-bench append DIR [--gib 4] [--snapshots 64] [--per-segment 16] [--memory-mib 1024] [--level 3]
           psnap-bench tensor FILE NAME [--repeat 5]
           psnap-bench read FILE [--n 1000] [--no-verify] [--no-cache]
           psnap-bench open DIR
           psnap-bench scale DIR [--params 4587520000] [--snapshots 2]
           psnap-bench scale-shards DIR [--tensors 16] [--params 67108864] [--snapshots 8] [--shards 8]
           psnap-bench real DATA_DIR OUT_DIR [--runs tiny-gpt,mlp-digits] [--block-sizes 256,1024] [--chains 'xor,split,zstd;…'] [--levels 1,3]
    """)
    exit(64)
}
do {
    switch cmd {
    case "append": try benchAppend(args: Array(argv.dropFirst()))
    case "read": try benchRead(args: Array(argv.dropFirst()))
    case "tensor": try benchTensor(args: Array(argv.dropFirst()))
    case "open": try benchOpen(args: Array(argv.dropFirst()))
    case "kernels": try benchKernels(args: Array(argv.dropFirst()))
    case "scale": try benchScale(args: Array(argv.dropFirst()))
    case "scale-shards": try benchScaleShards(args: Array(argv.dropFirst()))
    case "real": try benchReal(args: Array(argv.dropFirst()))
    case "decode": try benchDecode(args: Array(argv.dropFirst()))
    default: print("unknown command \(cmd)"); exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
