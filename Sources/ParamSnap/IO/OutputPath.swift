// The one rule for every file a command writes: never over one of its inputs, never over an existing file unasked.
import Glibc

/// Checks an output path before anything is written, and carries a replaced file's mode and owner over.
///
/// Every command that writes a file calls `check` with all the files it reads; the writers then create the output
/// under a temporary name (`TempFile`) and rename it into place.
public enum OutputPath {
    /// Refuses `output` when it is one of `inputs` — the same file once symlinks are followed (same device and inode,
    /// so a symlink or a hard link to an input is that input) — whatever `force` says; and, unless `force`, when
    /// anything exists at that path (a dangling symlink included).
    public static func check(output: String, inputs: [String], force: Bool) throws {
        var own = stat()
        if stat(output, &own) == 0 {
            for input in inputs {
                var other = stat()
                if stat(input, &other) == 0 && other.st_dev == own.st_dev && other.st_ino == own.st_ino {
                    throw IOError.outputIsInput(output: output, input: input)
                }
            }
        }
        var link = stat()
        if !force && lstat(output, &link) == 0 { throw IOError.exists(path: output) }
    }

    /// The file `path` names, symlinks resolved (absolute); `path` itself when it does not exist.
    public static func resolved(_ path: String) -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }

    /// Gives the new file open at `fd` the permission bits of the existing file at `path` that it will replace (and
    /// its owner when running as root, its group when allowed), so that replacing a file — compacting in place,
    /// `--force` — never makes a private file readable by others. Nothing when `path` does not exist.
    public static func adoptAttributes(of path: String, fd: Int32) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { return }
        if geteuid() == 0 {
            guard fchown(fd, st.st_uid, st.st_gid) == 0 else { throw IOError.attributes(path: path, errno: errno) }
        } else {
            _ = fchown(fd, uid_t.max, st.st_gid)   // only possible in one of the user's groups; else the user's own
        }
        // After fchown, which may clear set-id bits.
        guard fchmod(fd, st.st_mode & 0o7777) == 0 else { throw IOError.attributes(path: path, errno: errno) }
    }
}
