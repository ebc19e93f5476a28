// Sharded runs (spec/SHARDS.md): a folder of shard `.psnap` files and a manifest, opened as one run; and the split of
// a run into shards by copying its tiles (no re-encoding, so the shards hold the same bytes the file did).
import PSnapFormat
import Foundation

/// Opening and writing sharded runs.
public enum ShardedRun {
    /// A sharded run as one run: what `PSnapReader` reads (spec/SHARDS.md §4).
    struct Opened {
        let manifest: ShardManifest
        let shards: [PSnapReader]
        let metadata: FileMetadata
        let layout: RunLayout
        let tiles: [TileIndexEntry]
        let tileFile: [UInt32]
        let blockFirstTile: [Int]
        /// Opened for some tensors only: which (nil: all).
        let opened: [Bool]?
    }

    /// Opens the manifest of `folder` and every shard it names, checked against each other (§2–§3).
    /// `only`: open only the shards holding a part of these tensors (the others' newest footers still count for
    /// the snapshots every shard holds, §3).
    static func open(folder: String, verifyChecksums: Bool, only: [String]? = nil) throws -> Opened {
        guard let m = try manifest(of: folder) else { throw ShardError.noManifest(folder: folder) }
        // The shards to open: all, or those holding a part of the tensors asked for.
        var wantedTensors: [Bool]? = nil
        if let only {
            var w = [Bool](repeating: false, count: m.tensors.count)
            for name in only {
                guard let t = m.tensors.firstIndex(where: { TensorName.same($0.name, name) }) else {
                    throw ReaderError.noSuchTensor(name, suggestions: NameSuggestion.closest(to: name, in: m.tensors.map(\.name)))
                }
                w[t] = true
            }
            wantedTensors = w
        }
        var openShard = m.shards.map { sh in wantedTensors.map { w in sh.parts.contains { w[$0.tensor] } } ?? true }
        if !openShard.contains(true) { openShard[0] = true }   // no tensor asked for: the run's facts from one shard
        // What the shards left closed hold (their newest footers): the snapshots every shard holds count them too.
        var closedCount = Int.max
        for (s, shard) in m.shards.enumerated() where !openShard[s] {
            let p = folder + "/" + shard.file
            guard FileManager.default.fileExists(atPath: p) else { throw ShardError.missingShard(path: p) }
            guard let count = committedSnapshots(p) else { throw ShardError.damagedShard(path: p, reason: "no readable footer at its end") }
            closedCount = min(closedCount, count)
        }
        var readers: [PSnapReader] = []
        var shardOf: [Int] = []   // manifest index of each opened reader
        for (s, shard) in m.shards.enumerated() where openShard[s] {
            let p = folder + "/" + shard.file
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { throw ShardError.missingShard(path: p) }
            guard !isDir.boolValue else { throw ShardError.damagedShard(path: p, reason: "a folder, not a .psnap file") }
            let r: PSnapReader
            do { r = try PSnapReader(path: p, verifyChecksums: verifyChecksums) } catch let e as ParamSnapError {
                if case .io = e.kind { throw e }
                throw ShardError.damagedShard(path: p, reason: e.description)
            }
            func mismatch(_ why: String) -> ShardError { .shardMismatch(path: p, reason: why) }
            guard r.header.blockSize == UInt64(m.blockSize) else { throw mismatch("block size \(r.header.blockSize), the manifest says \(m.blockSize)") }
            if let first = readers.first, r.header.codecChain != first.header.codecChain {
                throw mismatch("codec chain \(r.header.codecChain), \(m.shards[0].file) has \(first.header.codecChain)")
            }
            let want = m.shardTensors(s)
            guard r.tensors.count == want.count else { throw mismatch("\(r.tensors.count) tensors, the manifest lists \(want.count) parts") }
            for (j, (have, expected)) in zip(r.tensors, want).enumerated() where have != expected {
                throw mismatch("tensor \(j) is '\(have.name)' \(have.dtype) \(have.shape), the manifest's part is '\(expected.name)' \(expected.dtype) \(expected.shape)")
            }
            readers.append(r)
            shardOf.append(s)
        }
        // §3: the snapshots every shard holds, on the same steps. A shard that merged a segment across them is read
        // at its newest commit holding no more (its writer keeps that commit's space while it is ahead); that may
        // lower what every shard holds, so until nothing changes.
        var V = min(readers.map(\.snapshotCount).min() ?? 0, closedCount)
        var settled = false
        while !settled {
            settled = true
            for (k, r) in readers.enumerated() where r.snapshotCount > V && Self.straddles(r, V) {
                let p = folder + "/" + m.shards[shardOf[k]].file
                // (A commit of no snapshots is where every file starts: not a fallback, the shard was rewritten.)
                guard let older = CommitSearch.newest(r.file.bytes, blockSize: Int(r.header.blockSize), atMostSnapshots: V),
                      older.metadata.snapshots.count > 0 else {
                    throw ShardError.shardAhead(path: p, visible: V, tile: r.tileName(r.tiles.firstIndex { Self.straddles($0, V) } ?? 0))
                }
                r.file.lockShared(at: older.footerOffset)
                readers[k] = PSnapReader(path: p, file: r.file, header: r.header, commit: older, verifyChecksums: verifyChecksums)
                if older.metadata.snapshots.count < V { V = older.metadata.snapshots.count; settled = false }
            }
        }
        let first = readers[0]
        for (k, r) in readers.enumerated().dropFirst() {
            for i in 0..<V where r.snapshots[i].step != first.snapshots[i].step {
                throw ShardError.shardMismatch(path: folder + "/" + m.shards[shardOf[k]].file,
                                               reason: "snapshot \(i) has step \(r.snapshots[i].step), \(m.shards[shardOf[0]].file) has \(first.snapshots[i].step)")
            }
        }
        // §4: the run's tiles, block by block.
        let layout = RunLayout(tensors: m.tensors, blockSize: m.blockSize)
        var readerOf = [Int?](repeating: nil, count: m.shards.count)
        for (k, s) in shardOf.enumerated() { readerOf[s] = k }
        var holder = [[(reader: Int?, shard: Int, part: Int, start: Int)]](repeating: [], count: m.tensors.count)
        for (s, shard) in m.shards.enumerated() {
            for (j, p) in shard.parts.enumerated() { holder[p.tensor].append((readerOf[s], s, j, p.start)) }
        }
        // A tensor is readable when every shard holding a part of it was opened.
        let opened = holder.map { parts in parts.allSatisfy { $0.reader != nil } }
        var tiles: [TileIndexEntry] = [], tileFile: [UInt32] = [], blockFirstTile: [Int] = []
        if V > 0 {
            blockFirstTile.reserveCapacity(layout.totalBlocks + 1)
            for t in m.tensors.indices {
                guard opened[t] else {
                    for _ in 0..<layout.blockCounts[t] { blockFirstTile.append(tiles.count) }   // no tiles: not opened
                    continue
                }
                for (k, s, j, start) in holder[t].sorted(by: { $0.start < $1.start }) {
                    let r = readers[k!], b0 = start / m.blockSize
                    for b in 0..<r.layout.blockCounts[j] {
                        blockFirstTile.append(tiles.count)
                        for i in r.tileRange(tensor: j, block: b) {
                            let x = r.tiles[i]
                            guard x.firstSnapshot < UInt64(V) else { continue }
                            guard x.firstSnapshot + x.snapshotCount <= UInt64(V) else {
                                throw ShardError.shardAhead(path: folder + "/" + m.shards[s].file, visible: V, tile: r.tileName(i))
                            }
                            tiles.append(TileIndexEntry(tensor: UInt32(t), flags: x.flags, block: UInt64(b0 + b), firstSnapshot: x.firstSnapshot,
                                                        snapshotCount: x.snapshotCount, offset: x.offset, storedLength: x.storedLength,
                                                        rawLength: x.rawLength, checksum: x.checksum))
                            tileFile.append(UInt32(k!))
                        }
                    }
                }
            }
            blockFirstTile.append(tiles.count)
        }
        let metadata = FileMetadata(tensors: m.tensors, snapshots: Array(first.snapshots.prefix(V)), attributes: first.metadata.attributes,
                                    writer: first.metadata.writer)
        return Opened(manifest: m, shards: readers, metadata: metadata, layout: layout, tiles: tiles,
                      tileFile: tileFile, blockFirstTile: blockFirstTile, opened: opened.contains(false) ? opened : nil)
    }

