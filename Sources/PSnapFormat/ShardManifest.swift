// A sharded run's manifest (spec/SHARDS.md §2): its schema, its checks, and the plan that splits a run into shards.
// Pure: the bytes of the manifest in, checked values out; opening the shard files is `ShardedRun`'s.
import Foundation

/// spec/SHARDS.md §2.
public struct ShardManifest: Codable, Equatable, Sendable {
    public static let fileName = "manifest.json"
    public static let formatName = "psnap-shards"
    public static let version = 1

    public struct Part: Codable, Equatable, Sendable {
        public var tensor: Int
        public var start: Int
        public var count: Int
        public init(tensor: Int, start: Int, count: Int) { self.tensor = tensor; self.start = start; self.count = count }
    }

    public struct Shard: Codable, Equatable, Sendable {
        public var file: String
        public var parts: [Part]
        public init(file: String, parts: [Part]) { self.file = file; self.parts = parts }
    }

    public var format: String = ShardManifest.formatName
    public var version: Int = ShardManifest.version
    public var blockSize: Int
    public var tensors: [TensorInfo]
    public var shards: [Shard]

    public init(blockSize: Int, tensors: [TensorInfo], shards: [Shard]) {
        self.blockSize = blockSize; self.tensors = tensors; self.shards = shards
    }

    /// The name of shard `i` (§1).
    public static func shardName(_ i: Int) -> String {
        let digits = String(i)
        return "shard-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits + ".psnap"
    }

    /// Whether `name` is a shard file name (§1): `shard-`, five or more digits, `.psnap`; nothing else.
    public static func isShardName(_ name: String) -> Bool {
        guard name.hasPrefix("shard-"), name.hasSuffix(".psnap") else { return false }
        let digits = name.dropFirst(6).dropLast(6)
        return digits.count >= 5 && digits.count <= 12 && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// The shard file tensors of shard `s` (§2: the run tensor's name and dtype; its shape when whole, else [count]).
    public func shardTensors(_ s: Int) -> [TensorInfo] {
        shards[s].parts.map { p in
            let t = tensors[p.tensor]
            return TensorInfo(name: t.name, dtype: t.dtype, shape: p.start == 0 && p.count == (t.parameterCount ?? -1) ? t.shape : [p.count])
        }
    }

    /// Decodes and checks a manifest (§2); `where` names it in errors.
    public static func decode(_ bytes: Data, where path: String) throws(ShardError) -> ShardManifest {
        let m: ShardManifest
        do { m = try JSONDecoder().decode(ShardManifest.self, from: bytes) } catch {
            throw .badManifest(path: path, reason: "not a manifest: \(error)")
        }
        try m.check(where: path)
        return m
    }

    /// The manifest's JSON (keys sorted, so the same run gives the same bytes).
    public func encoded() -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? e.encode(self)) ?? Data()
    }

    /// §2 rules.
    public func check(where path: String) throws(ShardError) {
        func bad(_ r: String) -> ShardError { .badManifest(path: path, reason: r) }
        guard format == Self.formatName else { throw bad("format is '\(format)', not '\(Self.formatName)'") }
        guard version >= 1, version <= Self.version else { throw bad("version \(version): this reader knows version \(Self.version)") }
        guard blockSize >= 1, blockSize <= Spec.maxBlockSize, blockSize & (blockSize - 1) == 0 else {
            throw bad("block size \(blockSize) is not a power of two in 1…\(Spec.maxBlockSize)")
        }
        guard !shards.isEmpty else { throw bad("no shards") }
        var counts: [Int] = []
        for (i, t) in tensors.enumerated() {
            guard let n = t.parameterCount else { throw bad("tensor \(i) ('\(t.name)') has shape \(t.shape): not a parameter count") }
            counts.append(n)
        }
        var names = Set<String>()
        var parts = [[Part]](repeating: [], count: tensors.count)
        for (s, shard) in shards.enumerated() {
            guard Self.isShardName(shard.file) else { throw bad("shard \(s) file name '\(shard.file)' is not shard-NNNNN.psnap") }
            guard names.insert(shard.file).inserted else { throw bad("shard file '\(shard.file)' is listed twice") }
            guard !shard.parts.isEmpty else { throw bad("shard '\(shard.file)' holds no part") }
            var seen = Set<Int>()
            for p in shard.parts {
                guard p.tensor >= 0, p.tensor < tensors.count else { throw bad("shard '\(shard.file)' names tensor \(p.tensor) of \(tensors.count)") }
                guard seen.insert(p.tensor).inserted else { throw bad("shard '\(shard.file)' holds two parts of tensor '\(tensors[p.tensor].name)'") }
                let n = counts[p.tensor]
                guard p.start >= 0, p.count >= 0, p.start <= n, p.count <= n - p.start else {
                    throw bad("shard '\(shard.file)': part \(p.start)+\(p.count) of tensor '\(tensors[p.tensor].name)' outside its \(n) parameters")
                }
                guard p.start % blockSize == 0 else {
                    throw bad("shard '\(shard.file)': part of tensor '\(tensors[p.tensor].name)' starts at \(p.start), not a multiple of the block size \(blockSize)")
                }
                guard p.count > 0 || n == 0 else { throw bad("shard '\(shard.file)': an empty part of tensor '\(tensors[p.tensor].name)'") }
                parts[p.tensor].append(p)
            }
        }
        for (t, ps) in parts.enumerated() {
            var next = 0
            for p in ps.sorted(by: { $0.start < $1.start }) {
                guard p.start == next else {
                    throw bad("tensor '\(tensors[t].name)': parameters \(min(next, p.start))..<\(max(next, p.start)) are \(p.start > next ? "in no shard" : "in two shards")")
                }
                next = p.start + p.count
            }
            guard !ps.isEmpty, next == counts[t] else {
                throw bad("tensor '\(tensors[t].name)': parameters \(next)..<\(counts[t]) are in no shard")
            }
        }
    }

    /// Splits `tensors` (in order) into shards of at most `shardBytes` raw bytes each (parameters × snapshots × element
    /// size; a shard's file is smaller by the codec's ratio): whole tensors while they fit; a tensor larger than a
    /// shard in ranges of whole blocks filling shards; at least one block per part. `snapshots` ≥ 1.
    public static func plan(tensors: [TensorInfo], blockSize B: Int, snapshots: Int, shardBytes: Int) -> [Shard] {
        var shards: [[Part]] = [[]]
        var room = shardBytes
        for (t, info) in tensors.enumerated() {
            let n = info.parameterCount ?? 0
            let perParam = max(1, snapshots * info.dtype.size)
            let bytes = n.multipliedReportingOverflow(by: perParam)
            let size = bytes.overflow ? Int.max : bytes.partialValue
            if size <= room || (n == 0) {
                shards[shards.count - 1].append(Part(tensor: t, start: 0, count: n)); room -= min(room, size)
                continue
            }
            if size <= shardBytes {
                shards.append([Part(tensor: t, start: 0, count: n)]); room = shardBytes - size
                continue
            }
            // In ranges of whole blocks: first what fits the current shard (if a block does), then full shards.
            let blockBytes = B * perParam
            var start = 0
            while start < n {
                var blocks = room / blockBytes
                if blocks == 0 {
                    if !shards[shards.count - 1].isEmpty { shards.append([]) }
                    room = shardBytes
                    blocks = max(1, room / blockBytes)
                }
                let count = min(n - start, blocks * B)
                shards[shards.count - 1].append(Part(tensor: t, start: start, count: count))
                room -= min(room, count * perParam)
                start += count
            }
        }
        if shards.count > 1 && shards[shards.count - 1].isEmpty { shards.removeLast() }
        return shards.enumerated().map { Shard(file: shardName($0.offset), parts: $0.element) }
    }
}

