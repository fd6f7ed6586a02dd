import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// Serves, over plain HTTP (bind it to a private interface):
/// - `GET /metrics`: the Prometheus text format;
/// - `GET /healthz` (liveness): 200 while the process answers, with the round's phase as JSON;
/// - `GET /readyz` (readiness): 200 while the coordinator's gRPC server listens and is not shutting down, 503
///   otherwise — in every round phase, since nodes need the coordinator after the round closes to learn the result.
/// Orchestrators probe these: Kubernetes' own gRPC probe speaks no TLS, and the federation port requires mutual TLS.
/// Any other path is 404, any other method 405.
public struct MetricsHTTPServer: Service {
    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let health: CoordinatorHealth?
    let logger: Logger
    let onListening: @Sendable (Int) -> Void

    /// Without `health`, `/healthz` and `/readyz` are 404.
    public init(host: String, port: Int, registry: PrometheusCollectorRegistry, health: CoordinatorHealth? = nil,
                logger: Logger, onListening: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.host = host
        self.port = port
        self.registry = registry
        self.health = health
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let (registry, health) = (self.registry, self.health)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(MetricsHandler(registry: registry, health: health))
                }
            }
            .bind(host: host, port: port).get()
        let bound = channel.localAddress?.port ?? port
        logger.info("metrics listening", metadata: ["host": "\(host)", "port": "\(bound)"])
        onListening(bound)
        // Closed on a graceful shutdown, and on cancellation too (waiting for the close future is not cancellable).
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await channel.closeFuture.get()
            } onGracefulShutdown: {
                channel.close(promise: nil)
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

private final class MetricsHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    let health: CoordinatorHealth?
    var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, health: CoordinatorHealth?) {
        self.registry = registry
        self.health = health
    }

    /// `{"serving":true,"phase":"open","round_id":1}`: every value is the coordinator's own, never a peer's.
    static func healthJSON(_ snapshot: CoordinatorHealth.Snapshot) -> [UInt8] {
        Array("{\"serving\":\(snapshot.serving),\"phase\":\"\(snapshot.phase.rawValue)\",\"round_id\":\(snapshot.roundID)}\n".utf8)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(request): head = request
        case .body: break
        case .end:
            guard let request = head else { return }
            head = nil
            let status: HTTPResponseStatus
            var body: [UInt8]
            var contentType = "text/plain"
            let path = request.uri.split(separator: "?", omittingEmptySubsequences: false).first.map(String.init) ?? ""
            if request.method != .GET {
                status = .methodNotAllowed
                body = Array("only GET\n".utf8)
            } else if path == "/metrics" {
                status = .ok
                contentType = "text/plain; version=0.0.4"
                body = []
                registry.emit(into: &body)
            } else if let health, path == "/healthz" || path == "/readyz" {
                let snapshot = health.snapshot
                status = path == "/healthz" || snapshot.serving ? .ok : .serviceUnavailable
                contentType = "application/json"
                body = Self.healthJSON(snapshot)
            } else {
                status = .notFound
                body = Array((health == nil ? "not found; metrics are at /metrics\n"
                              : "not found; paths are /metrics, /healthz and /readyz\n").utf8)
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: "\(body.count)")
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        }
    }
}
