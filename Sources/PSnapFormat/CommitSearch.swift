// Finding the newest commit and telling a torn tail from a damaged commit (spec §8.1); pure, over the file's bytes.

/// §8.1: where a file's newest commit is and what lies after it.
///
/// A **footer record** is 128 bytes at offset r (64 ≤ r, r + 128 ≤ file size) that start with the footer magic
/// or end with the footer end magic. A writer that dies leaves a torn tail without any footer record (the footer
/// is the last thing a commit writes, in a write of its own), so a record after the newest valid commit is damage,
/// never a torn tail. So is a footer cut short by the end of the file (a truncated file).
public enum CommitSearch {
    /// A footer record that is not a valid commit.
    public struct DamagedRecord: Sendable, Equatable {
        public let offset: UInt64
        public let reason: String
    }

    /// What `survey` found: the newest intact commit and the damaged records after it (newest first).
    public struct Survey: Sendable {
        public let intact: Commit?
        public let damaged: [DamagedRecord]
        /// Index and metadata bytes hashed while checking records (at most the file size: the bound on the work).
        public let bytesHashed: UInt64
    }

    /// §8.1: the newest commit. It is the newest footer record, which must be valid: a damaged record throws
    /// `damagedCommit` (naming, after a bounded survey, the newest intact commit), never falls back silently.
    public static func newest(_ buf: UnsafeRawBufferPointer, blockSize: Int) throws(FormatError) -> Commit {
        let size = buf.count
        guard size >= Spec.headerSize + Spec.footerSize else { throw .fileTooShort(size: UInt64(size)) }
        var scanner = RecordScanner(buf)
        guard let r = scanner.next() else { throw .noValidCommit(fileSize: UInt64(size)) }
        do {
            return try check(buf, record: r, blockSize: blockSize)
        } catch {
            let s = survey(buf, blockSize: blockSize)
            throw .damagedCommit(offset: UInt64(r), reason: "\(error)", damagedRecords: s.damaged.count,
                                 intact: s.intact.map { ($0.footerOffset, $0.footer.snapshotCount) }.map(IntactCommit.init))
        }
    }

    /// Where the newest footer record lies (§8.1), without checking it: what a reader compares with the commit it
    /// opened to learn whether a newer one was published since.
    package static func newestRecord(_ buf: UnsafeRawBufferPointer) -> Int? {
        guard buf.count >= Spec.headerSize + Spec.footerSize else { return nil }
        var scanner = RecordScanner(buf)
        return scanner.next()
    }

    /// The newest valid commit holding at most `snapshots` snapshots, from the end backwards (nil when none): what a
    /// sharded run reads of a shard that has merged past the snapshots the other shards hold (spec/SHARDS.md §3).
    package static func newest(_ buf: UnsafeRawBufferPointer, blockSize: Int, atMostSnapshots snapshots: Int) -> Commit? {
        guard buf.count >= Spec.headerSize + Spec.footerSize else { return nil }
        var scanner = RecordScanner(buf)
        while let r = scanner.next() {
            guard let f = try? decodeFooter(buf, at: r), f.snapshotCount <= UInt64(snapshots) else { continue }
            if let c = try? Commit.load(buf, footer: f, at: UInt64(r), blockSize: blockSize) { return c }
        }
        return nil
    }

    /// The record at `r` as a commit: footer checks (§8, §11 caps), then index, metadata (§6, §7).
    package static func check(_ buf: UnsafeRawBufferPointer, record r: Int, blockSize: Int) throws(FormatError) -> Commit {
        let f = try decodeFooter(buf, at: r)
        return try Commit.load(buf, footer: f, at: UInt64(r), blockSize: blockSize)
    }

    /// `Footer.decode` of the record at `r`; a record cut short by the end of the file fails by name.
    package static func decodeFooter(_ buf: UnsafeRawBufferPointer, at r: Int) throws(FormatError) -> Footer {
        guard r + Spec.footerSize <= buf.count else {
            throw .badFooter(offset: UInt64(r), reason: "cut short by the end of the file (\(buf.count - r) of \(Spec.footerSize) bytes)")
        }
        return try Footer.decode(UnsafeRawBufferPointer(rebasing: buf[r..<(r + Spec.footerSize)]), at: UInt64(r))
    }

