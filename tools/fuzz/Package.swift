// swift-tools-version:6.0
// libFuzzer harnesses for ParamSnap (see run.sh and the README's "Fuzzing" section). Build only as
// `swift build -c debug --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library`.
import PackageDescription

let package = Package(
    name: "ParamSnapFuzz",
    dependencies: [
        // The name is needed: the checkout folder of the root package varies.
        .package(name: "ParamSnap", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "fuzz-reader", dependencies: [.product(name: "ParamSnapFuzzSupport", package: "ParamSnap"), .product(name: "ParamSnap", package: "ParamSnap")]),
        .executableTarget(name: "fuzz-roundtrip", dependencies: [.product(name: "ParamSnapFuzzSupport", package: "ParamSnap"), .product(name: "ParamSnap", package: "ParamSnap")]),
        .executableTarget(name: "fuzz-safetensors", dependencies: [.product(name: "ParamSnapFuzzSupport", package: "ParamSnap"), .product(name: "ParamSnap", package: "ParamSnap")]),
    ],
    swiftLanguageModes: [.v6]
)
