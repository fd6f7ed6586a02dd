import Distill
import FederationProtocol
import Foundation
import Logging
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// The coordinator's dashboard over plain HTTP, on loopback by default (docs/threat-model.md says why and how to
/// reach it from elsewhere):
/// - `GET /`: the page (``DashboardPage``), everything inline;
/// - `GET /api/status`: the status answer as JSON (protobuf JSON mapping with proto field names, int64 as numbers),
///   the same document `feddistill status --json` prints;
/// - `GET /api/global.png?round=N`: round N's global set as an image grid, one row per class, each image
///   contrast-stretched and scaled up for a screen.
/// Read-only: no request changes anything; starting a round needs an operator certificate over gRPC.
public struct DashboardServer: Service {
    let host: String
    let port: Int
    let scheduler: RoundScheduler
    let logger: Logger
    let onListening: @Sendable (Int) -> Void

    public init(host: String, port: Int, scheduler: RoundScheduler, logger: Logger,
                onListening: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.host = host
        self.port = port
        self.scheduler = scheduler
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let (scheduler, logger) = (self.scheduler, self.logger)
        let images = GridCache()
        let endpoint = HTTPEndpoint(host: host, port: port, name: "dashboard", logger: logger) { query in
            await Self.answer(query, scheduler: scheduler, images: images, logger: logger)
        }
        try await endpoint.serve(onListening: onListening)
    }

    static func answer(_ query: HTTPQuery, scheduler: RoundScheduler, images: GridCache, logger: Logger) async -> HTTPAnswer {
        switch query.path {
        case "/", "/index.html":
            return HTTPAnswer(status: .ok, contentType: "text/html; charset=utf-8", body: Array(DashboardPage.html.utf8),
                              cacheControl: "no-store")
        case "/api/status":
            do {
                let status = try await scheduler.status()
                return HTTPAnswer(status: .ok, contentType: "application/json", body: Array(try status.jsonDocument().utf8),
                                  cacheControl: "no-store")
            } catch {
                logger.error("dashboard: cannot build the status", metadata: ["error": "\(error)"])
                return .text(.serviceUnavailable, "the coordinator cannot read its state right now\n")
            }
        case "/api/global.png":
            guard let text = query.parameters["round"], let round = UInt64(text) else {
                return .text(.badRequest, "give the round: /api/global.png?round=N\n")
            }
            let configuration = scheduler.configuration
            let path = RoundCoordinator.globalSetPath(round: round, stateDirectory: configuration.stateDirectory)
            guard FileManager.default.fileExists(atPath: path) else { return .text(.notFound, "round \(round) has no global set\n") }
            do {
                let png = try images.png(round: round) {
                    let set = try SyntheticSet.read(path)
                    let descriptor = try DatasetCatalog.descriptor(named: configuration.dataset)
                    // About 56 pixels per image: readable on a screen whatever the dataset's resolution.
                    let zoom = max(1, 56 / max(descriptor.imageShape[1], 1))
                    return PNG.grid(set.data, normalization: descriptor.normalization, zoom: zoom, contrast: .perImage)
                }
                return HTTPAnswer(status: .ok, contentType: "image/png", body: png, cacheControl: "max-age=3600")
            } catch {
                logger.error("dashboard: cannot render a global set", metadata: ["round.id": "\(round)", "error": "\(error)"])
                return .text(.internalServerError, "round \(round)'s global set cannot be read\n")
            }
        default:
            return .text(.notFound, "not found; paths are /, /api/status and /api/global.png?round=N\n")
        }
    }
}

/// Rendered grids by round (a round's global set never changes once written); keeps the last 8.
final class GridCache: Sendable {
    private let cache = Mutex<[UInt64: [UInt8]]>([:])

    func png(round: UInt64, render: () throws -> [UInt8]) throws -> [UInt8] {
        if let hit = cache.withLock({ $0[round] }) { return hit }
        let png = try render()
        cache.withLock { cache in
            cache[round] = png
            for old in cache.keys.sorted().dropLast(8) { cache[old] = nil }
        }
        return png
    }
}
