// Shared CLI plumbing: error-to-exit-code mapping, number formatting, JSON printing.
import PSnapImport
import ArgumentParser
import Foundation
@_spi(Internals) import ParamSnap

/// Helpers shared by the commands.
enum CLI {
    /// Runs `body`, printing library errors as one line and exiting 65 (bad data), 64 (an output that is an input)
    /// or 1 (other failures). Temporary files are removed if SIGINT, SIGTERM or SIGHUP ends the command.
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
        } catch let e as ReaderError {
            fail("\(e)", code: 64)
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
}
