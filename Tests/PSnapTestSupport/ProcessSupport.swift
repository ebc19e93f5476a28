// Test support for CLI tests: runs with a deadline, with stderr on a pseudo-terminal, with extra environment.
import Foundation
import Glibc
import ParamSnap

/// Runs a process with `environment` added to ours; one that is still running after `timeout` seconds is
/// terminated and reported with `timedOut` (a command that hangs fails its test instead of hanging the suite).
package func runProcess(_ exe: String, _ args: [String], timeout: Double, environment: [String: String] = [:]) throws
    -> (status: Int32, out: String, err: String, timedOut: Bool) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let o = Pipe(), e = Pipe()
    p.standardOutput = o
    p.standardError = e
    try p.run()
    // Both pipes are drained while the process runs (a full pipe would stall it).
    let group = DispatchGroup()
    let box = OutputBox()
    for (pipe, isErr) in [(o, false), (e, true)] {
        DispatchQueue.global().async(group: group) { box.set(pipe.fileHandleForReading.readDataToEndOfFile(), err: isErr) }
    }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    let timedOut = p.isRunning
    // SIGKILL: a child may inherit a mask that blocks SIGTERM from the test runner's threads.
    if timedOut { kill(p.processIdentifier, SIGKILL) }
    p.waitUntilExit()
    group.wait()
    return (p.terminationStatus, box.text(err: false), box.text(err: true), timedOut)
}

/// Collected output of the two pipes.
private final class OutputBox: @unchecked Sendable {
    private let lock = NSLock()
    private var out = Data(), err = Data()
    package func set(_ d: Data, err isErr: Bool) { lock.lock(); if isErr { err = d } else { out = d }; lock.unlock() }
    package func text(err isErr: Bool) -> String { lock.lock(); defer { lock.unlock() }; return String(decoding: isErr ? err : out, as: UTF8.self) }
}

/// Runs a process whose stderr is a pseudo-terminal (so `isatty(2)` holds, as in an interactive shell) and whose
/// stdout goes nowhere; returns the exit status and everything written to the terminal.
package func runWithTerminalStderr(_ exe: String, _ args: [String]) throws -> (status: Int32, err: String) {
    let master = Glibc.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
    guard master >= 0, PTY.grantpt(master) == 0, PTY.unlockpt(master) == 0, let name = PTY.ptsname(master) else {
        throw IOError.open(path: "/dev/ptmx", errno: errno)
    }
    defer { close(master) }
    let slave = open(String(cString: name), O_RDWR | O_NOCTTY | O_CLOEXEC)
    guard slave >= 0 else { throw IOError.open(path: String(cString: name), errno: errno) }
    let terminal = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = terminal
    try p.run()
    try terminal.close()   // the child holds the only other end: reading stops (EIO) when it exits
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = read(master, &buf, buf.count)
        if n > 0 { bytes += buf[0..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        break
    }
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: bytes, as: UTF8.self))
}

/// The pseudo-terminal calls of libc, which the Glibc module does not import.
private enum PTY {
    typealias IntCall = @convention(c) (Int32) -> Int32
    typealias NameCall = @convention(c) (Int32) -> UnsafeMutablePointer<CChar>?
    package static func symbol<T>(_ name: String, as: T.Type) -> T { unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)!, to: T.self) }
    package static let grantpt = symbol("grantpt", as: IntCall.self)
    package static let unlockpt = symbol("unlockpt", as: IntCall.self)
    package static let ptsname = symbol("ptsname", as: NameCall.self)
}

/// A small run from the demo checkpoints (6 snapshots, 6 f32 tensors, several segments), made by `psnap append`.
package func demoRun(in dir: String) throws -> String {
    let run = dir + "/demo.psnap"
    let demo = repoRoot + "/fixtures/demo-run"
    for f in try FileManager.default.contentsOfDirectory(atPath: demo).sorted() {
        let r = try runProcess(productPath("psnap"), ["append", run, demo + "/" + f])
        guard r.status == 0 else { throw IOError.badSnapshot("append \(f): \(r.err)") }
    }
    return run
}
