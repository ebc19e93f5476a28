// swift-tools-version:6.0
// Benchmarks of ParamSnap (release builds): append/convert throughput, ratio, read latency, open time, RSS.
import PackageDescription

let package = Package(
    name: "psnap-bench",
    dependencies: [.package(name: "ParamSnap", path: "../..")],
    targets: [
        .executableTarget(name: "psnap-bench", dependencies: [.product(name: "ParamSnap", package: "ParamSnap")]),
        // SIGKILL soak of the writer (append and compact in a child process): see psnap-soak --help.
        .executableTarget(name: "psnap-soak", dependencies: [.product(name: "ParamSnap", package: "ParamSnap")]),
    ],
    swiftLanguageModes: [.v6]
)
