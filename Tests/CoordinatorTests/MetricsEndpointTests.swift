import Foundation
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import Testing
@testable import Coordinator

@Suite("Metrics endpoint")
struct MetricsEndpointTests {
    /// One HTTP/1.1 request over a plain socket; returns the raw response.
    func get(_ path: String, port: Int, method: String = "GET") async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n"))
            var response = ""
            for try await var chunk in inbound { response += chunk.readString(length: chunk.readableBytes) ?? "" }
            return response
        }
    }

    @Test(.timeLimit(.minutes(1))) func servesThePrometheusTextFormat() async throws {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(name: "feddistill_submissions_total", labels: [("outcome", "stored")]).increment(by: Int64(3))
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let server = MetricsHTTPServer(host: "127.0.0.1", port: 0, registry: registry, logger: Logger(label: "test")) {
            continuation.yield($0)
        }
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let metrics = try await get("/metrics", port: port)
            #expect(metrics.hasPrefix("HTTP/1.1 200"))
            #expect(metrics.contains("text/plain; version=0.0.4"))
            #expect(metrics.contains("feddistill_submissions_total{outcome=\"stored\"} 3"))
            #expect(try await get("/", port: port).hasPrefix("HTTP/1.1 404"))
            #expect(try await get("/metrics", port: port, method: "POST").hasPrefix("HTTP/1.1 405"))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
