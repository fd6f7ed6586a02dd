import Foundation
import GRPCCore
import Synchronization

/// The serving status of each service a server reports through the standard health service
/// (`grpc.health.v1.Health`). The owner sets statuses as its state changes; ``HealthService`` answers `Check` and
/// `List` from it and streams changes to `Watch`ers. Thread-safe; reads never wait on the owner.
public final class HealthStatusBoard: Sendable {
    public enum Status: Sendable, Equatable {
        case serving, notServing

        var wire: Grpc_Health_V1_HealthCheckResponse.ServingStatus {
            switch self {
            case .serving: .serving
            case .notServing: .notServing
            }
        }
    }

    private struct State {
        var statuses: [String: Status]
        var watchers: [UUID: (service: String, continuation: AsyncStream<Status?>.Continuation)] = [:]
        var closed = false
    }

    private let state: Mutex<State>

    /// `initial` names every service the server reports (`""` is the server as a whole).
    public init(_ initial: [String: Status]) {
        state = Mutex(State(statuses: initial))
    }

    /// The status of `service`, nil when the board does not know the name.
    public func status(of service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    /// Whether ``close()`` was called.
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Every known service with its status.
    public var statuses: [String: Status] {
        state.withLock { $0.statuses }
    }

    /// Sets `service`'s status (adding the name if it is new) and tells its watchers when it changed. Ignored once the
    /// board is closed.
    public func set(_ service: String, _ status: Status) {
        // Yielded under the lock (it never blocks), so that concurrent changes reach watchers in the order made.
        state.withLock { state in
            guard !state.closed, state.statuses[service] != status else { return }
            state.statuses[service] = status
            for watcher in state.watchers.values where watcher.service == service { watcher.continuation.yield(status) }
        }
    }

    /// The server is going away: every service becomes NOT_SERVING, watchers receive that and their streams end
    /// (an open `Watch` must not hold a graceful shutdown), and later watches end after their first answer.
    public func close() {
        let watchers: [(status: Status?, continuation: AsyncStream<Status?>.Continuation)] = state.withLock { state in
            state.closed = true
            for service in state.statuses.keys { state.statuses[service] = .notServing }
            defer { state.watchers.removeAll() }
            // A watcher of a name the server does not know keeps hearing SERVICE_UNKNOWN, as `Check` says NOT_FOUND.
            return state.watchers.values.map { (state.statuses[$0.service], $0.continuation) }
        }
        for watcher in watchers {
            watcher.continuation.yield(watcher.status)
            watcher.continuation.finish()
        }
    }

    /// The status of `service` now (nil: unknown), then every change, until the consumer stops iterating or the
    /// board is closed.
    public func updates(of service: String) -> AsyncStream<Status?> {
        let (stream, continuation) = AsyncStream<Status?>.makeStream(bufferingPolicy: .bufferingNewest(8))
        let id = UUID()
        let closed = state.withLock { state in
            continuation.yield(state.statuses[service])
            if !state.closed { state.watchers[id] = (service, continuation) }
            return state.closed
        }
        if closed {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }
}

/// The standard gRPC health service over a ``HealthStatusBoard``: `Check` (NOT_FOUND for an unknown name), `List`,
/// and `Watch` (the status now and on every change; SERVICE_UNKNOWN, not an error, for an unknown name), as the
/// health-checking specification defines them. `authorize` runs before every call (a coordinator refuses revoked
/// certificates there, as on its own service).
public struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    let board: HealthStatusBoard
    let authorize: @Sendable (ServerContext) throws -> Void

    public init(board: HealthStatusBoard, authorize: @escaping @Sendable (ServerContext) throws -> Void = { _ in }) {
        self.board = board
        self.authorize = authorize
    }

    /// Longest service name answered; longer ones are refused before they are looked up or echoed.
    static let maxServiceNameBytes = 256

    func checkedName(_ request: Grpc_Health_V1_HealthCheckRequest) throws -> String {
        guard request.service.utf8.count <= Self.maxServiceNameBytes else {
            throw RPCError(code: .invalidArgument, message: "service name longer than \(Self.maxServiceNameBytes) bytes")
        }
        return request.service
    }

    public func check(request: Grpc_Health_V1_HealthCheckRequest,
                      context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        try authorize(context)
        let service = try checkedName(request)
        guard let status = board.status(of: service) else {
            // The name is not echoed: it is the peer's text.
            throw RPCError(code: .notFound, message: "this server reports no health status for the service name asked about")
        }
        var response = Grpc_Health_V1_HealthCheckResponse()
        response.status = status.wire
        return response
    }

    public func list(request: Grpc_Health_V1_HealthListRequest,
                     context: ServerContext) async throws -> Grpc_Health_V1_HealthListResponse {
        try authorize(context)
        var response = Grpc_Health_V1_HealthListResponse()
        for (service, status) in board.statuses {
            var entry = Grpc_Health_V1_HealthCheckResponse()
            entry.status = status.wire
            response.statuses[service] = entry
        }
        return response
    }

    public func watch(request: Grpc_Health_V1_HealthCheckRequest,
                      response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
                      context: ServerContext) async throws {
        try authorize(context)
        let service = try checkedName(request)
        for await status in board.updates(of: service) {
            var message = Grpc_Health_V1_HealthCheckResponse()
            message.status = status?.wire ?? .serviceUnknown
            try await response.write(message)
        }
    }
}
