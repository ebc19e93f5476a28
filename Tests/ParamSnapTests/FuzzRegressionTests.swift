// Fuzz regressions: every file in fixtures/fuzz-regressions (inputs that crashed a fuzzer once, plus hand-made
// nasty files), the golden fixtures, and nasty variants made here (truncations, forged index fields, hostile
// metadata) go through the fuzz-reader's read-everything routine. A thrown error is fine; a crash is the bug.
// `readEverything` and `fixChecksums` are copies of tools/fuzz/Sources/FuzzSupport/ReadEverything.swift: keep
// them in step.
import Foundation
import Glibc
import Testing
import ParamSnap

@Suite struct FuzzRegressionTests {
    static let regressions = repoRoot + "/fixtures/fuzz-regressions"
    static let golden = repoRoot + "/fixtures/golden"

    static func files(_ dir: String, suffix: String? = nil) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { n in
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: dir + "/" + n, isDirectory: &isDir)
            return !isDir.boolValue && !n.hasPrefix(".") && !n.hasSuffix(".md") && (suffix.map { n.hasSuffix($0) } ?? true)
        }.sorted().map { dir + "/" + $0 }
    }

    /// .psnap inputs at the top of the folder; dump-format inputs (fuzz-safetensors) in dumps/.
    static var regressionFiles: [String] { files(regressions) }
    static var dumpRegressionFiles: [String] { files(regressions + "/dumps") }
    static var goldenFiles: [String] { files(golden, suffix: ".psnap") }

    @Test func regressionFolderIsNotEmpty() {
        #expect(!Self.regressionFiles.isEmpty, "fixtures/fuzz-regressions holds the fuzzers' crash inputs")
    }

    @Test(arguments: regressionFiles + goldenFiles)
    func replay(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let dir = tempDir("fuzzreplay")
        defer { cleanup(dir) }
        FuzzRead.allVariants(bytes, path: dir + "/in.psnap", repair: true)
    }

    /// Every regression input through the dump parsers too (the fuzz-safetensors routine).
    @Test(arguments: dumpRegressionFiles + regressionFiles)
    func replayDumps(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let dir = tempDir("fuzzdumps")
        defer { cleanup(dir) }
        FuzzRead.dumps(bytes, path: dir + "/in.safetensors")
    }

    /// §7: metadata with only the required keys ("format" absent) opens and reads back.
    @Test func minimalMetadataOpens() throws {
        let r = try PSnapReader(path: Self.regressions + "/nasty-minimal-metadata.psnap")
        #expect(r.tensors.map(\.name) == ["w"])
        #expect(try r.trajectory(tensor: "w", index: 1) == [2])
    }

    /// `--steps` at the ends of Int64 (crashed fuzz-safetensors: overflow in parsing and in `contains`).
    @Test func stepSelectionAtInt64Limits() throws {
        let top = try #require(StepSelection(parsing: "9223372036854775807"))
        #expect(top.contains(.max, first: 0) && !top.contains(.max - 1, first: 0))
        let all = try #require(StepSelection(parsing: "-9223372036854775808:"))
        #expect(all.contains(.max, first: .min) && all.contains(0, first: 0))
        let strided = try #require(StepSelection(parsing: "::2"))
        #expect(strided.contains(0, first: .min) && !strided.contains(.max, first: .min))
    }

    /// Every golden file cut at awkward lengths, as is and with its checksums recomputed.
    @Test(arguments: goldenFiles)
    func truncations(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let dir = tempDir("fuzztrunc")
        defer { cleanup(dir) }
        let n = bytes.count
        for cut in Set([0, 1, 8, 63, 64, 65, 127, 191, 192, 193, n / 2, n - 129, n - 128, n - 127, n - 64, n - 1])
        where cut >= 0 && cut < n {
            FuzzRead.allVariants(Array(bytes[0..<cut]), path: dir + "/in.psnap")
        }
    }

    /// Each field of the first, a middle and the last index entry forged to extreme values (checksums fixed up, so
    /// the reader's own checks must catch them).
    @Test(arguments: goldenFiles)
    func forgedIndexEntries(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let dir = tempDir("fuzzindex")
        defer { cleanup(dir) }
        let f = bytes.count - 128
        // Only files whose last 128 bytes are the newest footer (not torn.psnap).
        guard Array(bytes[f..<(f + 8)]) == Spec.footerMagic else { return }
        let io = Int(FuzzRead.u64(bytes, f + 32)), tiles = Int(FuzzRead.u64(bytes, f + 88))
        guard tiles > 0 else { return }
        let size = UInt64(bytes.count)
        let values: [UInt64] = [0, 1, 63, 64, size - 1, size, 1 << 31, (1 << 31) - 1, 1 << 32, 1 << 62, 1 << 63, .max]
        for e in Set([0, tiles / 2, tiles - 1]) {
            for field in stride(from: 0, to: 56, by: 8) {
                for v in values {
                    var b = bytes
                    FuzzRead.put(&b, io + e * 64 + field, v)
                    FuzzRead.allVariants(b, path: dir + "/in.psnap", fix: true)
                }
            }
            // Two live tiles sharing their stored bytes (the index rules do not forbid it).
            if tiles > 1 {
                var b = bytes
                let other = e == 0 ? 1 : 0
                for o in [32, 40] { FuzzRead.put(&b, io + e * 64 + o, FuzzRead.u64(bytes, io + other * 64 + o)) }
                FuzzRead.allVariants(b, path: dir + "/in.psnap", fix: true)
            }
        }
    }

    /// The newest commit's metadata replaced by hostile JSON (footer lengths and checksums fixed up).
    @Test func hostileMetadata() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.golden + "/segments.psnap")))
        let dir = tempDir("fuzzmeta")
        defer { cleanup(dir) }
        let f = bytes.count - 128
        let mo = Int(FuzzRead.u64(bytes, f + 56))
        let snaps = #"[{"step":0,"time":0},{"step":1,"time":1}]"#
        let jsons = [
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[4611686018427387904,4]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[9223372036854775807]},{"name":"b","dtype":"f32","shape":[1]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[-1]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[16777216,16777216]}],"snapshots":\#(snaps)}"#,
            #"{"tensors":[{"name":"","dtype":"f32","shape":[]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[]},{"name":"a","dtype":"f32","shape":[]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"i8","shape":[]}],"snapshots":[]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}],"snapshots":[]}"#,
            #"{"tensors":[],"snapshots":\#(snaps)}"#,
            #"{"tensors":[{"name":"a","dtype":"f64","shape":[0]}],"snapshots":\#(snaps)}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[3]}],"snapshots":[{"step":1e300,"time":0}]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[3]}],"snapshots":[{"step":0,"time":1e999}]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[3]}],"snapshots":[{"step":0,"time":0,"metadata":{"x":[1]}}]}"#,
            #"{"tensors":[{"name":"a","dtype":"f32","shape":[3]}],"snapshots":[{"step":0,"time":0}],"tensors":[]}"#,
            "[", "", "null", "{}", String(repeating: "[", count: 10000),
        ]
        for j in jsons {
            for (sc, pc) in [(UInt64(0), UInt64(0)), (2, 0), (2, 1 << 62), (0, UInt64.max)] {
                var b = Array(bytes[0..<mo]) + Array(j.utf8) + Array(bytes[f...])
                let nf = b.count - 128
                FuzzRead.put(&b, nf + 64, UInt64(j.utf8.count))
                FuzzRead.put(&b, nf + 80, sc)
                FuzzRead.put(&b, nf + 96, pc)
                FuzzRead.allVariants(b, path: dir + "/in.psnap", fix: true)
            }
        }
    }
}

