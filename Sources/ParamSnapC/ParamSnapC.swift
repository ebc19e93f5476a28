// The C ABI of libparamsnap.so, what tools/python's `paramsnap` package calls through ctypes: open a run, describe it
// as JSON, read parameters' trajectories and one snapshot of a tensor as raw little-endian values. Every function
// returns 0 or an error code and writes the library's own message into the caller's buffer; nothing traps on bad
// input (null handles and pointers, out-of-range indices and sizes are refused by name).
//
// Codes: 1 the request (unknown tensor, index out of range, a buffer of the wrong size), 2 damaged data (checksum,
// decode, malformed file), 3 the system (open, read, map), 4 anything else.
import Foundation
import ParamSnap

/// An open run behind an opaque handle.
final class RunHandle {
    let reader: PSnapReader
    init(_ reader: PSnapReader) { self.reader = reader }
}

private func code(_ error: Error) -> Int32 {
    guard let e = error as? any ParamSnapError else { return 4 }
    switch e.kind {
    case .usage, .conflict: return 1
    // Damage is what the file holds (checksums, tiles, commits: FormatError); data the caller gives that is not
    // what it must be (a snapshot of the wrong size, an empty name, too few snapshots for a pass) is a request error.
    case .corruptData: return error is FormatError ? 2 : 1
    case .io: return 3
    }
}

/// Writes `message` (UTF-8, truncated at a character boundary, NUL-terminated) into `buffer` of `capacity` bytes.
private func report(_ message: String, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int) {
    guard let buffer, capacity > 0 else { return }
    var bytes = Array(message.utf8)
    if bytes.count > capacity - 1 {
        bytes = Array(bytes[0..<(capacity - 1)])
        while let last = bytes.last, last & 0xC0 == 0x80 { bytes.removeLast() }       // a cut continuation byte
        if let last = bytes.last, last & 0x80 != 0 { bytes.removeLast() }              // its lead byte
    }
    for (i, b) in bytes.enumerated() { buffer[i] = CChar(bitPattern: b) }
    buffer[bytes.count] = 0
}

func guarded(_ err: UnsafeMutablePointer<CChar>?, _ cap: Int, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return 0
    } catch let e as RequestError {
        report(e.message, err, cap)
        return 1
    } catch {
        report("\(error)", err, cap)
        return code(error)
    }
}

/// A request the caller got wrong (code 1), with the message to report.
struct RequestError: Error {
    let message: String
    init(message: String) { self.message = message }
    init(_ message: String) { self.message = message }
}

/// `bytes` as a malloc'd NUL-terminated string the caller frees with `psnap_free`.
func mallocString(_ bytes: [UInt8]) -> UnsafeMutablePointer<CChar> {
    let p = malloc(bytes.count + 1)!.assumingMemoryBound(to: CChar.self)
    for (i, b) in bytes.enumerated() { p[i] = CChar(bitPattern: b) }
    p[bytes.count] = 0
    return p
}

/// Tensor `tensor` of the run, checked.
private func tensorIndex(_ r: PSnapReader, _ tensor: Int64) throws -> Int {
    guard tensor >= 0, tensor < Int64(r.tensors.count) else {
        throw RequestError(message: "tensor \(tensor) out of range (the run has \(r.tensors.count))")
    }
    return Int(tensor)
}

/// `out` when it holds exactly `need` bytes.
private func output(_ out: UnsafeMutableRawPointer?, _ bytes: Int64, _ need: Int64, _ what: String) throws -> UnsafeMutableRawPointer {
    guard need == bytes, let out else { throw RequestError(message: "\(what): the output holds \(bytes) bytes, \(need) needed") }
    return out
}

private func run(_ h: UnsafeMutableRawPointer?) throws -> PSnapReader {
    guard let h else { throw RequestError(message: "no run: the handle is null (closed?)") }
    return Unmanaged<RunHandle>.fromOpaque(h).takeUnretainedValue().reader
}

/// Opens the run at `path` (memory-mapped; nothing is read but its index and metadata).
@_cdecl("psnap_open")
public func psnap_open(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                       _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        guard let path, let out else { throw RequestError(message: "psnap_open: null path or output") }
        let reader = try PSnapReader(path: String(cString: path))
        out.pointee = Unmanaged.passRetained(RunHandle(reader)).toOpaque()
    }
}

