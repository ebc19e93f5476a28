// File names for tensors exported one file per tensor (`psnap export RUN -o DIR/`): injective, so two tensors never
// share a file, and safe on any POSIX file system.

/// Maps tensor names to file names, one per tensor, decided before anything is written.
public enum ExportFileNames {
    /// Longest file name most file systems take (bytes).
    public static let maxFileNameBytes = 255

    /// `name` with every byte that a file name cannot or should not hold percent-encoded (`/`, `%`, NUL and other
    /// control bytes, and a leading `.`), plus `suffix`. Distinct names give distinct file names (the encoding is
    /// reversible), so `a/b` and `a_b` become `a%2Fb.npy` and `a_b.npy`. Other bytes, multi-byte UTF-8 included, stay.
    public static func fileName(for name: String, suffix: String = ".npy") -> String {
        var bytes: [UInt8] = []
        for (i, b) in name.utf8.enumerated() {
            let unsafe = b == UInt8(ascii: "/") || b == UInt8(ascii: "%") || b < 0x20 || b == 0x7F || (i == 0 && b == UInt8(ascii: "."))
            if unsafe {
                let hex = Array("0123456789ABCDEF".utf8)
                bytes += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self) + suffix
    }

    /// The file name of every tensor in `names` (in `folder`, for errors), or an error naming a tensor whose file
    /// name would be too long.
    public static func fileNames(for names: [String], in folder: String, suffix: String = ".npy") throws(DumpError) -> [String] {
        var out: [String] = []
        for n in names {
            let f = fileName(for: n, suffix: suffix)
            guard f.utf8.count <= maxFileNameBytes else {
                throw .badTensor(path: folder, tensor: n, reason: "its file name would be \(f.utf8.count) bytes (most file systems take \(maxFileNameBytes)); export to a .npz or .safetensors file instead")
            }
            out.append(f)
        }
        return out
    }
}