/// Copy of the fuzz-reader's routine (tools/fuzz/Sources/FuzzSupport/ReadEverything.swift).
enum FuzzRead {
    static let decodeBudget: UInt64 = 64 << 20
    static let rawCap: UInt64 = 256 << 20

    /// Reads `bytes` as a file: as given (with and without tile checksums) and with every checksum recomputed.
    static func allVariants(_ bytes: [UInt8], path: String, fix: Bool = true, repair: Bool? = nil) {
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
        // The fuzzer repairs a quarter of its inputs (it writes a file); the replay test repairs every one.
        let h = XXH64.hash(fixed)
        if repair ?? (h % 4 == 0) { repairAndCheck(path: path, output: path + ".repaired") }
        if repair ?? (h % 4 == 1) { appendAndCheck(path: path, copy: path + ".appended") }
    }

    /// Reopens an intact copy with `SnapshotWriter.open` and appends one snapshot: may throw, but when it succeeds
    /// every old value must read back unchanged and the new snapshot exactly.
    static func appendAndCheck(path: String, copy: String) {
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

    /// `SnapshotWriter.repair(skipDamaged: true)`: may throw, but a repaired file must open, hold the same tensors
    /// and snapshots, and have no damaged tile.
    static func repairAndCheck(path: String, output: String) {
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

    @discardableResult
    static func run(path: String, verifyChecksums: Bool = true, workers: Int = 2) -> Int {
        let reader: PSnapReader
        do { reader = try PSnapReader(path: path, verifyChecksums: verifyChecksums) } catch { return 1 }
        var errors = 0
        func attempt(_ body: () throws -> Void) { do { try body() } catch { errors += 1 } }
        _ = reader.segments
        _ = reader.liveTileBytes
        _ = reader.liveMetaBytes
        _ = reader.committedSize
        _ = reader.deadBytes
        _ = reader.ignoredBytes
        for i in reader.tiles.indices { _ = reader.tileName(i) }
        let totalRaw = reader.tiles.reduce(UInt64(0)) { $0 &+ $1.rawLength }
        guard totalRaw <= rawCap else { return errors }
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
        attempt { _ = try reader.tensorBytes(tensor: reader.tensors.count, snapshot: 0) }
        attempt { _ = try reader.tensorBytes(tensor: 0, snapshot: S) }
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

    /// A plain write (no fsync: thousands of variants are written).
    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "cannot create \(path): errno \(errno)")
        defer { close(fd) }
        var done = 0
        bytes.withUnsafeBytes { b in
            while done < b.count {
                let w = write(fd, b.baseAddress! + done, b.count - done)
                precondition(w > 0, "write \(path): errno \(errno)")
                done += w
            }
        }
    }

    /// Copy of the fuzz-safetensors body (tools/fuzz/Sources/fuzz-safetensors/FuzzSafeTensors.swift).
    static func dumps(_ bytes: [UInt8], path: String) {
        writeFile(path, bytes)
        for skip in [false, true] {
            guard let f = try? SafeTensorsFile(path: path, skipUnsupported: skip) else { continue }
            for (i, e) in f.entries.enumerated() {
                let b = f.bytes(i)
                precondition(b.count == e.end - e.begin, "entry \(i) bytes mismatch")
                _ = XXH64.hash(b)
                _ = f.bytes(named: e.info.name)
            }
        }
        bytes.withUnsafeBytes { buf in
            if let h = try? NpyHeader.parse(buf, path: "fuzz.npy") {
                precondition(h.dataOffset <= buf.count, "npy data offset beyond the buffer")
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
        _ = DumpNames.stepNumber(text)
        _ = DumpNames.arrayName(fromStem: text)
        _ = DumpNames.naturalLess(text, "epoch-10")
        let parts = text.split(separator: "\n", maxSplits: 1).map(String.init)
        if parts.count == 2 { _ = DumpNames.globMatch(String(parts[0].prefix(32)), String(parts[1].prefix(64))) }
    }

    static func u64(_ b: [UInt8], _ o: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(b[o + i]) << (8 * UInt64(i)) }
        return v
    }

    static func put(_ b: inout [UInt8], _ o: Int, _ v: UInt64) {
        for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    static func hash(_ b: [UInt8], _ r: Range<Int>) -> UInt64 {
        b.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer(rebasing: $0[r])) }
    }

    /// Recomputes the header checksum and, for the footer in the last 128 bytes, every tile checksum of its
    /// index, the index and metadata checksums and the footer checksum.
    static func fixChecksums(_ b: inout [UInt8]) {
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
}
