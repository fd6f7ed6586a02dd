import Distill
import FederationProtocol
import Foundation
import Logging

/// Everything a coordinator needs for one round. Every field maps to a `feddistill coordinator` flag, a
/// `FEDDISTILL_COORDINATOR_*` environment variable and a key of the JSON config file (see docs/operations.md).
public struct CoordinatorConfiguration: Sendable, Codable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (printed as `listening on HOST:PORT`).
    public var port = 7443
    /// Where envelopes, the global set and results are stored.
    public var stateDirectory = "coordinator-state"
    /// Directory with `ca.pem`, `coordinator.pem`, `coordinator.key`, `coordinator.sealing.key` and one
    /// `NODE.signing.pub` per registered node.
    public var credentialsDirectory = "certs"
    public var federationID = "feddistill"
    public var roundID: UInt64 = 1
    public var dataset = "digits"
    public var dataDirectory: String?
    public var expectedNodes: [String] = []
    public var quorum = 1
    public var deadlineSeconds = 1800.0
    /// What nodes are asked to do.
    public var method = "dm"
    public var imagesPerClass = 10
    public var nodeIterations = 200
    /// Multi-formation factor of the nodes' DM sets (``MultiFormation``; 1: none).
    public var formationFactor = 1
    /// The merge.
    public var globalImagesPerClass = 10
    public var mergeIterations = 200
    public var width = 128
    /// Global evaluation.
    public var evaluationModels = 3
    public var evaluationEpochs = 300
    /// Simulation only: also distill the pooled real training data centrally, as a baseline.
    public var centralizedBaseline = false
    /// Prometheus metrics endpoint (`GET /metrics`); nil: off.
    public var metricsPort: Int?
    public var metricsHost = "127.0.0.1"
    /// Rounds this coordinator runs, counted from `roundID` (0: until stopped). Each opens `roundIntervalSeconds`
    /// after the previous one ended, or, with `roundsOnDemand`, when an operator runs `feddistill round start`.
    public var rounds = 1
    public var roundIntervalSeconds = 0.0
    public var roundsOnDemand = false
    /// Multi-round refinement (FedDM-style): from the second round on, nodes start from the global set of the latest
    /// finished round instead of the recipe's initialisation.
    public var refine = false
    /// The dashboard (a web page and its JSON API, plain HTTP); nil: off. Loopback by default: see
    /// docs/threat-model.md before binding it elsewhere.
    public var dashboardPort: Int?
    public var dashboardHost = "127.0.0.1"
    /// Stop serving once the last scheduled round's result is written.
    public var exitAfterRound = true
    /// After the result, keep serving until every node that submitted has received it over its round watch, but at
    /// most this long: a node that was backing off (say, across a coordinator restart) still gets its result.
    public var lingerSeconds = 60.0
    public var seed: UInt64 = 0
    /// Hostile-peer limits (docs/threat-model.md): the most images per class a node's set may declare (nodes may
    /// distill more than `imagesPerClass`, not without bound).
    public var maxImagesPerClass = 100
    /// Largest envelope accepted, in bytes.
    public var maxEnvelopeBytes = 256 << 20
    /// Envelope bytes being received by all `Submit` streams at once; an upload that would pass it is refused with
    /// `resourceExhausted` (nodes retry).
    public var maxUploadBytesInFlight = 512 << 20
    /// Largest round report sent to nodes in the final event (they accept 16 MiB messages); a larger report drops
    /// per-node detail first.
    public var maxReportBytes = 4 << 20
    /// How many times finalisation may start for one round (a restart after a crash during the merge starts it
    /// again); past that the round fails with a recorded reason.
    public var maxFinalizationAttempts = 3
    /// A connection with no call in progress is closed after this long.
    public var idleTimeoutSeconds = 300.0
    /// Calls one connection may carry at once.
    public var maxConcurrentStreamsPerConnection = 16
    /// Open connections at once; more are closed at accept, before TLS (lowered to the descriptor limit minus 64).
    public var maxConnections = 4096
    /// A connection whose TLS handshake takes longer is closed.
    public var handshakeTimeoutSeconds = 10.0

    public init() {}

    /// Checks every value a flag, variable or file can set; throws instead of trapping later.
    public func validate() throws(ConfigurationError) {
        func require(_ condition: Bool, _ key: String, _ message: String) throws(ConfigurationError) {
            if !condition { throw ConfigurationError(key: key, message: message) }
        }
        try require((0...65535).contains(port), "port", "must be in 0...65535, got \(port)")
        try require(!expectedNodes.isEmpty, "expected_nodes", "name at least one node")
        try require(Set(expectedNodes).count == expectedNodes.count, "expected_nodes", "lists a node twice")
        try require(quorum >= 1 && quorum <= expectedNodes.count, "quorum",
                    "must be in 1...\(expectedNodes.count) (the expected nodes), got \(quorum)")
        try require(deadlineSeconds.isFinite && deadlineSeconds > 0, "deadline_seconds", "must be positive")
        try require((1...1000).contains(imagesPerClass), "images_per_class", "must be in 1...1000, got \(imagesPerClass)")
        try require((1...1000).contains(globalImagesPerClass), "global_images_per_class",
                    "must be in 1...1000, got \(globalImagesPerClass)")
        try require((0...1_000_000).contains(nodeIterations), "node_iterations", "must be in 0...1000000")
        try require((0...1_000_000).contains(mergeIterations), "merge_iterations", "must be in 0...1000000")
        try require((1...1024).contains(width), "width", "must be in 1...1024, got \(width)")
        try require(formationFactor == 1 || method == "dm", "formation_factor", "applies to method dm only")
        if let descriptor = try? DatasetCatalog.descriptor(named: dataset),
           let problem = MultiFormation.problem(factor: formationFactor, imageShape: descriptor.imageShape) {
            throw ConfigurationError(key: "formation_factor", message: problem)
        }
        try require(evaluationModels >= 1 && evaluationEpochs >= 1, "evaluation_models", "models and epochs must be positive")
        try require(metricsPort.map { (0...65535).contains($0) } ?? true, "metrics_port", "must be in 0...65535")
        try require(lingerSeconds.isFinite && lingerSeconds >= 0, "linger_seconds", "must be ≥ 0")
        try require(rounds >= 0 && rounds <= 1_000_000, "rounds", "must be in 0...1000000 (0: until stopped), got \(rounds)")
        try require(roundIntervalSeconds.isFinite && roundIntervalSeconds >= 0 && roundIntervalSeconds <= 366 * 86400,
                    "round_interval_seconds", "must be in 0...31622400")
        try require(dashboardPort.map { (0...65535).contains($0) } ?? true, "dashboard_port", "must be in 0...65535")
        try require(roundID >= 1 && roundID < UInt64(Int64.max) - UInt64(rounds), "round_id", "must be at least 1")
        try require(maxImagesPerClass >= imagesPerClass && maxImagesPerClass <= SyntheticSet.Metadata.maximumImagesPerClass,
                    "max_images_per_class", "must be at least images_per_class (\(imagesPerClass))")
        try require(maxEnvelopeBytes >= 1024 && maxEnvelopeBytes <= 1 << 30, "max_envelope_bytes", "must be in 1 KiB...1 GiB")
        try require(maxUploadBytesInFlight >= maxEnvelopeBytes, "max_upload_bytes_in_flight",
                    "must be at least max_envelope_bytes (\(maxEnvelopeBytes))")
        try require(maxReportBytes >= 4096 && maxReportBytes <= 15 << 20, "max_report_bytes",
                    "must be in 4 KiB...15 MiB (nodes accept 16 MiB messages)")
        try require(maxFinalizationAttempts >= 1, "max_finalization_attempts", "must be at least 1")
        try require(idleTimeoutSeconds.isFinite && idleTimeoutSeconds > 0, "idle_timeout_seconds", "must be positive")
        try require((1...1000).contains(maxConcurrentStreamsPerConnection), "max_concurrent_streams_per_connection",
                    "must be in 1...1000")
        try require((1...1_000_000).contains(maxConnections), "max_connections", "must be in 1...1000000")
        try require(handshakeTimeoutSeconds.isFinite && handshakeTimeoutSeconds > 0, "handshake_timeout_seconds", "must be positive")
        guard let recipe = nodeRecipe else {
            throw ConfigurationError(key: "method", message: "must be one of \(Distiller.capabilities.joined(separator: ", ")), "
                                     + "got \(PeerText.quoted(method))")
        }
        do { try recipe.validate() } catch { throw ConfigurationError(key: "method", message: "the nodes' recipe is invalid: \(error)") }
    }

    var envelopeLimits: EnvelopeLimits {
        EnvelopeLimits(maxEnvelopeBytes: maxEnvelopeBytes, maxHeaderBytes: EnvelopeLimits.default.maxHeaderBytes,
                       maxIdentifierBytes: EnvelopeLimits.default.maxIdentifierBytes, maxCiphertextBytes: maxEnvelopeBytes)
    }

    func connectionLimits(logger: Logger) -> ConnectionLimits {
        ConnectionLimits(idleTimeout: .milliseconds(Int64(idleTimeoutSeconds * 1000)), maxConcurrentStreams: maxConcurrentStreamsPerConnection,
                         connectionGuard: ConnectionGuard(maxConnections: maxConnections,
                                                          handshakeTimeout: .milliseconds(Int64(handshakeTimeoutSeconds * 1000)),
                                                          logger: logger))
    }

    /// What a round was asked to do, as stored with it in the history (no keys, no paths).
    var roundConfigurationJSON: String {
        var object: [String: Any] = [
            "dataset": dataset, "method": method, "images_per_class": imagesPerClass, "node_iterations": nodeIterations,
            "formation_factor": formationFactor, "global_images_per_class": globalImagesPerClass,
            "merge_iterations": mergeIterations, "width": width, "evaluation_models": evaluationModels,
            "evaluation_epochs": evaluationEpochs, "expected_nodes": expectedNodes, "quorum": quorum,
            "deadline_seconds": deadlineSeconds, "seed": seed, "refine": refine,
        ]
        if let recipe = nodeRecipe?.json(), let parsed = try? JSONSerialization.jsonObject(with: Data(recipe.utf8)) {
            object["recipe"] = parsed
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The configuration of round `id` of this coordinator's schedule.
    func forRound(_ id: UInt64) -> CoordinatorConfiguration {
        var copy = self
        copy.roundID = id
        return copy
    }

    /// The last round of the schedule (nil: until stopped).
    var lastScheduledRound: UInt64? { rounds == 0 ? nil : roundID + UInt64(rounds) - 1 }

    var credentials: TLSCredentials { TLSCredentials.inDirectory(credentialsDirectory, name: "coordinator") }
    var sealingKeyPath: String { KeyFiles.paths(in: credentialsDirectory, name: "coordinator").sealingKey }
}

/// A configuration value that cannot work, named by its key.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var key: String
    public var message: String

    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "invalid coordinator setting \(key): \(message)" }
}

extension CoordinatorConfiguration {
    /// The recipe nodes are asked to distill with (nil when `method` names no known method): the reference recipe of
    /// `method` with `imagesPerClass`, `nodeIterations`, `width`, `seed` and (dm) `formationFactor`. Nodes may override the images per class,
    /// the iterations, the seed and the privacy budget (see docs/architecture.md).
    public var nodeRecipe: DistillationRecipe? {
        guard let method = DistillationRecipe.Method(rawValue: method) else { return nil }
        var recipe = DistillationRecipe.reference(method)
        recipe.imagesPerClass = imagesPerClass
        recipe.iterations = nodeIterations
        recipe.network.width = width
        recipe.seed = seed
        if case var .distributionMatching(settings) = recipe.settings, formationFactor != 1 {
            settings.formationFactor = formationFactor
            recipe.settings = .distributionMatching(settings)
        }
        return recipe
    }
}
