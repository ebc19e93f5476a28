// The progress line of long commands on stderr (shown only when stderr is a terminal).
import Foundation

/// A one-line progress bar on stderr: bytes done, MB/s, ETA; redrawn at most 10 times a second.
package final class ProgressBar: @unchecked Sendable {
    package let enabled: Bool
    package let start = Date()
    private let lock = NSLock()
    private var last = Date.distantPast
    private var drawn = false

    package init(enabled: Bool) { self.enabled = enabled }

    package func update(_ done: UInt64, _ total: UInt64) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(last) >= 0.1 || done == total else { return }
        last = now
        let secs = max(1e-3, now.timeIntervalSince(start))
        let frac = total == 0 ? 1 : Double(done) / Double(total)
        let width = 30
        let filled = Int(frac * Double(width))
        let rate = Double(done) / 1e6 / secs
        let eta = done == 0 ? "--:--" : Self.clock(secs * (1 - frac) / max(frac, 1e-9))
        let line = "\r[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(String(format: "%5.1f", frac * 100))%  \(CLI.bytes(done)) / \(CLI.bytes(total))  \(String(format: "%.0f", rate)) MB/s  ETA \(eta)\u{1B}[K"
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    /// Clears the line (once: later calls do nothing), before a summary or an error is printed.
    package func finish() {
        lock.lock(); defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        drawn = false
    }

    package static func clock(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}
