// Finds the snapshots among `psnap convert` inputs, by content: safetensors, sharded HF checkpoints, Trainer
// `checkpoint-N/` folders, parent folders of those, .npy, .npz and raw files. Nothing is read beyond headers here.
@_spi(Internals) import ParamSnap
import Foundation

/// Options of a conversion (`psnap convert`).
public struct ConvertOptions: Sendable {
    /// Tensor-name globs to keep (all when empty) and to drop.
    public var include: [String] = []
    public var exclude: [String] = []
    /// Output dtype of every tensor (a cast when it differs from the source); also the dtype of raw inputs.
    public var dtype: DType? = nil
    /// Refuse tensors of unsupported dtypes instead of skipping them.
    public var strict = false
    /// Fill tensors absent from a snapshot with NaN (and name them in its metadata) instead of failing.
    public var allowMissing = false
    /// Keep the order the inputs were given in instead of sorting by step.
    public var orderGiven = false
    /// Steps to keep.
    public var steps: StepSelection? = nil
    /// Tensor name of .npy and raw inputs (default: the file stem without its step number).
    public var arrayName: String? = nil
    /// Shape of raw inputs (with `dtype`); files not recognised otherwise are read as raw when set.
    public var rawShape: [Int]? = nil

    public init() {}
}

/// Where a tensor's bytes are.
public enum DumpData: @unchecked Sendable {
    /// Bytes of the source dtype in a mapped file at `offset`.
    case mapped(MappedFile, offset: Int)
    /// A deflate member of an npz: compressed bytes at `offset`; the array data starts `skip` bytes into the
    /// inflated stream.
    case deflated(MappedFile, offset: Int, compressedSize: Int, skip: Int, member: String)
}

/// One tensor of one input snapshot.
public struct DumpTensor: @unchecked Sendable {
    public var name: String
    /// Source dtype.
    public var dtype: DType
    public var shape: [Int]
    /// The file holding it (for messages).
    public var path: String
    public var data: DumpData
    /// Big-endian source data (byte-swapped when converted).
    public var bigEndian = false
    /// Column-major source data (transposed to row-major when converted).
    public var fortranOrder = false

    /// Source bytes (parameters × element size); valid after discovery checked the shape.
    public var byteCount: Int { parameterCount * dtype.size }
    public var parameterCount: Int { TensorInfo(name: name, dtype: dtype, shape: shape).parameterCount ?? 0 }
}

/// One snapshot found among the inputs.
public struct DumpSnapshot: @unchecked Sendable {
    /// The file or folder it comes from.
    public var label: String
    /// Step from the name (nil when the name holds no number).
    public var step: Int64?
    public var epoch: Double?
    /// Modification time of the input (seconds since the Unix epoch).
    public var time: Double = 0
    public var metadata: [String: MetaValue] = [:]
    public var tensors: [DumpTensor] = []
}

/// Walks the inputs of a conversion and lists their snapshots, with notes about what it skipped.
public final class DumpDiscovery {
    public let options: ConvertOptions
    /// Snapshots in the order found.
    public private(set) var snapshots: [DumpSnapshot] = []
    /// Every file whose content the snapshots come from (weights, shard indexes, trainer logs): what an output
    /// must never replace (`OutputPath.check`).
    public private(set) var files: [String] = []
    private var skippedFiles: [(name: String, count: Int)] = []
    private var skippedTensors: [(what: String, count: Int)] = []
    private var otherNotes: [String] = []
    /// Folders already walked, by (device, inode): a symlink back to one of them (a loop) is not followed again.
    private var walked = Set<FileID>()
    static let maxDepth = 8

    struct FileID: Hashable { let device: UInt64, inode: UInt64 }

    public init(options: ConvertOptions) { self.options = options }

    /// One-line notes about skipped files and tensors (for the user), in the order they first happened.
    public var notes: [String] {
        var out = otherNotes
        if !skippedFiles.isEmpty {
            let total = skippedFiles.reduce(0) { $0 + $1.count }
            let list = skippedFiles.prefix(8).map { $0.count > 1 ? "\($0.name) ×\($0.count)" : $0.name }.joined(separator: ", ")
            out.append("skipped \(total) file(s) that hold no model weights (optimizer/scheduler/RNG state, configs, pickles): \(list)\(skippedFiles.count > 8 ? ", …" : "")")
        }
        for t in skippedTensors {
            out.append("skipped \(t.what)\(t.count > 1 ? " in \(t.count) snapshots" : "") (--strict refuses instead)")
        }
        return out
    }

