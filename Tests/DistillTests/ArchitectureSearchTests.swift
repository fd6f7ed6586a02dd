import Testing
@testable import Distill

@Suite("Architecture search proxy")
struct ArchitectureSearchTests {
    /// Spearman's ρ with tied ranks (checked by hand: ranks [1, 3, 2, 5, 4] and [2, 3.5, 3.5, 5, 1], ρ = 3.5/√95).
    @Test func spearmanMatchesTheRankFormula() {
        #expect(abs(ArchitectureSearch.spearman([0.1, 0.5, 0.3, 0.9, 0.7], [0.2, 0.6, 0.6, 0.8, 0.1]) - 0.35909242322980395) < 1e-12)
        #expect(ArchitectureSearch.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1)
        #expect(ArchitectureSearch.spearman([1, 2, 3], [10, 20, 30]) == 1)
        #expect(ArchitectureSearch.spearman([1, 1, 1], [1, 2, 3]) == 0)
    }

    /// Candidates are distinct, drawn reproducibly, and only those whose pooling the images allow.
    @Test func candidatesAreDistinctAndFitTheImages() {
        let mnist = ArchitectureSearch.candidates(count: 30, imageShape: [1, 28, 28], classCount: 10, seed: 4)
        #expect(mnist.count == 30)
        #expect(Set(mnist.map(ArchitectureSearch.name)).count == 30)
        #expect(mnist.map(ArchitectureSearch.name) == ArchitectureSearch.candidates(count: 30, imageShape: [1, 28, 28], classCount: 10, seed: 4).map(ArchitectureSearch.name))
        #expect(mnist.map(ArchitectureSearch.name) != ArchitectureSearch.candidates(count: 30, imageShape: [1, 28, 28], classCount: 10, seed: 5).map(ArchitectureSearch.name))
        let all = ArchitectureSearch.candidates(count: 10_000, imageShape: [1, 28, 28], classCount: 10, seed: 0)
        #expect(all.count == 4 * 3 * 5 * 3 * 3)
        // 8×8 digits: 8 → 4 → 2 → 1, so a fourth pooled block does not fit.
        let digits = ArchitectureSearch.candidates(count: 10_000, imageShape: [1, 8, 8], classCount: 10, seed: 0)
        #expect(digits.count == all.count - 3 * 5 * 3 * 2)
        #expect(!digits.contains { $0.depth == 4 && $0.pooling != .none })
        var rng = RandomSource(seed: 1)
        for configuration in digits where configuration.width == 32 {
            #expect(ConvNet(configuration, using: &rng).featureCount > 0)
        }
    }

    /// The proxy's quality: rank correlation, the pick's real accuracy, and the time ratio.
    @Test func qualityComparesTheProxyWithTheTarget() throws {
        let entries = [
            ArchitectureSearch.Entry(name: "a", accuracies: [0.5, 0.90], seconds: [1, 10]),
            ArchitectureSearch.Entry(name: "b", accuracies: [0.7, 0.95], seconds: [1, 30]),
            ArchitectureSearch.Entry(name: "c", accuracies: [0.6, 0.97], seconds: [2, 40]),
        ]
        let quality = ArchitectureSearch.quality(of: entries, proxy: 0)
        #expect(quality.picked == "b" && quality.pickedTargetAccuracy == 0.95 && quality.bestTargetAccuracy == 0.97)
        #expect(quality.speedUp == 20)
        #expect(abs(quality.spearman - 0.5) < 1e-12)
        // A run on the digits: every candidate trained on each set, accuracies in [0, 1].
        let splits = try DatasetStore.loadDigits()
        var rng = RandomSource(seed: 2)
        let search = ArchitectureSearch(candidates: ArchitectureSearch.candidates(count: 3, imageShape: [1, 8, 8], classCount: 10, seed: 2),
                                        proxyEpochs: 5, targetEpochs: 2, augmentation: nil, seed: 2)
        let run = search.run(sets: [splits.train.randomSubset(imagesPerClass: 5, using: &rng), splits.train], test: splits.test)
        #expect(run.count == 3 && run.allSatisfy { $0.accuracies.count == 2 && $0.accuracies.allSatisfy { (0...1).contains($0) } })
        #expect(run.map(\.name) == search.candidates.map(ArchitectureSearch.name))
    }
}
