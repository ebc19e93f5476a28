// Hugging Face layouts: the sharded checkpoint index and the Trainer's log history (`trainer_state.json`).
@_spi(Internals) import ParamSnap
import Foundation

/// `model.safetensors.index.json` of a sharded Hugging Face checkpoint.
package enum HFShardIndex {
    /// Tensor name → shard file name, from the index's `weight_map` (names keyed by their bytes: the exact
    /// parser keeps "e\u{301}" and "\u{e9}" apart; a name listed twice is refused). Shard names must be plain
    /// relative paths inside the checkpoint folder (no `..`, not absolute).
    package static func parse(_ data: Data, path: String) throws(DumpError) -> [TensorName: String] {
        let json: ExactJSON
        do { json = try data.withUnsafeBytes { b throws(ExactJSON.Failure) in try ExactJSON.parse(b) } } catch {
            throw .malformed(path: path, reason: "not JSON (\(error))")
        }
        guard json.members != nil else { throw .malformed(path: path, reason: "not a JSON object") }
        guard let map = json["weight_map"]?.members else { throw .malformed(path: path, reason: "no \"weight_map\" object") }
        var out: [TensorName: String] = [:]
        for m in map {
            guard let shard = m.value.string, !shard.isEmpty, !shard.hasPrefix("/"), !shard.split(separator: "/").contains("..") else {
                throw .malformed(path: path, reason: "weight_map entry for '\(m.key)' is not a shard file inside the folder")
            }
            guard out.updateValue(shard, forKey: TensorName(m.key)) == nil else {
                throw .malformed(path: path, reason: "weight_map lists tensor '\(m.key)' twice")
            }
        }
        return out
    }
}

/// The `log_history` of a Hugging Face `trainer_state.json` (or a log shaped like it).
package struct TrainerLog: Sendable {
    /// `global_step`, when present.
    package var globalStep: Int64?
    /// `epoch` of the state, when present.
    package var epoch: Double?
    /// Numeric fields of each log entry.
    package var entries: [[String: Double]]

    /// Parses the JSON of a trainer state; non-numeric fields of log entries are ignored.
    package static func parse(_ data: Data, path: String) throws(DumpError) -> TrainerLog {
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .malformed(path: path, reason: "not a JSON object")
        }
        func num(_ v: Any?) -> Double? {
            guard let n = v as? NSNumber else { return nil }
            return n.doubleValue
        }
        var log = TrainerLog(globalStep: num(obj["global_step"]).flatMap { Int64(exactly: $0) }, epoch: num(obj["epoch"]), entries: [])
        for e in obj["log_history"] as? [Any] ?? [] {
            guard let d = e as? [String: Any] else { continue }
            var m: [String: Double] = [:]
            for (k, v) in d { if let x = num(v), x.isFinite { m[k] = x } }
            log.entries.append(m)
        }
        return log
    }

    /// Epoch and metadata (loss, learning rate, … as numbers) of `step`: the entries logged at that step, or, in
    /// logs without steps, the entries of that epoch. Empty when nothing was logged for it.
    package func snapshotMetadata(step: Int64) -> (epoch: Double?, values: [String: MetaValue]) {
        let hasSteps = entries.contains { $0["step"] != nil }
        var values: [String: MetaValue] = [:]
        var epoch: Double? = nil
        for e in entries {
            let match = hasSteps ? e["step"] == Double(step) : e["epoch"] == Double(step)
            guard match else { continue }
            for (k, v) in e where k != "step" && k != "epoch" { values[k] = .number(v) }
            if let x = e["epoch"] { epoch = x }
        }
        if epoch == nil, globalStep == step { epoch = self.epoch }
        return (epoch, values)
    }
}
