// `psnap append` in the library: the snapshots found among dump inputs, found and checked exactly as
// `psnap convert` finds and checks them, appended to a run in one commit; a failed append leaves the run as it was.
import Foundation

/// Appends the snapshots of dump inputs (`DumpDiscovery`) to a `.psnap` run, creating the run on first use.
public final class DumpAppend {
    public let runPath: String
    /// The checked snapshots, in order, with their steps (after the run's last) and the run's tensor layout.
    public let conversion: DumpConversion
    /// Whether the run exists (else `commit` creates it).
    public let runExists: Bool
    /// The run's snapshot count and last step when checked, to see that no other writer committed since.
    private let checkedCount: Int
    private let checkedLastStep: Int64?

    /// What a commit did.
    public struct Outcome: Sendable {
        public var commit: CommitReport
        /// Snapshots and segments of the run after the commit.
        public var snapshots: Int
        public var segments: Int
    }

    /// Checks `found` against the run at `runPath`, which is read and not changed: the step rules
    /// (`DumpSteps.arrange`: after the run's last step, strictly increasing) and the run's tensors (names, dtypes,
    /// shapes). Nothing is written here.
    public init(runPath: String, found: [DumpSnapshot], options: ConvertOptions) throws {
        self.runPath = runPath
        var st = stat()
        runExists = lstat(runPath, &st) == 0
        if runExists {
            let r = try PSnapReader(path: runPath)
            checkedCount = r.snapshotCount
            checkedLastStep = r.snapshots.last?.step
            conversion = try DumpConversion(found, options: options,
                                            extending: .init(path: runPath, tensors: r.tensors, lastStep: checkedLastStep))
        } else {
            checkedCount = 0
            checkedLastStep = nil
            conversion = try DumpConversion(found, options: options)
        }
    }

    /// Commits every snapshot as one commit (spec §9), creating the run with `options` (block size, codec chain)
    /// when it is new; tensors that cannot be read in place go through a scratch file at `scratchPath`. Until the
    /// commit is published the run is as it was; a run created here is removed again if the commit fails.
    public func commit(options: WriterOptions, scratchPath: String) throws -> Outcome {
        var options = options
        options.overwrite = false
        let writer: SnapshotWriter
        if runExists {
            writer = try SnapshotWriter.open(path: runPath, expecting: conversion.tensors, options: options)
            // The run was checked before its lock was taken: another writer may have committed in between.
            guard writer.committedSnapshots == checkedCount, writer.metadata.snapshots.last?.step == checkedLastStep else {
                try? writer.close()
                throw IOError.changed(path: runPath)
            }
        } else {
            writer = try SnapshotWriter.create(path: runPath, tensors: conversion.tensors, options: options)
        }
        var committed = false
        defer {
            if !committed {
                try? writer.close()
                if !runExists { unlink(runPath) }
            }
        }
        let source = try conversion.makeSource(scratchPath: scratchPath)
        let report = try writer.commit(appending: conversion.snapshotInfos, from: source)
        committed = true
        try writer.close()
        return Outcome(commit: report, snapshots: writer.committedSnapshots, segments: writer.segments.count)
    }
}
