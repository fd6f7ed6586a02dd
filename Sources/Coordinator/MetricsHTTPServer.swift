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
    let scrapes: ScrapeCounter?
    let logger: Logger
    let onListening: @Sendable (Int) -> Void

    /// Without `health`, `/healthz` and `/readyz` are 404. `scrapes` counts the answers of `/metrics`.
    public init(host: String, port: Int, registry: PrometheusCollectorRegistry, health: CoordinatorHealth? = nil,
                scrapes: ScrapeCounter? = nil, logger: Logger, onListening: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.host = host
        self.port = port
        self.registry = registry
        self.health = health
        self.scrapes = scrapes
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let (registry, health, scrapes) = (self.registry, self.health, self.scrapes)
        let endpoint = HTTPEndpoint(host: host, port: port, name: "metrics", logger: logger) { query in
            Self.answer(query.path, registry: registry, health: health, scrapes: scrapes)
        }
        try await endpoint.serve(onListening: onListening)
    }

    /// `{"serving":true,"phase":"open","round_id":1}`: every value is the coordinator's own, never a peer's.
    static func healthJSON(_ snapshot: CoordinatorHealth.Snapshot) -> [UInt8] {
        Array("{\"serving\":\(snapshot.serving),\"phase\":\"\(snapshot.phase.rawValue)\",\"round_id\":\(snapshot.roundID)}\n".utf8)
    }

    static func answer(_ path: String, registry: PrometheusCollectorRegistry, health: CoordinatorHealth?,
                       scrapes: ScrapeCounter?) -> HTTPAnswer {
        if path == "/metrics" {
            var body: [UInt8] = []
            registry.emit(into: &body)
            scrapes?.increment()
            return HTTPAnswer(status: .ok, contentType: "text/plain; version=0.0.4", body: body)
        }
        if let health, path == "/healthz" || path == "/readyz" {
            let snapshot = health.snapshot
            return HTTPAnswer(status: path == "/healthz" || snapshot.serving ? .ok : .serviceUnavailable,
                              contentType: "application/json", body: healthJSON(snapshot))
        }
        return .text(.notFound, health == nil ? "not found; metrics are at /metrics\n"
                     : "not found; paths are /metrics, /healthz and /readyz\n")
    }
}
