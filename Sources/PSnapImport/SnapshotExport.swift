// One snapshot of a run written back as checkpoint files (`psnap export`): safetensors, .npz, .npy or a folder of
// .npy files, each written atomically, the values bit-identical to the stored ones.
import Foundation
@_spi(Internals) import ParamSnap

/// Writes the checkpoint at one snapshot of a run.
public enum SnapshotExport {
    /// The kind of output, from its path.
    public enum Kind: Sendable, Equatable {
        case safetensors, npz, npy, folder

        /// `.safetensors`, `.npz`, `.npy`; a path ending in `/`, an existing folder or one without extension is a folder.
        public init(output: String) {
            let ext = (output as NSString).pathExtension.lowercased()
            var isDir: ObjCBool = false
            if output.hasSuffix("/") || (FileManager.default.fileExists(atPath: output, isDirectory: &isDir) && isDir.boolValue) || ext.isEmpty {
                self = .folder
            } else {
                self = ext == "safetensors" ? .safetensors : ext == "npz" ? .npz : ext == "npy" ? .npy : .folder
            }
        }
    }

    /// The snapshot at `index` (negative counts from the end) or with training step `step` (exactly one given).
    public static func snapshotIndex(_ reader: PSnapReader, index: Int?, step: Int64?) throws(ReaderError) -> Int {
        if let step {
            guard let i = reader.snapshots.firstIndex(where: { $0.step == step }) else {
                throw .noSuchStep(step, first: reader.snapshots.first?.step, last: reader.snapshots.last?.step)
            }
            return i
        }
        let s = index ?? 0
        let k = s < 0 ? reader.snapshotCount + s : s
        guard k >= 0, k < reader.snapshotCount else { throw .snapshotOutOfRange(s, count: reader.snapshotCount) }
        return k
    }

    /// Writes snapshot `k` of `tensors` (indices into the reader's tensors) to `output` as `kind`; every name and
    /// refusal is decided before anything is written. `progress(done, total)` counts the tensor bytes read. Returns
    /// the bytes written.
    public static func write(_ reader: PSnapReader, snapshot k: Int, tensors: [Int], to output: String, kind: Kind, force: Bool,
                             progress: ((UInt64, UInt64) -> Void)? = nil) throws -> UInt64 {
        let infos = tensors.map { reader.tensors[$0] }
        let inputs = [reader.path]
        let total = tensors.reduce(UInt64(0)) { $0 + UInt64(reader.layout.parameterCounts[$1] * reader.tensors[$1].dtype.size) }
        var done: UInt64 = 0
        func read(_ t: Int) throws -> [UInt8] {
            let bytes = try reader.tensorBytes(tensor: t, snapshot: k)
            done += UInt64(bytes.count)
            progress?(done, total)
            return bytes
        }
        switch kind {
        case .safetensors:
            var meta: [String: String] = [:]
            for (key, v) in reader.snapshots[k].metadata ?? [:] { meta[key] = v.description }
            let header = SafeTensorsEncoding.header(tensors: infos, metadata: meta)
            return try AtomicFile.write(output, inputs: inputs, force: force) { w in
                try w(header)
                for t in tensors { try w(try read(t)) }
            }
        case .npz:
            // A NUL cannot stand in a zip member name that numpy reads back.
            if let bad = infos.first(where: { $0.name.utf8.contains(0) }) {
                throw DumpError.badTensor(path: output, tensor: bad.name, reason: "a NUL byte in the name cannot be a .npz member name; export to a folder or a .safetensors file instead")
            }
            return try AtomicFile.write(output, inputs: inputs, force: force) { w in
                var members: [(name: String, crc32: UInt32, size: UInt64, offset: UInt64)] = []
                var offset: UInt64 = 0
                for (t, info) in zip(tensors, infos) {
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
            guard tensors.count == 1 else { throw ReaderError.oneTensorPerNpy(selected: tensors.count) }
            return try AtomicFile.write(output, inputs: inputs, force: force) { w in
                try w(NpyHeader.encode(dtype: infos[0].dtype, shape: infos[0].shape))
                try w(try read(tensors[0]))
            }
        case .folder:
            try OutputPath.check(output: output, inputs: inputs, force: true)   // each file is checked as it is written
            let names = try ExportFileNames.fileNames(for: infos.map(\.name), in: output)
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            var written: UInt64 = 0
            for ((t, info), name) in zip(zip(tensors, infos), names) {
                written += try AtomicFile.write((output as NSString).appendingPathComponent(name), inputs: inputs, force: force) { w in
                    try w(NpyHeader.encode(dtype: info.dtype, shape: info.shape))
                    try w(try read(t))
                }
            }
            return written
        }
    }
}
