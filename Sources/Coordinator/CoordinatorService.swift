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

/// The gRPC face of the coordinator: checks who is calling (peer certificate) and hands the work to the current round
/// (``RoundScheduler``).
public struct CoordinatorService: Feddistill_V1_Federation.SimpleServiceProtocol {
    let scheduler: RoundScheduler
    let logger: Logger
    var configuration: CoordinatorConfiguration { scheduler.configuration }

    public init(scheduler: RoundScheduler, logger: Logger) {
        self.scheduler = scheduler
        self.logger = logger
    }

    /// Refuses revoked certificates, operators and nodes outside the federation; returns the verified node id.
    func admit(_ claimedNodeID: String?, context: ServerContext) throws -> String {
        try refusingRevoked(context) {
            let node = try claimedNodeID.map { try PeerIdentity.requireNode($0, context: context) }
                ?? PeerIdentity.nodeID(of: context)
            guard configuration.expectedNodes.contains(node) else {
                throw RPCError(code: .permissionDenied, message: "node \(node) is not registered in this federation")
            }
            return node
        }
    }

    /// Runs `body` for a peer whose certificate is not revoked (the list is read on every call and fails closed).
    func refusingRevoked<T>(_ context: ServerContext, _ body: () throws -> T) throws -> T {
        do {
            try RevocationList.load(fromDirectory: configuration.credentialsDirectory).check(context)
            return try body()
        } catch let error as RPCError {
            scheduler.refusedCalls.increment()
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
        let round = await scheduler.current
        guard await round.isRunning else {
            // Between rounds: a node that comes early retries (unavailable) while another round is to come.
            switch await scheduler.plan {
            case let .openAt(date):
                throw RPCError(code: .unavailable, message: "round \(round.configuration.roundID) has ended; the next round opens at "
                               + ISO8601DateFormatter().string(from: date))
            case .onDemand:
                throw RPCError(code: .unavailable, message: "round \(round.configuration.roundID) has ended; the next round opens "
                               + "when an operator starts it")
            case .exit:
                throw RPCError(code: .failedPrecondition, message: "round \(round.configuration.roundID) has ended and no further round is scheduled")
            }
        }
        do { return try await round.join(node: node, capabilities: request.capabilities) } catch let error as RPCError { throw error } catch {
            logger.error("cannot record a join", metadata: ["node.id": "\(PeerText.escaped(node))", "error": "\(error)"])
            throw RPCError(code: .unavailable, message: "the coordinator could not record the join; retry")
        }
    }

    public func submit(request: RPCAsyncSequence<Feddistill_V1_SubmitChunk, any Error>,
                       context: ServerContext) async throws -> Feddistill_V1_Receipt {
        let node = try admit(nil, context: context)
        let round = await scheduler.current
        // One upload per node at a time; its announced size is reserved against the coordinator's receive budget
        // before a buffer is allocated, and released when the submission is stored or refused.
        return try await round.admission.upload(node: node) { reserve in
            let received = try await SubmissionReceiver.receive(request, context: context,
                                                                maxEnvelopeBytes: configuration.maxEnvelopeBytes,
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
        if let round = await scheduler.round(id: request.roundID) {
            for await event in await round.watch() { try await response.write(event) }
            await round.delivered(to: node)
            return
        }
        // A round this process no longer holds: its stored outcome, then the end of the stream.
        let stored: CoordinatorDatabase.Round?
        do { stored = try scheduler.shared.database.round(id: request.roundID) } catch {
            throw RPCError(code: .unavailable, message: "the coordinator cannot read its state right now")
        }
        guard let stored, stored.concluded else {
            throw RPCError(code: .notFound, message: "round \(request.roundID) is not known to this coordinator")
        }
        if stored.state == .finished {
            try await response.write(RoundCoordinator.storedOutcomeEvent(stored, now: Date()))
        }
    }

    public func status(request: Feddistill_V1_StatusRequest, context: ServerContext) async throws -> Feddistill_V1_StatusResponse {
        try refusingRevoked(context) {}
        do { return try await scheduler.status() } catch {
            logger.error("cannot read the coordinator database", metadata: ["error": "\(error)"])
            throw RPCError(code: .unavailable, message: "the coordinator cannot read its state right now")
        }
    }

    public func decline(request: Feddistill_V1_DeclineRequest, context: ServerContext) async throws -> Feddistill_V1_DeclineResponse {
        let node = try admit(request.nodeID, context: context)
        let round = await scheduler.current
        do { try await round.decline(node: node, roundID: request.roundID, reason: request.reason) } catch let error as RPCError {
            throw error
        } catch {
            logger.error("cannot record a decline", metadata: ["node.id": "\(PeerText.escaped(node))", "error": "\(error)"])
            throw RPCError(code: .unavailable, message: "the coordinator could not record the decline; retry")
        }
        return Feddistill_V1_DeclineResponse()
    }

    /// A finished round's global set, streamed in 1 MiB chunks to a registered node when the coordinator runs
    /// multi-round refinement (`refine`). The file is checked against the SHA-256 its round's result recorded before a
    /// byte is sent.
    public func globalSet(request: Feddistill_V1_GlobalSetRequest, response: RPCWriter<Feddistill_V1_GlobalSetChunk>,
                          context: ServerContext) async throws {
        _ = try admit(nil, context: context)
        // Without refinement nodes only ever learn a round's accuracy; the merged set itself is shared only when the
        // federation chose multi-round refinement (docs/threat-model.md).
        guard configuration.refine else {
            throw RPCError(code: .failedPrecondition, message: "this coordinator does not share global sets with nodes (refine is off)")
        }
        let stored: CoordinatorDatabase.Round?
        do { stored = try scheduler.shared.database.round(id: request.roundID) } catch {
            throw RPCError(code: .unavailable, message: "the coordinator cannot read its state right now")
        }
        guard let stored, stored.state == .finished, let recorded = stored.globalSetSHA256 else {
            throw RPCError(code: .notFound, message: "round \(request.roundID) has no global set (it is unknown, running or failed)")
        }
        let path = RoundCoordinator.globalSetPath(round: stored.id, stateDirectory: configuration.stateDirectory)
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            logger.error("cannot read a global set", metadata: ["round.id": "\(stored.id)", "error": "\(error)"])
            throw RPCError(code: .notFound, message: "the global set of round \(stored.id) is no longer stored")
        }
        let digest = sha256Hex(bytes)
        guard digest == recorded else {
            logger.error("a stored global set does not match its recorded digest", metadata: ["round.id": "\(stored.id)"])
            throw RPCError(code: .dataLoss, message: "the stored global set of round \(stored.id) does not match its recorded SHA-256")
        }
        let chunkSize = 1 << 20
        var offset = 0
        repeat {
            var chunk = Feddistill_V1_GlobalSetChunk()
            chunk.roundID = stored.id
            chunk.totalSize = UInt64(bytes.count)
            chunk.sha256 = digest
            chunk.data = bytes.subdata(in: offset..<min(offset + chunkSize, bytes.count))
            try await response.write(chunk)
            offset += chunkSize
        } while offset < bytes.count
    }

    public func startRound(request: Feddistill_V1_StartRoundRequest,
                           context: ServerContext) async throws -> Feddistill_V1_StartRoundResponse {
        let name = try refusingRevoked(context) { () throws -> String in
            guard let name = PeerIdentity.operatorName(context) else {
                throw RPCError(code: .permissionDenied, message: "starting a round needs an operator certificate "
                               + "(feddistill certs issue --role operator --name NAME)")
            }
            return name
        }
        let round: RoundCoordinator
        do { round = try await scheduler.startRoundNow() } catch let error as RPCError { throw error } catch {
            logger.error("cannot open a round", metadata: ["error": "\(error)"])
            throw RPCError(code: .unavailable, message: "the coordinator could not open the round: \(error)")
        }
        logger.notice("round started by an operator", metadata: ["operator": "\(PeerText.escaped(name))",
                                                                  "round.id": "\(round.configuration.roundID)"])
        var response = Feddistill_V1_StartRoundResponse()
        response.round = await round.roundConfiguration()
        return response
    }
}

/// Runs a coordinator as a swift-service-lifecycle `ServiceGroup`: the gRPC server, the rounds (deadline ticks,
/// merge, evaluation, the schedule of the next round) and, optionally, the Prometheus metrics endpoint and the
/// dashboard. Signals are the caller's choice (the executable's `main` passes SIGTERM and SIGINT as
/// `shutdownSignals`: a graceful stop, stored submissions stay and a restart resumes the round; and SIGUSR1 as
/// `closeRoundSignals`: close the current round at once). The library installs no signal handler of its own.
public enum CoordinatorServer {
    /// Serves until the schedule's last round ends (with `exit_after_round`) or a shutdown signal; `onListening`
    /// receives the bound gRPC port, `onMetricsListening` the metrics port and `onDashboardListening` the dashboard's.
    /// The rounds' metrics go into `metricsRegistry` when one is given (served over HTTP when `configuration.metricsPort`
    /// is set), otherwise to `MetricsSystem`. `onRoundResult` receives each round's result as it is written. Returns
    /// the last round's result.
    public static func run(configuration: CoordinatorConfiguration, logger: Logger,
                           metricsRegistry: PrometheusCollectorRegistry? = nil,
                           shutdownSignals: [UnixSignal] = [],
                           closeRoundSignals: [UnixSignal] = [],
                           onMetricsListening: @escaping @Sendable (Int) -> Void = { _ in },
                           onDashboardListening: @escaping @Sendable (Int) -> Void = { _ in },
                           onRoundResult: @escaping @Sendable (RoundResult) -> Void = { _ in },
                           onListening: @escaping @Sendable (Int) -> Void) async throws -> RoundResult {
        let scheduler = try RoundScheduler(configuration: configuration, logger: logger,
                                           metricsFactory: metricsRegistry.map { PrometheusMetricsFactory(registry: $0) }
                                               ?? MetricsSystem.factory)
        let federation = CoordinatorService(scheduler: scheduler, logger: logger)
        let health = scheduler.shared.health
        // The standard health service on the same mutual-TLS port, refusing revoked certificates like the federation's.
        let healthService = HealthService(board: health.board) { context in try federation.refusingRevoked(context) {} }
        let server = GRPCServer(
            transport: FederationTransport.server(host: configuration.host, port: configuration.port,
                                                  credentials: configuration.credentials,
                                                  connectionLimits: configuration.connectionLimits(logger: logger)),
            services: [federation, healthService])
        let scrapes = ScrapeCounter()
        let roundService = RoundService(scheduler: scheduler, server: server, logger: logger, closeRoundSignals: closeRoundSignals,
                                        scrapes: metricsRegistry != nil && configuration.metricsPort != nil ? scrapes : nil,
                                        onRoundResult: onRoundResult, onListening: onListening)
        // A group stops its services in reverse order: the HTTP endpoints come first so that they stop last, and
        // the probes answer 503 while the rest shuts down.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let metricsRegistry, let port = configuration.metricsPort {
            services.append(.init(service: MetricsHTTPServer(host: configuration.metricsHost, port: port,
                                                             registry: metricsRegistry, health: health, scrapes: scrapes,
                                                             logger: logger, onListening: onMetricsListening)))
        }
        if let port = configuration.dashboardPort {
            services.append(.init(service: DashboardServer(host: configuration.dashboardHost, port: port, scheduler: scheduler,
                                                           logger: logger, onListening: onDashboardListening)))
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
            scheduler.wakeup.signal(.shutdown)
            Task { await scheduler.current.cancel() }
        }
        // The group ended: either the rounds did, or a signal or cancellation stopped everything first.
        return try await scheduler.current.waitForResult()
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

/// The rounds as a lifecycle service: for each round, replays stored submissions, applies the deadline and waits
/// for the result; then waits for the next round (the schedule's time or an operator's start) and opens it. With
/// `exitAfterRound`, it ends after the schedule's last round, which shuts the group down.
struct RoundService: Service {
    let scheduler: RoundScheduler
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let logger: Logger
    let closeRoundSignals: [UnixSignal]
    /// Scrapes of the metrics endpoint; before exiting, the service waits (within the linger) for one scrape after
    /// the last result, so that the final values reach Prometheus. Nil: no metrics endpoint.
    let scrapes: ScrapeCounter?
    let onRoundResult: @Sendable (RoundResult) -> Void
    let onListening: @Sendable (Int) -> Void

    func run() async throws {
        guard let port = try await server.listeningAddress?.ipv4?.port else {
            throw RoundFailure(reason: "the server did not bind")
        }
        logger.info("coordinator listening", metadata: ["port": "\(port)"])
        let health = scheduler.shared.health
        health.listening()
        // However this service ends (its rounds over, a shutdown, cancellation), the coordinator stops serving: health
        // NOT_SERVING, and open health watches end so that they cannot hold the gRPC server's graceful shutdown.
        defer { health.stopping() }
        onListening(port)
        var signalTask: Task<Void, Never>?
        if !closeRoundSignals.isEmpty {
            // The caller's close signals (the executable passes SIGUSR1) close the current round as if its deadline had passed.
            let signals = await UnixSignalsSequence(trapping: closeRoundSignals)
            signalTask = Task { [scheduler] in
                for await _ in signals { await scheduler.current.closeNow() }
            }
        }
        defer { signalTask?.cancel() }
        while true {
            let round = await scheduler.current
            var failure: (any Error)?
            if await round.isRunning {
                do { onRoundResult(try await run(round)) } catch {
                    if Task.isShuttingDownGracefully || Task.isCancelled { throw error }
                    failure = error
                }
            }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            let plan = await scheduler.plan
            if let failure, plan == .exit { throw failure }
            if let failure { logger.error("round failed; the schedule goes on", metadata: ["error": "\(failure)"]) }
            let deadline: Date?
            switch plan {
            case .exit:
                if failure == nil, !round.concludedBeforeStart { try await linger(round) }
                return
            case let .openAt(date): deadline = date
            case .onDemand: deadline = nil
            }
            scheduler.shared.progress.begin("between-rounds", total: 0)
            let reason = await withGracefulShutdownHandler {
                await scheduler.wakeup.wait(until: deadline)
            } onGracefulShutdown: {
                scheduler.wakeup.signal(.shutdown)
            }
            switch reason {
            case .shutdown: return
            case .start: continue  // an operator opened the round already
            case .timer:
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                try await scheduler.openNextRound(trigger: "schedule")
            }
        }
    }

    /// Runs one round to its result (or failure).
    private func run(_ round: RoundCoordinator) async throws -> RoundResult {
        try await round.resume()
        return try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
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
                return try await round.waitForResult()
            }
        } onGracefulShutdown: {
            // Health first: NOT_SERVING (and /readyz 503) from the moment a shutdown begins.
            round.health.stopping()
            scheduler.wakeup.signal(.shutdown)
            Task { await round.cancel() }
        }
    }

    /// Before exiting after the last round: let every node that submitted receive the outcome (one backing off across
    /// a restart reconnects within its retry ceiling) and let Prometheus scrape the final values, within the linger.
    /// Polled: the wait is bounded and short.
    private func linger(_ round: RoundCoordinator) async throws {
        let lingerEnd = ContinuousClock.now + .seconds(round.configuration.lingerSeconds)
        let scrapesAtResult = scrapes?.count ?? 0
        func waiting() async -> Bool {
            let nodes = !(await round.uninformedSubmitters.isEmpty)
            let metrics = scrapes.map { $0.count == scrapesAtResult } ?? false
            return nodes || metrics
        }
        while ContinuousClock.now < lingerEnd, !Task.isShuttingDownGracefully, await waiting() {
            try await Task.sleep(for: .milliseconds(100))
        }
        let missed = await round.uninformedSubmitters
        if !missed.isEmpty {
            logger.notice("exiting before some nodes received the result",
                          metadata: ["nodes": "\(missed.sorted().joined(separator: ","))"])
        }
        if let scrapes, scrapes.count == scrapesAtResult {
            logger.notice("exiting before the metrics endpoint was scraped after the result")
        }
    }
}
