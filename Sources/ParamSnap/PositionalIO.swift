// Whole-buffer positional reads and writes on a file descriptor, through swift-system (retries on EINTR and short
// counts), with the library's errors naming the file and offset.
import Glibc
import SystemPackage

/// Positional I/O of whole buffers.
package enum PositionalIO {
    /// Writes all of `buf` at `offset` of `fd` (the file `path`, for errors).
    package static func write(_ buf: UnsafeRawBufferPointer, to fd: Int32, at offset: UInt64, path: String) throws(IOError) {
        do {
            try FileDescriptor(rawValue: fd).writeAll(toAbsoluteOffset: Int64(offset), buf)
        } catch let e as Errno {
            throw .write(path: path, offset: offset, errno: e.rawValue)
        } catch {
            throw .write(path: path, offset: offset, errno: EIO)
        }
    }

    /// Reads exactly `buf.count` bytes at `offset` of `fd` (the file `path`, for errors); the end of the file first
    /// is an error.
    package static func read(into buf: UnsafeMutableRawBufferPointer, from fd: Int32, at offset: UInt64, path: String) throws(IOError) {
        let d = FileDescriptor(rawValue: fd)
        var done = 0
        while done < buf.count {
            let n: Int
            do {
                n = try d.read(fromAbsoluteOffset: Int64(offset) + Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: buf[done...]))
            } catch let e as Errno {
                throw .read(path: path, offset: offset + UInt64(done), errno: e.rawValue)
            } catch {
                throw .read(path: path, offset: offset + UInt64(done), errno: EIO)
            }
            guard n > 0 else { throw .read(path: path, offset: offset + UInt64(done), errno: EIO) }
            done += n
        }
    }
}
