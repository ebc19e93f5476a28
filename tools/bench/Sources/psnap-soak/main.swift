// psnap-soak: kills the writer (append and compact, in a child process) with SIGKILL at random moments, hundreds of
// times, and after every kill checks that each committed snapshot reads back bit-exact and that appending resumes.
//
// usage: psnap-soak [--kills N] [--dir DIR] [--seed S] [--max-snapshots M] [--json]
//   The parent re-executes this binary as the child (`psnap-soak --child append|compact FILE …`).
//   Snapshot k of tensor t is a pure function of (seed, t, k) — random-walk-like values with NaN payloads,
//   signed zeros and infinities mixed in — so the parent knows every byte a committed snapshot must hold.
import Foundation
import ParamSnap

// MARK: the deterministic run

let soakTensors: [TensorInfo] = [
    TensorInfo(name: "layer.0.weight", dtype: .f32, shape: [96, 160]),
    TensorInfo(name: "layer.0.bias", dtype: .f32, shape: [96]),
    TensorInfo(name: "embed.weight", dtype: .bf16, shape: [250, 64]),
    TensorInfo(name: "head.weight", dtype: .f64, shape: [33, 77]),
    TensorInfo(name: "empty", dtype: .f16, shape: [0]),
    TensorInfo(name: "norm.scale", dtype: .f16, shape: [1000]),
]

