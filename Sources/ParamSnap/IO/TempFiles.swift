// Temporary files beside an output: their names, their removal on SIGINT/SIGTERM/SIGHUP, and stale ones of dead processes.
import Foundation
import Synchronization

/// The temporary files written beside an output (`OUT.tmp-PID` and kin), so that none outlives its process.
///
/// Each one is registered while it exists (`TempFile`); `removeOnSignals()` installs handlers that remove every
/// registered file on SIGINT, SIGTERM and SIGHUP before the process dies of the signal. SIGKILL (or a power cut)
/// cannot be caught, so creating a temporary file beside an output first removes the ones of processes that are gone.
public enum TempFiles {
    /// The kinds of temporary file, each with an exact name beside an output `OUT` (PID: the writing process).
    public enum Kind: CaseIterable, Sendable {
        /// `OUT.tmp-PID`: the output being written, renamed to `OUT` when complete.
        case output
        /// `OUT.staging-PID`: a writer's staged snapshots beyond its memory budget.
        case staging
        /// `.OUT.convert-scratch-PID`: converted tensors that cannot be read in place.
        case convertScratch
        /// `OUT.moments-state-PID.tmp`: per-parameter state of `psnap moments` between segments.
        case momentsState

        /// The name is `prefix + OUT's file name + infix + PID + suffix`.
        var parts: (prefix: String, infix: String, suffix: String) {
            switch self {
            case .output: return ("", ".tmp-", "")
            case .staging: return ("", ".staging-", "")
            case .convertScratch: return (".", ".convert-scratch-", "")
            case .momentsState: return ("", ".moments-state-", ".tmp")
            }
        }
    }

    /// The temporary file of `kind` for `output`, in `output`'s folder.
    public static func path(beside output: String, _ kind: Kind, pid: Int32 = getpid()) -> String {
        let (dir, base) = split(output)
        let p = kind.parts
        return dir + p.prefix + base + p.infix + String(pid) + p.suffix
    }

