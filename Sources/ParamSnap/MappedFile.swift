// A read-only memory mapping of a whole file (the reader's view of committed bytes).
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Glibc
import CFileSpace

/// A read-only `mmap` of a file as it was when opened. Bytes appended later are not visible.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// Mapped bytes (empty for an empty file).
    public let bytes: UnsafeRawBufferPointer
    /// The descriptor kept open for a reader's lock (§9), or -1.
    let descriptor: Int32

    /// Maps `path`, or the first `length` bytes if given. `keepDescriptor` keeps the file open while mapped, for
    /// `lockShared(at:)` and `currentSize()`.
    public init(path: String, length: UInt64? = nil, keepDescriptor: Bool = false) throws {
        self.path = path
        // O_NONBLOCK: opening a FIFO must not wait for a writer; anything but a regular file is refused below.
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw IOError.open(path: path, errno: errno) }
        descriptor = keepDescriptor ? fd : -1
        var ok = false
        defer { if !keepDescriptor || !ok { Glibc.close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw IOError.open(path: path, errno: errno) }
        if let kind = Self.nonRegularKind(st.st_mode) { throw IOError.notRegularFile(path: path, kind: kind) }
        let size = length ?? UInt64(st.st_size)
        guard size > 0 else { bytes = UnsafeRawBufferPointer(start: nil, count: 0); ok = true; return }
        guard let p = mmap(nil, Int(size), PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw IOError.mmap(path: path, errno: errno)
        }
        bytes = UnsafeRawBufferPointer(start: p, count: Int(size))
        ok = true
    }

    /// §9: a reader's shared lock on the byte at `offset` (its commit's footer), held until this mapping is released.
    /// A writer returns the space of tiles an older commit still uses only when no such lock lies below its newest
    /// footer. Best effort: where the filesystem has no such locks, writers do not punch tiles either.
    func lockShared(at offset: UInt64) {
        if descriptor >= 0 { _ = psnap_lock_shared(descriptor, Int64(offset), 1) }
    }

    /// Allocated bytes (st_blocks × 512), size and filesystem block size of the file now (through the kept
    /// descriptor, else the path); nil when unknown.
    func allocation() -> (allocated: UInt64, size: UInt64, block: UInt64)? {
        var st = stat()
        let fd = descriptor >= 0 ? descriptor : Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { if fd != descriptor { Glibc.close(fd) } }
        guard fstat(fd, &st) == 0 else { return nil }
        return (UInt64(st.st_blocks) * 512, UInt64(st.st_size), UInt64(st.st_blksize))
    }

    /// The file's size now (it may have grown since it was mapped), or nil without a kept descriptor.
    func currentSize() -> UInt64? { descriptor >= 0 ? allocation()?.size : nil }

    /// What a file of mode `mode` is, when it is not a regular file (nil for a regular file).
    static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    deinit {
        if let b = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: b), bytes.count) }
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    /// Drops this process's resident pages of the mapping (they stay in the page cache and fault back in on
    /// the next access). Streaming passes call it so their resident memory stays bounded by their buffers,
    /// not by the size of the file they read.
    public func releaseResidentPages() {
        if let b = bytes.baseAddress { madvise(UnsafeMutableRawPointer(mutating: b), bytes.count, MADV_DONTNEED) }
    }

    /// Drops resident pages overlapping `range` (byte offsets), partial pages at its ends included: only for ranges
    /// whose neighbours may fault back in (the pages stay in the page cache; a read-only mapping loses nothing).
    public func releaseResidentPages(covering range: Range<Int>) {
        guard let b = bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = max(0, range.lowerBound) / page * page
        let end = (min(range.upperBound, bytes.count) + page - 1) / page * page   // the mapping covers the last page whole
        if end > start { madvise(UnsafeMutableRawPointer(mutating: b + start), end - start, MADV_DONTNEED) }
    }

    /// Advises the kernel of the access pattern.
    public func advise(sequential: Bool) {
        if let b = bytes.baseAddress {
            madvise(UnsafeMutableRawPointer(mutating: b), bytes.count, sequential ? MADV_SEQUENTIAL : MADV_RANDOM)
        }
    }
}

/// Drops a streaming worker's mapped pages in batches: `done` records the byte range of a tile the worker has
/// finished, and every `batchBytes` of file (the hull of its ranges: tiles come in file order, so the hull also
/// covers tiles other workers finished) the hull's pages are dropped, partial end pages included (a page still being
/// read elsewhere just faults back in from the page cache). One madvise per batch instead of one per tile, and no
/// partial pages kept: per tile, 10–20 % of a 64 KiB tile's pages stayed resident.
public struct ResidentPageReleaser {
    public static let batchBytes = 4 << 20
    var file: MappedFile
    var hull: Range<Int>? = nil
    public init(file: MappedFile) { self.file = file }

    /// `done(r)` for a range of `f` (a sharded run's tiles lie in several files): another file first drops the hull.
    public mutating func done(_ r: Range<Int>, in f: MappedFile) {
        if f !== file { flush(); file = f }
        done(r)
    }

    public mutating func done(_ r: Range<Int>) {
        let h = hull.map { min($0.lowerBound, r.lowerBound)..<max($0.upperBound, r.upperBound) } ?? r
        if h.count >= Self.batchBytes { file.releaseResidentPages(covering: h); hull = nil } else { hull = h }
    }

    public mutating func flush() {
        if let h = hull { file.releaseResidentPages(covering: h) }
        hull = nil
    }
}
