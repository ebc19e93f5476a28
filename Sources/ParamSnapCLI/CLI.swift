// Shared CLI plumbing: error-to-exit-code mapping, option bounds, number formatting, JSON printing.
import ArgumentParser
import Foundation
@_spi(Internals) import ParamSnap
import PSnapImport
import ParamSnapStats

/// Input data that cannot give what a command was asked for (exit 65), found by the command itself.
struct BadInput: Error, CustomStringConvertible {
    let description: String
    /// A run with no snapshots has no values to compute or export from.
    static func noSnapshots(_ path: String) -> BadInput { BadInput(description: "'\(path)' has no snapshots") }
}

/// Helpers shared by the commands.
enum CLI {
    /// Runs `body`, printing library errors as one line and exiting 65 (bad data), 64 (an output that is an input; a
    /// request the run cannot answer: no such tensor, parameter or snapshot) or 1 (other failures). Temporary files
    /// are removed if SIGINT, SIGTERM or SIGHUP ends the command.
    static func guarded(_ body: () throws -> Void) throws {
        TempFiles.removeOnSignals()
        do {
            try body()
        } catch let e as ExitCode {
            throw e
        } catch let e as FormatError {
            fail("\(e)", code: 65)
        } catch let e as DumpError {
            fail("\(e)", code: 65)
        } catch let e as BadInput {
            fail("\(e)", code: 65)
        } catch let e as ReaderError {
            fail("\(e)", code: 64)
        } catch let e as MomentsError {
            switch e {
            case .tileOffSegments: fail("\(e)", code: 65)
            case .io: fail("\(e)", code: 1)
            case .badSnapshotRange, .noTensorSelected, .outputDType, .noStatistic: fail("\(e)", code: 64)
            }
        } catch let e as IOError {
            if case .layoutMismatch = e { fail("\(e)", code: 65) }
            if case .badSnapshot = e { fail("\(e)", code: 65) }
            if case .outputIsInput = e { fail("\(e)", code: 64) }
            fail("\(e)", code: 1)
        } catch let e as ValidationError {
            throw e
        } catch {
            fail("\(error)", code: 1)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(code)
    }

    static func jsonString<T: Encodable>(_ v: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! e.encode(v), as: UTF8.self)
    }

    static func bytes(_ n: UInt64) -> String {
        let d = Double(n)
        if n < 1024 { return "\(n) B" }
        if d < 1024 * 1024 { return String(format: "%.1f KiB", d / 1024) }
        if d < 1024 * 1024 * 1024 { return String(format: "%.1f MiB", d / 1048576) }
        return String(format: "%.2f GiB", d / 1073741824)
    }

    static func ratio(_ raw: UInt64, _ stored: UInt64) -> String {
        stored == 0 ? "-" : String(format: "%.2f×", Double(raw) / Double(stored))
    }

    static func group(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0, i % 3 == 0, c != "-" { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    static func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
    static func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }

    /// Whether stderr is a terminal (progress is shown only then).
    static var stderrIsTerminal: Bool { isatty(2) == 1 }

    /// Indices of `names` matched by any `--include` glob (all when none is given). A glob that matches nothing is
    /// named with the closest names: a note when other globs select something, else a usage error.
    static func select(_ names: [String], include: [String], in what: String, quiet: Bool = false) throws -> [Int] {
        guard !include.isEmpty else { return Array(names.indices) }
        let chosen = names.indices.filter { i in include.contains { DumpNames.globMatch($0, names[i]) } }
        for g in include where !names.contains(where: { DumpNames.globMatch(g, $0) }) {
            let message = unmatchedInclude(g, names: names, in: what)
            if chosen.isEmpty { throw ValidationError(message) }
            if !quiet { note(message) }
        }
        return chosen
    }

    /// "--include 'X' matches no tensor of WHAT (did you mean …?)".
    static func unmatchedInclude(_ glob: String, names: [String], in what: String) -> String {
        "--include '\(glob)' matches no tensor of \(what)\(NameSuggestion.hint(NameSuggestion.closest(toGlob: glob, in: names)))"
    }

    /// Prints a note on stderr (skipped files, globs that match nothing).
    static func note(_ s: String) { FileHandle.standardError.write(Data("note: \(s)\n".utf8)) }
}

/// Bounds of the options that size memory or threads, and the option checks the commands share; each failure is a
/// usage error (exit 64) naming the option, raised in `validate()` before any file is opened.
enum OptionCheck {
    /// Worker threads: 1…max(64, 4 × cores). More only multiply the per-worker buffers.
    static let maxWorkers = max(64, 4 * ProcessInfo.processInfo.activeProcessorCount)
    /// --memory in MiB: at least 16 (the writer's smallest useful batches), at most the physical memory.
    static let minMemoryMiB = 16
    static var maxMemoryMiB: Int { max(minMemoryMiB, Int(ProcessInfo.processInfo.physicalMemory >> 20)) }

    static func workers(_ n: Int?) throws {
        guard let n else { return }
        guard (1...maxWorkers).contains(n) else { throw ValidationError("--workers is 1…\(maxWorkers), not \(n)") }
    }

    static func memory(_ mib: Int) throws {
        guard (minMemoryMiB...maxMemoryMiB).contains(mib) else {
            throw ValidationError("--memory is in MiB, \(minMemoryMiB)…\(maxMemoryMiB) (the physical memory), not \(mib)")
        }
    }

    static func level(_ level: Int32?) throws {
        guard let level else { return }
        let r = CodecChain.zstdLevels
        guard r.contains(level) else { throw ValidationError("--level is a zstd level in \(r.lowerBound)…\(r.upperBound), not \(level)") }
    }

    /// --codec (with --level, or the default level when only the chain is given) as a chain.
    @discardableResult
    static func codec(_ codec: String, level: Int32?) throws -> CodecChain {
        try Self.level(level)
        do { return try CodecChain(parsing: codec, zstdLevel: level ?? Spec.defaultZstdLevel) } catch {
            throw ValidationError("--codec '\(codec)': \(error)")
        }
    }
}
