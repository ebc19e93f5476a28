// swift-tools-version:6.0
// ParamSnap: parameter-major storage of neural-network training trajectories (.psnap).
//
// Layers, each a module that can only see the ones below it:
//   PSnapFormat   pure byte layout of spec/FORMAT.md (header, footer, index, metadata, commit search); no C, no I/O
//   PSnapCodec    the codec stages over plain buffers (zstd)
//   ParamSnap     files: the memory-mapped reader, scans, verify, the training writer, rewrites (re-exports PSnapFormat)
//   PSnapImport   checkpoint dumps in (safetensors, npy, npz/zip with zlib, HF layouts) and out; conversion
//   ParamSnapStats  the moments passes over the reader's scan
//   ParamSnapAnalysis  modes, similar, pairs, groups (BLAS/LAPACK) and the density chart's counts, over whole trajectories
//   PSnapRender   drawing: PNG and SVG charts from plain numbers (no scans)
//   ParamSnapC    the C ABI (libparamsnap.so) the Python package calls
//   ParamSnapCLICore  command-line plumbing (errors to exit codes, options, progress) and `snapinfo`
//   ParamSnapCLI  the thin command line of `psnap`
import PackageDescription

let package = Package(
    name: "ParamSnap",
    products: [
        .library(name: "ParamSnap", targets: ["ParamSnap"]),
        .library(name: "PSnapImport", targets: ["PSnapImport"]),
        .library(name: "ParamSnapStats", targets: ["ParamSnapStats"]),
        .library(name: "ParamSnapAnalysis", targets: ["ParamSnapAnalysis"]),
        // Read-everything routines shared by the fuzz targets (tools/fuzz) and the fuzz-regression tests.
        .library(name: "ParamSnapFuzzSupport", targets: ["ParamSnapFuzzSupport"]),
        // The C ABI the Python package (tools/python) loads: libparamsnap.so.
        .library(name: "paramsnap", type: .dynamic, targets: ["ParamSnapC"]),
        .executable(name: "psnap", targets: ["psnap"]),
        .executable(name: "snapinfo", targets: ["snapinfo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // BLAS (GEMM, SYRK) and LAPACK's symmetric eigensolver for the analysis passes.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),
        // Hole punching, SEEK_DATA and open-file-description locks (need _GNU_SOURCE, absent from Swift's Glibc).
        .target(name: "CFileSpace"),
        .target(name: "CDensity"),
        .target(name: "PSnapFormat"),
        .target(name: "PSnapCodec", dependencies: ["PSnapFormat", "CZstd"]),
        .target(name: "ParamSnap", dependencies: ["PSnapFormat", "PSnapCodec", "CFileSpace", .product(name: "SystemPackage", package: "swift-system")]),
        .target(name: "PSnapImport", dependencies: ["ParamSnap", "CZlib"]),
        .target(name: "ParamSnapStats", dependencies: ["ParamSnap", "PSnapCodec"]),
        .target(name: "ParamSnapAnalysis", dependencies: ["ParamSnap", "PSnapCodec", "CBLAS", "CDensity"]),
        // Drawing: PNG (through zlib) and SVG charts from plain numbers; no scans, no file I/O.
        .target(name: "PSnapRender", dependencies: ["CZlib"]),
        .target(name: "ParamSnapFuzzSupport", dependencies: ["ParamSnap", "PSnapImport"]),
        // The command-line plumbing and `snapinfo`, which only reads .psnap files: no importers linked.
        .target(
            name: "ParamSnapCLICore",
            dependencies: ["ParamSnap", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(
            name: "ParamSnapCLI",
            dependencies: [
                "ParamSnapCLICore", "ParamSnap", "PSnapImport", "ParamSnapStats", "ParamSnapAnalysis", "PSnapRender",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `@_cdecl` functions over the reader, the writer and the passes for other languages (tools/python); only C
        // types and JSON cross it.
        .target(name: "ParamSnapC", dependencies: ["ParamSnap", "ParamSnapStats", "ParamSnapAnalysis"]),
        .executableTarget(name: "psnap", dependencies: ["ParamSnapCLI"]),
        .executableTarget(name: "snapinfo", dependencies: ["ParamSnapCLICore"]),
        // Helpers every test target shares: seeded values, temporary folders, the built tools, the golden fixtures.
        .target(name: "PSnapTestSupport", dependencies: ["ParamSnap", "PSnapCodec", "PSnapImport"], path: "Tests/PSnapTestSupport"),
        .testTarget(name: "PSnapFormatTests", dependencies: ["PSnapFormat", "PSnapCodec", "ParamSnap", "PSnapTestSupport"]),
        .testTarget(name: "ParamSnapTests", dependencies: ["PSnapFormat", "PSnapCodec", "ParamSnap", "PSnapImport", "ParamSnapFuzzSupport", "PSnapTestSupport"]),
        .testTarget(name: "PSnapImportTests", dependencies: ["ParamSnap", "PSnapImport", "PSnapTestSupport"]),
        .testTarget(name: "ParamSnapStatsTests", dependencies: ["ParamSnap", "PSnapImport", "ParamSnapStats", "PSnapTestSupport"]),
        .testTarget(name: "ParamSnapAnalysisTests", dependencies: ["ParamSnap", "ParamSnapAnalysis", "PSnapImport", "PSnapTestSupport"]),
        .testTarget(name: "ParamSnapCLITests", dependencies: ["ParamSnap", "PSnapImport", "ParamSnapCLICore", "ParamSnapCLI", "ParamSnapStats",
                                                         "ParamSnapAnalysis", "PSnapTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
