import Distill
import FederationProtocol
import Foundation
import GRPCCore
import Logging
import CoreMetrics
import Synchronization

/// What outlives a round in a long-running coordinator: the database, the health board and the progress board.
public struct CoordinatorShared: Sendable {
    public let database: CoordinatorDatabase
    public let health: CoordinatorHealth
    public let progress: ProgressBoard

    public init(database: CoordinatorDatabase, health: CoordinatorHealth, progress: ProgressBoard) {
        self.database = database
        self.health = health
        self.progress = progress
    }
}

/// Rounds after rounds in one process and one database. Holds the current ``RoundCoordinator`` (the gRPC service,
/// the status answer and the dashboard ask it for the round to act on), decides when the next round opens (the
/// schedule: `rounds`, `round_interval`; or an operator's `feddistill round start`) and opens it.
///
/// A restart resumes wherever the schedule was: an open or closed round is resumed (``RoundCoordinator/resume()``); after a
/// concluded round the next opens `round_interval` after that round's stored end; once the schedule is done the
/// last round's outcome is served (or, with `exit_after_round`, the start is refused as before).
public actor RoundScheduler {
    /// The schedule's configuration (its `roundID` is the first round's).
    public nonisolated let configuration: CoordinatorConfiguration
    public nonisolated let shared: CoordinatorShared
    let logger: Logger
    let metricsFactory: any MetricsFactory
    let clock: RoundClock
    /// The round the coordinator serves now: running, or the last one that ended.
    public private(set) var current: RoundCoordinator
    /// Rounds this process ran, so that a node's watch of a round that just ended still gets its events.
    private var recent: [UInt64: RoundCoordinator] = [:]
    /// Wakes the round service between rounds (an operator opened a round, or the coordinator shuts down).
    nonisolated let wakeup = Wakeup()
    /// Calls refused before they reach a round (revoked, unregistered, wrong role).
    nonisolated let refusedCalls: Counter

    /// Opens the database and the round to serve first. Throws `RoundFailure` where a one-round coordinator did: the
    /// schedule is done, its last round ended, and the coordinator exits after its rounds.
    public init(configuration: CoordinatorConfiguration, logger: Logger,
                metricsFactory: any MetricsFactory = MetricsSystem.factory, clock: RoundClock = .system) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.clock = clock
        refusedCalls = Counter(label: "feddistill_refused_calls_total", factory: metricsFactory)
        let database = try CoordinatorDatabase(stateDirectory: configuration.stateDirectory)
        shared = CoordinatorShared(database: database, health: CoordinatorHealth(roundID: configuration.roundID, phase: .open),
                                   progress: ProgressBoard(clock: clock.now))
        let first = configuration.roundID
        var id = first
        var serveConcluded = false
        if let latest = try database.latestRound(), latest.id >= first {
            id = latest.id
            // The schedule goes on after a concluded round: serve that round until the next one opens.
            serveConcluded = latest.concluded && (configuration.lastScheduledRound.map { latest.id < $0 } ?? true)
        }
        current = try RoundCoordinator(configuration: configuration.forRound(id), logger: logger, metricsFactory: metricsFactory,
                                       clock: clock, shared: shared, serveConcluded: serveConcluded)
        recent[id] = current
    }

    /// What happens after the current round ended.
    public enum Plan: Sendable, Equatable {
        /// The next round opens at this time (the schedule).
        case openAt(Date)
        /// The next round opens when an operator starts it.
        case onDemand
        /// The schedule is done and the coordinator exits after its rounds.
        case exit
    }

    /// The plan after the current round (meaningful once it has ended).
    public var plan: Plan {
        let next = current.configuration.roundID + 1
        if let last = configuration.lastScheduledRound, next > last {
            return configuration.exitAfterRound ? .exit : .onDemand
        }
        if configuration.roundsOnDemand { return .onDemand }
        let ended = (try? shared.database.round(id: current.configuration.roundID))??.endedAtUnixSeconds
            .map { Date(timeIntervalSince1970: TimeInterval($0)) } ?? clock.now()
        return .openAt(ended.addingTimeInterval(configuration.roundIntervalSeconds))
    }

    /// Opens the round after the current one, unless a round is running (then that one is returned). `trigger` names
    /// who asked (schedule, operator) for the log.
    @discardableResult
    public func openNextRound(trigger: String) async throws -> RoundCoordinator {
        guard !(await current.isRunning) else { return current }
        let id = current.configuration.roundID + 1
        let round = try RoundCoordinator(configuration: configuration.forRound(id), logger: logger, metricsFactory: metricsFactory,
                                         clock: clock, shared: shared, serveConcluded: false)
        logger.notice("round opened", metadata: ["round.id": "\(id)", "trigger": "\(trigger)"])
        current = round
        recent[id] = round
        // Keep the last few rounds' event logs for late watchers; older ones are answered from the database.
        for old in recent.keys.sorted().dropLast(3) { recent[old] = nil }
        return round
    }

    /// An operator's `round start`: opens the next round now, whatever the schedule says, and wakes the round service.
    public func startRoundNow() async throws -> RoundCoordinator {
        if await current.isRunning {
            throw RPCError(code: .failedPrecondition, message: "round \(current.configuration.roundID) is still running; "
                           + "a new round starts after it ends")
        }
        if current.configuration.roundID == UInt64(Int64.max) {
            throw RPCError(code: .outOfRange, message: "no round id left")
        }
        let round = try await openNextRound(trigger: "operator")
        wakeup.signal(.start)
        return round
    }

    /// The round with this id that this process ran, if it still holds it (0: the current round).
    func round(id: UInt64) -> RoundCoordinator? {
        id == 0 ? current : recent[id]
    }

    /// When the next round opens by the schedule (nil: none, or it waits for an operator, or a round is running).
    func nextRoundAt() async -> Date? {
        guard !(await current.isRunning) else { return nil }
        if case let .openAt(date) = plan { return date }
        return nil
    }
}