    func noteSkippedFile(_ path: String) {
        let name = (path as NSString).lastPathComponent
        if let i = skippedFiles.firstIndex(where: { $0.name == name }) { skippedFiles[i].count += 1 } else { skippedFiles.append((name, 1)) }
    }

    func noteSkippedTensor(_ name: String, _ dtype: String) {
        let what = "tensor '\(name)' (dtype \(dtype), not a float type ParamSnap stores)"
        if let i = skippedTensors.firstIndex(where: { $0.what == what }) { skippedTensors[i].count += 1 } else { skippedTensors.append((what, 1)) }
    }

    /// Every tensor name met among the inputs, kept or not, in the order first met (to name what a glob missed).
    public private(set) var tensorNames: [String] = []
    private var namesMet = Set<TensorName>()

    func keep(_ name: String) -> Bool {
        if namesMet.insert(TensorName(name)).inserted { tensorNames.append(name) }
        return (options.include.isEmpty || options.include.contains { TensorNameFilter.matches($0, name) })
            && !options.exclude.contains { TensorNameFilter.matches($0, name) }
    }

    /// Adds the snapshots in `path` (a file or a folder).
    public func add(path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            throw DumpError.unrecognized(path: path, reason: e == ENOENT ? "no such file or folder" : String(cString: strerror(e)))
        }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: try addFolder(path, depth: 0)
        case S_IFREG: try addFile(path, explicit: true, log: nil)
        default: throw DumpError.unrecognized(path: path, reason: "not a regular file or a folder")
        }
    }

    static func mtime(_ path: String) -> Double {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
    }

    static func stem(_ path: String) -> String { ((path as NSString).lastPathComponent as NSString).deletingPathExtension }

    static func isCheckpointFolderName(_ name: String) -> Bool {
        name.range(of: "^(checkpoint|global_step|step|epoch)[-_]?[0-9]+$", options: [.regularExpression, .caseInsensitive]) != nil
    }

    /// The entries of `folder` to read, in natural order, each a regular file or a folder (symlinks followed).
    /// Junk is skipped with a note, never an error: dangling symlinks, symlink loops, FIFOs, sockets, devices.
    private func children(_ folder: String) throws -> [(path: String, isFolder: Bool)] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder) } catch {
            throw DumpError.unrecognized(path: folder, reason: "cannot list the folder")
        }
        var out: [(path: String, isFolder: Bool)] = []
        for name in names.filter({ !$0.hasPrefix(".") }).sorted(by: DumpNames.naturalLess) {
            let p = (folder as NSString).appendingPathComponent(name)
            var st = stat()
            guard stat(p, &st) == 0 else {
                let e = errno
                var l = stat()
                let link = lstat(p, &l) == 0 && l.st_mode & S_IFMT == S_IFLNK
                let target = link ? ((try? FileManager.default.destinationOfSymbolicLink(atPath: p)).map { " → \($0)" } ?? "") : ""
                let what = !link ? String(cString: strerror(e)) : e == ELOOP ? "a symlink loop\(target)" : e == ENOENT ? "a dangling symlink\(target)" : "a symlink\(target) that cannot be followed (\(String(cString: strerror(e))))"
                otherNotes.append("skipped \(p): \(what)")
                continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: out.append((p, true))
            case S_IFREG: out.append((p, false))
            default: otherNotes.append("skipped \(p): not a regular file or a folder (FIFO, socket or device)")
            }
        }
        return out
    }

    private func readLog(_ path: String) -> TrainerLog? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        files.append(path)
        do { return try TrainerLog.parse(d, path: path) } catch {
            otherNotes.append("ignored \(path): \(error) (no loss/learning-rate metadata from it)")
            return nil
        }
    }

    private func addFolder(_ folder: String, depth: Int) throws {
        guard depth <= Self.maxDepth else { return }
        var st = stat()
        if stat(folder, &st) == 0, !walked.insert(FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))).inserted {
            otherNotes.append("skipped \(folder): a folder already read (a symlink loop or a second link to it)")
            return
        }
        let entries = try children(folder)
        let kids = entries.filter { !$0.isFolder }.map(\.path)   // the files
        let name = (folder as NSString).lastPathComponent
        let statePath = (folder as NSString).appendingPathComponent("trainer_state.json")
        let log = kids.contains(statePath) ? readLog(statePath) : nil
        let indexes = kids.filter { $0.hasSuffix(".safetensors.index.json") }
        if let index = indexes.first(where: { $0.hasSuffix("/model.safetensors.index.json") }) ?? indexes.first {
            var snap = try shardedSnapshot(index: index, label: folder, step: DumpNames.stepNumber(name, path: folder) ?? log?.globalStep, log: log)
            snap.time = Self.mtime(index)
            let used = Set(snap.tensors.map(\.path)).union([index, statePath])
            for k in kids where !used.contains(k) { noteSkippedFile(k) }
            snapshots.append(snap)
            return
        }
        let weightFiles = kids.filter { $0.hasSuffix(".safetensors") }
        if Self.isCheckpointFolderName(name) && !weightFiles.isEmpty {
            var snap = DumpSnapshot(label: folder, step: try DumpNames.stepNumber(name, path: folder))
            snap.time = Self.mtime(weightFiles[0])
            var seen: [TensorName: String] = [:]
            for f in weightFiles {
                let (tensors, meta) = try safetensors(f)
                for t in tensors {
                    if let other = seen.updateValue(f, forKey: TensorName(t.name)) {
                        throw DumpError.badTensor(path: f, tensor: t.name, reason: "also in \(other) (same checkpoint)")
                    }
                }
                snap.tensors += tensors
                snap.metadata.merge(meta) { a, _ in a }
            }
            apply(log, to: &snap)
            for k in kids where !weightFiles.contains(k) && k != statePath { noteSkippedFile(k) }
            snapshots.append(snap)
            return
        }
        if Self.isCheckpointFolderName(name), kids.contains(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".pt") || $0.hasSuffix(".pth") }),
           !entries.contains(where: \.isFolder) {
            let hasArrays = kids.contains { $0.hasSuffix(".npy") || $0.hasSuffix(".npz") }
            if !hasArrays {
                throw DumpError.unrecognized(path: folder, reason: "checkpoint folder without safetensors weights (pickled PyTorch files such as pytorch_model.bin are not read; save with safetensors, e.g. Trainer's save_safetensors=True)")
            }
        }
        for k in entries {
            if k.isFolder { try addFolder(k.path, depth: depth + 1) } else if k.path != statePath { try addFile(k.path, explicit: false, log: log) }
        }
    }

    private func apply(_ log: TrainerLog?, to snap: inout DumpSnapshot) {
        guard let log, let step = snap.step else { return }
        let (epoch, values) = log.snapshotMetadata(step: step)
        if let epoch { snap.epoch = epoch }
        snap.metadata.merge(values) { _, b in b }
    }

    /// Reads a safetensors file's tensors (filtered) and header metadata.
    private func safetensors(_ path: String) throws -> ([DumpTensor], [String: MetaValue]) {
        let st = try SafeTensorsFile(path: path, skipUnsupported: !options.strict)
        files.append(path)
        for s in st.skipped where keep(s.name) { noteSkippedTensor(s.name, s.dtype) }
        var out: [DumpTensor] = []
        for e in st.entries where keep(e.info.name) {
            out.append(DumpTensor(name: e.info.name, dtype: e.info.dtype, shape: e.info.shape, path: path,
                                  data: .mapped(st.file, offset: st.dataStart + e.begin)))
        }
        var meta: [String: MetaValue] = [:]
        for (k, v) in st.metadata { meta[k] = .string(v) }
        return (out, meta)
    }

    private func shardedSnapshot(index: String, label: String, step: Int64?, log: TrainerLog?) throws -> DumpSnapshot {
        guard let data = FileManager.default.contents(atPath: index) else { throw DumpError.unrecognized(path: index, reason: "cannot read the index") }
        let map = try HFShardIndex.parse(data, path: index)
        files.append(index)
        let folder = (index as NSString).deletingLastPathComponent
        var byShard: [String: [TensorName]] = [:]
        for (t, s) in map { byShard[s, default: []].append(t) }
        var snap = DumpSnapshot(label: label, step: step)
        for shard in byShard.keys.sorted(by: DumpNames.naturalLess) {
            let path = (folder as NSString).appendingPathComponent(shard)
            guard FileManager.default.fileExists(atPath: path) else {
                throw DumpError.unrecognized(path: path, reason: "shard named by \((index as NSString).lastPathComponent) is missing")
            }
            let (tensors, meta) = try safetensors(path)
            let present = Set(tensors.map { TensorName($0.name) })
            let wanted = Set(byShard[shard]!)
            let st = try SafeTensorsFile(path: path, skipUnsupported: true)
            let skipped = Set(st.skipped.map { TensorName($0.name) })
            for t in byShard[shard]!.sorted() where keep(t.string) && !present.contains(t) && !skipped.contains(t) {
                throw DumpError.badTensor(path: path, tensor: t.string, reason: "listed in \((index as NSString).lastPathComponent) but absent from the shard")
            }
            snap.tensors += tensors.filter { wanted.contains(TensorName($0.name)) }
            snap.metadata.merge(meta) { a, _ in a }
        }
        apply(log, to: &snap)
        return snap
    }

    private func addFile(_ path: String, explicit: Bool, log: TrainerLog?) throws {
        if path.hasSuffix(".index.json") {
            if explicit {
                let folder = (path as NSString).deletingLastPathComponent
                let name = (folder as NSString).lastPathComponent
                let statePath = (folder as NSString).appendingPathComponent("trainer_state.json")
                let ownLog = FileManager.default.fileExists(atPath: statePath) ? readLog(statePath) : nil
                var snap = try shardedSnapshot(index: path, label: folder, step: DumpNames.stepNumber(name, path: folder) ?? ownLog?.globalStep, log: ownLog)
                snap.time = Self.mtime(path)
                snapshots.append(snap)
            } else { noteSkippedFile(path) }
            return
        }
        if explicit, let index = Self.shardIndex(beside: path) {
            throw DumpError.unrecognized(path: path, reason: "one shard of the sharded checkpoint \(index): give its folder or the index (its shards form one snapshot)")
        }
        let file = try MappedFile(path: path)
        let buf = file.bytes
        var snap = DumpSnapshot(label: path, step: try DumpNames.stepNumber(Self.stem(path), path: path), time: Self.mtime(path))
        if buf.count >= 6, Array(buf[0..<6]) == NpyHeader.magic {
            if let t = try npyTensor(buf, file: file, base: 0, size: buf.count, path: path, name: options.arrayName ?? DumpNames.arrayName(fromStem: Self.stem(path))) {
                snap.tensors.append(t)
            }
        } else if ZipArchive.looksLikeZip(buf) {
            snap.tensors = try npzTensors(buf, file: file, path: path)
        } else if (buf.count >= 10 && buf[8] == UInt8(ascii: "{") && UInt64(littleEndian: buf.loadUnaligned(as: UInt64.self)) <= UInt64(buf.count - 8))
                    || (path as NSString).pathExtension.lowercased() == "safetensors" {
            // Sniffed as safetensors, or named so: then the parser's own error (header length, JSON…) is the useful one.
            let (tensors, meta) = try safetensors(path)
            snap.tensors = tensors
            snap.metadata = meta
        } else if let shape = options.rawShape, let dtype = options.dtype,
                  explicit || ["raw", "bin", "dat"].contains((path as NSString).pathExtension.lowercased()) {
            let name = options.arrayName ?? DumpNames.arrayName(fromStem: Self.stem(path))
            let info = TensorInfo(name: name, dtype: dtype, shape: shape)
            guard let n = info.parameterCount, n.multipliedReportingOverflow(by: dtype.size).overflow == false, n * dtype.size == buf.count else {
                throw DumpError.malformed(path: path, reason: "raw file of \(buf.count) bytes; --shape \(shape) × \(dtype.rawValue) needs \((info.parameterCount ?? 0) &* dtype.size)")
            }
            if keep(name) { snap.tensors.append(DumpTensor(name: name, dtype: dtype, shape: shape, path: path, data: .mapped(file, offset: 0))) }
        } else if explicit {
            throw DumpError.unrecognized(path: path, reason: "not a safetensors, .npy, .npz or model.safetensors.index.json file (raw little-endian files need --shape and --dtype)")
        } else {
            noteSkippedFile(path)
            return
        }
        files.append(path)
        apply(log, to: &snap)
        snapshots.append(snap)
    }

    /// The `*.safetensors.index.json` beside `path` when `path` is named like a shard of it (`…-00001-of-00002.safetensors`).
    static func shardIndex(beside path: String) -> String? {
        guard DumpNames.shardSuffix(Self.stem(path)) != nil, path.hasSuffix(".safetensors") else { return nil }
        let folder = (path as NSString).deletingLastPathComponent
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.isEmpty ? "." : folder)) ?? []
        return names.filter { $0.hasSuffix(".safetensors.index.json") }.sorted().first.map { (folder as NSString).appendingPathComponent($0) }
    }
}
