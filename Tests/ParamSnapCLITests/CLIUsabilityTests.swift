// CLI tests of what a user reads: name suggestions, progress lines, printed numbers, error wording, help layout.
import Foundation
import Testing
import PSnapTestSupport
@testable import ParamSnap

@Suite struct CLIUsabilityTests {
    let psnap = productPath("psnap")
    let snapinfo = productPath("snapinfo")
    let demo = repoRoot + "/fixtures/demo-run"

    @Test func nameSuggestionsByEditDistance() {
        let names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
        #expect(NameSuggestion.closest(to: "fc3.bais", in: names).first == "fc3.bias")        // a swap is one edit
        #expect(NameSuggestion.closest(to: "fc2.weigt", in: names).first == "fc2.weight")
        #expect(NameSuggestion.closest(to: "decoder.layers.0", in: names).isEmpty)
        #expect(NameSuggestion.closest(to: "fc1.weight", in: names, limit: 1) == ["fc1.weight"])
        #expect(NameSuggestion.closest(toGlob: "fc1.wieght*", in: names).first == "fc1.weight")
        #expect(NameSuggestion.closest(toGlob: "fc[4-9].bias", in: names).count == 3)       // one class away from each bias
        #expect(NameSuggestion.closest(toGlob: "*.kernel", in: names).isEmpty)
        #expect(NameSuggestion.hint(["a", "b"]) == " (did you mean 'a' or 'b'?)" && NameSuggestion.hint([]) == "")
    }