    /// The checked manifest of `folder`; nil when it has none (read through the mapping, so a failure names the file
    /// and the system's error).
    static func manifest(of folder: String) throws -> ShardManifest? {
        let path = folder + "/" + ShardManifest.fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let f = try MappedFile(path: path)
        return try ShardManifest.decode(Data(f.bytes), where: path)
    }

    /// The snapshot count of the newest footer record of the file at `path` (nothing else parsed); nil when it has
    /// none that decodes.
    static func committedSnapshots(_ path: String) -> Int? {
        guard let f = try? MappedFile(path: path), let r = CommitSearch.newestRecord(f.bytes),
              let footer = try? CommitSearch.decodeFooter(f.bytes, at: r) else { return nil }
        return Int(clamping: footer.snapshotCount)
    }

    /// Whether a tile of `r` holds snapshots on both sides of `v`.
    static func straddles(_ r: PSnapReader, _ v: Int) -> Bool { r.tiles.contains { straddles($0, v) } }
    static func straddles(_ x: TileIndexEntry, _ v: Int) -> Bool { x.firstSnapshot < UInt64(v) && x.firstSnapshot + x.snapshotCount > UInt64(v) }

    /// For a writer of `path`: whether it is a shard of a sharded run (its folder's manifest names it) whose other
    /// shards hold fewer than `snapshots` snapshots (or cannot tell). While a shard is ahead its writer returns no
    /// space, so the commit readers of the run fall back to (§3) stays intact.
    static func shardAhead(path: String, snapshots: Int) -> Bool {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path, name = url.lastPathComponent
        guard ShardManifest.isShardName(name), FileManager.default.fileExists(atPath: folder + "/" + ShardManifest.fileName) else { return false }
        guard let m = try? manifest(of: folder) else { return true }
        guard m.shards.contains(where: { $0.file == name }) else { return false }
        return m.shards.contains { $0.file != name && (committedSnapshots(folder + "/" + $0.file) ?? 0) < snapshots }
    }