/// Errors of sharded runs (spec/SHARDS.md §6): each names the folder or shard.
public enum ShardError: ParamSnapError, Equatable {
    case noManifest(folder: String)
    case badManifest(path: String, reason: String)
    case missingShard(path: String)
    case damagedShard(path: String, reason: String)
    case shardMismatch(path: String, reason: String)
    case shardAhead(path: String, visible: Int, tile: String)
    case notForShardedRuns(folder: String, command: String)

    public var kind: ErrorKind {
        switch self {
        case .noManifest, .notForShardedRuns: return .usage
        case .missingShard: return .io(errno: 2)
        default: return .corruptData
        }
    }

    public var description: String {
        switch self {
        case .noManifest(let f): return "\(f) is a folder without \(ShardManifest.fileName): not a sharded run (spec/SHARDS.md)"
        case .badManifest(let p, let r): return "\(p): malformed sharded-run manifest: \(r)"
        case .missingShard(let p): return "\(p): shard file missing (named by the run's manifest)"
        case .damagedShard(let p, let r): return "\(p): damaged shard: \(r)"
        case .shardMismatch(let p, let r): return "\(p): shard disagrees with the run: \(r)"
        case .shardAhead(let p, let v, let tile): return "\(p): this shard has merged snapshots past \(v), the last every shard holds (\(tile)): wait for the other shards to commit, or compact them to the same snapshots"
        case .notForShardedRuns(let f, let c): return "\(f) is a sharded run: `psnap \(c)` works on one .psnap file (run it on each shard file)"
        }
    }
}