    /// A mistyped tensor name or an --include glob that matches nothing gets the closest names, in every command
    /// that looks tensors up.
    @Test func mistypedTensorNamesGetSuggestions() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = try demoRun(in: dir)
        let cases: [[String]] = [["trajectory", run, "fc3.bais", "0"],
                                 ["export", run, "--snapshot", "0", "-o", dir + "/x.npz", "--include", "fc3.bais"],
                                 ["moments", run, "--csv", "--include", "fc3.bais"],
                                 ["moments", run, "--across", "parameters", "--include", "fc3.bais"],
                                 ["convert", demo, "-o", dir + "/c.psnap", "--include", "fc3.bais"]]
        for args in cases {
            let r = try runProcess(psnap, args)
            #expect(r.status == 64 && r.err.contains("fc3.bais") && r.err.contains("did you mean 'fc3.bias'"), "\(args[0]): \(r.status) \(r.err)")
        }
        let glob = try runProcess(psnap, ["convert", demo, "-o", dir + "/c.psnap", "--include", "fc1.wieght*"])
        #expect(glob.status == 64 && glob.err.contains("--include 'fc1.wieght*' matches no tensor") && glob.err.contains("'fc1.weight'"), "\(glob.err)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/c.psnap") && !FileManager.default.fileExists(atPath: dir + "/x.npz"))
        // One glob of several matching nothing: a note, and the others are used.
        let partial = try runProcess(psnap, ["export", run, "--snapshot", "0", "-o", dir + "/x.npz", "--include", "fc3.*", "--include", "fc9.*"])
        #expect(partial.status == 0 && partial.err.contains("note: --include 'fc9.*' matches no tensor"), "\(partial.err)")
    }

    /// Long scans show a progress line on stderr when it is a terminal, and nothing when it is not.
    @Test func longScansShowProgressOnATerminal() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = try demoRun(in: dir)
        let cases: [(String, [String])] = [(psnap, ["verify", run]), (snapinfo, [run, "--verify"]),
                                           (psnap, ["moments", run, "-o", dir + "/m.psnap"]), (psnap, ["moments", run, "--across", "parameters"]),
                                           (psnap, ["export", run, "--snapshot", "0", "-o", dir + "/x.npz"]),
                                           (psnap, ["compact", run, "-o", dir + "/c.psnap"])]
        for (exe, args) in cases {
            let t = try runWithTerminalStderr(exe, args)
            #expect(t.status == 0 && t.err.contains("%") && t.err.contains("ETA") && t.err.contains("MB/s"), "\(args[0]): \(t.status) \(t.err)")
            for f in ["/m.psnap", "/x.npz", "/c.psnap"] { try? FileManager.default.removeItem(atPath: dir + f) }
            let piped = try runProcess(exe, args)
            #expect(piped.status == 0 && !piped.err.contains("ETA"), "\(args[0]) drew progress into a pipe: \(piped.err)")
            for f in ["/m.psnap", "/x.npz", "/c.psnap"] { try? FileManager.default.removeItem(atPath: dir + f) }
        }
    }

    /// Per-parameter statistics print as CSV and JSON with their names beside them, counts and snapshot indices as
    /// integers; --npy writes stats.json naming the rows and the tensors.
    @Test func momentsPrintNamedStatistics() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/r.psnap"
        try CLILimitsTests.smallRun(run, snapshots: 3)   // parameter i: 0, i, 2i
        let csv = try runProcess(psnap, ["moments", run, "--csv", "--stats", "count,mean,argmin,argmax"])
        #expect(csv.status == 0 && csv.out.contains("tensor,index,count,mean,argmin,argmax\n") && csv.out.contains("\nw,3,3,3.0,0,2\n"), "\(csv.out)")
        let json = try runProcess(psnap, ["moments", run, "--json"])
        #expect(json.status == 0, "\(json.err)")
        let rows = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]]
        #expect(rows?.count == 4)
        let p3 = rows?.first { $0["index"] as? Int == 3 }
        #expect(p3?["tensor"] as? String == "w" && p3?["count"] as? Int == 3 && p3?["mean"] as? Double == 3 && p3?["argmax"] as? Int == 2)
        #expect(rows?.first?["skewness"] is NSNull)   // parameter 0 is constant: NaN skewness, null in JSON
        #expect(json.out.contains("\"count\": 3,") && !json.out.contains("\"count\": 3.0"))
        let npy = try runProcess(psnap, ["moments", run, "--npy", dir + "/npy", "--stats", "moments"])
        #expect(npy.status == 0, "\(npy.err)")
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/npy/stats.json"))) as? [String: Any]
        #expect(index?["statistics"] as? [String] == ["mean", "variance", "skewness", "kurtosis"])
        let tensors = index?["tensors"] as? [[String: Any]]
        #expect(tensors?.count == 1 && tensors?.first?["name"] as? String == "w" && tensors?.first?["file"] as? String == "w.npy")
        #expect(FileManager.default.fileExists(atPath: dir + "/npy/w.npy"))
    }

    /// trajectory prints each value in the shortest form of its own dtype (an f32 0.1 is "0.1", not 0.10000000149011612).
    @Test func trajectoryPrintsTheShortestFormOfEachDtype() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/r.psnap"
        let w = try SnapshotWriter.create(path: run, tensors: [TensorInfo(name: "a", dtype: .f32, shape: [1]), TensorInfo(name: "b", dtype: .f64, shape: [1]),
                                                               TensorInfo(name: "c", dtype: .f16, shape: [1])])
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        try w.append(SnapshotInfo(step: 0), tensors: ["a": le(Float(0.1).bitPattern), "b": le((0.1 as Double).bitPattern), "c": le(Float16(0.1).bitPattern)])
        try w.append(SnapshotInfo(step: 1), tensors: ["a": le(Float(1e-8).bitPattern), "b": le((1.0 / 3).bitPattern), "c": le(Float16(-2.5).bitPattern)])
        try w.close()
        let expected = [("a", "0,0,0.1\n1,1,1e-08\n"), ("b", "0,0,0.1\n1,1,0.3333333333333333\n"), ("c", "0,0,0.1\n1,1,-2.5\n")]
        for (name, rows) in expected {
            let r = try runProcess(psnap, ["trajectory", run, name, "0"])
            #expect(r.status == 0 && r.out == "snapshot,step,value\n" + rows, "\(name): \(r.out)")
        }
        let j = try runProcess(psnap, ["trajectory", run, "a", "0", "--json"])
        #expect(j.out.contains("0.1,") && !j.out.contains("0.10000000149011612"), "\(j.out)")
    }

    /// Wording: "already exists" names --force where there is one; a mistyped subcommand is named as such with
    /// the closest one; a usage error found while a subcommand runs shows that subcommand's usage.
    @Test func errorMessagesNameTheWayOut() throws {
        let dir = tempDir(); defer { cleanup(dir) }
        let run = dir + "/r.psnap"
        try CLILimitsTests.smallRun(run, snapshots: 2)
        let taken = dir + "/taken.psnap"
        try Data("x".utf8).write(to: URL(fileURLWithPath: taken))
        for args in [["convert", demo, "-o", taken], ["moments", run, "-o", taken], ["export", run, "--snapshot", "0", "-o", taken + ".npz"]] {
            if args[0] == "export" { try Data("x".utf8).write(to: URL(fileURLWithPath: taken + ".npz")) }
            let r = try runProcess(psnap, args)
            #expect(r.status == 1 && r.err.contains("already exists") && r.err.contains("--force"), "\(args[0]): \(r.err)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: taken)) == Data("x".utf8))
        let typo = try runProcess(psnap, ["momnets", run, "--csv"])
        #expect(typo.status == 64 && typo.err.contains("unknown subcommand 'momnets'") && typo.err.contains("did you mean 'moments'"), "\(typo.err)")
        #expect(!typo.err.contains("unexpected argument"))
        let helpTypo = try runProcess(psnap, ["help", "exprt"])
        #expect(helpTypo.status == 64 && helpTypo.err.contains("did you mean 'export'"), "\(helpTypo.err)")
        let usage = try runProcess(psnap, ["moments", run])   // needs -o, --csv, --json or --npy
        #expect(usage.status == 64 && usage.err.contains("Usage: psnap moments") && !usage.err.contains("psnap <subcommand>"), "\(usage.err)")
        let late = try runProcess(psnap, ["export", run, "--step", "77", "-o", dir + "/x.npz"])   // found after opening the run
        #expect(late.status == 64 && late.err.contains("no snapshot has step 77") && late.err.contains("Usage: psnap export"), "\(late.err)")
    }

    /// Help paragraphs are written unwrapped and wrapped once, by the argument parser: at 80 columns every line of a
    /// paragraph but its last fills most of the width, and no line is longer than 80 columns.
    @Test func helpParagraphsWrapCleanlyAt80Columns() throws {
        let commands: [(String, [String])] = [(psnap, ["--help"]), (snapinfo, ["--help"])]
            + ["info", "append", "compact", "verify", "repair", "trajectory", "moments", "convert", "export"].map { (psnap, [$0, "--help"]) }
        for (exe, args) in commands {
            let r = try runProcess(exe, args, timeout: 20, environment: ["COLUMNS": "80"])
            #expect(r.status == 0)
            let text = r.out.components(separatedBy: "\nUSAGE:")[0]   // the overview and discussion
            var paragraph: [String] = []
            func check() {
                for line in paragraph.dropLast() {
                    #expect(line.count >= 50, "\(args): a paragraph line ends early: '\(line)'")
                }
                paragraph = []
            }
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
                #expect(line.count <= 80, "\(args): line over 80 columns: '\(line)'")
                if line.isEmpty || line.hasPrefix(" ") { check() } else { paragraph.append(line) }
            }
            check()
        }
    }
}
