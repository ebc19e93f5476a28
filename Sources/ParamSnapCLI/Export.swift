// `psnap export`: rebuild the checkpoint at one snapshot of a run as safetensors, .npz, or .npy files.
import PSnapImport
import ArgumentParser
import ParamSnapCLICore
import Foundation
@_spi(Internals) import ParamSnap

/// `psnap export RUN.psnap --snapshot K -o OUT`.
public struct ExportCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Rebuild the checkpoint at one snapshot as safetensors, .npz or .npy files (bit-identical values).",
        discussion: """
        Picks the snapshot by index (--snapshot K, 0-based; negative counts from the end) or by training step \
        (--step N). The output kind follows OUT:
          OUT.safetensors   one safetensors file: names, shapes, dtypes as stored;
                            the snapshot's metadata as __metadata__ (strings)
          OUT.npz           one uncompressed .npz, a member per tensor (NAME.npy)
          OUT.npy           a single tensor (select it with --include)
          OUT/ (a folder)   one NAME.npy per tensor

        NumPy has no bfloat16: bf16 tensors go to .npy/.npz as uint16 bit patterns (view them with \
        ml_dtypes.bfloat16); safetensors keeps BF16. Files are written under a temporary name and renamed when \
        complete; existing files are replaced only with --force, and never the run itself (exit 64). A progress \
        line is shown on a terminal.

        Examples:
          psnap export run.psnap --snapshot=-1 -o last.safetensors
          psnap export run.psnap --step 1200 -o step-1200.npz --include 'blocks.0.*'
          psnap export run.psnap --snapshot 0 -o init/        # init/fc1.weight.npy, …

        Exit codes: 0 ok, 1 failure (I/O, OUT exists), 64 usage error (no such snapshot, step or tensor), \
        65 damaged run or a run with no snapshots.
        """)

    @Argument(help: "The .psnap run.") var runPath: String
    @Option(help: "Snapshot index (0-based; --snapshot=-1 is the last).") var snapshot: Int?
    @Option(help: "Training step of the snapshot.") var step: Int64?
    @Option(name: .shortAndLong, help: "Output: FILE.safetensors, FILE.npz, FILE.npy, or a folder for one .npy per tensor.") var output: String
    @Option(help: "Export only tensors whose name matches this glob; repeatable.") var include: [String] = []
    @Flag(help: "Replace existing output files.") var force = false

    public init() {}

    public func validate() throws {
        if (snapshot == nil) == (step == nil) { throw ValidationError("give exactly one of --snapshot K and --step N") }
    }

    enum Kind { case safetensors, npz, npy, folder }

    public func run() throws {
        try CLI.guarded {
            let start = Date()
            let r = try PSnapReader(path: runPath)
            guard r.snapshotCount > 0 else { throw BadInput.noSnapshots(runPath) }
            let k: Int
            if let step {
                guard let i = r.snapshots.firstIndex(where: { $0.step == step }) else {
                    throw ValidationError("no snapshot has step \(step) (steps \(r.snapshots.first.map { "\($0.step)" } ?? "-")…\(r.snapshots.last.map { "\($0.step)" } ?? "-"))")
                }
                k = i
            } else {
                let s = snapshot!
                k = s < 0 ? r.snapshotCount + s : s
                guard k >= 0, k < r.snapshotCount else { throw ValidationError("snapshot \(s) out of range: the run has \(r.snapshotCount)") }
            }
            let chosen = try CLI.select(r.tensors.map(\.name), include: include, in: runPath).map { (offset: $0, element: r.tensors[$0]) }
            // Progress over the bytes of the chosen tensors, counted as each is read.
            let bar = ProgressBar(enabled: CLI.stderrIsTerminal)
            defer { bar.finish() }   // also before an error message
            let total = chosen.reduce(UInt64(0)) { $0 + UInt64(r.layout.parameterCounts[$1.0] * $1.1.dtype.size) }
            var done: UInt64 = 0
            func read(_ t: Int) throws -> [UInt8] {
                let bytes = try r.tensorBytes(tensor: t, snapshot: k)
                done += UInt64(bytes.count)
                bar.update(done, total)
                return bytes
            }
            let ext = (output as NSString).pathExtension.lowercased()
            var isDir: ObjCBool = false
            let kind: Kind = output.hasSuffix("/") || (FileManager.default.fileExists(atPath: output, isDirectory: &isDir) && isDir.boolValue) || ext.isEmpty
                ? .folder : ext == "safetensors" ? .safetensors : ext == "npz" ? .npz : ext == "npy" ? .npy : .folder
            if kind == .npy && chosen.count != 1 {
                throw ValidationError("a .npy file holds one tensor and \(chosen.count) are selected: use --include NAME, a .npz, or a folder")
            }
            var bytesOut: UInt64 = 0
            switch kind {
            case .safetensors:
                var meta: [String: String] = [:]
                for (key, v) in r.snapshots[k].metadata ?? [:] { meta[key] = v.description }
                let header = SafeTensorsEncoding.header(tensors: chosen.map(\.element), metadata: meta)
                bytesOut = try Self.writeAtomically(output, inputs: [runPath], force: force) { w in
                    try w(header)
                    for (t, _) in chosen { try w(try read(t)) }
                }
            case .npz:
                // A NUL cannot stand in a zip member name that numpy reads back: refused before anything is written.
                if let bad = chosen.first(where: { $0.element.name.utf8.contains(0) }) {
                    throw DumpError.badTensor(path: output, tensor: bad.element.name, reason: "a NUL byte in the name cannot be a .npz member name; export to a folder or a .safetensors file instead")
                }
                bytesOut = try Self.writeAtomically(output, inputs: [runPath], force: force) { w in
                    var members: [(name: String, crc32: UInt32, size: UInt64, offset: UInt64)] = []
                    var offset: UInt64 = 0
                    for (t, info) in chosen {
                        let head = NpyHeader.encode(dtype: info.dtype, shape: info.shape)
                        let data = try read(t)
                        let crc = data.withUnsafeBytes { d in head.withUnsafeBytes { RawInflate.crc32(d, continuing: RawInflate.crc32($0)) } }
                        let name = info.name + ".npy"
                        let size = UInt64(head.count + data.count)
                        let local = ZipArchive.localHeader(name: name, crc32: crc, size: size)
                        members.append((name, crc, size, offset))
                        try w(local); try w(head); try w(data)
                        offset += UInt64(local.count) + size
                    }
                    try w(ZipArchive.directory(members, at: offset))
                }
            case .npy:
                let (t, info) = chosen[0]
                bytesOut = try Self.writeAtomically(output, inputs: [runPath], force: force) { w in
                    try w(NpyHeader.encode(dtype: info.dtype, shape: info.shape))
                    try w(try read(t))
                }
            case .folder:
                try OutputPath.check(output: output, inputs: [runPath], force: true)   // each file is checked as it is written
                // Every file name decided (distinct, safe) before anything is written.
                let names = try ExportFileNames.fileNames(for: chosen.map(\.element.name), in: output)
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
                for ((t, info), name) in zip(chosen, names) {
                    let file = (output as NSString).appendingPathComponent(name)
                    bytesOut += try Self.writeAtomically(file, inputs: [runPath], force: force) { w in
                        try w(NpyHeader.encode(dtype: info.dtype, shape: info.shape))
                        try w(try read(t))
                    }
                }
            }
            bar.finish()
            let secs = Date().timeIntervalSince(start)
            print("exported snapshot \(k) (step \(r.snapshots[k].step)): \(chosen.count) tensor(s), \(CLI.bytes(bytesOut)) → \(output) in \(String(format: "%.2f", secs)) s")
        }
    }

    /// Writes `path` through `body` (which appends byte arrays) under a temporary name (removed on failure or a
    /// signal), fsyncs and renames it. Refuses a `path` that is one of `inputs`, and an existing one unless `force`
    /// (`OutputPath.check`); a replaced file's mode and owner are kept. Returns the bytes written.
    static func writeAtomically(_ path: String, inputs: [String], force: Bool, _ body: ((_ bytes: [UInt8]) throws -> Void) throws -> Void) throws -> UInt64 {
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
        return written
    }
}
