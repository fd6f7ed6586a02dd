import Distill
import Foundation

/// One node's decrypted and validated synthetic set.
public struct NodeSubmission: Sendable {
    public var nodeID: String
    public var set: SyntheticSet

    public init(nodeID: String, set: SyntheticSet) {
        self.nodeID = nodeID
        self.set = set
    }
}

/// How the coordinator turns node sets into one global set. Receives the failures as well as the results; returns
/// nil when no global set can be made. Pure computation: no sockets, so policies are tested directly.
public protocol MergeStrategy: Sendable {
    /// A short name for reports.
    var name: String { get }
    func aggregate(round: UInt64, submissions: [NodeSubmission], failures: [String: String],
                   descriptor: DatasetDescriptor) throws -> SyntheticSet?
}

/// The plain union of all node sets (the baseline).
public struct UnionMerge: MergeStrategy {
    public init() {}
    public var name: String { "union" }

    public func aggregate(round: UInt64, submissions: [NodeSubmission], failures: [String: String],
                          descriptor: DatasetDescriptor) throws -> SyntheticSet? {
        guard !submissions.isEmpty else { return nil }
        let data = LabeledImages.concatenate(submissions.map(\.set.trainingData))
        let perClass = data.classCounts().max() ?? 0
        return SyntheticSet(data: data, metadata: .init(
            dataset: descriptor.name, imageShape: descriptor.imageShape, classCount: descriptor.classCount,
            normalization: descriptor.normalization, method: "union", imagesPerClass: perClass, iterations: 0,
            initialization: "nodes", seed: round, sourceClassCounts: Self.totalCounts(submissions, classes: descriptor.classCount)))
    }

    static func totalCounts(_ submissions: [NodeSubmission], classes: Int) -> [Int] {
        var total = [Int](repeating: 0, count: classes)
        for submission in submissions {
            for (c, count) in submission.set.metadata.sourceClassCounts.enumerated() where c < classes { total[c] += count }
        }
        return total
    }
}

/// Merge by distribution matching: learn `imagesPerClass` global images per class whose embeddings match the union
/// of the node sets, where each node's class-c images together weigh that node's reported class-c count (a node
/// without class c contributes nothing to it). Initialised from node images, with DSA on both sides.
public struct DistributionMatchingMerge: MergeStrategy {
    public var imagesPerClass: Int
    public var iterations: Int
    public var network: ConvNet.Configuration
    public var learningRate: Float
    public var seed: UInt64
    /// Called after every merge iteration with (iteration, total).
    public var progress: (@Sendable (Int, Int) -> Void)?

    public init(imagesPerClass: Int, iterations: Int, network: ConvNet.Configuration, learningRate: Float, seed: UInt64) {
        self.imagesPerClass = imagesPerClass
        self.iterations = iterations
        self.network = network
        self.learningRate = learningRate
        self.seed = seed
    }

    public var name: String { "distribution-matching" }

    public func aggregate(round: UInt64, submissions: [NodeSubmission], failures: [String: String],
                          descriptor: DatasetDescriptor) throws -> SyntheticSet? {
        guard !submissions.isEmpty else { return nil }
        let training = submissions.map(\.set.trainingData)
        let union = LabeledImages.concatenate(training)
        // Per-image weights: node k's reported count of class c spread over its class-c images.
        var weights: [Float] = []
        for (submission, training) in zip(submissions, training) {
            let imagesOfClass = training.classCounts()
            let reported = submission.set.metadata.sourceClassCounts
            for label in training.labels {
                let count = label < reported.count ? reported[label] : imagesOfClass[label]
                weights.append(Float(count) / Float(max(imagesOfClass[label], 1)))
            }
        }
        var rng = RandomSource(seed: seed ^ round)
        // Initialise from node images: per class, images drawn with probability proportional to their weight.
        var initialIndices: [Int] = []
        for members in union.indicesByClass() {
            let candidates = members.filter { weights[$0] > 0 }
            guard !candidates.isEmpty else { continue }
            let order = candidates.sorted { weights[$0] > weights[$1] }
            var picked = Array(order.prefix(imagesPerClass))
            while picked.count < imagesPerClass { picked.append(candidates[rng.integer(below: candidates.count)]) }
            initialIndices += picked
        }
        let initial = union.subset(initialIndices)
        let recipe = DistillationRecipe(method: .dm, initialization: .real, imagesPerClass: imagesPerClass, iterations: iterations,
                                        network: .init(width: network.width, depth: network.depth, norm: network.norm,
                                                       activation: network.activation, pooling: network.pooling),
                                        imageLearningRate: learningRate, batchReal: 256, augmentation: .dsa, seed: seed ^ round)
        let hasWeight = weights.contains { $0 > 0 }
        var set = try Distiller.run(recipe: recipe, data: union, descriptor: descriptor, start: initial,
                                    sampleWeights: hasWeight ? weights : nil) { [progress] iteration, total, _ in
            progress?(iteration, total)
            return true
        }
        // The global set's provenance: a merge of node sets, with the nodes' reported counts.
        set.metadata.method = "dm-merge"
        set.metadata.initialization = "nodes"
        set.metadata.seed = seed
        set.metadata.sourceClassCounts = UnionMerge.totalCounts(submissions, classes: descriptor.classCount)
        return set
    }
}
