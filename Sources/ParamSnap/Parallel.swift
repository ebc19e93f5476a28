// The one parallel loop of the library: items handed out in order to a fixed set of worker threads, the first error
// stopping the rest. Every scan, verify, tile build and statistics pass runs on it.
import Dispatch
import Synchronization

/// A value handed to worker threads as is: the caller promises each worker touches only what is its own (its slot,
/// its scratch) or what is read-only during the loop.
package struct Unshared<T>: @unchecked Sendable {
    package var value: T
    package init(_ value: T) { self.value = value }
}

/// Runs `body(worker, item)` for every item of `0..<count` on `min(workers, count)` threads (at least one). Items are
/// taken in increasing order, one at a time, so a worker's items are in order and the whole loop roughly follows the
/// items' order (a scan then reads the file front to back). After the first error no new item starts; the error is
/// rethrown once every worker has stopped. `worker` is in `0..<workerCount(count:workers:)`, for per-worker scratch.
package func parallelForEach(count: Int, workers: Int, _ body: (_ worker: Int, _ item: Int) throws -> Void) throws {
    try parallelForEach(count: count, workers: workers, state: { $0 }, { worker, item in try body(worker, item) })
}

/// `parallelForEach` with per-worker state: `state(worker)` makes it on the worker's thread before its first item,
/// `body` gets it for every item, `finish` gets it after the worker's last (also after an error).
package func parallelForEach<State>(count: Int, workers: Int, state makeState: (_ worker: Int) -> State,
                                    _ body: (_ state: inout State, _ item: Int) throws -> Void,
                                    finish: (_ state: inout State) -> Void = { _ in }) throws {
    guard count > 0 else { return }
    let n = workerCount(count: count, workers: workers)
    let next = Atomic<Int>(0)
    let failure = Mutex<(any Error)?>(nil)
    withoutActuallyEscaping(makeState) { makeState in
        withoutActuallyEscaping(body) { body in
            withoutActuallyEscaping(finish) { finish in
                let task = Unshared((makeState, body, finish))
                DispatchQueue.concurrentPerform(iterations: n) { worker in
                    let (makeState, body, finish) = task.value
                    var state = makeState(worker)
                    defer { finish(&state) }
                    while failure.withLock({ $0 == nil }) {
                        let item = next.wrappingAdd(1, ordering: .relaxed).oldValue
                        guard item < count else { return }
                        do {
                            try body(&state, item)
                        } catch {
                            failure.withLock { if $0 == nil { $0 = error } }
                            return
                        }
                    }
                }
            }
        }
    }
    if let e = failure.withLock({ $0 }) { throw e }
}

/// Bytes done across workers, reported to a progress callback after each item.
package final class ProgressCounter: Sendable {
    private let done = Atomic<UInt64>(0)
    package let total: UInt64
    private let report: (@Sendable (UInt64, UInt64) -> Void)?
    package init(total: UInt64, report: (@Sendable (UInt64, UInt64) -> Void)?) { self.total = total; self.report = report }
    /// Adds `bytes` and reports the new count.
    package func add(_ bytes: UInt64) {
        guard let report else { return }
        report(done.wrappingAdd(bytes, ordering: .relaxed).newValue, total)
    }
}

/// The number of workers `parallelForEach` starts for `count` items.
package func workerCount(count: Int, workers: Int) -> Int { max(1, min(workers, count)) }

/// `parallelForEach` whose items each produce a part, merged by `merge` in item order (under a lock, as soon as every
/// earlier part is in): a floating-point reduction then gives the same bits whatever the worker count or timing.
/// Parts wait only for the slowest earlier item, so at most about `workers` of them are held at once.
package func parallelOrderedReduce<State, Part: Sendable>(count: Int, workers: Int, state makeState: (_ worker: Int) -> State,
                                                         _ body: (_ state: inout State, _ item: Int) throws -> Part,
                                                         merge: (Part) -> Void,
                                                         finish: (_ state: inout State) -> Void = { _ in }) throws {
    let ordered = Mutex<(next: Int, pending: [Int: Part])>((0, [:]))
    try withoutActuallyEscaping(merge) { merge in
        let m = Unshared(merge)
        try parallelForEach(count: count, workers: workers, state: makeState, { state, item in
            let part = try body(&state, item)
            ordered.withLock { o in
                o.pending[item] = part
                while let p = o.pending.removeValue(forKey: o.next) { m.value(p); o.next += 1 }
            }
        }, finish: finish)
    }
}
