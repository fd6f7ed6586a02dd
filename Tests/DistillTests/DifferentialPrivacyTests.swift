import Foundation
import Testing
@testable import Distill

@Suite("Differential privacy")
struct DifferentialPrivacyTests {
    struct Reference: Decodable {
        struct Case: Decodable {
            var sample_rate: Double
            var noise_multiplier: Double
            var steps: Int
            var delta: Double
            var rdp_orders: [Int]
            var rdp: [Double]
            var epsilon: Double
        }
        var cases: [Case]
    }

    /// The accountant against Google's dp-accounting (scripts/dp-accounting-reference.py): the per-step RDP at
    /// several orders and the composed ε.
    @Test func accountantMatchesDPAccounting() throws {
        let url = try #require(Bundle.module.resourceURL?.appendingPathComponent("Fixtures/dp-accounting/reference.json"))
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        #expect(reference.cases.count >= 5)
        for c in reference.cases {
            for (order, expected) in zip(c.rdp_orders, c.rdp) {
                let rdp = GaussianAccountant.rdp(sampleRate: c.sample_rate, noiseMultiplier: c.noise_multiplier, order: order)
                #expect(abs(rdp - expected) <= 1e-9 + 1e-6 * abs(expected), "q \(c.sample_rate) σ \(c.noise_multiplier) α \(order): \(rdp) vs \(expected)")
            }
            let epsilon = GaussianAccountant.epsilon(sampleRate: c.sample_rate, noiseMultiplier: c.noise_multiplier,
                                                     steps: c.steps, delta: c.delta)
            #expect(abs(epsilon - c.epsilon) <= 1e-6 * c.epsilon, "q \(c.sample_rate) σ \(c.noise_multiplier) T \(c.steps): ε \(epsilon) vs \(c.epsilon)")
        }
    }

    @Test(arguments: [(1.0, 200), (256.0 / 6000, 1000), (0.3, 30)])
    func calibratedNoiseIsTheSmallestThatFitsTheBudget(sampleRate: Double, steps: Int) {
        for target in [1.0, 4.0, 10.0] {
            let sigma = GaussianAccountant.noiseMultiplier(epsilon: target, delta: 1e-5, sampleRate: sampleRate, steps: steps)
            #expect(GaussianAccountant.epsilon(sampleRate: sampleRate, noiseMultiplier: sigma, steps: steps, delta: 1e-5) <= target)
            #expect(GaussianAccountant.epsilon(sampleRate: sampleRate, noiseMultiplier: sigma * 0.99, steps: steps, delta: 1e-5) > target)
        }
        // More steps or a higher sampling rate need more noise for the same ε.
        let base = GaussianAccountant.noiseMultiplier(epsilon: 4, delta: 1e-5, sampleRate: sampleRate / 2, steps: steps)
        #expect(GaussianAccountant.noiseMultiplier(epsilon: 4, delta: 1e-5, sampleRate: sampleRate / 2, steps: steps * 2) > base)
        #expect(GaussianAccountant.noiseMultiplier(epsilon: 4, delta: 1e-5, sampleRate: sampleRate, steps: steps) > base)
    }

