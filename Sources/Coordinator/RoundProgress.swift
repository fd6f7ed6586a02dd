import FederationProtocol
import Foundation
import Synchronization

/// What the coordinator is doing right now, for operators and nodes: a named step (merge, evaluate-global, …) and
/// how far it is. The finalisation thread writes it; the status answer, the dashboard and the nodes' round watches
/// (``RoundCoordinator`` forwards it, throttled) read it.
public final class ProgressBoard: Sendable {
    /// A consistent reading.
    public struct Snapshot: Sendable, Equatable {
        public var step: String
        public var done: Int
        public var total: Int
        public var startedAt: Date
        public var updatedAt: Date

        /// Seconds left at the step's average rate so far; nil before the first unit of work.
        public var etaSeconds: Double? {
            guard done > 0, total >= done else { return nil }
            let elapsed = updatedAt.timeIntervalSince(startedAt)
            return elapsed / Double(done) * Double(total - done)
        }

        var wire: Feddistill_V1_RoundProgress {
            var progress = Feddistill_V1_RoundProgress()
            progress.step = step
            progress.done = UInt64(max(done, 0))
            progress.total = UInt64(max(total, 0))
            progress.elapsedSeconds = max(updatedAt.timeIntervalSince(startedAt), 0)
            progress.etaSeconds = etaSeconds ?? -1
            return progress
        }
    }

    private let state: Mutex<(snapshot: Snapshot, lastForwarded: Date)>
    private let clock: @Sendable () -> Date
    /// Called (on the writer's thread) when a step starts, ends, or at most every `forwardInterval` in between.
    private let onChange: Mutex<(@Sendable (Snapshot) -> Void)?>
    let forwardInterval: TimeInterval

    init(clock: @escaping @Sendable () -> Date = { Date() }, forwardInterval: TimeInterval = 1) {
        let now = clock()
        self.clock = clock
        self.forwardInterval = forwardInterval
        state = Mutex((Snapshot(step: "", done: 0, total: 0, startedAt: now, updatedAt: now), .distantPast))
        onChange = Mutex(nil)
    }

    public var snapshot: Snapshot { state.withLock { $0.snapshot } }

    /// Who hears of changes (the round that forwards them to its watchers); replaces the previous listener.
    func listen(_ body: (@Sendable (Snapshot) -> Void)?) { onChange.withLock { $0 = body } }

    /// A new step begins with `total` units of work.
    public func begin(_ step: String, total: Int) {
        let now = clock()
        let snapshot = state.withLock { state in
            state.snapshot = Snapshot(step: step, done: 0, total: total, startedAt: now, updatedAt: now)
            state.lastForwarded = now
            return state.snapshot
        }
        forward(snapshot)
    }

    /// `done` of the current step's units are complete.
    public func advance(to done: Int) {
        let now = clock()
        let snapshot: Snapshot? = state.withLock { state in
            state.snapshot.done = min(done, max(state.snapshot.total, done))
            state.snapshot.updatedAt = now
            let finished = state.snapshot.done >= state.snapshot.total
            guard finished || now.timeIntervalSince(state.lastForwarded) >= forwardInterval else { return nil }
            state.lastForwarded = now
            return state.snapshot
        }
        if let snapshot { forward(snapshot) }
    }

    private func forward(_ snapshot: Snapshot) {
        let listener = onChange.withLock { $0 }
        listener?(snapshot)
    }
}
