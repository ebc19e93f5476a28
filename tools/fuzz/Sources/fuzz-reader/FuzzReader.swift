// libFuzzer target: arbitrary bytes as a .psnap file through the read-everything routine.
import ParamSnapFuzzSupport

let path = ReadEverything.scratchPath("reader") + ".psnap"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    ReadEverything.runAllVariants(bytes: bytes, path: path)
    return 0
}