/// `psnap_open` of a sharded run opening only the shards that hold the tensors named in `tensors` (a JSON array of
/// names); the run's layout and global indices stay the whole run's (spec/SHARDS.md). For one file, `psnap_open`.
@_cdecl("psnap_open_tensors")
public func psnap_open_tensors(_ path: UnsafePointer<CChar>?, _ tensors: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                               _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        guard let path, let tensors, let out else { throw RequestError(message: "psnap_open_tensors: null path, tensors or output") }
        guard let names = try? JSONDecoder().decode([String].self, from: Data(String(cString: tensors).utf8)) else {
            throw RequestError(message: "psnap_open_tensors: tensors is not a JSON array of names")
        }
        let reader = try PSnapReader(path: String(cString: path), tensors: names)
        out.pointee = Unmanaged.passRetained(RunHandle(reader)).toOpaque()
    }
}

/// Closes a handle from `psnap_open` (once).
@_cdecl("psnap_close")
public func psnap_close(_ h: UnsafeMutableRawPointer?) {
    guard let h else { return }
    Unmanaged<RunHandle>.fromOpaque(h).release()
}

/// The run described as JSON (malloc'd, NUL-terminated; free it with `psnap_free`): its tensors (name, dtype,
/// shape, parameters), its snapshots (index, step, epoch, time, metadata), block size and file facts.
@_cdecl("psnap_describe")
public func psnap_describe(_ h: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                           _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        let r = try run(h)
        guard let out else { throw RequestError(message: "psnap_describe: null output") }
        struct Tensor: Encodable { let name: String; let dtype: String; let shape: [Int]; let parameters: Int }
        struct Snapshot: Encodable { let index: Int; let step: Int64; let epoch: Double?; let time: Double; let metadata: [String: MetaValue]? }
        // Sizes as `snapinfo --json` names them (spec/SNAPINFO.md).
        struct Storage: Encodable {
            let fileBytes: UInt64; let committedBytes: UInt64; let rawBytes: UInt64; let storedBytes: UInt64
            let deadBytes: UInt64; let allocatedBytes: UInt64?
        }
        struct Run: Encodable {
            let path: String; let blockSize: Int; let snapshotCount: Int; let parameterCount: Int; let ignoredBytes: UInt64
            let tensors: [Tensor]; let snapshots: [Snapshot]; let attributes: [String: MetaValue]?; let storage: Storage
        }
        let d = Run(path: r.path, blockSize: r.layout.blockSize, snapshotCount: r.snapshotCount, parameterCount: r.parameterCount,
                    ignoredBytes: r.ignoredBytes,
                    tensors: r.tensors.indices.map { Tensor(name: r.tensors[$0].name, dtype: r.tensors[$0].dtype.rawValue, shape: r.tensors[$0].shape,
                                                             parameters: r.layout.parameterCounts[$0]) },
                    snapshots: r.snapshots.enumerated().map { Snapshot(index: $0.offset, step: $0.element.step, epoch: $0.element.epoch,
                                                                       time: $0.element.time, metadata: $0.element.metadata) },
                    attributes: r.metadata.attributes,
                    storage: Storage(fileBytes: r.fileBytes, committedBytes: r.committedSize,
                                     rawBytes: r.liveRawBytes, storedBytes: r.liveTileBytes,
                                     deadBytes: r.deadBytes, allocatedBytes: r.allocatedBytes))
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        out.pointee = mallocString(Array(try encoder.encode(d)))
    }
}

/// Frees a string from `psnap_describe`.
@_cdecl("psnap_free")
public func psnap_free(_ p: UnsafeMutableRawPointer?) { free(p) }

/// The index of the tensor called `name`; the error names the closest names.
@_cdecl("psnap_tensor_index")
public func psnap_tensor_index(_ h: UnsafeMutableRawPointer?, _ name: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Int64>?,
                               _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        let r = try run(h)
        guard let name, let out else { throw RequestError(message: "psnap_tensor_index: null name or output") }
        out.pointee = Int64(try r.tensorIndex(named: String(cString: name)))
    }
}

