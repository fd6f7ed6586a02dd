import Distill
import FederationProtocol
import Foundation

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
    /// Stop serving once the round's result is written.
    public var exitAfterRound = true
    /// After the result, keep serving until every node that submitted has received it over its round watch, but at
    /// most this long: a node that was backing off (say, across a coordinator restart) still gets its result.
    public var lingerSeconds = 60.0
    public var seed: UInt64 = 0

    public init() {}

    var credentials: TLSCredentials { TLSCredentials.inDirectory(credentialsDirectory, name: "coordinator") }
    var sealingKeyPath: String { KeyFiles.paths(in: credentialsDirectory, name: "coordinator").sealingKey }
}

extension CoordinatorConfiguration {
    /// The recipe nodes are asked to distill with (nil when `method` names no known method): the reference recipe of
    /// `method` with `imagesPerClass`, `nodeIterations`, `width` and `seed`. Nodes may override the images per class,
    /// the iterations, the seed and the privacy budget (see docs/architecture.md).
    public var nodeRecipe: DistillationRecipe? {
        guard let method = DistillationRecipe.Method(rawValue: method) else { return nil }
        var recipe = DistillationRecipe.reference(method)
        recipe.imagesPerClass = imagesPerClass
        recipe.iterations = nodeIterations
        recipe.network.width = width
        recipe.seed = seed
        return recipe
    }
}
