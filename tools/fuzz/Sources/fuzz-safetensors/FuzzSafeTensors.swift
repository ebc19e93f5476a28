// libFuzzer target: arbitrary bytes through the dump parsers. As a safetensors file (every declared tensor's
// bytes read), as an .npy header, as a zip/.npz archive (every member listed, stored/deflated members read back
// with their CRC), as HF shard index / trainer_state JSON, and the first line as a --steps selection and a name.
import Foundation
import FuzzSupport
import ParamSnap

let path = ReadEverything.scratchPath("st") + ".safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    ReadEverything.writeFile(path, bytes)
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
    _ = DumpNames.stepNumber(text)
    _ = DumpNames.arrayName(fromStem: text)
    _ = DumpNames.naturalLess(text, "epoch-10")
    let parts = text.split(separator: "\n", maxSplits: 1).map(String.init)
    if parts.count == 2 { _ = DumpNames.globMatch(String(parts[0].prefix(32)), String(parts[1].prefix(64))) }
    return 0
}