    /// The folder part of `path` (with its trailing slash, empty for the current folder) and the file name.
    static func split(_ path: String) -> (dir: String, base: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[...slash]), String(path[path.index(after: slash)...]))
    }

    /// Removes the temporary files beside `output` (every `Kind`, names matched exactly) whose process is gone
    /// (`kill(pid, 0)` fails with ESRCH) and that no one holds locked; returns their paths. Only regular files are
    /// removed; files of a live process, of another output or of any other name are left alone.
    @discardableResult
    public static func removeStale(beside output: String) -> [String] {
        let (dir, base) = split(output)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir) else { return [] }
        var removed: [String] = []
        for name in names {
            guard let pid = Kind.allCases.lazy.compactMap({ stalePID(name, base: base, kind: $0) }).first else { continue }
            guard pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            let path = dir + name
            if removeIfUnused(path) { removed.append(path) }
        }
        return removed
    }

    /// The PID in `name` when it is exactly `kind`'s name for an output called `base`.
    static func stalePID(_ name: String, base: String, kind: Kind) -> Int32? {
        let p = kind.parts
        let head = p.prefix + base + p.infix
        guard name.hasPrefix(head), name.hasSuffix(p.suffix), name.count > head.count + p.suffix.count else { return nil }
        let digits = String(name.dropFirst(head.count).dropLast(p.suffix.count))
        guard let pid = Int32(digits), pid > 0, String(pid) == digits else { return nil }
        return pid
    }

    /// Unlinks `path` if it is a regular file (not a symlink) that no process holds an flock on (a writer in another
    /// PID namespace may look dead to `kill`, but still holds its lock).
    static func removeIfUnused(_ path: String) -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return false }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
        return unlink(path) == 0
    }

    // MARK: removal on signals

    /// Registered paths: C strings owned by whoever swaps them out of their slot (the owner frees them; the signal
    /// handler takes them and never frees, the process is about to die). Swapping keeps the handler free of locks.
    static let capacity = 256
    nonisolated(unsafe) static let slots: UnsafeMutablePointer<Atomic<UnsafeMutablePointer<CChar>?>> = {
        let p = UnsafeMutablePointer<Atomic<UnsafeMutablePointer<CChar>?>>.allocate(capacity: capacity)
        for i in 0..<capacity { (p + i).initialize(to: Atomic(nil)) }
        return p
    }()
    static let installed = Atomic<Bool>(false)

    /// Registers `path` for removal on a signal; nil when every slot is taken (the file is then only removed as stale).
    static func register(_ path: String) -> (slot: Int, cString: UnsafeMutablePointer<CChar>)? {
        guard let c = strdup(path) else { return nil }
        for i in 0..<capacity where slots[i].compareExchange(expected: nil, desired: c, ordering: .acquiringAndReleasing).exchanged {
            return (i, c)
        }
        free(c)
        return nil
    }

    /// Forgets a registration (unless a signal handler took it first).
    static func unregister(_ r: (slot: Int, cString: UnsafeMutablePointer<CChar>)) {
        if slots[r.slot].compareExchange(expected: r.cString, desired: nil, ordering: .acquiringAndReleasing).exchanged {
            free(r.cString)
        }
    }

    /// Unlinks every registered temporary file, with async-signal-safe calls only: for a program's own signal
    /// handlers (`removeOnSignals()` installs ones that call it).
    public static func removeAllNow() {
        for i in 0..<capacity {
            if let c = slots[i].exchange(nil, ordering: .acquiringAndReleasing) { unlink(c) }
        }
    }

    /// Installs handlers for SIGINT (Ctrl-C), SIGTERM and SIGHUP (a closed terminal) that remove every registered
    /// temporary file, then let the signal kill the process as it would have (default action, re-raised). A signal
    /// that already has a handler, or is ignored (`nohup`), is left as it is; one the parent passed down blocked (a
    /// process spawned from a thread that blocks signals inherits its mask) is unblocked in the calling thread, so
    /// that it ends the command. Call from the main thread of a command-line tool, early; idempotent.
    public static func removeOnSignals() {
        guard !installed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = slots   // initialised here, not in a handler
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            var old = sigaction()
            guard sigaction(sig, nil, &old) == 0, unsafeBitCast(old.__sigaction_handler.sa_handler, to: Int.self) == 0 else { continue }
            _ = signal(sig, tempFilesSignalHandler)
            sigaddset(&unblock, sig)
        }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    }
}

/// Removes the registered temporary files, restores the default action and re-raises: the process ends as the
/// signal meant (exit status 128 + signal to a shell).
private func tempFilesSignalHandler(_ sig: Int32) {
    TempFiles.removeAllNow()
    _ = signal(sig, SIG_DFL)
    _ = raise(sig)
}

/// One temporary file beside an output, removed if a signal ends the process while it is held. Creating one first
/// removes the stale temporary files beside the same output (`TempFiles.removeStale(beside:)`) and whatever is at
/// the path itself: a name with this process's PID is a leftover of a dead process that had the same PID. The caller
/// then creates the file with O_EXCL, so that nothing put there since (a symlink to another file) is written through.
public final class TempFile: @unchecked Sendable {
    /// The temporary path (the file itself is created by the caller, with O_EXCL).
    public let path: String
    private let lock = NSLock()
    private var registration: (slot: Int, cString: UnsafeMutablePointer<CChar>)?

    /// The `kind` temporary path beside `output` for this process.
    public convenience init(beside output: String, _ kind: TempFiles.Kind) {
        TempFiles.removeStale(beside: output)
        self.init(path: TempFiles.path(beside: output, kind))
    }

    /// Registers any temporary `path` of this process.
    public init(path: String) {
        self.path = path
        unlink(path)
        registration = TempFiles.register(path)
    }

    /// Stops watching the path (once the file was renamed into place or removed).
    public func release() {
        lock.lock(); defer { lock.unlock() }
        if let r = registration { TempFiles.unregister(r); registration = nil }
    }

    /// Unlinks the file and stops watching it.
    public func remove() {
        unlink(path)
        release()
    }

    deinit { release() }
}
