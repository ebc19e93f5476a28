// swift-tools-version:6.0
// In-process latency probe of ParamSnap for the peer benchmark (tools/bench/peers): the same random trajectories
// and the same tensor reads the Python contenders time in-process.
import PackageDescription

let package = Package(
    name: "psnap-peer-probe",
    dependencies: [.package(name: "ParamSnap", path: "../../../..")],
    targets: [
        .executableTarget(name: "psnap-peer-probe", dependencies: [.product(name: "ParamSnap", package: "ParamSnap")]),
    ],
    swiftLanguageModes: [.v6]
)