/// Parameters [first, end) of tensor `tensor`, every snapshot, as raw values: row-major [parameters × snapshots],
/// `bytes` = (end − first) × snapshots × element size.
@_cdecl("psnap_read_trajectories")
public func psnap_read_trajectories(_ h: UnsafeMutableRawPointer?, _ tensor: Int64, _ first: Int64, _ end: Int64,
                                    _ out: UnsafeMutableRawPointer?, _ bytes: Int64,
                                    _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        let r = try run(h)
        let t = try tensorIndex(r, tensor), n = Int64(r.layout.parameterCounts[t])
        guard first >= 0, first <= end, end <= n else {
            throw RequestError(message: "parameters \(first)..<\(end) of tensor '\(r.tensors[t].name)' out of range (it has \(n))")
        }
        let need = (end - first).multipliedReportingOverflow(by: Int64(r.snapshotCount * r.tensors[t].dtype.size))
        let dst = try output(out, bytes, need.overflow ? -1 : need.partialValue, "psnap_read_trajectories")
        try r.trajectoriesBytes(tensor: t, range: Int(first)..<Int(end), into: UnsafeMutableRawBufferPointer(start: dst, count: Int(bytes)))
    }
}

/// One parameter's trajectory (flat index `index` of tensor `tensor`) as raw values (`bytes` = snapshots × element
/// size), through the reader's tile cache: repeated reads near each other decode a tile once.
@_cdecl("psnap_read_trajectory")
public func psnap_read_trajectory(_ h: UnsafeMutableRawPointer?, _ tensor: Int64, _ index: Int64,
                                  _ out: UnsafeMutableRawPointer?, _ bytes: Int64,
                                  _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        let r = try run(h)
        let t = try tensorIndex(r, tensor)
        guard index >= 0, index < Int64(r.layout.parameterCounts[t]) else {
            throw RequestError(message: "parameter \(index) out of range for tensor '\(r.tensors[t].name)' (\(r.layout.parameterCounts[t]) parameters)")
        }
        let dst = try output(out, bytes, Int64(r.snapshotCount * r.tensors[t].dtype.size), "psnap_read_trajectory")
        let data = try r.trajectoryBytes(tensor: t, index: Int(index))
        data.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
    }
}

/// Tensor `tensor` at snapshot `snapshot` as raw values in row-major order (`bytes` = parameters × element size).
@_cdecl("psnap_read_snapshot")
public func psnap_read_snapshot(_ h: UnsafeMutableRawPointer?, _ tensor: Int64, _ snapshot: Int64,
                                _ out: UnsafeMutableRawPointer?, _ bytes: Int64,
                                _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        let r = try run(h)
        let t = try tensorIndex(r, tensor)
        guard snapshot >= 0, snapshot < Int64(r.snapshotCount) else {
            throw RequestError(message: "snapshot \(snapshot) out of range (the run has \(r.snapshotCount))")
        }
        let dst = try output(out, bytes, Int64(r.layout.parameterCounts[t] * r.tensors[t].dtype.size), "psnap_read_snapshot")
        let data = try r.tensorBytes(tensor: t, snapshot: Int(snapshot))
        data.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
    }
}

// MARK: the training writer

/// A writer behind an opaque handle.
final class WriterHandle {
    let writer: SnapshotWriter
    init(_ writer: SnapshotWriter) { self.writer = writer }
}

private func writer(_ h: UnsafeMutableRawPointer?) throws -> SnapshotWriter {
    guard let h else { throw RequestError(message: "no writer: the handle is null (closed?)") }
    return Unmanaged<WriterHandle>.fromOpaque(h).takeUnretainedValue().writer
}

private func decodeJSON<T: Decodable>(_ type: T.Type, _ text: UnsafePointer<CChar>?, _ what: String) throws -> T {
    guard let text else { throw RequestError(message: "\(what): null JSON") }
    do {
        return try JSONDecoder().decode(T.self, from: Data(String(cString: text).utf8))
    } catch {
        throw RequestError(message: "\(what): malformed JSON (\(error))")
    }
}

