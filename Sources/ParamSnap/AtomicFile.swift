// The one way a command writes a new file other than a .psnap run: under a temporary name (removed on failure or a
// signal), fsynced, renamed over the output, the rename made durable; never over an input (OutputPath).
import Foundation

/// Whole files written atomically.
package enum AtomicFile {
    /// Writes `path` through `body` (which appends byte arrays) under a temporary name, fsyncs it, renames it and
    /// fsyncs the folder. Refuses a `path` that is one of `inputs`, and an existing one unless `force`
    /// (`OutputPath.check`); a replaced file's mode and owner are kept. Returns the bytes written.
    @discardableResult
    package static func write(_ path: String, inputs: [String], force: Bool,
                              _ body: ((_ bytes: [UInt8]) throws -> Void) throws -> Void) throws -> UInt64 {
        try OutputPath.check(output: path, inputs: inputs, force: force)
        let temp = TempFile(beside: path, .output)
        let tmp = temp.path
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { temp.release(); throw IOError.open(path: tmp, errno: errno) }
        var ok = false
        defer { if ok { temp.release() } else { close(fd); temp.remove() } }
        try OutputPath.adoptAttributes(of: path, fd: fd)
        var written: UInt64 = 0
        try body { bytes in
            try bytes.withUnsafeBytes { b in try PositionalIO.write(b, to: fd, at: written, path: tmp) }
            written += UInt64(bytes.count)
        }
        guard fsync(fd) == 0 else { throw IOError.sync(path: tmp, errno: errno) }
        close(fd)
        if !force && FileManager.default.fileExists(atPath: path) { temp.remove(); ok = true; throw IOError.exists(path: path) }
        guard rename(tmp, path) == 0 else { let e = errno; temp.remove(); ok = true; throw IOError.rename(from: tmp, to: path, errno: e) }
        ok = true
        WritableFile.syncDirectory(of: path)
        return written
    }
}
