// What kind of failure an error of the library is: the one thing a caller (the CLI's exit code, Python's exception
// class) needs to decide, whichever layer raised it.

/// The kind of a library failure.
public enum ErrorKind: Sendable, Equatable {
    /// The system refused an operation (open, read, write, fsync, mmap, rename…); `errno` when the system gave one.
    case io(errno: Int32?)
    /// The data read is not what it must be: a damaged or malformed `.psnap`, a malformed dump, inputs that disagree.
    case corruptData
    /// The request cannot be met as asked: an unknown tensor, an index out of range, an option out of bounds, an
    /// output that is one of the inputs.
    case usage
    /// Something else holds the place: an existing output, a file locked by another writer.
    case conflict
}

/// An error of this library: every error type it throws conforms, each case carrying its own typed payload.
public protocol ParamSnapError: Error, CustomStringConvertible {
    /// What kind of failure this is.
    var kind: ErrorKind { get }
}

extension FormatError: ParamSnapError {
    public var kind: ErrorKind { .corruptData }
}
