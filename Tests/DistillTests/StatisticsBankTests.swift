import Foundation
import Testing
@testable import Distill

@Suite("Statistics bank")
struct StatisticsBankTests {
    static let configuration = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 3, depth: 2, width: 6, activation: .sigmoid)

    static func data(seed: UInt64) -> (real: LabeledImages, syn: Tensor, synByClass: [[Int]]) {
        var rng = RandomSource(seed: seed)
        let real = LabeledImages(images: .normal([12, 1, 8, 8], using: &rng), labels: [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], classCount: 3)
        return (real, .normal([6, 1, 8, 8], using: &rng), [[0, 1], [2, 3], [4, 5]])
    }

    /// Without augmentation and with whole classes as batches, a bank entry is exactly the unamortised DM step for the
    /// same network: the same loss and the same gradient.
    @Test func anEntryIsTheUnamortisedStepForTheSameNetwork() {
        let (real, syn, synByClass) = Self.data(seed: 51)
        let options = StatisticsBank.Options(size: 3, trainedNetworks: 0, trainingSteps: 0, batchReal: 256, classLossWeight: 0)
        let bank = StatisticsBank.build(real, options: options, network: Self.configuration, augmentation: nil, seed: 4)
        #expect(bank.entries.count == 3 && bank.entries.allSatisfy { !$0.trained })
        for index in bank.entries.indices {
            var rng = RandomSource(seed: 1)
            let direct = DistributionMatching.matchingLossAndGradient(
                net: bank.entries[index].network, real: real, realByClass: real.indicesByClass(), syn: syn, synByClass: synByClass,
                classes: [0, 1, 2], batchReal: 256, augmentation: nil, rng: &rng)
            let banked = bank.lossAndGradient(entry: index, syn: syn, synByClass: synByClass, classes: [0, 1, 2], augmentation: nil)
            #expect(abs(banked.loss - direct.loss) <= 1e-6 * max(1, direct.loss), "entry \(index): \(banked.loss) vs \(direct.loss)")
            let largest = direct.gradient.storage.map(abs).max() ?? 0
            let difference = zip(banked.gradient.storage, direct.gradient.storage).map { abs($0 - $1) }.max() ?? 0
            #expect(difference <= 1e-5 * max(1, largest), "entry \(index): gradient differs by \(difference)")
        }
    }

    /// With DSA, an entry's real means are the means of the real class under the entry's own draw, computed directly.
    @Test func realMeansAreTheClassMeansUnderTheEntrysDraw() throws {
        let (real, _, _) = Self.data(seed: 52)
        let dsa = DSA(operations: [.scale, .rotate, .crop])
        let options = StatisticsBank.Options(size: 2, trainedNetworks: 0, trainingSteps: 0, batchReal: 256, classLossWeight: 0)
        let bank = StatisticsBank.build(real, options: options, network: Self.configuration, augmentation: dsa, seed: 5)
        try Self.expectClassMeansUnderEachDraw(bank, real: real, dsa: dsa)
    }

    /// Every entry's real means are the means of the whole real class under the entry's own draw, computed directly.
    static func expectClassMeansUnderEachDraw(_ bank: StatisticsBank, real: LabeledImages, dsa: DSA) throws {
        for entry in bank.entries {
            for (c, members) in real.indicesByClass().enumerated() {
                let shared = try #require(entry.draws[c])
                let augmented = dsa.apply(DSA.Draw(operation: shared.operation,
                                                   values: [[Float]](repeating: shared.values[0], count: members.count)),
                                          to: real.images.gather(members))
                let embedding = entry.network.embed(augmented, training: true)
                let features = entry.network.featureCount
                for f in 0..<features {
                    let mean = members.indices.map { Double(embedding.storage[$0 * features + f]) }.reduce(0, +) / Double(members.count)
                    #expect(abs(mean - Double(entry.realMeans[c][f])) <= 1e-5 * max(1, abs(mean)), "class \(c) feature \(f)")
                }
            }
        }
    }

    /// Weighted means (the coordinator's merge of weighted node sets) weight each record as given.
    @Test func weightedMeansFollowTheWeights() {
        let (real, _, _) = Self.data(seed: 53)
        var weights = [Float](repeating: 0, count: real.count)
        for i in [0, 4, 8] { weights[i] = 1 }   // only the first record of each class counts
        let options = StatisticsBank.Options(size: 1, trainedNetworks: 0, trainingSteps: 0, batchReal: 256, classLossWeight: 0)
        let bank = StatisticsBank.build(real, options: options, network: Self.configuration, augmentation: nil, sampleWeights: weights, seed: 6)
        let entry = bank.entries[0]
        for (c, first) in [0, 4, 8].enumerated() {
            let single = entry.network.embed(real.images.gather([first]), training: true)
            for f in 0..<entry.network.featureCount {
                #expect(abs(single.storage[f] - entry.realMeans[c][f]) <= 1e-5)
            }
        }
    }

    /// A private bank (DP-DM's mechanism on every entry) is the exact bank up to its mechanism: with whole classes as
    /// batches (rate 1), no noise and a clip no record reaches, its means are the class means under each entry's draw;
    /// with a clip of almost nothing the records cannot move the means at all (other data, same means); and the noise
    /// on each mean is the mechanism's standard deviation divided by the class size.
    @Test func aPrivateBankIsTheExactBankUpToItsMechanism() throws {
        let (real, _, _) = Self.data(seed: 55)
        let (other, _, _) = Self.data(seed: 56)
        let dsa = DSA(operations: [.scale, .rotate, .crop])
        let options = StatisticsBank.Options(size: 10, trainedNetworks: 0, trainingSteps: 0, batchReal: 256, classLossWeight: 0)
        func build(_ data: LabeledImages, clip: Float, noise: Float) -> StatisticsBank {
            StatisticsBank.build(data, options: options, network: Self.configuration, augmentation: dsa,
                                 privacy: .init(clipNorm: clip, noiseStandardDeviation: noise), seed: 6)
        }
        let exact = build(real, clip: 1e6, noise: 0)
        #expect(exact.privacy == .init(clipNorm: 1e6, noiseStandardDeviation: 0))
        try Self.expectClassMeansUnderEachDraw(exact, real: real, dsa: dsa)
        let clipped = build(real, clip: 1e-9, noise: 0), clippedOther = build(other, clip: 1e-9, noise: 0)
        let noisy = build(real, clip: 1e-9, noise: 2)
        var squares = 0.0, count = 0
        for (e, entry) in clipped.entries.enumerated() {
            for c in 0..<3 {
                for f in entry.realMeans[c].indices {
                    #expect(abs(entry.realMeans[c][f] - clippedOther.entries[e].realMeans[c][f]) <= 1e-6, "records moved a clipped mean")
                    let scaled = Double(noisy.entries[e].realMeans[c][f] - entry.realMeans[c][f]) * 4  // 4 records per class
                    squares += scaled * scaled
                    count += 1
                }
            }
        }
        let sd = (squares / Double(count)).squareRoot()
        #expect(abs(sd - 2) < 0.2, "noise sd on a class sum \(sd), expected 2 (\(count) coordinates)")
        #expect(!exact.matches(options: options, network: Self.configuration, augmented: true))
        #expect(noisy.matches(options: options, network: Self.configuration, augmented: true,
                              privacy: .init(clipNorm: 1e-9, noiseStandardDeviation: 2)))
    }

    /// The gradient of the whole loss (means under the draw plus the class loss of a trained entry) against finite
    /// differences.
    @Test(arguments: [false, true])
    func trainedEntryGradientMatchesFiniteDifferences(withDSA: Bool) {
        let (real, syn, synByClass) = Self.data(seed: 54)
        let dsa = withDSA ? DSA(operations: [.scale, .color, .crop]) : nil
        let options = StatisticsBank.Options(size: 2, trainedNetworks: 1, trainingSteps: 3, batchReal: 256, classLossWeight: 2)
        let bank = StatisticsBank.build(real, options: options, network: Self.configuration, augmentation: dsa, seed: 7)
        #expect(bank.entries.map(\.trained) == [true, false])
        let (loss, gradient) = bank.lossAndGradient(entry: 0, syn: syn, synByClass: synByClass, classes: [0, 1, 2], augmentation: dsa)
        let matchingOnly = StatisticsBank(options: .init(size: 2, trainedNetworks: 1, trainingSteps: 3, batchReal: 256, classLossWeight: 0),
                                          entries: bank.entries, buildSeconds: 0)
        #expect(loss > matchingOnly.lossAndGradient(entry: 0, syn: syn, synByClass: synByClass, classes: [0, 1, 2], augmentation: dsa).loss,
                "the class loss adds to a trained entry's loss")
        expectGradient(gradient, matches: syn, samples: 40, epsilon: 1e-2, "bank loss dsyn") {
            bank.lossAndGradient(entry: 0, syn: $0, synByClass: synByClass, classes: [0, 1, 2], augmentation: dsa).loss
        }
    }

    /// Trained networks learn: the last snapshot of a trajectory classifies the test split far better than a random
    /// entry's network, and a trajectory's snapshots differ.
    @Test func trainedSnapshotsComeFromOneTrajectoryEach() throws {
        let splits = try DatasetStore.loadDigits()
        let network = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 10, width: 64)
        let options = StatisticsBank.Options(size: 8, trainedNetworks: 2, trainingSteps: 200, batchReal: 64, classLossWeight: 0)
        var calls = 0
        let bank = StatisticsBank.build(splits.train, options: options, network: network, augmentation: DSA(dataset: "digits"), seed: 8,
                                        progress: { done, total in calls += 1; #expect(done == calls && total == 8) })
        #expect(calls == 8)
        #expect(bank.entries.map(\.trained) == [true, true, true, true, false, false, false, false])
        func accuracy(_ net: ConvNet) -> Double {
            let (logits, _) = net.forward(splits.test.images, training: false, untilEmbedding: false)
            let predictions = (0..<splits.test.count).map { row in
                (0..<10).max { logits.storage[row * 10 + $0] < logits.storage[row * 10 + $1] }!
            }
            return Double(zip(predictions, splits.test.labels).filter { $0 == $1 }.count) / Double(splits.test.count)
        }
        let trained = accuracy(bank.entries[1].network), random = accuracy(bank.entries[4].network)
        #expect(trained > 0.8 && trained > random + 0.3, "trained \(trained), random \(random)")
        #expect(bank.entries[0].network.parameters[0].storage != bank.entries[1].network.parameters[0].storage)
    }

    /// A DM run with a bank is reproducible from its seed and moves the images.
    @Test func distillationWithABankIsReproducible() throws {
        let splits = try DatasetStore.loadDigits()
        let network = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 10, width: 16)
        func distillOnce() -> LabeledImages {
            var rng = RandomSource(seed: 5)
            let initial = DistributionMatching.initialImages(splits.train, imagesPerClass: 2, initialization: .noise, using: &rng)
            let dm = DistributionMatching(
                options: .init(imagesPerClass: 2, iterations: 6, batchReal: 32, seed: 5,
                               bank: .init(size: 4, trainedNetworks: 1, trainingSteps: 4, batchReal: 32, classLossWeight: 0.5)),
                network: network, augmentation: DSA(dataset: "digits"))
            return dm.distill(splits.train, from: initial).images
        }
        let first = distillOnce()
        #expect(first.images.storage == distillOnce().images.storage)
        var rng = RandomSource(seed: 5)
        let initial = DistributionMatching.initialImages(splits.train, imagesPerClass: 2, initialization: .noise, using: &rng)
        #expect(first.images.storage != initial.images.storage)
        #expect(first.images.storage.allSatisfy { $0.isFinite })
    }

    /// A bank built by one run is reused by the next on the same records (what a long-lived node does between rounds):
    /// the run with the handed-over bank gives exactly the images of a run that builds it, and builds nothing; a bank
    /// of other settings is not reused.
    @Test func aBankBuiltOnceIsReusedWhenItMatches() throws {
        let splits = try DatasetStore.loadDigits()
        let network = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 10, width: 16)
        let bankOptions = StatisticsBank.Options(size: 4, trainedNetworks: 1, trainingSteps: 4, batchReal: 32, classLossWeight: 0.5)
        func matcher(_ bank: StatisticsBank.Options) -> DistributionMatching {
            DistributionMatching(options: .init(imagesPerClass: 2, iterations: 6, batchReal: 32, seed: 5, bank: bank),
                                 network: network, augmentation: DSA(dataset: "digits"))
        }
        var rng = RandomSource(seed: 5)
        let initial = DistributionMatching.initialImages(splits.train, imagesPerClass: 2, initialization: .noise, using: &rng)
        var built: [StatisticsBank] = []
        let first = matcher(bankOptions).distill(splits.train, from: initial, built: { built.append($0) }).images
        let bank = try #require(built.first)
        #expect(built.count == 1 && bank.matches(options: bankOptions, network: network, augmented: true))
        #expect(!bank.matches(options: bankOptions, network: network, augmented: false))
        var preparation: [Int] = []
        let reused = matcher(bankOptions).distill(splits.train, from: initial, preparation: { done, _ in preparation.append(done) },
                                                  reusing: bank, built: { built.append($0) }).images
        #expect(reused.images.storage == first.images.storage)
        #expect(built.count == 1 && preparation == [bankOptions.size], "nothing was built")
        var larger = bankOptions
        larger.size = 6
        _ = matcher(larger).distill(splits.train, from: initial, reusing: bank, built: { built.append($0) })
        #expect(built.count == 2 && built[1].entries.count == 6, "a bank of other settings is built anew")
    }
}
