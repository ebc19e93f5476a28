// Tensors found in .npy files and .npz archives (stored or deflated members), with their dtype and size checked.
@_spi(Internals) import ParamSnap
import Foundation

extension DumpDiscovery {
    /// The arrays of an npz archive (one tensor per `.npy` member, stored or deflated; other members noted).
    func npzTensors(_ buf: UnsafeRawBufferPointer, file: MappedFile, path: String) throws -> [DumpTensor] {
        var out: [DumpTensor] = []
        for m in try ZipArchive.members(buf, path: path) {
            guard m.name.hasSuffix(".npy") else { noteSkippedFile(path + ":" + m.name); continue }
            let name = String(m.name.dropLast(4))
            guard keep(name) else { continue }
            switch m.method {
            case 0:
                guard m.compressedSize == m.uncompressedSize else {
                    throw DumpError.malformed(path: path, reason: "stored member '\(m.name)' has different compressed and uncompressed sizes")
                }
                if let t = try npyTensor(UnsafeRawBufferPointer(rebasing: buf[m.dataOffset..<(m.dataOffset + m.compressedSize)]),
                                         file: file, base: m.dataOffset, size: m.uncompressedSize, path: path + ":" + m.name, name: name) {
                    out.append(t)
                }
            case 8:
                let src = UnsafeRawBufferPointer(rebasing: buf[m.dataOffset..<(m.dataOffset + m.compressedSize)])
                var prefix: [UInt8] = []
                var want = min(m.uncompressedSize, 4096)
                var header: NpyHeader?
                while header == nil {
                    prefix.removeAll()
                    try RawInflate.inflate(src, path: path, member: m.name, chunk: 64 << 10) { chunk in
                        prefix += chunk.prefix(want - prefix.count)
                        return prefix.count < want
                    }
                    do {
                        header = try prefix.withUnsafeBytes { b throws(DumpError) in try NpyHeader.parse(b, path: path + ":" + m.name) }
                    } catch DumpError.truncated(let p, let r) {
                        let limit = min(m.uncompressedSize, NpyHeader.maxHeaderSize + 12)
                        guard want < limit else { throw DumpError.truncated(path: p, reason: r) }
                        want = limit
                    }
                }
                let h = header!
                if let t = try arrayTensor(h, data: .deflated(file, offset: m.dataOffset, compressedSize: m.compressedSize, skip: h.dataOffset, member: m.name),
                                           available: m.uncompressedSize - h.dataOffset, path: path + ":" + m.name, name: name) {
                    out.append(t)
                }
            default:
                throw DumpError.malformed(path: path, reason: "member '\(m.name)' uses zip compression method \(m.method) (only stored and deflate are read)")
            }
        }
        return out
    }

    /// A tensor from an npy array stored uncompressed at `base` in `file` (`buf` is its bytes, `size` long).
    func npyTensor(_ buf: UnsafeRawBufferPointer, file: MappedFile, base: Int, size: Int, path: String, name: String) throws -> DumpTensor? {
        guard keep(name) else { return nil }
        let h = try NpyHeader.parse(buf, path: path)
        return try arrayTensor(h, data: .mapped(file, offset: base + h.dataOffset), available: size - h.dataOffset, path: path, name: name)
    }

    func arrayTensor(_ h: NpyHeader, data: DumpData, available: Int, path: String, name: String) throws -> DumpTensor? {
        guard let dtype = h.dtype else {
            if options.strict { throw DumpError.unsupportedDType(path: path, tensor: name, dtype: h.descr) }
            noteSkippedTensor(name, h.descr)
            return nil
        }
        let info = TensorInfo(name: name, dtype: dtype, shape: h.shape)
        guard let n = info.parameterCount, n.multipliedReportingOverflow(by: dtype.size).overflow == false else {
            throw DumpError.badTensor(path: path, tensor: name, reason: "shape \(h.shape) overflows")
        }
        guard n * dtype.size <= available else {
            throw DumpError.truncated(path: path, reason: "array '\(name)' of shape \(h.shape) × \(h.descr) needs \(n * dtype.size) data bytes, \(available) present")
        }
        return DumpTensor(name: name, dtype: dtype, shape: h.shape, path: path, data: data,
                          bigEndian: h.bigEndian && dtype.size > 1, fortranOrder: h.fortranOrder && h.shape.count > 1)
    }
}
