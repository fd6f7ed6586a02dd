import Distill
import Testing
@testable import Coordinator

@Suite("Merge strategies")
struct MergeStrategyTests {
    /// Node sets made of real digits: node A holds classes 0–4, node B classes 5–9.
    func submissions() throws -> (DatasetSplits, [NodeSubmission]) {
        let splits = try DatasetStore.loadDigits()
        var rng = RandomSource(seed: 3)
        func node(_ id: String, classes: Range<Int>) -> NodeSubmission {
            let members = splits.train.indicesByClass().enumerated().filter { classes.contains($0.offset) }.flatMap(\.element)
            let part = splits.train.subset(members)
            let set = part.randomSubset(imagesPerClass: 3, using: &rng)
            return NodeSubmission(nodeID: id, set: SyntheticSet(data: set, metadata: .init(
                dataset: "digits", imageShape: [1, 8, 8], classCount: 10, normalization: DatasetCatalog.digits.normalization,
                method: "random", imagesPerClass: 3, iterations: 0, initialization: "real", seed: 0,
                sourceClassCounts: part.classCounts())))
        }
        return (splits, [node("a", classes: 0..<5), node("b", classes: 5..<10)])
    }

    @Test func unionKeepsEveryImage() throws {
        let (_, nodes) = try submissions()
        let union = try #require(try UnionMerge().aggregate(round: 1, submissions: nodes, failures: [:], descriptor: DatasetCatalog.digits))
        #expect(union.data.count == 30)
        #expect(union.data.classCounts() == [Int](repeating: 3, count: 10))
        #expect(union.metadata.sourceClassCounts.reduce(0, +) == nodes.reduce(0) { $0 + $1.set.metadata.sourceClassCounts.reduce(0, +) })
    }

    @Test func distributionMatchingMergeCoversClassesFromAllNodes() throws {
        let (splits, nodes) = try submissions()
        let merge = DistributionMatchingMerge(imagesPerClass: 2, iterations: 20,
                                              network: .init(imageShape: [1, 8, 8], classCount: 10, width: 32), learningRate: 10, seed: 1)
        let global = try #require(try merge.aggregate(round: 1, submissions: nodes, failures: ["c": "crashed"], descriptor: DatasetCatalog.digits))
        #expect(global.data.classCounts() == [Int](repeating: 2, count: 10), "every class present at some node is in the global set")
        #expect(global.data.images.isFinite)
        #expect(global.metadata.method == "dm-merge")
        // The merged set still teaches: a short evaluation is well above chance (10%).
        let evaluation = SetEvaluation(network: .init(imageShape: [1, 8, 8], classCount: 10, width: 32), models: 1, epochs: 60,
                                       augmentation: nil, seed: 2)
        #expect(evaluation.evaluate(global.data, test: splits.test).mean > 0.4)
    }

    /// Multi-formation node sets contribute their decoded training images: the union trains on factor² images per
    /// stored image, and the DM merge matches the decoded images and learns a plain global set.
    @Test func formationSetsMergeByTheirTrainingImages() throws {
        let (_, plain) = try submissions()
        let nodes = plain.map { submission -> NodeSubmission in
            var formed = submission
            formed.set.metadata.formationFactor = 2
            return formed
        }
        let union = try #require(try UnionMerge().aggregate(round: 1, submissions: nodes, failures: [:], descriptor: DatasetCatalog.digits))
        #expect(union.data.count == 120 && union.metadata.formationFactor == 1)
        #expect(union.data.images == LabeledImages.concatenate(nodes.map(\.set.trainingData)).images)
        let merge = DistributionMatchingMerge(imagesPerClass: 2, iterations: 5,
                                              network: .init(imageShape: [1, 8, 8], classCount: 10, width: 16), learningRate: 10, seed: 1)
        let global = try #require(try merge.aggregate(round: 1, submissions: nodes, failures: [:], descriptor: DatasetCatalog.digits))
        #expect(global.data.classCounts() == [Int](repeating: 2, count: 10) && global.metadata.formationFactor == 1)
        #expect(global.trainingData.count == 20 && global.data.images.isFinite)
    }

    @Test func nothingToMergeGivesNoSet() throws {
        #expect(try UnionMerge().aggregate(round: 1, submissions: [], failures: ["a": "x"], descriptor: DatasetCatalog.digits) == nil)
        let merge = DistributionMatchingMerge(imagesPerClass: 2, iterations: 1, network: .init(imageShape: [1, 8, 8], classCount: 10),
                                              learningRate: 1, seed: 1)
        #expect(try merge.aggregate(round: 1, submissions: [], failures: [:], descriptor: DatasetCatalog.digits) == nil)
    }
}
