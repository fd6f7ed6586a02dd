import Dispatch
import Distill
import FederationProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Prometheus
import ServiceLifecycle
import UnixSignals
import CoreMetrics

/// The gRPC face of the coordinator: checks who is calling (peer certificate) and hands the work to the round.
public struct CoordinatorService: Feddistill_V1_Federation.SimpleServiceProtocol {
    let round: RoundCoordinator
    let logger: Logger

    public init(round: RoundCoordinator, logger: Logger) {
        self.round = round
        self.logger = logger
    }

    /// Refuses revoked certificates and nodes outside the federation; returns the verified node id.
    func admit(_ claimedNodeID: String?, context: ServerContext) throws -> String {
        try refusingRevoked(context) {
            let node = try claimedNodeID.map { try PeerIdentity.requireNode($0, context: context) }
                ?? PeerIdentity.nodeID(of: context)
            guard round.configuration.expectedNodes.contains(node) else {
                throw RPCError(code: .permissionDenied, message: "node \(node) is not registered in this federation")
            }
            return node
        }
    }

    /// Runs `body` for a peer whose certificate is not revoked (the list is read on every call and fails closed).
    func refusingRevoked<T>(_ context: ServerContext, _ body: () throws -> T) throws -> T {
        do {
            try RevocationList.load(fromDirectory: round.configuration.credentialsDirectory).check(context)
            return try body()
        } catch let error as RPCError {
            round.metrics.refusedCalls.increment()
            logger.notice("call refused", metadata: ["reason": "\(PeerText.escaped(error.message, maxCharacters: 512))"])
            throw error
        } catch {
            // An unreadable revocation list fails closed.
            logger.error("cannot read the revocation list", metadata: ["error": "\(error)"])
            throw RPCError(code: .unavailable, message: "the coordinator cannot check revocations right now")
        }
    }

    public func join(request: Feddistill_V1_JoinRequest, context: ServerContext) async throws -> Feddistill_V1_JoinResponse {
        let node = try admit(request.nodeID, context: context)
        try ProtocolVersion.require(request.protocolVersion)
        do { return try await round.join(node: node, capabilities: request.capabilities) } catch let error as RPCError { throw error } catch {
            logger.error("cannot record a join", metadata: ["node.id": "\(PeerText.escaped(node))", "error": "\(error)"])
            throw RPCError(code: .unavailable, message: "the coordinator could not record the join; retry")
        }
    }

    public func submit(request: RPCAsyncSequence<Feddistill_V1_SubmitChunk, any Error>,
                       context: ServerContext) async throws -> Feddistill_V1_Receipt {
        let node = try admit(nil, context: context)
        // One upload per node at a time; its announced size is reserved against the coordinator's receive budget
        // before a buffer is allocated, and released when the submission is stored or refused.
        return try await round.admission.upload(node: node) { reserve in
            let received = try await SubmissionReceiver.receive(request, context: context,
                                                                maxEnvelopeBytes: round.configuration.maxEnvelopeBytes,
                                                                logger: logger, reserve: reserve)
            guard received.metadata.roundID == round.configuration.roundID else {
                throw RPCError(code: .failedPrecondition, message: "round \(received.metadata.roundID) is not open "
                               + "(current round \(round.configuration.roundID))")
            }
            return try await round.submit(received)
        }
    }

    public func watchRound(request: Feddistill_V1_WatchRoundRequest, response: RPCWriter<Feddistill_V1_RoundEvent>,
                           context: ServerContext) async throws {
        let node = try admit(request.nodeID, context: context)
        for await event in await round.watch() { try await response.write(event) }
        await round.delivered(to: node)
    }

    public func status(request: Feddistill_V1_StatusRequest, context: ServerContext) async throws -> Feddistill_V1_StatusResponse {
        try refusingRevoked(context) {}
        do { return try await round.status() } catch {
            logger.error("cannot read the coordinator database", metadata: ["error": "\(error)"])
            throw RPCError(code: .unavailable, message: "the coordinator cannot read its state right now")
        }
    }
}

