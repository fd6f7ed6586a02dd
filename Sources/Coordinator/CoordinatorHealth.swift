import FederationProtocol
import GRPCCore
import Synchronization

/// What the coordinator tells orchestrators and operators about itself: whether it serves, and where its round is.
/// The standard gRPC health service (``HealthService``, on the federation port) and the plain-HTTP probes
/// (`/healthz`, `/readyz` on the metrics port) both read it.
///
/// Health service names (docs/protocol.md):
/// - `""` (the server) and `feddistill.v1.Federation`: SERVING from the moment the server listens until a graceful
///   shutdown begins, in every round phase (nodes need the coordinator after the round closes, to learn the result).
/// - `feddistill.round`: SERVING only while the round admits submissions (phase open).
public final class CoordinatorHealth: Sendable {
    /// The round's phase (the `phase` of a status answer, the body of the HTTP probes).
    public enum Phase: String, Sendable, CaseIterable {
        case open, finalizing, finished, failed
    }

    /// A consistent reading.
    public struct Snapshot: Sendable, Equatable {
        /// Listening and not shutting down.
        public var serving: Bool
        public var phase: Phase
        public var roundID: UInt64
    }

    public static let serverService = ""
    public static let federationService = Feddistill_V1_Federation.descriptor.fullyQualifiedService
    public static let roundService = "feddistill.round"

    /// The statuses the health service answers from.
    public let board: HealthStatusBoard
    private let state: Mutex<Snapshot>

    init(roundID: UInt64, phase: Phase) {
        let snapshot = Snapshot(serving: false, phase: phase, roundID: roundID)
        state = Mutex(snapshot)
        board = HealthStatusBoard(Self.statuses(snapshot))
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// The gRPC server listens (ignored once stopping: a shutdown is final).
    func listening() { update { if !board.isClosed { $0.serving = true } } }

    /// The round moved on.
    func enter(_ phase: Phase) { update { $0.phase = phase } }

    /// A new round opened (a long-running coordinator's next round).
    func beginRound(_ id: UInt64, phase: Phase = .open) {
        update {
            $0.roundID = id
            $0.phase = phase
        }
    }

    /// A graceful shutdown began: everything reports NOT_SERVING and open health watches end, so that they do not
    /// hold the shutdown.
    func stopping() {
        state.withLock { $0.serving = false }
        board.close()
    }

    private func update(_ change: (inout Snapshot) -> Void) {
        // The board is set under this lock, so that concurrent changes reach it in the order they were made.
        state.withLock { state in
            change(&state)
            for (service, status) in Self.statuses(state) { board.set(service, status) }
        }
    }

    static func statuses(_ snapshot: Snapshot) -> [String: HealthStatusBoard.Status] {
        let serving: HealthStatusBoard.Status = snapshot.serving ? .serving : .notServing
        return [
            serverService: serving,
            federationService: serving,
            roundService: snapshot.serving && snapshot.phase == .open ? .serving : .notServing,
        ]
    }
}

extension CoordinatorHealth.Phase {
    /// The wire form in a status answer.
    var wire: Feddistill_V1_RoundPhase {
        switch self {
        case .open: .open
        case .finalizing: .finalizing
        case .finished: .finished
        case .failed: .failed
        }
    }
}