    /// The mechanism: without clipping or noise it is the plain mean whatever the reference; one record moves the
    /// noiseless sum by at most the clip norm; the noise has the configured standard deviation.
    @Test func privateMeanIsTheMeanWithBoundedInfluence() {
        var rng = RandomSource(seed: 61)
        let features = 12, count = 9
        let embeddings = Tensor.normal([count, features], std: 2, using: &rng)
        let reference = (0..<features).map { _ in Double(rng.normal()) }
        let plain = (0..<features).map { f in (0..<count).reduce(0.0) { $0 + Double(embeddings.storage[$1 * features + f]) } / Double(count) }
        let open = DistributionMatching.PrivateMeans(clipNorm: 1e6, noiseStandardDeviation: 0)
        let unclipped = DistributionMatching.privateMean(embeddings, rows: 0..<count, features: features, reference: reference,
                                                         expectedCount: Double(count), mechanism: open, rng: &rng)
        #expect(zip(unclipped, plain).allSatisfy { abs($0 - $1) < 1e-5 })

        let clip: Float = 0.8
        let tight = DistributionMatching.PrivateMeans(clipNorm: clip, noiseStandardDeviation: 0)
        func sum(_ e: Tensor, rows: Range<Int>) -> [Double] {
            DistributionMatching.privateMean(e, rows: rows, features: features, reference: reference, expectedCount: 1,
                                             mechanism: tight, rng: &rng).enumerated().map { $1 - reference[$0] }
        }
        func distance(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() }
        var outlier = embeddings
        for f in 0..<features { outlier.storage[4 * features + f] *= 1000 }
        let full = sum(embeddings, rows: 0..<count)
        #expect(distance(full, sum(embeddings, rows: 0..<(count - 1))) <= Double(clip) * 1.0001, "removing a record")
        #expect(distance(full, sum(outlier, rows: 0..<count)) <= 2 * Double(clip) * 1.0001, "replacing a record")

        let noisy = DistributionMatching.PrivateMeans(clipNorm: clip, noiseStandardDeviation: 3)
        var values: [Double] = []
        for _ in 0..<400 {
            values += DistributionMatching.privateMean(embeddings, rows: 0..<0, features: features, reference: reference,
                                                       expectedCount: 2, mechanism: noisy, rng: &rng).enumerated().map { $1 - reference[$0] }
        }
        let sd = (values.reduce(0) { $0 + $1 * $1 } / Double(values.count)).squareRoot()
        #expect(abs(sd - 1.5) < 0.05, "noise sd \(sd), expected 3 / 2")
    }

