// libFuzzer target: arbitrary bytes as a safetensors file; every declared tensor's bytes are read.
import FuzzSupport
import ParamSnap

nonisolated(unsafe) let path = ReadEverything.scratchPath("st") + ".safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    ReadEverything.writeFile(path, Array(UnsafeBufferPointer(start: data, count: size)))
    for skip in [false, true] {
        guard let f = try? SafeTensorsFile(path: path, skipUnsupported: skip) else { continue }
        var sum: UInt64 = 0
        for (i, e) in f.entries.enumerated() {
            let b = f.bytes(i)
            precondition(b.count == e.end - e.begin, "entry \(i) bytes mismatch")
            sum &+= XXH64.hash(b)
            _ = f.bytes(named: e.info.name)
        }
        _ = f.tensors
        _ = sum
    }
    return 0
}
