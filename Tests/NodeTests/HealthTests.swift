import Coordinator
import FederationProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import Node
import Prometheus
import Testing

/// The coordinator's health, as an orchestrator and an operator see it through a whole round: the standard gRPC
/// health service on the mutual-TLS port, the phase in `Status`, and `/healthz` + `/readyz` on the metrics port.
@Suite("Coordinator health over the wire", .serialized)
struct HealthTests {
    let harness = FederatedRoundTests()

    /// GET over plain HTTP/1.1; returns the status line's code and the body.
    func get(_ path: String, port: Int) async throws -> (code: Int, body: String) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let response = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n"))
            var response = ""
            for try await var chunk in inbound { response += chunk.readString(length: chunk.readableBytes) ?? "" }
            return response
        }
        let code = Int(response.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (code, body)
    }

    func health(_ port: Int, as node: String,
                _ body: @Sendable (Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>,
                                   Feddistill_V1_Federation.Client<HTTP2ClientTransport.Posix>) async throws -> Void) async throws {
        let transport = try FederationTransport.client(host: "127.0.0.1", port: port,
                                                       credentials: TLSCredentials.inDirectory(harness.certs, name: node))
        try await withGRPCClient(transport: transport) { client in
            try await body(Grpc_Health_V1_Health.Client(wrapping: client), Feddistill_V1_Federation.Client(wrapping: client))
        }
    }

    static func request(_ service: String) -> Grpc_Health_V1_HealthCheckRequest {
        var request = Grpc_Health_V1_HealthCheckRequest()
        request.service = service
        return request
    }

    @Test(.timeLimit(.minutes(2))) func healthFollowsTheRoundFromOpenToFinished() async throws {
        defer { try? FileManager.default.removeItem(atPath: harness.root) }
        try harness.provision(nodes: ["node-a"], unregistered: ["operator"])
        let logger = Logger(label: "test")
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let (metricsPorts, metricsContinuation) = AsyncStream<Int>.makeStream()
        var configuration = harness.coordinatorConfiguration(nodes: ["node-a"])
        configuration.metricsPort = 0
        configuration.exitAfterRound = false  // keeps serving after the result, as under an orchestrator
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [configuration] in
                _ = try await CoordinatorServer.run(configuration: configuration, logger: logger,
                                                    metricsRegistry: PrometheusCollectorRegistry(),
                                                    onMetricsListening: { metricsContinuation.yield($0) }) {
                    portContinuation.yield($0)
                }
            }
            var portIterator = ports.makeAsyncIterator()
            let port = try #require(await portIterator.next())
            var metricsIterator = metricsPorts.makeAsyncIterator()
            let metricsPort = try #require(await metricsIterator.next())

            // Open: everything SERVING. Any certificate of the federation CA may ask (an operator's, not a node's).
            try await health(port, as: "operator") { checker, federation in
                let all = try await checker.list(Grpc_Health_V1_HealthListRequest())
                #expect(all.statuses.mapValues(\.status) == ["": .serving, "feddistill.v1.Federation": .serving,
                                                            "feddistill.round": .serving])
                #expect(try await checker.check(Self.request("feddistill.round")).status == .serving)
                await #expect { _ = try await checker.check(Self.request("no.such.Service")) } throws: { error in
                    (error as? RPCError)?.code == .notFound
                }
                #expect(try await federation.status(Feddistill_V1_StatusRequest()).phase == .open)
            }
            let open = try await get("/readyz", port: metricsPort)
            #expect(open.code == 200 && open.body.contains("\"phase\":\"open\"") && open.body.contains("\"serving\":true"))
            #expect(try await get("/healthz", port: metricsPort).code == 200)

            // A watcher of the round's admission sees SERVING, then NOT_SERVING once the round closes.
            let (watched, watchedContinuation) = AsyncStream<Grpc_Health_V1_HealthCheckResponse.ServingStatus>.makeStream()
            group.addTask {
                try await health(port, as: "operator") { checker, _ in
                    try await checker.watch(request: ClientRequest(message: Self.request("feddistill.round"))) { response in
                        for try await message in response.messages {
                            watchedContinuation.yield(message.status)
                            if message.status == .notServing { break }
                        }
                    }
                }
                watchedContinuation.finish()
            }
            var watchIterator = watched.makeAsyncIterator()
            #expect(await watchIterator.next() == .serving)

            let report = try await NodeRunner(configuration: harness.nodeConfiguration("node-a", index: 0, port: port),
                                              logger: logger).run()
            #expect(report.globalAccuracyMean != nil)
            #expect(await watchIterator.next() == .notServing, "the round stopped admitting submissions")

            // Finished, still serving: the server is SERVING, the round's admission is not, readiness holds.
            try await health(port, as: "node-a") { checker, federation in
                let server = try await checker.check(Self.request("")).status
                let round = try await checker.check(Self.request("feddistill.round")).status
                let phase = try await federation.status(Feddistill_V1_StatusRequest()).phase
                #expect(server == .serving && round == .notServing && phase == .finished)
            }
            let finished = try await get("/readyz", port: metricsPort)
            #expect(finished.code == 200 && finished.body.contains("\"phase\":\"finished\""), "\(finished)")
            #expect(try await get("/nothing", port: metricsPort).code == 404)
            group.cancelAll()
        }

        // Restarted on the finished round (an orchestrator restarting the pod): it serves the stored outcome instead
        // of refusing to start — ready, the round not admitting, and a node that watches gets the final result.
        let (restartPorts, restartContinuation) = AsyncStream<Int>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [configuration] in
                // Stopped by cancellation here (CancellationError); a graceful stop ends in RoundAlreadyConcluded.
                await #expect(throws: (any Error).self) {
                    _ = try await CoordinatorServer.run(configuration: configuration, logger: logger,
                                                        metricsRegistry: PrometheusCollectorRegistry()) {
                        restartContinuation.yield($0)
                    }
                }
            }
            var iterator = restartPorts.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await health(port, as: "node-a") { checker, federation in
                let server = try await checker.check(Self.request("")).status
                let round = try await checker.check(Self.request("feddistill.round")).status
                let phase = try await federation.status(Feddistill_V1_StatusRequest()).phase
                #expect(server == .serving && round == .notServing && phase == .finished)
                var watch = Feddistill_V1_WatchRoundRequest()
                watch.nodeID = "node-a"
                watch.roundID = 1
                let events = try await federation.watchRound(watch) { response in
                    try await response.messages.reduce(into: [Feddistill_V1_RoundEvent]()) { $0.append($1) }
                }
                #expect(events.count == 1 && events.first?.finalResult.accuracyMean ?? 0 > 0,
                        "the stored result, then the end of the stream")
            }
            group.cancelAll()
        }
    }
}
