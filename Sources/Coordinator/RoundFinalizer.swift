import Distill
import FederationProtocol
import Foundation
import Logging

/// What a round produced: the global set's accuracy, the baselines and per-node facts.
public struct RoundResult: Sendable {
    public struct Node: Sendable {
        public var id: String
        public var submitted: Bool
        public var bytesSent: Int
        public var images: Int
        public var privacyAuditJSON: String
        public var failure: String?
        /// The set's differential-privacy guarantee, when it was distilled with DP-DM.
        public var differentialPrivacy: PrivacyCalibration?
    }

    public var roundID: UInt64
    public var global: SetEvaluation.Report
    public var baselines: [String: SetEvaluation.Report]
    public var nodes: [Node]
    public var phaseSeconds: [String: Double]
    public var globalSetPath: String
    /// SHA-256 of the global set's safetensors file (hex), as written.
    public var globalSetSHA256 = ""

    /// The machine-readable report (`simulate --json` embeds it), whole.
    public func json() -> Data { json(includeAudits: true, failureCharacters: nil, includeNodes: true) }

    /// The report in at most `maxBytes`: whole when it fits; otherwise without the nodes' privacy-audit summaries
    /// and with failure reasons cut to 200 characters; otherwise without the per-node list. The cut report says
    /// what it left out (`"truncated"`), so what reaches the nodes never exceeds what they accept, whatever nodes sent.
    public func json(maxBytes: Int) -> Data {
        let whole = json()
        if whole.count <= maxBytes { return whole }
        let trimmed = json(includeAudits: false, failureCharacters: 200, includeNodes: true, truncated: "privacy_audit, failure")
        if trimmed.count <= maxBytes { return trimmed }
        return json(includeAudits: false, failureCharacters: 0, includeNodes: false, truncated: "nodes")
    }

    private func json(includeAudits: Bool, failureCharacters: Int?, includeNodes: Bool, truncated: String? = nil) -> Data {
        func report(_ r: SetEvaluation.Report) -> [String: Any] {
            ["accuracy_mean": r.mean, "accuracy_std": r.standardDeviation, "accuracies": r.accuracies, "per_class": r.perClass,
             "confusion": r.confusion, "seconds": r.seconds]
        }
        var object: [String: Any] = [
            "round": roundID, "global": report(global), "baselines": baselines.mapValues(report),
            "phase_seconds": phaseSeconds, "global_set": globalSetPath, "node_count": nodes.count,
            "global_set_sha256": globalSetSHA256,
        ]
        if includeNodes {
            object["nodes"] = nodes.map { node -> [String: Any] in
                var entry: [String: Any] = ["id": node.id, "submitted": node.submitted, "bytes_sent": node.bytesSent, "images": node.images]
                if let failure = node.failure {
                    entry["failure"] = failureCharacters.map { String(failure.prefix($0)) } ?? failure
                }
                if includeAudits, !node.privacyAuditJSON.isEmpty { entry["privacy_audit"] = node.privacyAuditJSON }
                if let dp = node.differentialPrivacy { entry["differential_privacy"] = dp.jsonObject }
                return entry
            }
        }
        if let truncated { object["truncated"] = truncated }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    }
}

/// Decrypts and validates the stored sets, merges them, and evaluates the global set and the baselines.
struct RoundFinalizer: Sendable {
    let configuration: CoordinatorConfiguration
    let descriptor: DatasetDescriptor
    let store: CoordinatorDatabase
    let opener: SubmissionOpener
    /// Where the steps' progress goes (decrypt i/n, merge iteration i/N, evaluation epoch k/(models × epochs)).
    let progress: ProgressBoard
    let logger: Logger

    /// Reports an evaluation's progress as epochs done over all its models.
    private func evaluating(_ step: String, _ evaluation: SetEvaluation) -> (Int, Int) -> Void {
        let epochs = evaluation.epochs
        progress.begin(step, total: evaluation.models * epochs)
        return { [progress] model, epoch in progress.advance(to: model * epochs + epoch) }
    }

