// Test support: a seeded RNG, temporary paths, value generators with awkward bit patterns, paths to binaries.
import Foundation
@_spi(Internals) import ParamSnap
import PSnapFormat
@_spi(Internals) import PSnapCodec
import PSnapImport

/// SplitMix64: small, seeded, reproducible.
package struct SeededRNG: RandomNumberGenerator {
    package var state: UInt64
    package init(seed: UInt64) { state = seed }
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The seed for property tests: PSNAP_SEED if set, else `fallback`.
package func testSeed(_ fallback: UInt64) -> UInt64 {
    if let s = ProcessInfo.processInfo.environment["PSNAP_SEED"], let v = UInt64(s) { return v }
    return fallback
}

/// A fresh temporary directory, removed by the caller with `cleanup`.
package func tempDir(_ tag: String = #function) -> String {
    let safe = tag.filter { $0.isLetter || $0.isNumber }
    let d = NSTemporaryDirectory() + "psnap-test-\(safe)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

package func cleanup(_ dir: String) { try? FileManager.default.removeItem(atPath: dir) }

/// Repository root (from this file's path).
package let repoRoot: String = {
    var u = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { u.deleteLastPathComponent() }
    return u.path
}()

/// ../shared/data beside the repository (CI has it too).
package let sharedData: String = {
    let candidates = [repoRoot + "/../shared/data", "/work/shared/data"]
    return candidates.first { FileManager.default.fileExists(atPath: $0 + "/README.md") } ?? candidates[0]
}()

/// Path of a built executable of this package (swift test builds them beside the test bundle).
package func productPath(_ name: String) -> String {
    let bundle = Bundle.main.bundleURL
    var candidates = [bundle.deletingLastPathComponent().appendingPathComponent(name).path,
                      bundle.appendingPathComponent(name).path]
    for c in ["debug", "release"] { candidates.append(repoRoot + "/.build/\(c)/\(name)") }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates.last!
}

/// Runs a process; returns (exit status, stdout, stderr).
@discardableResult
package func runProcess(_ exe: String, _ args: [String], cwd: String? = nil) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let o = Pipe(), e = Pipe()
    p.standardOutput = o
    p.standardError = e
    try p.run()
    let od = o.fileHandleForReading.readDataToEndOfFile()
    let ed = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: od, as: UTF8.self), String(decoding: ed, as: UTF8.self))
}

/// Random bit patterns of `dtype` mixing random walks with NaN payloads, ±0, subnormals, infinities.
package func randomTrajectoryBits(_ rng: inout SeededRNG, dtype: DType, params: Int, snapshots: Int) -> [[UInt8]] {
    // Returns snapshot-major bytes: [snapshot][param * size].
    let e = dtype.size
    var out = [[UInt8]](repeating: [UInt8](repeating: 0, count: params * e), count: snapshots)
    for p in 0..<params {
        var x = Double.random(in: -1...1, using: &rng)
        let kind = rng.next() % 8
        for s in 0..<snapshots {
            x += Double.random(in: -0.01...0.01, using: &rng)
            var bits: UInt64
            switch kind {
            case 0: bits = rng.next()                                    // any pattern at all (NaN payloads included)
            case 1: bits = s % 2 == 0 ? 0 : UInt64.max                   // 0 and all-ones (a NaN)
            case 2: bits = dtype == .f64 ? (-0.0 as Double).bitPattern : (dtype == .f32 ? UInt64((-0.0 as Float).bitPattern) : 0x8000)
            case 3: bits = rng.next() & 0x3FF                            // subnormals / tiny values
            default:
                switch dtype {
                case .f64: bits = x.bitPattern
                case .f32: bits = UInt64(Float(x).bitPattern)
                case .bf16: bits = UInt64(Float(x).bitPattern >> 16)
                case .f16: bits = UInt64(Float16(Float(x)).bitPattern)
                }
            }
            withUnsafeBytes(of: bits.littleEndian) { b in
                for k in 0..<e { out[s][p * e + k] = b[k] }
            }
        }
    }
    return out
}

/// Whether `python3 -c code` succeeds here (the references a test checks against are installed).
package func pythonSucceeds(_ code: String) -> Bool {
    (try? runProcess("/usr/bin/env", ["python3", "-c", code]))?.status == 0
}
