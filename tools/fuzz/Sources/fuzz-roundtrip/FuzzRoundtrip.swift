// Structured libFuzzer target: derives a small run from the input bytes, writes it with SnapshotWriter (create,
// appends, explicit commits, a reopen), reads it back and traps unless every value is bit-identical; then
// compacts (possibly with another block size and chain) and checks again.
import Foundation
import ParamSnapFuzzSupport
import Glibc
import ParamSnap

/// Consumes structure bytes from the front of the input and value bytes from the rest.
struct Input {
    let bytes: [UInt8]
    var pos = 0
    init(_ b: [UInt8]) { bytes = b }
    mutating func byte() -> UInt8 {
        guard pos < bytes.count else { return 0 }
        defer { pos += 1 }
        return bytes[pos]
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(byte()) % (range.count)
    }
    mutating func bool() -> Bool { byte() & 1 == 1 }
    /// Value bytes: the rest of the input, cycled (zeros when empty), so NaN payloads, -0.0, subnormals appear.
    mutating func values(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        guard pos < bytes.count else { return out }
        let rest = bytes.count - pos
        for i in 0..<n { out[i] = bytes[pos + (i % rest)] }
        pos += min(n, rest)
        if pos >= bytes.count { pos = bytes.count - rest + (n % rest) }  // keep cycling over the tail
        return out
    }
}

let dir: String = {
    let d = ReadEverything.scratchPath("roundtrip")
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}()

func chain(_ inp: inout Input) -> CodecChain {
    let mid: [CodecStage] = [.xor, .sub, .split, .bytedelta, .linpred]
    var stages: [CodecStage] = []
    for _ in 0..<inp.int(0...3) { stages.append(mid[inp.int(0...4)]) }
    switch inp.int(0...3) {
    case 1: stages.append(.zstd)
    case 2: stages.append(.zstdPlanes)
    case 3: stages.append(.lenrans)
    default: break
    }
    let level = Int32([1, 3, -1, 5, 0][inp.int(0...4)])  // low levels keep the target fast
    return try! CodecChain(stages: stages, zstdLevel: level)
}

func check(_ cond: @autoclosure () -> Bool, _ what: @autoclosure () -> String) {
    if !cond() { fatalError("roundtrip mismatch: \(what())") }
}

@discardableResult
func must<T>(_ what: String, _ body: () throws -> T) -> T {
    do { return try body() } catch { fatalError("roundtrip: \(what) threw: \(error)") }
}

/// Checks that `path` holds exactly `expected[k][t]` (snapshot k, tensor t) and `infos`.
func verify(_ path: String, tensors: [TensorInfo], infos: [SnapshotInfo], expected: [[[UInt8]]], stage: String) {
    let r = must("\(stage): open") { try PSnapReader(path: path) }
    check(r.tensors == tensors, "\(stage): tensors \(r.tensors) != \(tensors)")
    check(r.snapshotCount == expected.count, "\(stage): \(r.snapshotCount) snapshots, wrote \(expected.count)")
    check(r.ignoredBytes == 0, "\(stage): ignored bytes \(r.ignoredBytes)")
    for k in infos.indices {
        check(r.snapshots[k].step == infos[k].step, "\(stage): step of snapshot \(k)")
        check(r.snapshots[k].time.bitPattern == infos[k].time.bitPattern, "\(stage): time of snapshot \(k)")
        check(r.snapshots[k].epoch?.bitPattern == infos[k].epoch?.bitPattern, "\(stage): epoch of snapshot \(k)")
    }
    for t in tensors.indices {
        for k in expected.indices {
            let got = must("\(stage): tensorBytes(\(t), \(k))") { try r.tensorBytes(tensor: t, snapshot: k) }
            check(got == expected[k][t], "\(stage): tensor \(t) at snapshot \(k) differs")
        }
        let e = tensors[t].dtype.size
        let n = tensors[t].parameterCount!
        for p in 0..<n {
            let got = must("\(stage): trajectoryBytes(\(t), \(p))") { try r.trajectoryBytes(tensor: t, index: p) }
            var want: [UInt8] = []
            for k in expected.indices { want += expected[k][t][(p * e)..<((p + 1) * e)] }
            check(got == want, "\(stage): trajectory \(p) of tensor \(t) differs")
        }
        if n > 0 {
            let d = must("\(stage): trajectories") { try r.trajectories(tensor: t, range: 0..<n) }
            check(d.count == n * expected.count, "\(stage): trajectories count")
        }
    }
    let damage = r.verifyAll(workers: 1)
    check(damage.isEmpty, "\(stage): verifyAll reported \(damage)")
    // The scan must hand out every live tile once, with the same bits.
    let seen = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    seen.initialize(to: 0)
    defer { seen.deallocate() }
    let box = UncheckedSendable((seen, expected, tensors))
    must("\(stage): scan") {
        try r.scan(workers: 1) { tile, _ in
            let (seen, expected, tensors) = box.value
            seen.pointee += 1
            let e = tensors[tile.tensor].dtype.size
            for p in 0..<tile.parameters {
                for s in 0..<tile.snapshots {
                    let src = expected[tile.firstSnapshot + s][tile.tensor]
                    let o = (tile.firstParameter + p) * e
                    for j in 0..<e where tile.raw[(p * tile.snapshots + s) * e + j] != src[o + j] {
                        fatalError("roundtrip mismatch: \(stage): scan tile \(tile.tileIndex) p \(p) s \(s)")
                    }
                }
            }
        }
    }
    check(seen.pointee == r.tiles.count, "\(stage): scan saw \(seen.pointee) of \(r.tiles.count) tiles")
    // Compatibility with the generic reader routine.
    ReadEverything.run(path: path)
}

