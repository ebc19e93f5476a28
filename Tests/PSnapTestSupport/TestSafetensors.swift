// A safetensors file written by hand for tests (any header, even a broken one).
import Foundation

/// Writes a safetensors file from (name, dtype string, shape, bytes).
package func writeSafetensors(_ path: String, _ tensors: [(String, String, [Int], [UInt8])], headerOverride: String? = nil) throws {
    var header: [String] = []
    var data: [UInt8] = []
    for (n, dt, shape, bytes) in tensors {
        header.append("\"\(n)\":{\"dtype\":\"\(dt)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(data.count),\(data.count + bytes.count)]}")
        data += bytes
    }
    let h = Array((headerOverride ?? "{" + header.joined(separator: ",") + "}").utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
    out += h + data
    try Data(out).write(to: URL(fileURLWithPath: path))
}

