// An append-only file descriptor with positional writes, fsync, truncation and an exclusive writer lock.
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Glibc

/// The writer's handle on a `.psnap` file (spec §9: append, fsync, then publish).
package final class WritableFile {
    package let path: String
    private(set) var fd: Int32

    /// Opens (and optionally creates) `path` for writing and takes the exclusive writer lock.
    package init(path: String, create: Bool, overwrite: Bool = false) throws {
        self.path = path
        var flags = O_RDWR | O_CLOEXEC
        if create { flags |= O_CREAT | O_EXCL }
        if create && overwrite {
            // Replacing a file: a new file, not the old one truncated. A reader that has the old one mapped keeps
            // reading it (truncating it under the reader's map would kill that process on its next access), and a
            // file another writer holds is refused before anything is touched.
            let old = Glibc.open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK)
            if old >= 0 {
                defer { Glibc.close(old) }
                var st = stat()
                if fstat(old, &st) == 0, let kind = MappedFile.nonRegularKind(st.st_mode) { throw IOError.notRegularFile(path: path, kind: kind) }
                guard Self.lock(old) else { throw IOError.locked(path: path) }
                guard unlink(path) == 0 || errno == ENOENT else { throw IOError.replace(path: path, errno: errno) }
            }
        }
        // O_NONBLOCK: a FIFO is refused below instead of waiting for its other end (cleared for a regular file).
        let fd = Glibc.open(path, flags | O_NONBLOCK, 0o644)
        guard fd >= 0 else {
            if errno == EEXIST { throw IOError.exists(path: path) }
            throw IOError.open(path: path, errno: errno)
        }
        var st = stat()
        if fstat(fd, &st) == 0, let kind = MappedFile.nonRegularKind(st.st_mode) {
            Glibc.close(fd)
            throw IOError.notRegularFile(path: path, kind: kind)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        guard Self.lock(fd) else {
            Glibc.close(fd)
            throw IOError.locked(path: path)
        }
        self.fd = fd
    }

    deinit { close() }

    /// Takes the exclusive writer lock, trying for up to 0.2 s: a process spawned by another thread of this process
    /// holds a copy of every descriptor (and so of a lock just released) until it execs, for far less than that;
    /// another writer holds it for as long as it writes.
    private static func lock(_ fd: Int32) -> Bool {
        for attempt in 0..<40 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
            guard errno == EWOULDBLOCK || errno == EINTR else { return false }
            if attempt < 39 { usleep(5_000) }
        }
        return false
    }

    package func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    /// Current size.
    package func size() throws -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw IOError.read(path: path, offset: 0, errno: errno) }
        return UInt64(st.st_size)
    }

    /// Writes all of `buf` at `offset`.
    package func write(_ buf: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try PositionalIO.write(buf, to: fd, at: offset, path: path)
    }

    package func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Makes everything written so far durable (§9 steps 2 and 4).
    package func sync() throws {
        guard fsync(fd) == 0 else { throw IOError.sync(path: path, errno: errno) }
    }

    /// Cuts the file at `length` (drops a torn tail, §9).
    package func truncate(to length: UInt64) throws {
        guard ftruncate(fd, off_t(length)) == 0 else { throw IOError.truncate(path: path, errno: errno) }
    }

    /// fsyncs the directory holding `path`, so a create or rename is durable.
    package static func syncDirectory(of path: String) {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dfd = Glibc.open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); Glibc.close(dfd) }
    }
}
