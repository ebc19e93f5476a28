// The step rules shared by `psnap convert` and `psnap append` (README "Steps"): the order snapshots are stored
// in, the step of a snapshot whose name holds no number, and that the steps of a run strictly increase.

/// The step rules of the dump converters, applied to the snapshots discovery found.
public enum DumpSteps {
    /// The run a conversion extends: its last step and a label for messages.
    public struct Previous: Sendable {
        public var step: Int64
        public var label: String
        public init(step: Int64, label: String) { self.step = step; self.label = label }
    }

    /// Orders `found` and gives each snapshot its step:
    /// - by step, or as found when `orderGiven`; `selection` (`--steps`) then keeps some;
    /// - a snapshot whose name holds no step number takes the previous step + 1 (`previous` + 1, or 0 first), in
    ///   the order given; in step order only a lone snapshot may lack one (there is nothing to order);
    /// - steps strictly increase: two equal steps, a step below the one before it in the order given, or a step
    ///   not after `previous` (the run appended to) are refused; so is a step past 2^63 − 1.
    public static func arrange(_ found: [DumpSnapshot], orderGiven: Bool, selection: StepSelection?,
                               after previous: Previous?) throws(DumpError) -> [DumpSnapshot] {
        var snaps = found
        if orderGiven || snaps.count == 1 {
            var prev = previous?.step
            for i in snaps.indices {
                if snaps[i].step == nil { snaps[i].step = try next(after: prev, for: snaps[i].label) }
                prev = snaps[i].step
            }
        } else {
            if let s = snaps.first(where: { $0.step == nil }) {
                throw .unrecognized(path: s.label, reason: "no step number in the name to order snapshots by (use --order given)")
            }
            snaps.sort { $0.step! != $1.step! ? $0.step! < $1.step! : DumpNames.naturalLess($0.label, $1.label) }
        }
        if let selection, !snaps.isEmpty {
            let first = snaps.map { $0.step! }.min()!
            snaps = snaps.filter { selection.contains($0.step!, first: first) }
            guard !snaps.isEmpty else { throw .noInputs(reason: "--steps selects none of the \(found.count) snapshots found") }
        }
        var prev: (step: Int64, label: String)? = previous.map { ($0.step, $0.label) }
        for (k, s) in snaps.enumerated() {
            let step = s.step!
            if let p = prev, step <= p.step {
                if k == 0, let previous {
                    throw .badStep(path: s.label, reason: "step \(step) is not after the last step of \(previous.label), \(previous.step) (the steps of a run strictly increase)")
                }
                if step == p.step { throw .duplicateStep(step: step, first: p.label, second: s.label) }
                throw .badStep(path: s.label, reason: "step \(step) comes after step \(p.step) (\(p.label)) in the order given; the steps of a run strictly increase")
            }
            prev = (step, s.label)
        }
        return snaps
    }

    /// The step after `prev` (0 when there is none), for a snapshot named `label` that holds no step number.
    static func next(after prev: Int64?, for label: String) throws(DumpError) -> Int64 {
        guard let prev else { return 0 }
        let (n, overflow) = prev.addingReportingOverflow(1)
        guard !overflow else {
            throw .badStep(path: label, reason: "no step number in the name, and the step before it is \(prev), the largest there is")
        }
        return n
    }
}
