// Turns discovered dump snapshots into a checked run (order, --steps, one tensor layout) and the SnapshotSource
// over their memory maps that SnapshotWriter.writeCompact streams from; casts, inflation, byte swaps, transposes
// and NaN fills go through a scratch file beside the output, so memory stays bounded.
import Foundation

/// A checked conversion: snapshots in output order, the tensor layout, and a source for `writeCompact`.
public final class DumpConversion {
    /// Tensors of the output (output dtypes).
    public let tensors: [TensorInfo]
    /// Snapshot descriptions, in output order.
    public let snapshotInfos: [SnapshotInfo]
    /// The snapshots kept, in output order.
    public let snapshots: [DumpSnapshot]
    /// Notes for the user (lossy cast, NaN fills).
    public private(set) var notes: [String] = []
    /// Bytes written to the scratch file (casts, inflated npz members, NaN fills).
    public private(set) var scratchBytes: UInt64 = 0
    let options: ConvertOptions

    /// The run a conversion appends to (`psnap append`): its tensors and last step.
    public struct ExistingRun: Sendable {
        public var path: String
        public var tensors: [TensorInfo]
        public var lastStep: Int64?
        public init(path: String, tensors: [TensorInfo], lastStep: Int64?) {
            self.path = path; self.tensors = tensors; self.lastStep = lastStep
        }
    }

    /// Orders and selects `found` by the step rules (`DumpSteps.arrange`), checks that every snapshot has the
    /// same tensors, shapes and dtypes (naming the snapshot and tensor that differ) and fixes the output layout.
    /// With `run`, the snapshots extend it: their steps come after its last, and they must hold exactly its
    /// tensors (the layout is the run's).
    public init(_ found: [DumpSnapshot], options: ConvertOptions, extending run: ExistingRun? = nil) throws {
        self.options = options
        guard !found.isEmpty else { throw DumpError.noInputs(reason: "no snapshot found in the inputs") }
        let previous = run.flatMap { r in r.lastStep.map { DumpSteps.Previous(step: $0, label: r.path) } }
        let snaps = try DumpSteps.arrange(found, orderGiven: options.orderGiven, selection: options.steps, after: previous)
        var notes: [String] = []
        if let run {
            for s in snaps {
                let given = s.tensors.map { TensorInfo(name: $0.name, dtype: options.dtype ?? $0.dtype, shape: $0.shape) }
                if let diff = SnapshotWriter.firstDifference(file: run.tensors, given: given) { throw IOError.layoutMismatch("\(s.label): \(diff)") }
            }
            tensors = run.tensors
            snapshotInfos = snaps.map { SnapshotInfo(step: $0.step!, epoch: $0.epoch, time: $0.time, metadata: $0.metadata.isEmpty ? nil : $0.metadata) }
        } else {
            (tensors, snapshotInfos) = try Self.layout(snaps, options: options, notes: &notes)
        }
        snapshots = snaps
        if let to = options.dtype {
            let lossy = Set(snaps.flatMap { $0.tensors.filter { DTypeCast.isLossy(from: $0.dtype, to: to) }.map(\.dtype.rawValue) })
            if !lossy.isEmpty {
                notes.append("--dtype \(to.rawValue) is LOSSY for \(lossy.sorted().joined(separator: ", ")) tensors: values are rounded to nearest even (NaNs stay NaN); the run does not hold the original bits")
            }
        }
        self.notes = notes
        try FileMetadata(tensors: tensors).validate()
    }

