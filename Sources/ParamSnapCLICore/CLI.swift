// Shared CLI plumbing: error-to-exit-code mapping, option bounds, number formatting, JSON printing.
import ArgumentParser
import Foundation
@_spi(Internals) import ParamSnap

/// Input data that cannot give what a command was asked for (exit 65), found by the command itself.
package struct BadInput: ParamSnapError {
    package var kind: ErrorKind { .corruptData }
    package let description: String
    /// A run with no snapshots has no values to compute or export from.
    package static func noSnapshots(_ path: String) -> BadInput { BadInput(description: "'\(path)' has no snapshots") }
}

/// Helpers shared by the commands.
package enum CLI {
    /// Runs `body`; a library error is printed as one line and ends the command with the exit code of its kind
    /// (`exitCode(for:)`). Temporary files are removed if SIGINT, SIGTERM or SIGHUP ends the command.
    package static func guarded(_ body: () throws -> Void) throws {
        TempFiles.removeOnSignals()
        do {
            try body()
        } catch let e as ExitCode {
            throw e
        } catch let e as ValidationError {
            throw e
        } catch let e as any ParamSnapError {
            // A request the run cannot answer is a usage error: shown with the subcommand's usage, as a bad option is.
            if e.kind == .usage { throw ValidationError(e.description) }
            throw fail("\(e)", code: exitCode(for: e.kind))
        } catch {
            throw fail("\(error)", code: 1)
        }
    }

    /// Exit codes (every command's `--help` lists them): 1 failure (I/O, an existing output, a lock), 64 usage,
    /// 65 bad or damaged input data.
    static func exitCode(for kind: ErrorKind) -> Int32 {
        switch kind {
        case .io, .conflict: return 1
        case .usage: return 64
        case .corruptData: return 65
        }
    }

    /// Prints `message` as an error line and returns the exit to throw.
    static func fail(_ message: String, code: Int32) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        return ExitCode(code)
    }

    package static func jsonString<T: Encodable>(_ v: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! e.encode(v), as: UTF8.self)
    }

    package static func bytes(_ n: UInt64) -> String {
        let d = Double(n)
        if n < 1024 { return "\(n) B" }
        if d < 1024 * 1024 { return String(format: "%.1f KiB", d / 1024) }
        if d < 1024 * 1024 * 1024 { return String(format: "%.1f MiB", d / 1048576) }
        return String(format: "%.2f GiB", d / 1073741824)
    }

    package static func ratio(_ raw: UInt64, _ stored: UInt64) -> String {
        stored == 0 ? "-" : String(format: "%.2f×", Double(raw) / Double(stored))
    }

    package static func group(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0, i % 3 == 0, c != "-" { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    package static func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
    package static func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }

    /// Whether stderr is a terminal (progress is shown only then).
    package static var stderrIsTerminal: Bool { isatty(2) == 1 }

    /// Indices of `names` matched by any `--include` glob (all when none is given). A glob that matches nothing is
    /// named with the closest names: a note when other globs select something, else a usage error.
    package static func select(_ names: [String], include: [String], in what: String, quiet: Bool = false) throws -> [Int] {
        guard !include.isEmpty else { return Array(names.indices) }
        let chosen = names.indices.filter { i in include.contains { TensorNameFilter.matches($0, names[i]) } }
        for g in include where !names.contains(where: { TensorNameFilter.matches(g, $0) }) {
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
    package static func note(_ s: String) { FileHandle.standardError.write(Data("note: \(s)\n".utf8)) }
}

/// Bounds of the options that size memory or threads, and the option checks the commands share; each failure is a
/// usage error (exit 64) naming the option, raised in `validate()` before any file is opened.
package enum OptionCheck {
    /// Worker threads: 1…max(64, 4 × cores). More only multiply the per-worker buffers.
    package static let maxWorkers = max(64, 4 * ProcessInfo.processInfo.activeProcessorCount)
    /// --memory in MiB: at least 16 (the writer's smallest useful batches), at most the physical memory.
    static let minMemoryMiB = 16
    static var maxMemoryMiB: Int { max(minMemoryMiB, Int(ProcessInfo.processInfo.physicalMemory >> 20)) }

    /// --block-size: a power of two in 1…2^24 (FORMAT §3); `auto` where the command accepts it.
    package static func blockSize(_ text: String?, allowAuto: Bool = false) throws {
        guard let text, !(allowAuto && text == "auto") else { return }
        guard let b = UInt64(text), Spec.isValidBlockSize(b) else {
            throw ValidationError("--block-size is a power of two in 1…\(Spec.maxBlockSize)\(allowAuto ? " or 'auto'" : ""), not '\(text)'")
        }
    }

    package static func workers(_ n: Int?) throws {
        guard let n else { return }
        guard (1...maxWorkers).contains(n) else { throw ValidationError("--workers is 1…\(maxWorkers), not \(n)") }
    }

    package static func memory(_ mib: Int) throws {
        guard (minMemoryMiB...maxMemoryMiB).contains(mib) else {
            throw ValidationError("--memory is in MiB, \(minMemoryMiB)…\(maxMemoryMiB) (the physical memory), not \(mib)")
        }
    }

    package static func level(_ level: Int32?) throws {
        guard let level else { return }
        let r = CodecChain.zstdLevels
        guard r.contains(level) else { throw ValidationError("--level is a zstd level in \(r.lowerBound)…\(r.upperBound), not \(level)") }
    }

    /// The help of --min-match (convert, compact, append).
    package static let minMatchHelp = "Shortest match zstd may take in tiles of 2-byte values (bf16, f16), 3…7, or 0 for the level's own. Default 7: their planes are mostly literals, where short matches cost more than they save (bf16 fine-tunes 3–3.6 % smaller and faster to write; other dtypes keep the level's own; spec §5, RATIONALE §A.9)."

    /// --min-match: 0 (the zstd level's own) or 3…7.
    package static func minMatch(_ m: Int32) throws {
        let r = Spec.zstdMinMatchRange
        guard m == 0 || r.contains(m) else {
            throw ValidationError("--min-match is 0 (the zstd level's own) or \(r.lowerBound)…\(r.upperBound), not \(m)")
        }
    }

    /// --codec (with --level, or the default level when only the chain is given) as a chain.
    @discardableResult
    package static func codec(_ codec: String, level: Int32?) throws -> CodecChain {
        try Self.level(level)
        do { return try CodecChain(parsing: codec, zstdLevel: level ?? Spec.defaultZstdLevel) } catch {
            throw ValidationError("--codec '\(codec)': \(error)")
        }
    }
}