    /// What a split wrote.
    public struct SplitReport: Sendable {
        public var shards: [(file: String, parts: Int, bytes: UInt64)] = []
        public var tiles = 0
        public var storedBytes: UInt64 = 0
    }

    /// Writes the run `reader` reads (a file or a sharded run) as a sharded run in `folder` (created if missing),
    /// shards of at most `shardBytes` raw bytes (`ShardManifest.plan`), by copying its tiles (checksums verified as
    /// they are read); the manifest is published last (§5). Refuses a folder holding a manifest or any shard file
    /// it would write, unless `force`; never writes over the run it reads.
    @discardableResult
    public static func split(_ reader: PSnapReader, into folder: String, shardBytes: Int, force: Bool = false,
                             progress: (@Sendable (UInt64, UInt64) -> Void)? = nil) throws -> SplitReport {
        guard shardBytes >= 1 else { throw ShardError.badManifest(path: folder, reason: "shard size \(shardBytes) bytes") }
        let B = Int(reader.header.blockSize)
        let plan = ShardManifest.plan(tensors: reader.tensors, blockSize: B, snapshots: max(1, reader.snapshotCount), shardBytes: shardBytes)
        let manifest = ShardManifest(blockSize: B, tensors: reader.tensors, shards: plan)
        try manifest.check(where: folder + "/" + ShardManifest.fileName)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let inputs = reader.isSharded ? reader.manifest!.shards.map { reader.path + "/" + $0.file } : [reader.path]
        for name in [ShardManifest.fileName] + plan.map(\.file) {
            try OutputPath.check(output: folder + "/" + name, inputs: inputs, force: force)
        }
        // Replacing a run (--force): its manifest goes first, so an interrupted split leaves no run rather than the old
        // manifest over a mix of old and new shards.
        let manifestPath = folder + "/" + ShardManifest.fileName
        if force && FileManager.default.fileExists(atPath: manifestPath) {
            guard unlink(manifestPath) == 0 else { throw IOError.replace(path: manifestPath, errno: errno) }
            WritableFile.syncDirectory(of: manifestPath)
        }
        var report = SplitReport()
        let total = reader.liveTileBytes
        var done: UInt64 = 0
        for (s, shard) in plan.enumerated() {
            let path = folder + "/" + shard.file
            let tmp = TempFile(beside: path, .output)
            var opts = WriterOptions()
            opts.blockSize = B
            opts.chain = reader.header.codecChain
            opts.attributes = reader.metadata.attributes
            let w: SnapshotWriter
            do {
                w = try SnapshotWriter.create(path: tmp.path, tensors: manifest.shardTensors(s), options: opts)
                try w.adoptAttributes(of: path)
            } catch { tmp.remove(); throw error }
            var ok = false
            defer { if !ok { tmp.remove() } }
            var entries: [TileIndexEntry] = []
            var commit = CommitReport(snapshots: reader.snapshotCount, rewrittenFrom: 0, builds: 1)
            for (j, p) in shard.parts.enumerated() {
                let b0 = p.start / B, blocks = p.count == 0 ? 0 : (p.count - 1) / B + 1
                for b in 0..<blocks {
                    for i in reader.tileRange(tensor: p.tensor, block: b0 + b) {
                        let x = reader.tiles[i]
                        try reader.verifyTile(i)
                        let offset = try w.appendUnpublished(reader.storedBytes(i))
                        entries.append(TileIndexEntry(tensor: UInt32(j), flags: x.flags, block: UInt64(b), firstSnapshot: x.firstSnapshot,
                                                      snapshotCount: x.snapshotCount, offset: offset, storedLength: x.storedLength,
                                                      rawLength: x.rawLength, checksum: x.checksum))
                        commit.rawBytes += x.rawLength
                        commit.storedBytes += x.storedLength
                        done += x.storedLength
                        progress?(done, total)
                    }
                }
            }
            commit.tilesWritten = entries.count
            if reader.snapshotCount > 0 { try w.publishCompact(entries: entries, snapshots: reader.snapshots, report: commit) }
            try w.closeAndRename(to: path, overwrite: force)
            tmp.release()
            ok = true
            report.shards.append((shard.file, shard.parts.count, UInt64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)))
            report.tiles += entries.count
            report.storedBytes += commit.storedBytes
        }
        try publish(manifest, in: folder)
        return report
    }

    /// Refuses a folder given to a command that rewrites one file in place (§6).
    public static func refuseFolder(_ path: String, command: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw ShardError.notForShardedRuns(folder: path, command: command)
        }
    }

    /// Publishes `manifest` as `folder`'s (§5): written whole under a temporary name, synced, renamed, folder synced.
    public static func publish(_ manifest: ShardManifest, in folder: String) throws {
        let bytes = [UInt8](manifest.encoded())
        try AtomicFile.write(folder + "/" + ShardManifest.fileName, inputs: [], force: true) { write in try write(bytes) }
    }
}