/// Runs a coordinator as a swift-service-lifecycle `ServiceGroup`: the gRPC server, the round (deadline ticks,
/// merge, evaluation) and, optionally, the Prometheus metrics endpoint. Signals are the caller's choice (the
/// executable's `main` passes SIGTERM and SIGINT as `shutdownSignals`: a graceful stop, stored submissions stay and a
/// restart resumes the round; and SIGUSR1 as `closeRoundSignals`: close the round at once). The library installs no
/// signal handler of its own.
public enum CoordinatorServer {
    /// Serves until the round ends (or a shutdown signal); `onListening` receives the bound gRPC port and
    /// `onMetricsListening` the metrics port. The round's metrics go into `metricsRegistry` when one is given (served
    /// over HTTP when `configuration.metricsPort` is set), otherwise to `MetricsSystem`. Returns the round's result.
    public static func run(configuration: CoordinatorConfiguration, logger: Logger,
                           metricsRegistry: PrometheusCollectorRegistry? = nil,
                           shutdownSignals: [UnixSignal] = [],
                           closeRoundSignals: [UnixSignal] = [],
                           onMetricsListening: @escaping @Sendable (Int) -> Void = { _ in },
                           onListening: @escaping @Sendable (Int) -> Void) async throws -> RoundResult {
        let round = try RoundCoordinator(configuration: configuration, logger: logger,
                                         metricsFactory: metricsRegistry.map { PrometheusMetricsFactory(registry: $0) }
                                             ?? MetricsSystem.factory)
        let federation = CoordinatorService(round: round, logger: logger)
        // The standard health service on the same mutual-TLS port, refusing revoked certificates like the federation's.
        let health = HealthService(board: round.health.board) { context in try federation.refusingRevoked(context) {} }
        let server = GRPCServer(
            transport: FederationTransport.server(host: configuration.host, port: configuration.port,
                                                  credentials: configuration.credentials,
                                                  connectionLimits: configuration.connectionLimits(logger: logger)),
            services: [federation, health])
        let roundService = RoundService(round: round, server: server, logger: logger, closeRoundSignals: closeRoundSignals,
                                        onListening: onListening)
        // A group stops its services in reverse order: the metrics endpoint comes first so that it stops last, and
        // the probes answer 503 while the rest shuts down.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let metricsRegistry, let port = configuration.metricsPort {
            services.append(.init(service: MetricsHTTPServer(host: configuration.metricsHost, port: port,
                                                             registry: metricsRegistry, health: round.health, logger: logger,
                                                             onListening: onMetricsListening)))
        }
        services += [
            .init(service: GRPCServerService(server: server)),
            .init(service: roundService, successTerminationBehavior: .gracefullyShutdownGroup,
                  failureTerminationBehavior: .gracefullyShutdownGroup),
        ]
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: shutdownSignals, cancellationSignals: [], logger: logger))
        try await withTaskCancellationHandler {
            try await group.run()
        } onCancel: {
            Task { await round.cancel() }
        }
        // The group ended: either the round did, or a signal or cancellation stopped everything first.
        return try await round.waitForResult()
    }
}

/// The gRPC server as a lifecycle service.
struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}

/// The round as a lifecycle service: replays stored submissions, applies the deadline, waits for the result and then
/// (with `exitAfterRound`) ends, which shuts the group down.
struct RoundService: Service {
    let round: RoundCoordinator
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let logger: Logger
    let closeRoundSignals: [UnixSignal]
    let onListening: @Sendable (Int) -> Void

    func run() async throws {
        guard let port = try await server.listeningAddress?.ipv4?.port else {
            throw RoundFailure(reason: "the server did not bind")
        }
        logger.info("coordinator listening", metadata: ["port": "\(port)"])
        round.health.listening()
        // However this service ends (its round over, a shutdown, cancellation), the coordinator stops serving: health
        // NOT_SERVING, and open health watches end so that they cannot hold the gRPC server's graceful shutdown.
        defer { round.health.stopping() }
        onListening(port)
        if round.concludedBeforeStart {
            // Nothing to run: serve the stored outcome (status, health, the final event) until asked to stop.
            try await gracefulShutdown()
            return
        }
        try await round.resume()
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                if !closeRoundSignals.isEmpty {
                    // The caller's close signals (the executable passes SIGUSR1) close the round as if the deadline had passed.
                    let signals = await UnixSignalsSequence(trapping: closeRoundSignals)
                    group.addTask {
                        for await _ in signals { await round.closeNow() }
                    }
                }
                group.addTask {
                    // The round's finalisation (merge and evaluation) runs here, as a child of the round service.
                    for await request in round.finalizationRequests { await round.finalize(request) }
                }
                group.addTask {
                    // Deadline checks until the round ends.
                    while !Task.isCancelled, await round.isRunning {
                        try await Task.sleep(for: .seconds(1))
                        await round.tick()
                    }
                }
                defer { group.cancelAll() }
                _ = try await round.waitForResult()
            }
        } onGracefulShutdown: {
            // Health first: NOT_SERVING (and /readyz 503) from the moment a shutdown begins.
            round.health.stopping()
            Task { await round.cancel() }
        }
        guard round.configuration.exitAfterRound else {
            try await gracefulShutdown()  // keep serving status until asked to stop
            return
        }
        // Let every node that submitted receive the outcome; one backing off across a restart reconnects within its
        // retry ceiling. Polled: the wait is bounded and short.
        let lingerEnd = ContinuousClock.now + .seconds(round.configuration.lingerSeconds)
        while ContinuousClock.now < lingerEnd, !Task.isShuttingDownGracefully, !(await round.uninformedSubmitters.isEmpty) {
            try await Task.sleep(for: .milliseconds(100))
        }
        let missed = await round.uninformedSubmitters
        if !missed.isEmpty {
            logger.notice("exiting before some nodes received the result",
                          metadata: ["nodes": "\(missed.sorted().joined(separator: ","))"])
        }
    }
}
