import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// One HTTP answer.
struct HTTPAnswer: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var cacheControl: String?

    static func text(_ status: HTTPResponseStatus, _ text: String) -> HTTPAnswer {
        HTTPAnswer(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }
}

/// A request as the routes see it: GET only (anything else is answered 405 before a route runs).
struct HTTPQuery: Sendable {
    var path: String
    var parameters: [String: String]

    init(uri: String) {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = parts.first.map(String.init) ?? ""
        var parameters: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if kv.count == 2 { parameters[String(kv[0])] = String(kv[1]) }
            }
        }
        self.parameters = parameters
    }
}

/// A small read-only HTTP/1.1 server on SwiftNIO for the coordinator's plain-HTTP endpoints (metrics and probes,
/// the dashboard): every request is a GET answered by `route`, one request per connection.
struct HTTPEndpoint: Sendable {
    let host: String
    let port: Int
    /// Named in log lines ("metrics", "dashboard").
    let name: String
    let logger: Logger
    let route: @Sendable (HTTPQuery) async -> HTTPAnswer

    /// Binds, reports the bound port, and serves until a graceful shutdown or cancellation.
    func serve(onListening: @Sendable (Int) -> Void) async throws {
        let route = self.route
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(RouteHandler(route: route))
                }
            }
            .bind(host: host, port: port).get()
        let bound = channel.localAddress?.port ?? port
        logger.info("\(name) listening", metadata: ["host": "\(host)", "port": "\(bound)"])
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

private final class RouteHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let route: @Sendable (HTTPQuery) async -> HTTPAnswer
    var head: HTTPRequestHead?

    init(route: @escaping @Sendable (HTTPQuery) async -> HTTPAnswer) {
        self.route = route
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(request): head = request
        case .body: break
        case .end:
            guard let request = head else { return }
            head = nil
            let promise = context.eventLoop.makePromise(of: HTTPAnswer.self)
            if request.method != .GET {
                promise.succeed(.text(.methodNotAllowed, "only GET\n"))
            } else {
                let (route, query) = (self.route, HTTPQuery(uri: request.uri))
                promise.completeWithTask { await route(query) }
            }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            promise.futureResult.whenSuccess { answer in
                let (handler, context) = bound.value
                handler.write(answer, version: request.version, context: context)
            }
        }
    }

    private func write(_ answer: HTTPAnswer, version: HTTPVersion, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        headers.add(name: "Content-Length", value: "\(answer.body.count)")
        headers.add(name: "Connection", value: "close")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        if let cacheControl = answer.cacheControl { headers.add(name: "Cache-Control", value: cacheControl) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: answer.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
    }
}

/// How many times `/metrics` was served; the coordinator waits for one more scrape after its last result before it
/// exits, so that the final values reach Prometheus.
public final class ScrapeCounter: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}
    public var count: Int { value.load(ordering: .acquiring) }
    func increment() { value.add(1, ordering: .releasing) }
}