    /// Every footer record from the end back to the newest intact commit. Linear in the file size: a record whose
    /// footer checksum holds is checked further only if its index and metadata region holds no other such record
    /// (an honest commit's index and metadata never do), so the regions hashed are disjoint.
    public static func survey(_ buf: UnsafeRawBufferPointer, blockSize: Int) -> Survey {
        guard buf.count >= Spec.headerSize + Spec.footerSize else { return Survey(intact: nil, damaged: [], bytesHashed: 0) }
        var scanner = RecordScanner(buf)
        var damaged: [DamagedRecord] = []
        var hashed: UInt64 = 0
        while let r = scanner.next() {
            let f: Footer
            do {
                f = try decodeFooter(buf, at: r)
            } catch {
                damaged.append(DamagedRecord(offset: UInt64(r), reason: "\(error)"))
                continue
            }
            if let other = scanner.checksummedRecord(in: Int(f.indexOffset)..<r) {
                damaged.append(DamagedRecord(offset: UInt64(r), reason: "its index and metadata region holds another footer record (at offset \(other))"))
                continue
            }
            hashed += UInt64(r) - f.indexOffset
            do {
                return Survey(intact: try Commit.load(buf, footer: f, at: UInt64(r), blockSize: blockSize), damaged: damaged, bytesHashed: hashed)
            } catch {
                damaged.append(DamagedRecord(offset: UInt64(r), reason: "\(error)"))
            }
        }
        return Survey(intact: nil, damaged: damaged, bytesHashed: hashed)
    }
}

/// The newest intact commit named by a `damagedCommit` error.
public struct IntactCommit: Sendable, Equatable {
    public let footerOffset: UInt64
    public let snapshotCount: UInt64
    package init(_ t: (UInt64, UInt64)) { footerOffset = t.0; snapshotCount = t.1 }
}

/// Yields footer records from the end of a file backwards (each once), remembering the ones it has looked past.
struct RecordScanner {
    package let buf: UnsafeRawBufferPointer
    /// Next byte position to look at (descending); positions above it have been scanned.
    private var q: Int
    /// Records found but not yet yielded, descending, with whether their footer checksum holds.
    private var pending: [(offset: Int, checksummed: Bool)] = []
    private var pendingHead = 0

    package init(_ buf: UnsafeRawBufferPointer) {
        self.buf = buf
        q = buf.count - 8
        if let p = Self.cutShortRecord(buf) { pending.append((p, false)) }
    }

    /// A footer record cut short by the end of the file: the start magic with fewer than 128 bytes after it. A writer
    /// writes the footer in a write of its own after the index and metadata, so this is a truncated or damaged file,
    /// not a torn commit (a killed write of 128 bytes leaves all or nothing of it but for a page-straddling footer
    /// in the nanoseconds between its two page copies; repair then still recovers it).
    package static func cutShortRecord(_ buf: UnsafeRawBufferPointer) -> Int? {
        let size = buf.count
        let lo = max(Spec.headerSize, size - Spec.footerSize + 1), hi = size - 8
        guard lo <= hi else { return nil }
        let base = buf.baseAddress!.assumingMemoryBound(to: UInt8.self)
        return stride(from: hi, through: lo, by: -1).first { matches(base + $0, Spec.footerMagic) }
    }

    /// The next record below the last one yielded, or nil.
    package mutating func next() -> Int? {
        if pendingHead == pending.count { pending.removeAll(keepingCapacity: true); pendingHead = 0; scanOne(downTo: Spec.headerSize) }
        guard pendingHead < pending.count else { return nil }
        defer { pendingHead += 1 }
        return pending[pendingHead].offset
    }

    /// A record inside `range` (below every record yielded so far) whose footer checksum holds, or nil.
    package mutating func checksummedRecord(in range: Range<Int>) -> Int? {
        let low = max(Spec.headerSize, range.lowerBound)
        while q >= low { scanOne(downTo: low) }
        return pending[pendingHead...].first { range.contains($0.offset) && $0.checksummed }?.offset
    }

    /// Scans down (not below `low`) until one more record is found or the bound is reached.
    private mutating func scanOne(downTo low: Int) {
        let size = buf.count
        let base = buf.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let p = UInt8(ascii: "P")  // both magics begin "PSNAP"
        while q >= low {
            let at = q
            q -= 1
            guard base[at] == p else { continue }
            var record: Int? = nil
            if at + Spec.footerSize <= size, Self.matches(base + at, Spec.footerMagic) {
                // Skip a record already found through its end magic (whose end magic lies above, scanned before).
                let endAt = at + Spec.footerSize - 8
                if !Self.matches(base + endAt, Spec.footerEndMagic) { record = at }
            } else if at - (Spec.footerSize - 8) >= Spec.headerSize, Self.matches(base + at, Spec.footerEndMagic) {
                record = at - (Spec.footerSize - 8)
            }
            if let r = record {
                pending.append((r, Self.checksumHolds(base + r)))
                return
            }
        }
    }

    package static func matches(_ p: UnsafePointer<UInt8>, _ magic: [UInt8]) -> Bool {
        for i in 0..<8 where p[i] != magic[i] { return false }
        return true
    }

    private static func checksumHolds(_ p: UnsafePointer<UInt8>) -> Bool {
        let body = UnsafeRawBufferPointer(start: p, count: Spec.footerChecksummed)
        let stored = UnsafeRawBufferPointer(start: p + Spec.footerChecksummed, count: 8).loadUnaligned(as: UInt64.self)
        return XXH64.hash(body) == UInt64(littleEndian: stored)
    }
}