    func run(submitted: [String], failures: [String: String]) throws -> RoundResult {
        var phases: [String: Double] = [:]
        var clock = Date()
        func lap(_ name: String) {
            phases[name] = Date().timeIntervalSince(clock)
            clock = Date()
        }
        var submissions: [NodeSubmission] = []
        var nodes: [RoundResult.Node] = []
        var failures = failures
        progress.begin("decrypt", total: submitted.count)
        for (index, node) in submitted.enumerated() {
            defer { progress.advance(to: index + 1) }
            let record = try store.record(round: configuration.roundID, node: node)
            do {
                // Decrypted in memory only; the stored copy stays sealed. The same checks as on submit.
                let set = try opener.open(try store.envelope(round: configuration.roundID, node: node), from: node).set
                submissions.append(NodeSubmission(nodeID: node, set: set))
                nodes.append(.init(id: node, submitted: true, bytesSent: record?.bytes ?? 0, images: set.data.count,
                                   privacyAuditJSON: set.metadata.privacyAudit ?? "", differentialPrivacy: set.metadata.privacy))
            } catch {
                failures[node] = "stored set unusable: \(error)"
            }
        }
        for (node, reason) in failures.sorted(by: { $0.key < $1.key }) where !nodes.contains(where: { $0.id == node }) {
            nodes.append(.init(id: node, submitted: false, bytesSent: 0, images: 0, privacyAuditJSON: "", failure: reason))
        }
        lap("decrypt")
        let splits = try DatasetStore.resolve(explicit: configuration.dataDirectory).load(configuration.dataset)
        let network = ConvNet.Configuration(imageShape: descriptor.imageShape, classCount: descriptor.classCount, width: configuration.width)
        let learningRate = DistributionMatching.defaultImageLearningRate(imageShape: descriptor.imageShape)
        var merge = DistributionMatchingMerge(imagesPerClass: configuration.globalImagesPerClass, iterations: configuration.mergeIterations,
                                              network: network, learningRate: learningRate, seed: configuration.seed)
        progress.begin("merge", total: configuration.mergeIterations)
        merge.progress = { [progress] iteration, _ in progress.advance(to: iteration) }
        logger.info("merging node sets", metadata: ["nodes": "\(submissions.count)", "strategy": "\(merge.name)"])
        guard let global = try merge.aggregate(round: configuration.roundID, submissions: submissions, failures: failures,
                                               descriptor: descriptor) else {
            throw RoundFailure(reason: "no usable submissions to merge")
        }
        lap("merge")
        let globalPath = RoundCoordinator.globalSetPath(round: configuration.roundID, stateDirectory: configuration.stateDirectory)
        try global.write(to: globalPath)
        let digest = sha256Hex(try Data(contentsOf: URL(fileURLWithPath: globalPath)))
        try Data(PNG.grid(global.data, normalization: descriptor.normalization, zoom: descriptor.imageShape[1] < 16 ? 4 : 2))
            .write(to: URL(fileURLWithPath: configuration.stateDirectory + "/global-round-\(configuration.roundID).png"))
        let evaluation = SetEvaluation(network: network, models: configuration.evaluationModels, epochs: configuration.evaluationEpochs,
                                       augmentation: DSA(dataset: descriptor.name), seed: configuration.seed)
        let globalReport = evaluation.evaluate(global.trainingData, test: splits.test, progress: evaluating("evaluate-global", evaluation))
        logger.info("global set evaluated", metadata: ["accuracy.mean": "\(globalReport.mean)"])
        lap("evaluate-global")
        var baselines: [String: SetEvaluation.Report] = [:]
        if let union = try UnionMerge().aggregate(round: configuration.roundID, submissions: submissions, failures: failures, descriptor: descriptor) {
            baselines["union"] = evaluation.evaluate(union.trainingData, test: splits.test, progress: evaluating("evaluate-union", evaluation))
        }
        lap("evaluate-union")
        if configuration.centralizedBaseline {
            // Simulation only: the coordinator of a real deployment never sees real data.
            // Plain DM from noise, with the round's formation factor so that it compares like for like.
            let recipe = DistillationRecipe(method: .dm, imagesPerClass: configuration.globalImagesPerClass,
                                            iterations: configuration.nodeIterations, network: .init(width: configuration.width),
                                            imageLearningRate: learningRate, seed: configuration.seed,
                                            settings: .plainDistributionMatching(formationFactor: configuration.formationFactor))
            progress.begin("centralized-dm", total: recipe.iterations)
            let centralized = try Distiller.run(recipe: recipe, data: splits.train, descriptor: descriptor) { [progress] iteration, _, _ in
                progress.advance(to: iteration)
                return true
            }
            baselines["centralized_dm"] = evaluation.evaluate(centralized.trainingData, test: splits.test,
                                                              progress: evaluating("evaluate-centralized", evaluation))
            lap("centralized-dm")
        }
        let result = RoundResult(roundID: configuration.roundID, global: globalReport, baselines: baselines, nodes: nodes,
                                 phaseSeconds: phases, globalSetPath: globalPath, globalSetSHA256: digest)
        try result.json().write(to: URL(fileURLWithPath: configuration.stateDirectory + "/result-round-\(configuration.roundID).json"),
                                options: .atomic)
        return result
    }
}
