// Recovering a commit whose footer is damaged but whose index and metadata are intact (spec §8.2); pure.

/// §8.2: rebuilds the footer of a damaged footer record from the fields that still prove themselves.
///
/// The footer's layout fields are redundant (`indexOffset + indexLength = metadataOffset`, `metadataOffset +
/// metadataLength = F`, `indexLength = 64 · tileCount`) and the index and metadata carry checksums, so any one
/// damaged field is found and rebuilt: a candidate footer is accepted only when the index and metadata bytes it
/// points at hash to its two checksums and pass §6 and §7. When one checksum field itself is damaged, the other
/// must match and the region it cannot prove must still pass §6 (index) or §7 (metadata); the note says so.
public enum FooterSalvage {
    /// A recovered commit and what was rebuilt.
    public struct Result: Sendable {
        public let commit: Commit
        public let note: String
    }

    /// Tries to recover the commit of the footer record at `offset` (its 128 bytes lie inside `buf`).
    public static func recover(_ buf: UnsafeRawBufferPointer, record offset: Int, blockSize: Int) -> Result? {
        guard offset >= Spec.headerSize, offset < buf.count else { return nil }
        // A record cut short by the end of the file reads as zeros past it (its own checksum then fails).
        var record = [UInt8](repeating: 0, count: Spec.footerSize)
        let have = min(Spec.footerSize, buf.count - offset)
        for i in 0..<have { record[i] = buf[offset + i] }
        return record.withUnsafeBytes { recover(buf, record: offset, bytes: $0, blockSize: blockSize) }
    }

    private static func recover(_ buf: UnsafeRawBufferPointer, record offset: Int, bytes: UnsafeRawBufferPointer, blockSize: Int) -> Result? {
        let r = ByteReader(base: bytes)
        let raw = Footer(commitSequence: r.u64(16), previousFooterOffset: r.u64(24), indexOffset: r.u64(32),
                         indexLength: r.u64(40), indexChecksum: r.u64(48), metadataOffset: r.u64(56),
                         metadataLength: r.u64(64), metadataChecksum: r.u64(72), snapshotCount: r.u64(80),
                         tileCount: r.u64(88), parameterCount: r.u64(96))
        let F = UInt64(offset)
        // A footer whose own checksum holds has its fields intact: only a damaged end magic is then forgiven; the
        // damage is in the index or metadata, which nothing here can rebuild.
        let intactFields = XXH64.hash(UnsafeRawBufferPointer(rebasing: bytes[0..<Spec.footerChecksummed])) == r.u64(Spec.footerChecksummed)
        if intactFields {
            return attempt(buf, raw, at: F, blockSize: blockSize, field: "", requireBoth: true)
        }
        // Candidate layouts: the stored fields, then each layout field rebuilt from the others.
        var layouts: [(Footer, String)] = [(raw, "")]
        func variant(_ why: String, _ change: (inout Footer) -> Bool) {
            var f = raw
            if change(&f) { layouts.append((f, why)) }
        }
        variant("metadataLength") { f in f.metadataLength = F &- f.metadataOffset; return f.metadataOffset <= F }
        variant("metadataOffset") { f in f.metadataOffset = F &- f.metadataLength; return f.metadataLength <= F }
        variant("indexOffset") { f in f.indexOffset = f.metadataOffset &- f.indexLength; return f.indexLength <= f.metadataOffset }
        variant("indexLength") { f in f.indexLength = f.metadataOffset &- f.indexOffset; return f.indexOffset <= f.metadataOffset }
        variant("indexLength") { f in
            guard let l = Checked.mul(f.tileCount, UInt64(Spec.tileIndexEntrySize)) else { return false }
            f.indexLength = l; return true
        }
        variant("tileCount") { f in f.tileCount = f.indexLength / UInt64(Spec.tileIndexEntrySize); return true }
        // A footer cut short after indexChecksum: the metadata spans from the index's end to the footer.
        variant("metadataOffset, metadataLength") { f in
            guard let mo = Checked.add(f.indexOffset, f.indexLength), mo <= F else { return false }
            f.metadataOffset = mo; f.metadataLength = F - mo; return true
        }
        // First pass: both checksums prove the regions. Second: one checksum field damaged, the other proves.
        for requireBoth in [true, false] {
            for (f, field) in layouts {
                if let res = attempt(buf, f, at: F, blockSize: blockSize, field: field, requireBoth: requireBoth) { return res }
            }
        }
        return nil
    }

    private static func attempt(_ buf: UnsafeRawBufferPointer, _ given: Footer, at F: UInt64, blockSize: Int, field: String,
                                requireBoth: Bool) -> Result? {
        var f = given
        guard f.indexOffset >= UInt64(Spec.headerSize), Checked.add(f.indexOffset, f.indexLength) == f.metadataOffset,
              Checked.add(f.metadataOffset, f.metadataLength) == F, f.indexLength % UInt64(Spec.tileIndexEntrySize) == 0,
              f.indexLength <= Spec.maxIndexBytes, f.metadataLength <= Spec.maxMetadataBytes else { return nil }
        f.tileCount = f.indexLength / UInt64(Spec.tileIndexEntrySize)
        let index = UnsafeRawBufferPointer(rebasing: buf[Int(f.indexOffset)..<Int(f.metadataOffset)])
        let meta = UnsafeRawBufferPointer(rebasing: buf[Int(f.metadataOffset)..<Int(F)])
        let indexOK = XXH64.hash(index) == f.indexChecksum, metaOK = XXH64.hash(meta) == f.metadataChecksum
        var rebuilt = field.isEmpty ? [] : [field]
        if requireBoth {
            guard indexOK && metaOK else { return nil }
        } else {
            guard indexOK != metaOK else { return nil }
            rebuilt.append(indexOK ? "metadataChecksum (metadata unproven: it parses and passes §7)"
                                   : "indexChecksum (index unproven: it passes §6; tiles keep their own checksums)")
            f.indexChecksum = XXH64.hash(index)
            f.metadataChecksum = XXH64.hash(meta)
        }
        // Counts are redundant with the metadata; the chain fields are informative (§8).
        guard let m = try? FileMetadata.decode(meta) else { return nil }
        if f.snapshotCount != UInt64(m.snapshots.count) { f.snapshotCount = UInt64(m.snapshots.count); rebuilt.append("snapshotCount") }
        if f.parameterCount != UInt64(m.parameterCount) { f.parameterCount = UInt64(m.parameterCount); rebuilt.append("parameterCount") }
        if f.previousFooterOffset >= f.indexOffset { f.previousFooterOffset = 0 }
        guard let c = try? Commit.load(buf, footer: f, at: F, blockSize: blockSize, checksums: false) else { return nil }
        let what = rebuilt.isEmpty ? "the footer's own bytes were damaged outside its index and metadata fields"
                                   : "rebuilt " + rebuilt.joined(separator: ", ")
        return Result(commit: c, note: "footer at offset \(F) recovered: \(what)")
    }
}