/// Opens a run for appending: creates it from `tensors` (JSON [{"name", "dtype", "shape"}]), or, when it exists and
/// `options` says "resume": true, reopens it (a torn tail after its newest commit is cut; a different tensor layout
/// is refused naming the first difference). `options` JSON: blockSize, memoryBytes, snapshotsPerSegment, workers,
/// overwrite, resume, attributes.
@_cdecl("psnap_writer_open")
public func psnap_writer_open(_ path: UnsafePointer<CChar>?, _ tensors: UnsafePointer<CChar>?, _ options: UnsafePointer<CChar>?,
                              _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                              _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        guard let path, let out else { throw RequestError(message: "psnap_writer_open: null path or output") }
        struct Options: Decodable {
            var blockSize: Int?; var memoryBytes: Int?; var snapshotsPerSegment: Int?; var workers: Int?
            var overwrite: Bool?; var resume: Bool?; var attributes: [String: MetaValue]?
            var spaceBound: Double?   // §10 space bound; 0: off (the tiered plan alone)
        }
        let given = try decodeJSON([TensorInfo].self, tensors, "tensors")
        let o = try decodeJSON(Options.self, options, "options")
        var opts = WriterOptions()
        if let b = o.blockSize { opts.blockSize = b }
        if let m = o.memoryBytes {
            guard m >= 1 << 20 else { throw RequestError(message: "memory \(m) bytes: at least 1 MiB") }
            opts.memoryBudget = m
        }
        if let s = o.snapshotsPerSegment {
            guard s >= 1 else { throw RequestError(message: "snapshots per segment \(s): at least 1") }
            opts.snapshotsPerSegment = s
        }
        if let w = o.workers, w >= 1 { opts.workers = w }
        if let b = o.spaceBound {
            guard b == 0 || Spec.spaceBoundRange.contains(b) else {
                throw RequestError(message: "space bound \(b): 0 (off) or a ratio from \(Spec.spaceBoundRange.lowerBound) to \(Spec.spaceBoundRange.upperBound)")
            }
            opts.spaceBound = b == 0 ? nil : b
        }
        opts.overwrite = o.overwrite ?? false
        opts.attributes = o.attributes
        let p = String(cString: path)
        let w: SnapshotWriter
        if (o.resume ?? true) && !(o.overwrite ?? false) && FileManager.default.fileExists(atPath: p) {
            w = try SnapshotWriter.open(path: p, expecting: given, options: opts)
        } else {
            do {
                w = try SnapshotWriter.create(path: p, tensors: given, options: opts)
            } catch let e as FormatError {
                throw RequestError(message: "\(e)")     // a block size or tensor list given, not a damaged file
            }
        }
        out.pointee = Unmanaged.passRetained(WriterHandle(w)).toOpaque()
    }
}

/// The writer's tensors in its order (JSON, malloc'd; free with `psnap_free`): append's buffers come in this order.
@_cdecl("psnap_writer_tensors")
public func psnap_writer_tensors(_ h: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                                 _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        let w = try writer(h)
        guard let out else { throw RequestError(message: "psnap_writer_tensors: null output") }
        out.pointee = mallocString(Array(try JSONEncoder().encode(w.layout.tensors)))
    }
}

/// Stages one snapshot (committed every `snapshotsPerSegment`, or by `psnap_writer_commit`): `info` JSON {step, epoch,
/// time, metadata}; `buffers[i]` / `sizes[i]` the raw little-endian values of the writer's tensor i.
@_cdecl("psnap_writer_append")
public func psnap_writer_append(_ h: UnsafeMutableRawPointer?, _ info: UnsafePointer<CChar>?,
                                _ buffers: UnsafePointer<UnsafeRawPointer?>?, _ sizes: UnsafePointer<Int64>?, _ count: Int64,
                                _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        let w = try writer(h)
        let s = try decodeJSON(SnapshotInfo.self, info, "snapshot")
        guard count >= 0, count == Int64(w.layout.tensors.count), let sizes else {
            throw RequestError(message: "\(count) buffers for \(w.layout.tensors.count) tensors")
        }
        var list: [UnsafeRawBufferPointer] = []
        for i in 0..<Int(count) {
            guard sizes[i] >= 0 else { throw RequestError(message: "tensor '\(w.layout.tensors[i].name)': size \(sizes[i])") }
            let p = buffers?[i]
            guard p != nil || sizes[i] == 0 else { throw RequestError(message: "tensor '\(w.layout.tensors[i].name)': null buffer") }
            list.append(UnsafeRawBufferPointer(start: p, count: Int(sizes[i])))
        }
        try w.append(s, buffers: list)
    }
}

/// Commits the staged snapshots (durable when it returns); `committed` gets the snapshots the file now holds.
@_cdecl("psnap_writer_commit")
public func psnap_writer_commit(_ h: UnsafeMutableRawPointer?, _ committed: UnsafeMutablePointer<Int64>?,
                                _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guarded(err, cap) {
        let w = try writer(h)
        _ = try w.commit()
        committed?.pointee = Int64(w.committedSnapshots)
    }
}

/// Commits what is staged and closes the writer; the handle is released even when the commit fails.
@_cdecl("psnap_writer_close")
public func psnap_writer_close(_ h: UnsafeMutableRawPointer?, _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) -> Int32 {
    guard let h else { return 0 }
    let box = Unmanaged<WriterHandle>.fromOpaque(h)
    defer { box.release() }
    return guarded(err, cap) { try box.takeUnretainedValue().writer.close() }
}
