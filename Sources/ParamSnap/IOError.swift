// Errors of the I/O layer: files, mmap, locks, fsync, and misuse of the writer API.
import PSnapFormat
@_spi(Internals) import PSnapCodec
import Glibc

/// A file operation failed, or the writer was used against its contract.
public enum IOError: Error, Equatable, CustomStringConvertible, Sendable {
    case open(path: String, errno: Int32)
    case read(path: String, offset: UInt64, errno: Int32)
    case write(path: String, offset: UInt64, errno: Int32)
    case sync(path: String, errno: Int32)
    case truncate(path: String, errno: Int32)
    case mmap(path: String, errno: Int32)
    case rename(from: String, to: String, errno: Int32)
    /// The old file at `path` could not be removed to replace it (nothing was written).
    case replace(path: String, errno: Int32)
    case locked(path: String)
    case exists(path: String)
    /// The path names a directory, FIFO, device or socket where a file's bytes are needed.
    case notRegularFile(path: String, kind: String)
    case outputIsInput(output: String, input: String)
    case attributes(path: String, errno: Int32)
    case layoutMismatch(String)
    case badSnapshot(String)
    case incomplete(String)
    /// Another writer committed to the file between a check and the writer lock.
    case changed(path: String)
    case closed

    static func text(_ e: Int32) -> String {
        e == ENOSPC ? "no space left on device" : String(cString: strerror(e))
    }

    public var description: String {
        switch self {
        case .open(let p, let e): return "cannot open '\(p)': \(Self.text(e))"
        case .read(let p, let o, let e): return "cannot read '\(p)' at offset \(o): \(Self.text(e))"
        case .write(let p, let o, let e): return "cannot write '\(p)' at offset \(o): \(Self.text(e)); nothing committed before this write is lost"
        case .sync(let p, let e): return "cannot fsync '\(p)': \(Self.text(e))"
        case .truncate(let p, let e): return "cannot truncate '\(p)': \(Self.text(e))"
        case .mmap(let p, let e): return "cannot memory-map '\(p)': \(Self.text(e))"
        case .rename(let f, let t, let e): return "cannot rename '\(f)' to '\(t)': \(Self.text(e))"
        case .replace(let p, let e): return "cannot replace '\(p)' (removing the old file): \(Self.text(e)); it is left as it was"
        case .locked(let p): return "'\(p)' is locked by another writer"
        case .exists(let p): return "'\(p)' already exists (use --force to replace it)"
        case .outputIsInput(let o, let i): return "the output '\(o)' is the input '\(i)' (the same file): an output never replaces an input; choose another output path"
        case .attributes(let p, let e): return "cannot give the new file the mode and owner of '\(p)': \(Self.text(e))"
        case .notRegularFile(let p, let k): return k.hasPrefix("not") ? "'\(p)' is \(k)" : "'\(p)' is \(k), not a regular file"
        case .layoutMismatch(let r): return "tensor layout differs from the file's: \(r)"
        case .badSnapshot(let r): return "bad snapshot: \(r)"
        case .incomplete(let r): return "incomplete output: \(r)"
        case .changed(let p): return "'\(p)' changed while the inputs were checked (another writer committed): nothing was appended; run the append again"
        case .closed: return "the writer is closed"
        }
    }

    /// Whether the failure is a full disk.
    public var isNoSpace: Bool {
        switch self {
        case .write(_, _, let e), .sync(_, let e), .truncate(_, let e): return e == ENOSPC
        default: return false
        }
    }
}

extension IOError: ParamSnapError {
    public var kind: ErrorKind {
        switch self {
        case .open(_, let e), .read(_, _, let e), .write(_, _, let e), .sync(_, let e), .truncate(_, let e), .mmap(_, let e),
             .rename(_, _, let e), .replace(_, let e), .attributes(_, let e):
            return .io(errno: e)
        case .notRegularFile, .changed, .closed, .incomplete: return .io(errno: nil)
        case .locked, .exists: return .conflict
        case .outputIsInput: return .usage
        case .layoutMismatch, .badSnapshot: return .corruptData
        }
    }
}