@inline(__always) func mix(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// The bytes of tensor `t` at snapshot `k` for run seed `seed`.
func snapshotBytes(seed: UInt64, tensor t: Int, snapshot k: Int) -> [UInt8] {
    let info = soakTensors[t]
    let n = info.parameterCount ?? 0
    var out = [UInt8](repeating: 0, count: n * info.dtype.size)
    for p in 0..<n {
        let h = mix(seed ^ (UInt64(t) << 48) ^ UInt64(p))
        let noise = mix(h ^ (UInt64(k) &* 0x1000_0001))
        let scale = Double(1 + t) * 1e-3
        var v = Double(Int64(bitPattern: h) >> 40) * 1e-7 + Double(k) * scale * Double(Int64(bitPattern: h << 3) >> 60)
            + Double(Int64(bitPattern: noise) >> 44) * 1e-9 * Double(k + 1)
        switch noise % 997 {
        case 0: v = -0.0
        case 1: v = .infinity
        case 2: v = Double(bitPattern: 0x7FF8_0000_0000_0000 | (noise & 0xFFFF))   // NaN with a payload
        default: break
        }
        switch info.dtype {
        case .f64: withUnsafeBytes(of: v.bitPattern.littleEndian) { for i in 0..<8 { out[p * 8 + i] = $0[i] } }
        case .f32:
            var bits = Float(v).bitPattern
            if v.isNaN { bits = 0x7FC0_0000 | UInt32(noise & 0x3FFF) }
            withUnsafeBytes(of: bits.littleEndian) { for i in 0..<4 { out[p * 4 + i] = $0[i] } }
        case .bf16, .f16:
            var bits = UInt16(truncatingIfNeeded: Float(v).bitPattern >> 16)
            if info.dtype == .f16 { bits = UInt16(truncatingIfNeeded: (noise >> 7) & 0x7FFF) | (k % 2 == 0 ? 0 : 0x8000) }
            out[p * 2] = UInt8(bits & 0xFF); out[p * 2 + 1] = UInt8(bits >> 8)
        }
    }
    return out
}

// MARK: arguments

var args = Array(CommandLine.arguments.dropFirst())
@MainActor func take(_ flag: String) -> String? {
    guard let i = args.firstIndex(of: flag), i + 1 < args.count else { return nil }
    let v = args[i + 1]; args.removeSubrange(i...(i + 1)); return v
}
@MainActor func flag(_ f: String) -> Bool {
    guard let i = args.firstIndex(of: f) else { return false }
    args.remove(at: i); return true
}
if flag("--help") || flag("-h") {
    print("""
    psnap-soak — SIGKILL the ParamSnap writer at random moments and check that nothing committed is lost.

    usage: psnap-soak [--kills N] [--dir DIR] [--seed S] [--max-snapshots M] [--json]
      --kills N          stop after N children were killed while writing (default 500)
      --dir DIR          working folder (default: a new folder under $TMPDIR; removed on success)
      --seed S           run seed (default: from the clock; printed, so a failure can be replayed)
      --max-snapshots M  start a new file once a file holds M snapshots (default 48)
      --json             print the summary as one JSON object

    Each round starts a child (this binary, --child) that either appends snapshots (1–4 per commit, tiny memory
    budget so staging spills, segments merged) or compacts the file in place, and SIGKILLs it after a random
    delay. The parent then opens the file, checks that the committed snapshot count never went down and grew
    by at most what the child was asked to write, reads every tensor at every committed snapshot and compares
    bytes, and verifies every tile checksum. The next append child resumes the killed file (torn tail dropped).
    Exit status 0 when every check passed, 1 otherwise.
    """)
    exit(0)
}

// MARK: child

if let mode = take("--child") {
    let path = args.first!
    let seed = UInt64(take("--seed") ?? "0")!
    let from = Int(take("--from") ?? "0")!
    let count = Int(take("--count") ?? "1")!
    let perCommit = Int(take("--per-commit") ?? "1")!
    do {
        if mode == "compact" {
            try SnapshotWriter.compact(input: path, output: path)
            exit(0)
        }
        var opts = WriterOptions()
        opts.blockSize = 256
        opts.snapshotsPerSegment = 4
        opts.memoryBudget = 64 << 10
        opts.workers = 2
        // A tight space bound (§10): one-snapshot commits often merge past the tiered plan, and some are built
        // twice (the new segment measured, then rebuilt from an earlier start), so kills land in those paths too.
        opts.spaceBound = 1.05
        let w = FileManager.default.fileExists(atPath: path)
            ? try SnapshotWriter.open(path: path, expecting: soakTensors, options: opts)
            : try SnapshotWriter.create(path: path, tensors: soakTensors, options: opts)
        guard w.committedSnapshots == from else {
            FileHandle.standardError.write("child: file holds \(w.committedSnapshots) snapshots, asked to append from \(from)\n".data(using: .utf8)!)
            exit(3)
        }
        for k in from..<(from + count) {
            let bufs = (0..<soakTensors.count).map { snapshotBytes(seed: seed, tensor: $0, snapshot: k) }
            try SnapshotWriter.withBuffers(bufs) { try w.append(SnapshotInfo(step: Int64(k) * 10, epoch: Double(k)), buffers: $0) }
            if (k - from + 1) % perCommit == 0 { try w.commit() }
        }
        try w.commit()
        try w.close()
        exit(0)
    } catch {
        FileHandle.standardError.write("child \(mode): \(error)\n".data(using: .utf8)!)
        exit(2)
    }
}

// MARK: parent

let killsWanted = Int(take("--kills") ?? "500")!
let seed = UInt64(take("--seed") ?? String(UInt64(Date().timeIntervalSince1970 * 1000) % 1_000_000_007))!
let maxSnapshots = Int(take("--max-snapshots") ?? "48")!
let json = flag("--json")
let dirArg = take("--dir")
let ownDir = dirArg == nil
let dir = dirArg ?? (NSTemporaryDirectory() + "psnap-soak-\(getpid())")
try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
let me = URL(fileURLWithPath: CommandLine.arguments[0]).path

var rng = mix(seed)
@MainActor func random(_ n: Int) -> Int { rng = mix(rng); return Int(rng % UInt64(max(n, 1))) }

var failures: [String] = []
@MainActor func fail(_ s: String) { failures.append(s); FileHandle.standardError.write("FAIL: \(s)\n".data(using: .utf8)!) }

var kills = 0, killsAppend = 0, killsCompact = 0, rounds = 0, completed = 0, tornTails = 0
var uncommittedKills = 0, resumedAppends = 0, files = 0, snapshotsChecked = 0
var durations: [Double] = []          // of children that finished: sets the kill-delay range
var fileIndex = 0
var path = dir + "/soak-0.psnap"
var committed = 0                     // snapshots the parent has seen committed in `path`
var killedLastRound = false
let t0 = Date()

/// Opens `path` and checks every committed byte; returns the committed count (nil: no commit yet).
@MainActor func check(expectAtMost: Int, round: Int) -> Int? {
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    let r: PSnapReader
    do { r = try PSnapReader(path: path) } catch {
        if committed > 0 { fail("round \(round): \(path) held \(committed) committed snapshots but failed to open: \(error)") }
        return nil
    }
    if r.ignoredBytes > 0 { tornTails += 1 }
    let n = r.snapshotCount
    if n < committed { fail("round \(round): committed snapshots went down from \(committed) to \(n)") }
    if n > expectAtMost { fail("round \(round): \(n) snapshots committed but only \(expectAtMost) were ever written") }
    for k in 0..<n {
        if r.snapshots[k].step != Int64(k) * 10 { fail("round \(round): snapshot \(k) has step \(r.snapshots[k].step)") }
        for t in 0..<soakTensors.count {
            do {
                let got = try r.tensorBytes(tensor: t, snapshot: k)
                if got != snapshotBytes(seed: seed, tensor: t, snapshot: k) {
                    fail("round \(round): tensor '\(soakTensors[t].name)' snapshot \(k) differs from what was appended")
                }
            } catch { fail("round \(round): reading tensor \(t) snapshot \(k): \(error)") }
        }
        snapshotsChecked += 1
    }
    let damage = r.verifyAll(workers: 2)
    if !damage.isEmpty { fail("round \(round): \(damage.count) damaged tiles after a kill") }
    return n
}

@MainActor func spawn(_ childArgs: [String]) -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: me)
    p.arguments = ["--child"] + childArgs
    p.standardOutput = FileHandle.nullDevice
    let err = Pipe()
    p.standardError = err
    try! p.run()
    return p
}