    /// The layout of a new run (the first snapshot's tensors in its order, then, with `allowMissing`, tensors
    /// first seen later) and the snapshot descriptions; tensors are matched by name bytes (§1.1).
    private static func layout(_ snaps: [DumpSnapshot], options: ConvertOptions, notes: inout [String]) throws -> ([TensorInfo], [SnapshotInfo]) {
        var layout: [DumpTensor] = []
        var index: [TensorName: Int] = [:]
        for (k, s) in snaps.enumerated() where k == 0 || options.allowMissing {
            for t in s.tensors where index[TensorName(t.name)] == nil {
                index[TensorName(t.name)] = layout.count
                layout.append(t)
            }
        }
        guard !layout.isEmpty else {
            throw DumpError.noInputs(reason: "\(snaps[0].label) holds no tensor to store\(options.include.isEmpty && options.exclude.isEmpty ? "" : " (after --include/--exclude)")")
        }
        let first = snaps[0].label
        var infos: [SnapshotInfo] = []
        var fills = 0
        for s in snaps {
            var names = Set<TensorName>()
            for t in s.tensors {
                guard names.insert(TensorName(t.name)).inserted else { throw DumpError.badTensor(path: t.path, tensor: t.name, reason: "appears twice in \(s.label)") }
                guard let i = index[TensorName(t.name)] else {
                    throw DumpError.mismatch(path: s.label, tensor: t.name, reason: "not in the first snapshot \(first) (--allow-missing takes the union and fills absent tensors with NaN)")
                }
                let ref = layout[i]
                if t.shape != ref.shape {
                    throw DumpError.mismatch(path: t.path, tensor: t.name, reason: "shape \(t.shape), but \(ref.shape) in \(ref.path)")
                }
                if t.dtype != ref.dtype && options.dtype == nil {
                    throw DumpError.mismatch(path: t.path, tensor: t.name, reason: "dtype \(t.dtype.rawValue), but \(ref.dtype.rawValue) in \(ref.path) (--dtype casts all snapshots to one dtype)")
                }
            }
            var meta = s.metadata
            let missing = layout.map(\.name).filter { !names.contains(TensorName($0)) }
            if !missing.isEmpty {
                guard options.allowMissing else {
                    throw DumpError.mismatch(path: s.label, tensor: missing[0], reason: "missing (present in \(first)); --allow-missing fills absent tensors with NaN")
                }
                meta["missing_tensors"] = .string(missing.joined(separator: ","))
                fills += 1
            }
            infos.append(SnapshotInfo(step: s.step!, epoch: s.epoch, time: s.time, metadata: meta.isEmpty ? nil : meta))
        }
        if fills > 0 { notes.append("\(fills) snapshot(s) lack some tensors: filled with NaN and listed in their metadata key missing_tensors") }
        return (layout.map { TensorInfo(name: $0.name, dtype: options.dtype ?? $0.dtype, shape: $0.shape) }, infos)
    }