/// Wakes one waiter between rounds: an operator opened a round, or the coordinator is shutting down. A signal sent
/// while nobody waits is kept for the next wait (a shutdown always, a start once).
final class Wakeup: Sendable {
    enum Reason: Sendable, Equatable { case start, shutdown, timer }

    private let state = Mutex<(waiter: CheckedContinuation<Reason, Never>?, pending: Reason?, cancelled: Bool)>((nil, nil, false))

    func signal(_ reason: Reason) {
        let waiter: CheckedContinuation<Reason, Never>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            if state.pending != .shutdown { state.pending = reason }
            return nil
        }
        waiter?.resume(returning: reason)
    }

    /// Waits for a signal, or until `deadline` (then `.timer`); cancellation returns `.shutdown`.
    func wait(until deadline: Date?) async -> Reason {
        state.withLock { $0.cancelled = false }  // one wait at a time: a cancellation belongs to the wait it interrupts
        return await withTaskGroup(of: Reason.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let early: Reason? = self.state.withLock { state in
                            if state.cancelled { return .timer }
                            if let pending = state.pending {
                                if pending != .shutdown { state.pending = nil }
                                return pending
                            }
                            state.waiter = continuation
                            return nil
                        }
                        if let early { continuation.resume(returning: early) }
                    }
                } onCancel: {
                    let waiter = self.state.withLock { state in
                        state.cancelled = true
                        defer { state.waiter = nil }
                        return state.waiter
                    }
                    waiter?.resume(returning: .timer)
                }
            }
            if let deadline {
                group.addTask {
                    let seconds = max(deadline.timeIntervalSinceNow, 0)
                    try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
                    return .timer
                }
            }
            let first = await group.next() ?? .shutdown
            group.cancelAll()
            return Task.isCancelled ? .shutdown : first
        }
    }
}
