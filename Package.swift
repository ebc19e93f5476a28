// swift-tools-version:6.0
// ParamSnap: parameter-major storage of neural-network training trajectories (.psnap).
import PackageDescription

let package = Package(
    name: "ParamSnap",
    products: [
        .library(name: "ParamSnap", targets: ["ParamSnap"]),
        // Read-everything routines shared by the fuzz targets (tools/fuzz) and the fuzz-regression tests.
        .library(name: "ParamSnapFuzzSupport", targets: ["ParamSnapFuzzSupport"]),
        .executable(name: "psnap", targets: ["psnap"]),
        .executable(name: "snapinfo", targets: ["snapinfo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "ParamSnap", dependencies: ["CZstd", "CZlib"]),
        .target(name: "ParamSnapStats", dependencies: ["ParamSnap"]),
        .target(name: "ParamSnapFuzzSupport", dependencies: ["ParamSnap"]),
        .target(
            name: "ParamSnapCLI",
            dependencies: [
                "ParamSnap",
                "ParamSnapStats",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "psnap", dependencies: ["ParamSnapCLI"]),
        .executableTarget(name: "snapinfo", dependencies: ["ParamSnapCLI"]),
        .testTarget(name: "ParamSnapTests", dependencies: ["ParamSnap", "ParamSnapCLI", "ParamSnapStats", "ParamSnapFuzzSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
