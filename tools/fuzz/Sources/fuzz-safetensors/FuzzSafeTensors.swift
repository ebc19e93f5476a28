// libFuzzer target: arbitrary bytes through the dump parsers. As a safetensors file (every declared tensor's
// bytes read), as an .npy header, as a zip/.npz archive (every member listed, stored/deflated members read back
// with their CRC), as HF shard index / trainer_state JSON, and the first line as a --steps selection and a name.
import Foundation
import ParamSnapFuzzSupport
import ParamSnap

let path = ReadEverything.scratchPath("st") + ".safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    ReadEverything.dumps(bytes: Array(UnsafeBufferPointer(start: data, count: size)), path: path)
    return 0
}