    /// With no noise and a clip norm no record reaches, DP-DM's loss and gradient are plain DM's (whose gradient is
    /// checked by finite differences): the private path differs only in the mechanism tested above.
    @Test func privateMatchingWithoutNoiseOrClippingIsPlainMatching() {
        var rng = RandomSource(seed: 62)
        let configuration = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 2, depth: 2, width: 6)
        let net = ConvNet(configuration, using: &rng)
        let real = LabeledImages(images: .normal([16, 1, 8, 8], using: &rng), labels: (0..<16).map { $0 % 2 }, classCount: 2)
        let syn = Tensor.normal([4, 1, 8, 8], using: &rng)
        let start = rng
        func evaluate(_ mechanism: DistributionMatching.PrivateMeans?) -> (Double, Tensor) {
            var copy = start
            return DistributionMatching.matchingLossAndGradient(
                net: net, real: real, realByClass: real.indicesByClass(), syn: syn, synByClass: [[0, 1], [2, 3]],
                classes: [0, 1], batchReal: 8, augmentation: DSA(operations: [.scale, .crop]), privateMeans: mechanism, rng: &copy)
        }
        let (plainLoss, plainGradient) = evaluate(nil)
        let (privateLoss, privateGradient) = evaluate(.init(clipNorm: 1e6, noiseStandardDeviation: 0))
        #expect(abs(plainLoss - privateLoss) <= 1e-6 * max(plainLoss, 1e-12))
        #expect(zip(plainGradient.storage, privateGradient.storage).allSatisfy { abs($0 - $1) <= 1e-4 * max(abs($0), 1e-6) })
        let (noisyLoss, _) = evaluate(.init(clipNorm: 0.01, noiseStandardDeviation: 0.5))
        #expect(abs(noisyLoss - plainLoss) > 1e-3 * plainLoss, "clipping and noise change the target")
    }

    /// The default clip norms rest on a property of the architecture measured on public data: a record's embedding
    /// under a fresh ConvNet lies about 0.027·√features from its class mean on 8×8 digits, close to the default bound
    /// from the synthetic mean; and 90% of records lie within about 0.035·√features of the mean embedding of noise
    /// images, the reference and bound of a private bank.
    @Test func defaultClipNormIsNearTheTypicalDeviationOnDigits() throws {
        let digits = try DatasetStore.loadDigits().train
        var rng = RandomSource(seed: 63)
        let net = ConvNet(.init(imageShape: [1, 8, 8], classCount: 10, width: 32), using: &rng)
        let features = net.featureCount
        let bound = Double(PrivacyBudget.defaultClipNorm(featureShape: net.featureShape))
        let noiseBound = Double(PrivacyBudget.defaultClipNorm(featureShape: net.featureShape, reference: .noiseMean))
        let noiseMean = net.embed(Tensor.normal([64, 1, 8, 8], using: &rng), training: true).meanOverBatch().storage.map(Double.init)
        var fromNoise: [Double] = []
        for members in digits.indicesByClass() {
            let embedding = net.embed(digits.images.gather(Array(members.prefix(64))), training: true)
            let rows = embedding.shape[0]
            let mean = (0..<features).map { f in (0..<rows).reduce(0.0) { $0 + Double(embedding.storage[$1 * features + f]) } / Double(rows) }
            func distance(_ r: Int, _ reference: [Double]) -> Double {
                (0..<features).reduce(0.0) { let d = Double(embedding.storage[r * features + $1]) - reference[$1]; return $0 + d * d }.squareRoot()
            }
            let deviations = (0..<rows).map { distance($0, mean) }.sorted()
            let median = deviations[rows / 2]
            #expect(median > 0.4 * bound && median < 1.5 * bound, "median deviation \(median / Double(features).squareRoot())·√features")
            fromNoise += (0..<rows).map { distance($0, noiseMean) }
        }
        fromNoise.sort()
        let percentile90 = fromNoise[fromNoise.count * 9 / 10]
        #expect(percentile90 > 0.7 * noiseBound && percentile90 < 1.3 * noiseBound,
                "90th percentile from the noise mean \(percentile90 / Double(features).squareRoot())·√features")
    }

    /// DP-DM with a bank releases once per entry, all before the first iteration: the calibration counts the bank's
    /// entries, not the iterations, and a run records that guarantee whatever its iteration count; the images move.
    @Test func aPrivateBankCountsItsEntriesAsTheReleases() throws {
        let splits = try DatasetStore.loadDigits()
        let train = splits.train.subset(Array(0..<400))
        var recipe = DistillationRecipe(method: .dm, imagesPerClass: 1, iterations: 30, network: .init(width: 8), batchReal: 16,
                                        privacy: PrivacyBudget(epsilon: 2), seed: 4,
                                        settings: .distributionMatching(.init(bankSize: 5)))
        let calibration = try #require(try Distiller.calibration(recipe: recipe, data: train, descriptor: splits.descriptor))
        #expect(calibration.steps == 5 && calibration.epsilon <= 2 && calibration.epsilon > 1.9)
        let smallest = train.indicesByClass().map(\.count).min()!
        #expect(abs(calibration.sampleRate - 16 / Double(smallest)) < 1e-12)
        var plain = recipe
        plain.settings = .standard
        let plainCalibration = try #require(try Distiller.calibration(recipe: plain, data: train, descriptor: splits.descriptor))
        #expect(plainCalibration.steps == 30 && plainCalibration.noiseMultiplier > calibration.noiseMultiplier,
                "30 releases need more noise than 5 for the same budget")
        let set = try Distiller.run(recipe: recipe, data: train, descriptor: splits.descriptor)
        #expect(set.metadata.privacy == calibration && set.metadata.iterations == 30)
        #expect(set.data.images.storage.allSatisfy { $0.isFinite })
        recipe.iterations = 0
        let start = try Distiller.run(recipe: recipe, data: train, descriptor: splits.descriptor)
        #expect(start.data.images.storage != set.data.images.storage, "the iterations moved the images")
        #expect(start.metadata.privacy == calibration)
    }

    @Test func calibrationUsesTheSmallestClassAndFitsTheBudget() throws {
        let digits = try DatasetStore.loadDigits().train
        let network = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 10, width: 32)
        let dm = DistributionMatching(options: .init(iterations: 40, batchReal: 64, privacy: PrivacyBudget(epsilon: 2)),
                                      network: network, augmentation: nil)
        let calibration = try #require(dm.calibration(for: digits))
        let smallest = digits.indicesByClass().map(\.count).min()!
        #expect(abs(calibration.sampleRate - 64 / Double(smallest)) < 1e-12)
        #expect(calibration.epsilon <= 2 && calibration.epsilon > 1.9)
        #expect(calibration.clipNorm == PrivacyBudget.defaultClipNorm(featureShape: [32, 1, 1]))
        #expect(PrivacyBudget(epsilon: 0).problem != nil && PrivacyBudget(epsilon: 1, delta: 1).problem != nil)
        #expect(PrivacyBudget(epsilon: .nan).problem != nil && PrivacyBudget(epsilon: 1, clipNorm: -1).problem != nil)
    }
}