    /// Builds the source for `SnapshotWriter.writeCompact`. Tensors that cannot be read in place (casts, deflated
    /// npz members, big-endian or column-major arrays, NaN fills) are first written to a scratch file at
    /// `scratchPath` (unlinked once mapped, on failure, and if a signal ends the process: `TempFile`).
    public func makeSource(scratchPath: String) throws -> SnapshotSource {
        var files: [ObjectIdentifier: MappedFile] = [:]
        enum Where { case input(MappedFile, Int), scratch(Int), empty }
        var places: [[Where]] = []
        var scratch: WritableFile? = nil
        var scratchEnd: UInt64 = 0
        var watched: TempFile? = nil
        defer { if scratch != nil { scratch?.close() }; watched?.remove() }
        func openScratch() throws -> WritableFile {
            if let s = scratch { return s }
            watched = TempFile(path: scratchPath)
            let s = try WritableFile(path: scratchPath, create: true)
            scratch = s
            return s
        }
        var nanOffset: [DType: Int] = [:]
        let byName = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.key, $0) })
        for s in snapshots {
            var row = [Where](repeating: .empty, count: tensors.count)
            var present = [Bool](repeating: false, count: tensors.count)
            for t in s.tensors {
                let i = byName[TensorName(t.name)]!
                present[i] = true
                let out = tensors[i].dtype
                if t.byteCount == 0 { continue }
                if case .mapped(let f, let off) = t.data, !t.bigEndian, !t.fortranOrder, t.dtype == out {
                    files[ObjectIdentifier(f)] = f
                    row[i] = .input(f, off)
                    continue
                }
                let w = try openScratch()
                let (offset, end) = try materialize(t, as: out, into: w, at: scratchEnd, scratchPath: scratchPath)
                scratchEnd = end
                row[i] = .scratch(Int(offset))
            }
            for i in tensors.indices where !present[i] {
                let bytes = (tensors[i].parameterCount ?? 0) * tensors[i].dtype.size
                if bytes == 0 { continue }
                if nanOffset[tensors[i].dtype] == nil {
                    // One NaN region per dtype, as large as the largest tensor of that dtype.
                    let w = try openScratch()
                    let dt = tensors[i].dtype
                    let size = tensors.filter { $0.dtype == dt }.map { ($0.parameterCount ?? 0) * dt.size }.max()!
                    nanOffset[dt] = Int(scratchEnd)
                    let pattern = DTypeCast.nanBytes(dt)
                    let chunk = [UInt8]((0..<(1 << 20)).map { pattern[$0 % pattern.count] })
                    var done = 0
                    while done < size {
                        let n = min(chunk.count, size - done)
                        try chunk.withUnsafeBytes { try w.write(UnsafeRawBufferPointer(rebasing: $0[0..<n]), at: scratchEnd + UInt64(done)) }
                        done += n
                    }
                    scratchEnd += UInt64(size)
                }
                row[i] = .scratch(nanOffset[tensors[i].dtype]!)
            }
            places.append(row)
        }
        scratchBytes = scratchEnd
        var scratchMap: MappedFile? = nil
        if scratch != nil, scratchEnd > 0 {
            let m = try MappedFile(path: scratchPath, length: scratchEnd)
            scratchMap = m
            files[ObjectIdentifier(m)] = m
        }
        let dummy = UnsafeRawPointer(DumpSource.emptyTensor.baseAddress!)
        let pointers: [[UnsafeRawPointer]] = places.map { row in
            row.map { w in
                switch w {
                case .input(let f, let off): return f.bytes.baseAddress! + off
                case .scratch(let off): return scratchMap!.bytes.baseAddress! + off
                case .empty: return dummy
                }
            }
        }
        return DumpSource(pointers: pointers, files: Array(files.values))
    }

    /// Writes `t` converted to `out` (little-endian, row-major) from `at` in the scratch file; returns where the
    /// converted bytes start and the new end of the scratch file.
    private func materialize(_ t: DumpTensor, as out: DType, into w: WritableFile, at: UInt64, scratchPath: String) throws -> (UInt64, UInt64) {
        var source: UnsafeRawPointer
        var keepAlive: MappedFile? = nil
        var end = at
        switch t.data {
        case .mapped(let f, let off):
            source = f.bytes.baseAddress! + off
            keepAlive = f
        case .deflated(let f, let off, let csize, let skip, let member):
            // Inflate into the scratch file first, then (if needed) convert from there.
            let src = UnsafeRawBufferPointer(rebasing: f.bytes[off..<(off + csize)])
            var skipLeft = skip, need = t.byteCount
            try RawInflate.inflate(src, path: t.path, member: member) { chunk in
                var c = chunk
                if skipLeft > 0 { let k = min(skipLeft, c.count); skipLeft -= k; c = UnsafeRawBufferPointer(rebasing: c[k...]) }
                let n = min(need, c.count)
                if n > 0 { try w.write(UnsafeRawBufferPointer(rebasing: c[0..<n]), at: end); end += UInt64(n); need -= n }
                return need > 0
            }
            f.releaseResidentPages()
            guard need == 0 else {
                throw DumpError.truncated(path: t.path, reason: "member '\(member)' inflates to \(t.byteCount - need) of the \(t.byteCount) data bytes its header announces")
            }
            if !t.bigEndian && !t.fortranOrder && t.dtype == out { return (at, end) }
            let m = try MappedFile(path: scratchPath, length: end)
            source = m.bytes.baseAddress! + Int(at)
            keepAlive = m
            end = at + UInt64(t.byteCount)   // the converted copy goes after the inflated one
        }
        defer { keepAlive?.releaseResidentPages() }
        let dataStart = end
        let e = t.dtype.size, n = t.parameterCount
        let chunk = 1 << 20
        let gathered = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk * e, alignment: 64)
        let converted = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk * out.size, alignment: 64)
        defer { gathered.deallocate(); converted.deallocate() }
        // Column-major walk: row-major index → Fortran offset, advanced incrementally.
        let dims = t.shape
        var fStride = [Int](repeating: 1, count: dims.count)
        for k in dims.indices.dropFirst() { fStride[k] = fStride[k - 1] * dims[k - 1] }
        var idx = [Int](repeating: 0, count: dims.count)
        var fOff = 0
        var done = 0
        while done < n {
            let c = min(chunk, n - done)
            let g = gathered.baseAddress!
            if t.fortranOrder {
                for i in 0..<c {
                    (g + i * e).copyMemory(from: source + fOff * e, byteCount: e)
                    var k = dims.count - 1
                    while k >= 0 {
                        idx[k] += 1; fOff += fStride[k]
                        if idx[k] < dims[k] { break }
                        fOff -= fStride[k] * dims[k]; idx[k] = 0; k -= 1
                    }
                }
            } else {
                g.copyMemory(from: source + done * e, byteCount: c * e)
            }
            if t.bigEndian {
                for i in 0..<c {
                    let p = (g + i * e).assumingMemoryBound(to: UInt8.self)
                    var a = 0, b = e - 1
                    while a < b { let x = p[a]; p[a] = p[b]; p[b] = x; a += 1; b -= 1 }
                }
            }
            DTypeCast.convert(UnsafeRawPointer(g), from: t.dtype, to: out, count: c, into: converted.baseAddress!)
            try w.write(UnsafeRawBufferPointer(rebasing: converted[0..<(c * out.size)]), at: end)
            end += UInt64(c * out.size)
            done += c
        }
        return (dataStart, end)
    }
}

/// The `SnapshotSource` of a conversion: a pointer per (snapshot, tensor) into the mapped inputs or scratch file.
final class DumpSource: SnapshotSource, @unchecked Sendable {
    nonisolated(unsafe) static let emptyTensor = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 64)
    let pointers: [[UnsafeRawPointer]]
    let files: [MappedFile]

    init(pointers: [[UnsafeRawPointer]], files: [MappedFile]) {
        self.pointers = pointers
        self.files = files
    }

    var count: Int { pointers.count }

    func tensorBytes(snapshot: Int, tensor: Int) -> UnsafeRawPointer { pointers[snapshot][tensor] }

    func releaseResidentPages() { for f in files { f.releaseResidentPages() } }
}
