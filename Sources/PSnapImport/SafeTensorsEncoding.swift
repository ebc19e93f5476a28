// Encodes a safetensors header (8-byte length, JSON, space padding to 8 bytes) for exporting a snapshot.
@_spi(Internals) import ParamSnap
import Foundation

/// The safetensors header of a file holding `tensors` back to back in the given order.
package enum SafeTensorsEncoding {
    /// The safetensors dtype name of `dtype`.
    package static func dtypeName(_ dtype: DType) -> String {
        switch dtype {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .f64: return "F64"
        }
    }

    static func quoted(_ s: String) -> String { JSONText.quoted(s) }

    /// Header bytes (length prefix included) for `tensors` stored in order, with `metadata` as `__metadata__`
    /// (omitted when empty). The JSON is padded with spaces so the data starts on an 8-byte boundary.
    package static func header(tensors: [TensorInfo], metadata: [String: String]) -> [UInt8] {
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.keys.sorted().map { "\(quoted($0)):\(quoted(metadata[$0]!))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(m)}")
        }
        var offset = 0
        for t in tensors {
            let size = (t.parameterCount ?? 0) * t.dtype.size
            parts.append("\(quoted(t.name)):{\"dtype\":\"\(dtypeName(t.dtype))\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        var json = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out += $0 }
        return out + json
    }
}
