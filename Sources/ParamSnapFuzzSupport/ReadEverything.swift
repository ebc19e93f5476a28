// The read-everything routines shared by the fuzz targets (tools/fuzz) and Tests/ParamSnapTests/FuzzRegressionTests.swift:
// open a .psnap file and read everything it claims to hold. Thrown errors are fine; a crash, trap or sanitizer
// report is a bug.
import PSnapImport
import Foundation
import Glibc
@_spi(Internals) import ParamSnap

public enum ReadEverything {
    /// Decoding work the harness allows per input (bytes of decoded tiles). Spec-legal files may declare tiles of
    /// up to 2 GiB each; decoding those is slow but not a bug, so the harness samples instead of timing out.
    public static let decodeBudget: UInt64 = 64 << 20
    /// Above this much raw tile data in total the harness only opens the file and checks the index.
    public static let rawCap: UInt64 = 256 << 20

    /// Opens `path` and reads every tensor at every snapshot, the first and last trajectory of each tensor,
    /// `verifyAll`, a full `scan` and the summaries. Returns how many calls threw.
    @discardableResult
    public static func run(path: String, verifyChecksums: Bool = true, workers: Int = 1) -> Int {
        let reader: PSnapReader
        do { reader = try PSnapReader(path: path, verifyChecksums: verifyChecksums) } catch { return 1 }
        var errors = 0
        func attempt(_ body: () throws -> Void) { do { try body() } catch { errors += 1 } }

        // Summaries (snapinfo prints these).
        _ = reader.segments
        _ = reader.liveTileBytes
        _ = reader.liveMetaBytes
        _ = reader.committedSize
        _ = reader.deadBytes
        _ = reader.ignoredBytes
        for i in reader.tiles.indices { _ = reader.tileName(i) }

        let totalRaw = reader.tiles.reduce(UInt64(0)) { $0 &+ $1.rawLength }
        guard totalRaw <= rawCap else { return errors }

        // Every tensor at every snapshot (sampled when that would decode more than the budget).
        let S = reader.snapshotCount
        let perSnapshotWork = reader.tiles.reduce(UInt64(0)) { $0 &+ $1.rawLength &* $1.snapshotCount }
        var snaps = Array(0..<S)
        if perSnapshotWork > decodeBudget {
            var s = Set([0, S / 2, S - 1].filter { $0 >= 0 && $0 < S })
            for r in reader.segments.prefix(8) { s.insert(r.lowerBound); s.insert(r.upperBound - 1) }
            snaps = s.filter { $0 >= 0 && $0 < S }.sorted()
        }
        for t in reader.tensors.indices {
            for k in snaps { attempt { _ = try reader.tensorBytes(tensor: t, snapshot: k) } }
            attempt { _ = try reader.tensorBytes(tensor: reader.tensors[t].name, snapshot: 0) }
        }
        // Out-of-range requests must throw, not trap.
        attempt { _ = try reader.tensorBytes(tensor: reader.tensors.count, snapshot: 0) }
        attempt { _ = try reader.tensorBytes(tensor: 0, snapshot: S) }

        // First and last parameter of each tensor, by flat index, by global index and as a range.
        for t in reader.tensors.indices {
            let n = reader.layout.parameterCounts[t]
            for p in Set([0, n - 1]) where p >= 0 {
                attempt { _ = try reader.trajectory(tensor: t, index: p) }
            }
            attempt { _ = try reader.trajectories(tensor: t, range: 0..<min(n, 2)) }
            attempt { _ = try reader.trajectories(tensor: t, range: max(0, n - 2)..<n) }
            attempt { _ = try reader.trajectory(tensor: t, index: n) }
        }
        if reader.parameterCount > 0 {
            attempt { _ = try reader.trajectory(global: 0) }
            attempt { _ = try reader.trajectory(global: reader.parameterCount - 1) }
        }
        attempt { _ = try reader.trajectory(global: reader.parameterCount) }

        // Every tile's checksum and decode, then a full scan touching every decoded byte.
        _ = reader.verifyAll(workers: workers)
        attempt {
            try reader.scan(workers: workers) { tile, _ in
                _ = XXH64.hash(tile.raw)
                let n = tile.parameters * tile.snapshots
                precondition(tile.raw.count >= n * tile.dtype.size, "scan handed a short tile")
                let d = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(n, 1))
                defer { d.deallocate() }
                tile.values(into: UnsafeMutableBufferPointer(rebasing: d[0..<n]))
            }
        }
        return errors
    }

    /// Reads `bytes` as a file: as given, without tile checksums, and once more with every checksum recomputed
    /// (so mutations reach past the XXH64 checks into the index, metadata and codec paths).
    /// `fixChecksums: false` reads only the bytes as given; `extras` forces (true) or skips (false) the repair and
    /// append checks, which by default run on a quarter of the inputs each (or all with PSNAP_FUZZ_ALL=1).
    public static func runAllVariants(bytes: [UInt8], path: String, fixChecksums fix: Bool = true, extras: Bool? = nil) {
        writeFile(path, bytes)
        run(path: path, verifyChecksums: true)
        run(path: path, verifyChecksums: false)
        guard fix else { return }
        var fixed = bytes
        fixChecksums(&fixed)
        if fixed != bytes {
            writeFile(path, fixed)
            run(path: path, verifyChecksums: true)
        }
        // A quarter of the inputs (it writes a file): `psnap repair` of what was read last.
        let h = XXH64.hash(fixed)
        if extras ?? (h % 4 == 0 || forceAll) { repairAndCheck(path: path, output: path + ".repaired") }
        // Another quarter: resume writing (`psnap append`) on what was read last.
        if extras ?? (h % 4 == 1 || forceAll) { appendAndCheck(path: path, copy: path + ".appended") }
    }

    /// Reopens an intact copy of `path` with `SnapshotWriter.open` and appends one snapshot: may throw, but when it
    /// succeeds the file must read back every old value unchanged and the new snapshot exactly.
    public static func appendAndCheck(path: String, copy: String) {
        guard let r = try? PSnapReader(path: path),
              r.tiles.reduce(UInt64(0), { $0 &+ $1.rawLength }) <= 16 << 20,
              UInt64(r.parameterCount) &* UInt64(r.snapshotCount + 1) <= 1 << 20,
              r.verifyAll(workers: 1).isEmpty else { return }
        var old: [[[UInt8]]] = []
        for k in 0..<r.snapshotCount {
            guard let snap = try? r.tensors.indices.map({ try r.tensorBytes(tensor: $0, snapshot: k) }) else { return }
            old.append(snap)
        }
        guard let bytes = FileManager.default.contents(atPath: path) else { return }
        unlink(copy)
        defer { unlink(copy) }
        writeFile(copy, [UInt8](bytes))
        var o = WriterOptions()
        o.workers = 1
        o.snapshotsPerSegment = 1
        let new = r.tensors.enumerated().map { t, info in
            (0..<(r.layout.parameterCounts[t] * info.dtype.size)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ t) }
        }
        do {
            let w = try SnapshotWriter.open(path: copy, expecting: r.tensors, options: o)
            try SnapshotWriter.withBuffers(new) { try w.append(SnapshotInfo(step: (r.snapshots.last?.step ?? 0) &+ 1, time: 1), buffers: $0) }
            try w.close()
        } catch { return }
        let rr: PSnapReader
        do { rr = try PSnapReader(path: copy) } catch { preconditionFailure("file does not open after an append: \(error)") }
        precondition(rr.snapshotCount == r.snapshotCount + 1 && rr.tensors == r.tensors, "append lost tensors or snapshots")
        for t in r.tensors.indices {
            for k in 0...r.snapshotCount {
                let got: [UInt8]
                do { got = try rr.tensorBytes(tensor: t, snapshot: k) } catch { preconditionFailure("after an append, tensor \(t) snapshot \(k): \(error)") }
                precondition(got == (k < r.snapshotCount ? old[k][t] : new[t]), "after an append, tensor \(t) at snapshot \(k) changed")
            }
        }
    }

    /// `SnapshotWriter.repair(skipDamaged: true)` of `path`: may throw, but a repaired file must open, hold the
    /// same tensors and snapshots, and have no damaged tile.
    public static func repairAndCheck(path: String, output: String) {
        guard let r = try? PSnapReader(path: path),
              r.tiles.reduce(UInt64(0), { $0 &+ $1.rawLength }) <= 16 << 20,
              UInt64(r.parameterCount) &* UInt64(max(r.snapshotCount, 1)) <= 4 << 20 else { return }
        unlink(output)
        defer { unlink(output) }
        var o = WriterOptions()
        o.workers = 1
        guard (try? SnapshotWriter.repair(input: path, output: output, skipDamaged: true, options: o)) != nil else { return }
        let rr: PSnapReader
        do { rr = try PSnapReader(path: output) } catch { preconditionFailure("repaired file does not open: \(error)") }
        precondition(rr.tensors == r.tensors && rr.snapshotCount == r.snapshotCount, "repaired file lost tensors or snapshots")
        let damage = rr.verifyAll(workers: 1)
        precondition(damage.isEmpty, "repaired file has damaged tiles: \(damage)")
    }

    /// PSNAP_FUZZ_ALL=1: repair and append every input (replaying single files).
    static let forceAll = ProcessInfo.processInfo.environment["PSNAP_FUZZ_ALL"] != nil

    public static func writeFile(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "cannot create \(path): errno \(errno)")
        defer { close(fd) }
        bytes.withUnsafeBytes { b in
            do { try PositionalIO.write(b, to: fd, at: 0, path: path) } catch { preconditionFailure("\(error)") }
        }
    }

    public static func u64(_ b: [UInt8], _ o: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(b[o + i]) << (8 * UInt64(i)) }
        return v
    }

    public static func put(_ b: inout [UInt8], _ o: Int, _ v: UInt64) {
        for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    static func hash(_ b: [UInt8], _ r: Range<Int>) -> UInt64 {
        b.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer(rebasing: $0[r])) }
    }

    /// Recomputes the header checksum and, for the footer in the last 128 bytes (when its ranges lie inside the
    /// file), every tile checksum of its index, the index and metadata checksums and the footer checksum.
    public static func fixChecksums(_ b: inout [UInt8]) {
        guard b.count >= 64 else { return }
        put(&b, 56, hash(b, 0..<56))
        guard b.count >= 192 else { return }
        let f = b.count - 128
        let io = u64(b, f + 32), il = u64(b, f + 40), mo = u64(b, f + 56), ml = u64(b, f + 64)
        let n = UInt64(b.count)
        if io <= n, il <= n - io, il % 64 == 0 {
            for e in stride(from: Int(io), to: Int(io + il), by: 64) {
                let off = u64(b, e + 32), len = u64(b, e + 40)
                if off <= n, len <= n - off { put(&b, e + 56, hash(b, Int(off)..<Int(off + len))) }
            }
            put(&b, f + 48, hash(b, Int(io)..<Int(io + il)))
        }
        if mo <= n, ml <= n - mo { put(&b, f + 72, hash(b, Int(mo)..<Int(mo + ml))) }
        put(&b, f + 112, hash(b, f..<(f + 112)))
    }

    /// A per-process scratch path on tmpfs.
    public static func scratchPath(_ tag: String) -> String {
        let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return "\(dir)/psnap-fuzz-\(tag)-\(getpid())"
    }

    /// Arbitrary bytes through the dump parsers: as a safetensors file (every declared tensor's bytes read), as an
    /// .npy header, as a zip/.npz archive (every member listed, stored/deflated members read back with their CRC),
    /// as HF shard index / trainer_state JSON, and the first line as a --steps selection and a name.
    public static func dumps(bytes: [UInt8], path: String) {
        writeFile(path, bytes)
        for skip in [false, true] {
            guard let f = try? SafeTensorsFile(path: path, skipUnsupported: skip) else { continue }
            var sum: UInt64 = 0
            for (i, e) in f.entries.enumerated() {
                let b = f.bytes(i)
                precondition(b.count == e.end - e.begin, "entry \(i) bytes mismatch")
                precondition(b.count == e.info.parameterCount! * e.info.dtype.size, "entry \(i) size does not match its shape")
                sum &+= XXH64.hash(b)
                _ = f.bytes(named: e.info.name)
            }
            _ = f.tensors
            _ = sum
        }
        bytes.withUnsafeBytes { buf in
            if let h = try? NpyHeader.parse(buf, path: "fuzz.npy") {
                precondition(h.dataOffset <= buf.count, "npy data offset beyond the buffer")
                _ = h.shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            }
            _ = ZipArchive.looksLikeZip(buf)
            if let members = try? ZipArchive.members(buf, path: "fuzz.npz") {
                for m in members {
                    precondition(m.dataOffset >= 0 && m.compressedSize >= 0 && m.dataOffset + m.compressedSize <= buf.count,
                                 "zip member '\(m.name)' outside the buffer")
                    let src = UnsafeRawBufferPointer(rebasing: buf[m.dataOffset..<(m.dataOffset + m.compressedSize)])
                    if m.method == 8 {
                        var crc: UInt32 = 0
                        _ = try? RawInflate.inflate(src, path: "fuzz.npz", member: m.name, chunk: 1 << 16) { chunk in
                            crc = RawInflate.crc32(chunk, continuing: crc)
                            return true
                        }
                    } else {
                        _ = RawInflate.crc32(src)
                    }
                }
            }
        }
        let d = Data(bytes)
        _ = try? HFShardIndex.parse(d, path: "index.json")
        if let log = try? TrainerLog.parse(d, path: "trainer_state.json") {
            _ = log.snapshotMetadata(step: 0)
            _ = log.snapshotMetadata(step: log.globalStep ?? 1)
        }
        let text = String(decoding: bytes.prefix(256), as: UTF8.self)
        if let sel = StepSelection(parsing: text) {
            for s: Int64 in [0, 1, 7, -3, .max, .min] { _ = sel.contains(s, first: 0); _ = sel.contains(s, first: .min) }
        }
        _ = try? DumpNames.stepNumber(text, path: "name")
        _ = DumpNames.arrayName(fromStem: text)
        _ = DumpNames.naturalLess(text, "epoch-10")
        let parts = text.split(separator: "\n", maxSplits: 1).map(String.init)
        if parts.count == 2 { _ = TensorNameFilter.matches(String(parts[0].prefix(32)), String(parts[1].prefix(64))) }
    }
}
