// `psnap append`: append one safetensors snapshot dump to a run (creating the run on first use).
import ArgumentParser
import Foundation
import ParamSnap

/// `psnap append RUN.psnap SNAPSHOT.safetensors`.
public struct AppendCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append safetensors snapshot dumps to a .psnap run (created on first use).",
        discussion: """
        Each SNAPSHOT is one safetensors file (F32, F16, BF16 or F64 tensors) holding every tensor of the run. \
        The run is committed durably before this command returns; a killed append loses nothing that an earlier \
        append committed. Small trailing segments are merged as the run grows (spec §10), so calling this once per \
        epoch still gives parameter-major tiles; `psnap compact` gives the read-optimal layout.

        The step defaults to the number in the file name (step-015 → 15, epoch-7 → 7), else the last step + 1. \
        The safetensors header's __metadata__ entries are kept as snapshot metadata (strings).

        Exit codes: 0 ok, 1 failure (I/O, full disk, file locked), 64 usage error, 65 bad input data \
        (malformed safetensors, unsupported dtype, tensors that differ from the run's).
        """)

    @Argument(help: "The .psnap run (created if missing).") var runPath: String
    @Argument(help: "Safetensors snapshot files, appended in the order given.") var snapshots: [String]
    @Option(help: "Training step of the snapshot (only with one SNAPSHOT).") var step: Int64?
    @Option(help: "Epoch of the snapshot (only with one SNAPSHOT).") var epoch: Double?
    @Option(name: .customLong("meta"), help: "Snapshot metadata KEY=VALUE (numbers stored as numbers); repeatable.") var meta: [String] = []
    @Option(help: "Parameters per block for a new run (power of two).") var blockSize: Int = Spec.defaultBlockSize
    @Option(help: "Codec chain for a new run, comma-separated stages from: xor, sub, linpred, split, bytedelta, zstd, zstdplanes, lenrans (spec §5). linpred,lenrans: 4–16 % smaller and 2–3× faster uncached single-trajectory reads, whole-file scans ~2.8× slower.") var codec: String = "linpred,split,zstdplanes"
    @Option(help: "zstd level for a new run.") var level: Int32 = Spec.defaultZstdLevel
    @Flag(help: "Do not merge small trailing segments (spec §10).") var noMerge = false
    @Option(help: "Memory budget in MiB for staging and encoding.") var memory: Int = 1024
    @Flag(help: "Print a JSON report of the commit.") var json = false

    public init() {}

    public func validate() throws {
        if snapshots.count > 1 && (step != nil || epoch != nil) { throw ValidationError("--step and --epoch apply to a single SNAPSHOT") }
        for m in meta where !m.contains("=") { throw ValidationError("--meta expects KEY=VALUE, got '\(m)'") }
        if blockSize < 1 || !Spec.isValidBlockSize(UInt64(blockSize)) {
            throw ValidationError("--block-size is a power of two in 1…\(Spec.maxBlockSize), not \(blockSize)")
        }
        if let epoch, !epoch.isFinite { throw ValidationError("--epoch is a finite number, not \(epoch)") }
        try OptionCheck.memory(memory)
        try OptionCheck.codec(codec, level: level)
    }

    public func run() throws {
        try CLI.guarded {
            let start = Date()
            var writer: SnapshotWriter?
            var options = WriterOptions()
            options.memoryBudget = memory << 20
            options.merge = !noMerge
            options.snapshotsPerSegment = Int.max
            var lastStep: Int64? = nil
            var reports: [CommitReport] = []
            for path in snapshots {
                let st = try SafeTensorsFile(path: path)
                if writer == nil {
                    if FileManager.default.fileExists(atPath: runPath) {
                        writer = try SnapshotWriter.open(path: runPath, expecting: st.tensors, options: options)
                        lastStep = writer!.metadata.snapshots.last?.step
                    } else {
                        options.blockSize = blockSize
                        options.chain = try CodecChain(parsing: codec, zstdLevel: level)
                        writer = try SnapshotWriter.create(path: runPath, tensors: st.tensors, options: options)
                    }
                }
                let w = writer!
                if let diff = SnapshotWriter.firstDifference(file: w.layout.tensors, given: st.tensors) {
                    throw IOError.layoutMismatch("\(path): \(diff)")
                }
                var metadata: [String: MetaValue] = [:]
                for (k, v) in st.metadata { metadata[k] = .string(v) }
                for m in meta {
                    let (k, v) = (String(m[..<m.firstIndex(of: "=")!]), String(m[m.index(after: m.firstIndex(of: "=")!)...]))
                    metadata[k] = Double(v).map { .number($0) } ?? .string(v)
                }
                let s = step ?? Self.stepFromName(path) ?? ((lastStep ?? -1) + 1)
                let info = SnapshotInfo(step: s, epoch: epoch, time: Date().timeIntervalSince1970, metadata: metadata.isEmpty ? nil : metadata)
                // Zero-copy: the tile builder reads the memory-mapped dump directly.
                reports.append(try w.commit(appending: [info], from: SafeTensorsSnapshot(file: st, tensors: w.layout.tensors)))
                lastStep = s
            }
            guard let w = writer else { return }
            try w.close()
            let secs = Date().timeIntervalSince(start)
            let raw = reports.reduce(UInt64(0)) { $0 + $1.rawBytes }
            if json {
                struct Out: Encodable { let run: String; let snapshots: Int; let appended: Int; let tilesWritten: Int; let rawBytesWritten: UInt64; let storedBytesWritten: UInt64; let bytesAppended: UInt64; let rewrittenFrom: Int; let seconds: Double }
                print(CLI.jsonString(Out(run: runPath, snapshots: w.committedSnapshots, appended: snapshots.count,
                                         tilesWritten: reports.reduce(0) { $0 + $1.tilesWritten }, rawBytesWritten: raw,
                                         storedBytesWritten: reports.reduce(0) { $0 + $1.storedBytes },
                                         bytesAppended: reports.reduce(0) { $0 + $1.bytesAppended },
                                         rewrittenFrom: reports.last?.rewrittenFrom ?? 0, seconds: secs)))
            } else {
                let merged = reports.last.map { $0.rewrittenFrom < w.committedSnapshots - 1 ? ", merged snapshots \($0.rewrittenFrom)..<\(w.committedSnapshots) into one segment" : "" } ?? ""
                print("appended \(snapshots.count) snapshot(s) to \(runPath): \(w.committedSnapshots) snapshots in \(w.segments.count) segment(s)\(merged); \(CLI.bytes(reports.reduce(0) { $0 + $1.bytesAppended })) written in \(String(format: "%.2f", secs)) s")
            }
        }
    }

    /// The last run of digits in the file name (step-015.safetensors → 15; checkpoint-30/model → 30).
    static func stepFromName(_ path: String) -> Int64? {
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        var digits = ""
        var last: String? = nil
        for c in name {
            if c.isASCII && c.isNumber { digits.append(c) } else if !digits.isEmpty { last = digits; digits = "" }
        }
        if !digits.isEmpty { last = digits }
        return last.flatMap { Int64($0) }
    }
}

/// One memory-mapped safetensors dump as a one-snapshot source for the tile builder, in the run's tensor order.
struct SafeTensorsSnapshot: SnapshotSource, @unchecked Sendable {
    let file: SafeTensorsFile
    let pointers: [UnsafeRawPointer]
    init(file: SafeTensorsFile, tensors: [TensorInfo]) {
        self.file = file
        // Empty tensors get any valid pointer: nothing is read from them.
        pointers = tensors.map { file.bytes(named: $0.name)!.baseAddress ?? UnsafeRawPointer(file.file.bytes.baseAddress!) }
    }
    var count: Int { 1 }
    func tensorBytes(snapshot: Int, tensor: Int) -> UnsafeRawPointer { pointers[tensor] }
    func releaseResidentPages() { file.file.releaseResidentPages() }
}