while kills < killsWanted && failures.isEmpty {
    rounds += 1
    if committed >= maxSnapshots {
        fileIndex += 1; files += 1
        path = dir + "/soak-\(fileIndex).psnap"; committed = 0
    }
    let compact = committed >= 2 && random(4) == 0
    let count = 1 + random(6)
    let childArgs = compact ? ["compact", path]
        : ["append", path, "--seed", String(seed), "--from", String(committed), "--count", String(count),
           "--per-commit", String(1 + random(4))]
    if !compact && committed > 0 && killedLastRound { resumedAppends += 1 }
    let started = Date()
    let p = spawn(childArgs)
    // Kill after a delay drawn from 0 … 1.2 × the median run time of children that finished (first: 0 … 80 ms).
    let sorted = durations.sorted()
    let span = sorted.isEmpty ? 0.08 : max(0.005, 1.2 * sorted[sorted.count / 2])
    usleep(UInt32(Double(random(1_000_000)) / 1_000_000 * span * 1_000_000))
    var killedNow = false
    if p.isRunning { kill(p.processIdentifier, SIGKILL); killedNow = true }
    p.waitUntilExit()
    let elapsed = Date().timeIntervalSince(started)
    let signalled = p.terminationReason == .uncaughtSignal
    killedLastRound = killedNow && signalled
    if killedLastRound {
        kills += 1
        if compact { killsCompact += 1 } else { killsAppend += 1 }
    } else {
        if p.terminationStatus != 0 {
            let msg = String(decoding: (p.standardError as! Pipe).fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            fail("round \(rounds): child \(childArgs[0]) exited \(p.terminationStatus): \(msg)")
            break
        }
        completed += 1
        durations.append(elapsed)
        if durations.count > 64 { durations.removeFirst() }
    }
    let before = committed
    let most = compact ? committed : committed + count
    if let n = check(expectAtMost: most, round: rounds) {
        if !killedLastRound && n != most { fail("round \(rounds): child finished but the file holds \(n) snapshots, expected \(most)") }
        if killedLastRound && n == before && !compact { uncommittedKills += 1 }
        committed = n
    } else if !killedLastRound {
        fail("round \(rounds): child finished but \(path) holds no commit")
    } else {
        // Killed before the first commit finished: the file may exist without a commit; start it again.
        unlink(path)
    }
    if !json && rounds % 50 == 0 {
        print("round \(rounds): \(kills) kills (\(killsAppend) append, \(killsCompact) compact), \(completed) children finished, file \(fileIndex) holds \(committed) snapshots, \(Int(Date().timeIntervalSince(t0))) s")
    }
}

// A last append and compaction, not killed: the file resumes after everything.
if failures.isEmpty {
    let p = spawn(["append", path, "--seed", String(seed), "--from", String(committed), "--count", "2", "--per-commit", "1"])
    p.waitUntilExit()
    if p.terminationStatus != 0 { fail("final append exited \(p.terminationStatus)") }
    let c = spawn(["compact", path]); c.waitUntilExit()
    if c.terminationStatus != 0 { fail("final compact exited \(c.terminationStatus)") }
    if let n = check(expectAtMost: committed + 2, round: rounds + 1) {
        if n != committed + 2 { fail("final append: \(n) snapshots, expected \(committed + 2)") }
    } else { fail("final file does not open") }
}

let seconds = Date().timeIntervalSince(t0)
if json {
    print("""
    {"seed": \(seed), "kills": \(kills), "killsDuringAppend": \(killsAppend), "killsDuringCompact": \(killsCompact), \
    "killsBeforeTheirCommit": \(uncommittedKills), "tornTailsSeen": \(tornTails), "resumedAppendsAfterKill": \(resumedAppends), \
    "childrenFinished": \(completed), "rounds": \(rounds), "files": \(files + 1), "snapshotChecks": \(snapshotsChecked), \
    "seconds": \(Int(seconds)), "failures": \(failures.count)}
    """)
} else {
    print("""
    psnap-soak seed \(seed): \(kills) SIGKILLs (\(killsAppend) during append, \(killsCompact) during compact; \
    \(uncommittedKills) appends killed before their commit), \(tornTails) opens found a torn tail, \
    \(resumedAppends) appends resumed a killed file, \(completed) children finished; \(rounds) rounds over \(files + 1) files, \
    \(snapshotsChecked) snapshot reads checked bit-exact, \(Int(seconds)) s. \(failures.isEmpty ? "PASS" : "FAIL (\(failures.count))")
    """)
}
if failures.isEmpty && ownDir { try? FileManager.default.removeItem(atPath: dir) }
exit(failures.isEmpty ? 0 : 1)
