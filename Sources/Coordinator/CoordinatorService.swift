import Dispatch
import FederationProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

/// The gRPC face of the coordinator: checks who is calling (peer certificate) and hands the work to the round.
public struct CoordinatorService: Feddistill_V1_Federation.SimpleServiceProtocol {
    let round: RoundCoordinator
    let maxEnvelopeBytes: Int
    let logger: Logger

    public init(round: RoundCoordinator, maxEnvelopeBytes: Int = 256 << 20, logger: Logger) {
        self.round = round
        self.maxEnvelopeBytes = maxEnvelopeBytes
        self.logger = logger
    }

    public func join(request: Feddistill_V1_JoinRequest, context: ServerContext) async throws -> Feddistill_V1_JoinResponse {
        let node = try PeerIdentity.requireNode(request.nodeID, context: context)
        try ProtocolVersion.require(request.protocolVersion)
        guard round.configuration.expectedNodes.contains(node) else {
            logger.notice("unknown node refused", metadata: ["node.id": "\(node)"])
            throw RPCError(code: .permissionDenied, message: "node \(node) is not registered in this federation")
        }
        return await round.join(node: node)
    }

    public func submit(request: RPCAsyncSequence<Feddistill_V1_SubmitChunk, any Error>,
                       context: ServerContext) async throws -> Feddistill_V1_Receipt {
        let received = try await SubmissionReceiver.receive(request, context: context, maxEnvelopeBytes: maxEnvelopeBytes)
        guard received.metadata.roundID == round.configuration.roundID else {
            throw RPCError(code: .failedPrecondition, message: "round \(received.metadata.roundID) is not open "
                           + "(current round \(round.configuration.roundID))")
        }
        return try await round.submit(received)
    }

    public func watchRound(request: Feddistill_V1_WatchRoundRequest, response: RPCWriter<Feddistill_V1_RoundEvent>,
                           context: ServerContext) async throws {
        _ = try PeerIdentity.requireNode(request.nodeID, context: context)
        for await event in await round.watch() { try await response.write(event) }
    }

    public func status(request: Feddistill_V1_StatusRequest, context: ServerContext) async throws -> Feddistill_V1_StatusResponse {
        await round.status()
    }
}

/// Runs a coordinator: serves until the round ends (or forever when `exitAfterRound` is false).
public enum CoordinatorServer {
    /// Serves; `onListening` receives the bound port. Returns the round's result.
    public static func run(configuration: CoordinatorConfiguration, logger: Logger,
                           onListening: @Sendable (Int) -> Void) async throws -> RoundResult {
        let round = try RoundCoordinator(configuration: configuration, logger: logger)
        let server = GRPCServer(
            transport: FederationTransport.server(host: configuration.host, port: configuration.port,
                                                  credentials: configuration.credentials),
            services: [CoordinatorService(round: round, logger: logger)])
        return try await withThrowingTaskGroup(of: RoundResult?.self) { group in
            group.addTask {
                try await server.serve()
                return nil
            }
            guard let port = try await server.listeningAddress?.ipv4?.port else {
                throw RoundFailure(reason: "the server did not bind")
            }
            logger.info("coordinator listening", metadata: ["host": "\(configuration.host)", "port": "\(port)"])
            onListening(port)
            try await round.resume()
            // SIGUSR1 closes the round at once, as if the deadline had passed.
            signal(SIGUSR1, SIG_IGN)
            let closeSignal = DispatchSource.makeSignalSource(signal: SIGUSR1)
            closeSignal.setEventHandler { Task { await round.closeNow() } }
            closeSignal.resume()
            defer { closeSignal.cancel() }
            group.addTask {
                // Deadline checks; ends when the round does.
                while await round.result == nil {
                    try await Task.sleep(for: .seconds(1))
                    await round.tick()
                }
                return nil
            }
            let result: RoundResult
            do {
                result = try await withTaskCancellationHandler {
                    try await round.waitForResult()
                } onCancel: {
                    Task { await round.cancel() }
                }
            } catch {
                server.beginGracefulShutdown()
                group.cancelAll()
                throw error
            }
            if configuration.exitAfterRound {
                try await Task.sleep(for: .seconds(2))  // let watchers receive the final event
                server.beginGracefulShutdown()
                group.cancelAll()
            }
            return result
        }
    }
}