struct UncheckedSendable<T>: @unchecked Sendable { let value: T; init(_ v: T) { value = v } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRoundtrip(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var inp = Input(Array(UnsafeBufferPointer(start: data, count: size)))
    // Structure.
    var tensors: [TensorInfo] = []
    for i in 0..<inp.int(1...3) {
        let dtype = DType.allCases[inp.int(0...3)]
        var shape: [Int] = []
        for _ in 0..<inp.int(0...3) { shape.append(inp.int(0...6)) }
        tensors.append(TensorInfo(name: "t\(i)", dtype: dtype, shape: shape))
    }
    var opts = WriterOptions()
    opts.workers = 1
    opts.blockSize = 1 << inp.int(0...5)
    opts.chain = chain(&inp)
    opts.snapshotsPerSegment = inp.int(1...6)
    opts.merge = inp.byte() % 4 != 0
    opts.memoryBudget = [1 << 30, 64, 4096][inp.int(0...2)]
    opts.overwrite = true
    let snapshotCount = inp.int(0...12)
    let reopenAt = inp.int(0...snapshotCount)
    var commitAt = Set<Int>()
    for _ in 0..<inp.int(0...3) { commitAt.insert(inp.int(0...max(0, snapshotCount - 1))) }
    let compactBlock = [nil, 1, 2, 8, 64][inp.int(0...4)]
    let compactChain: CodecChain? = inp.bool() ? chain(&inp) : nil

    // Values (from the input bytes; some snapshots repeat the previous one with a few bytes changed).
    var expected: [[[UInt8]]] = []
    var infos: [SnapshotInfo] = []
    for k in 0..<snapshotCount {
        let mode = inp.int(0...3)
        var snap: [[UInt8]] = []
        for (t, info) in tensors.enumerated() {
            let n = info.parameterCount! * info.dtype.size
            if mode == 0, k > 0 {
                var v = expected[k - 1][t]
                if n > 0 { for _ in 0..<inp.int(0...2) { v[inp.int(0...255) % n] = inp.byte() } }
                snap.append(v)
            } else {
                snap.append(inp.values(n))
            }
        }
        expected.append(snap)
        let step = Int64(bitPattern: UInt64(inp.byte()) << 56 | UInt64(k))
        infos.append(SnapshotInfo(step: step, epoch: inp.bool() ? Double(inp.byte()) / 3 : nil,
                                  time: Double(inp.int(0...255)) * 1.5e9 + 0.25))
    }

    let path = dir + "/run.psnap", compacted = dir + "/compact.psnap"
    var w = must("create") { try SnapshotWriter.create(path: path, tensors: tensors, options: opts) }
    for k in 0..<snapshotCount {
        if k == reopenAt && k > 0 {
            must("close before reopen") { try w.close() }
            w = must("reopen") { try SnapshotWriter.open(path: path, expecting: tensors, options: opts) }
        }
        must("append \(k)") { try w.append(infos[k], tensors: Dictionary(uniqueKeysWithValues: zip(tensors.map(\.key), expected[k]))) }
        if commitAt.contains(k) { must("commit after \(k)") { try w.commit() } }
    }
    must("close") { try w.close() }
    verify(path, tensors: tensors, infos: infos, expected: expected, stage: "written")

    must("compact") { try SnapshotWriter.compact(input: path, output: compacted, blockSize: compactBlock, chain: compactChain, options: opts) }
    verify(compacted, tensors: tensors, infos: infos, expected: expected, stage: "compacted")
    if snapshotCount > 0 {
        let r = must("open compacted") { try PSnapReader(path: compacted) }
        check(r.segments.count <= 1, "compacted file has \(r.segments.count) segments")
    }
    unlink(path); unlink(compacted)
    return 0
}
