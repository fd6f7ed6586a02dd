import Foundation
import Testing
@testable import Distill

@Suite("DSA")
struct DSATests {
    @Test(arguments: DSA.Operation.allCases)
    func gradientIsTheTransposedMap(operation: DSA.Operation) {
        var rng = RandomSource(seed: 31)
        let dsa = DSA(operations: [operation])
        let x = Tensor.normal([3, 3, 7, 6], using: &rng)
        let draw = dsa.draw(count: 3, shape: [3, 7, 6], shared: false, using: &rng)
        let r = Tensor.normal(x.shape, using: &rng)
        // Linear maps: the finite difference is exact up to rounding, so any mismatch is a bug.
        expectGradient(dsa.backward(draw, outputGradient: r), matches: x, samples: 60, "DSA \(operation)") {
            weightedSum(dsa.apply(draw, to: $0), r)
        }
    }

    @Test func sharedDrawsAreIdenticalAcrossTheBatch() {
        var rng = RandomSource(seed: 32)
        let dsa = DSA(dataset: "cifar10")
        for _ in 0..<20 {
            let draw = dsa.draw(count: 5, shape: [3, 32, 32], shared: true, using: &rng)
            #expect(Set(draw.values.map { $0.description }).count == 1)
        }
        #expect(!DSA(dataset: "mnist").operations.contains(.flip))
        #expect(DSA(dataset: "cifar10").operations.contains(.flip))
    }

    @Test func cropShiftsAndFlipMirrors() {
        let x = Tensor(shape: [1, 1, 2, 3], storage: [1, 2, 3, 4, 5, 6])
        let dsa = DSA(operations: [.crop])
        let shifted = dsa.apply(DSA.Draw(operation: .crop, values: [[0, 1]]), to: x)
        #expect(shifted.storage == [2, 3, 0, 5, 6, 0])
        let flipped = dsa.apply(DSA.Draw(operation: .flip, values: [[1]]), to: x)
        #expect(flipped.storage == [3, 2, 1, 6, 5, 4])
        let identity = dsa.apply(DSA.Draw(operation: .scale, values: [[1, 1]]), to: x)
        #expect(zip(identity.storage, x.storage).allSatisfy { abs($0 - $1) < 1e-5 })
    }
}

@Suite("Distribution matching")
struct DistributionMatchingTests {
    @Test(arguments: [false, true])
    func lossGradientMatchesFiniteDifferences(withDSA: Bool) {
        var rng = RandomSource(seed: 41)
        let configuration = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 3, depth: 2, width: 6, activation: .sigmoid)
        let net = ConvNet(configuration, using: &rng)
        let real = LabeledImages(images: .normal([9, 1, 8, 8], using: &rng), labels: [0, 0, 0, 1, 1, 1, 2, 2, 2], classCount: 3)
        let syn = Tensor.normal([6, 1, 8, 8], using: &rng)
        let synByClass = [[0, 1], [2, 3], [4, 5]]
        let augmentation = withDSA ? DSA(operations: [.scale, .color, .crop]) : nil
        let start = rng
        func evaluate(_ images: Tensor) -> (Double, Tensor) {
            var copy = start
            return DistributionMatching.matchingLossAndGradient(
                net: net, real: real, realByClass: real.indicesByClass(), syn: images, synByClass: synByClass,
                classes: [0, 1, 2], batchReal: 256, augmentation: augmentation, rng: &copy)
        }
        let (_, gradient) = evaluate(syn)
        expectGradient(gradient, matches: syn, samples: 40, epsilon: 1e-2, "DM loss dsyn") { evaluate($0).0 }
    }

    /// The workhorse check: DM at IPC 10 on digits beats random real images at IPC 10, over several seeds. Paired:
    /// DM starts from the very random subset it is compared with (the reference's `real` initialisation) and must
    /// improve on it. At this budget (width 64, 200 iterations) the gain is 0–5 points per seed, so the check asks
    /// for a mean gain above one point over five seeds and a win on most of them; three seeds proved too few (the
    /// mean gain moved between 1.2 and 1.6 points with bit-level changes in the arithmetic).
    @Test(.tags(.slow)) func dmBeatsRandomOnDigits() throws {
        let splits = try DatasetStore.loadDigits()
        let network = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 10, width: 64)
        var dmAccuracies: [Double] = [], randomAccuracies: [Double] = []
        for seed in UInt64(1)...5 {
            var rng = RandomSource(seed: seed)
            let random = CoresetSelection.random(splits.train, imagesPerClass: 10, using: &rng)
            let dm = DistributionMatching(options: .init(imagesPerClass: 10, iterations: 200, batchReal: 128, learningRate: 100,
                                                         initialization: .real, seed: seed),
                                          network: network, augmentation: DSA(dataset: "digits"))
            let distilled = dm.distill(splits.train, from: random).images
            let evaluation = SetEvaluation(network: network, models: 2, epochs: 150, augmentation: DSA(dataset: "digits"), seed: seed)
            dmAccuracies.append(evaluation.evaluate(distilled, test: splits.test).mean)
            randomAccuracies.append(evaluation.evaluate(random, test: splits.test).mean)
        }
        let dm = dmAccuracies.reduce(0, +) / 5, random = randomAccuracies.reduce(0, +) / 5
        #expect(dm > random + 0.01, "DM \(dmAccuracies) vs random \(randomAccuracies)")
        #expect(zip(dmAccuracies, randomAccuracies).filter { $0 > $1 }.count >= 3, "DM \(dmAccuracies) vs random \(randomAccuracies)")
    }

    /// The nodes' default recipe (DM from noise with the recommended statistics bank) beats random real images at IPC 10
    /// on digits, over five seeds. Reduced budget: width 64 and 1000 iterations for distillation, 2 models × 150
    /// epochs at width 64 for evaluation (docs/benchmarks.md has the full protocol: +1.5 points at width 128, 3000
    /// iterations, 5 models × 300 epochs). Unlike `dmBeatsRandomOnDigits` the start copies no record.
    @Test(.tags(.slow)) func defaultRecipeBeatsRandomOnDigits() throws {
        let splits = try DatasetStore.loadDigits()
        var recipe = DistillationRecipe.reference(.dm)
        (recipe.network.width, recipe.iterations) = (64, 1000)
        #expect(recipe.initialization == .noise && recipe.settings == .distributionMatching(.recommended))
        let network = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 10, width: 64)
        var defaultAccuracies: [Double] = [], randomAccuracies: [Double] = []
        for seed in UInt64(1)...5 {
            recipe.seed = seed
            let distilled = try Distiller.run(recipe: recipe, data: splits.train, descriptor: splits.descriptor).data
            var rng = RandomSource(seed: seed)
            let random = CoresetSelection.random(splits.train, imagesPerClass: 10, using: &rng)
            let evaluation = SetEvaluation(network: network, models: 2, epochs: 150, augmentation: DSA(dataset: "digits"), seed: seed)
            defaultAccuracies.append(evaluation.evaluate(distilled, test: splits.test).mean)
            randomAccuracies.append(evaluation.evaluate(random, test: splits.test).mean)
        }
        let distilled = defaultAccuracies.reduce(0, +) / 5, random = randomAccuracies.reduce(0, +) / 5
        #expect(distilled > random + 0.005, "default \(defaultAccuracies) vs random \(randomAccuracies)")
        #expect(zip(defaultAccuracies, randomAccuracies).filter { $0 > $1 }.count >= 3,
                "default \(defaultAccuracies) vs random \(randomAccuracies)")
    }

    @Test func sameSeedReproducesTheSet() throws {
        let splits = try DatasetStore.loadDigits()
        let network = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 10, width: 16)
        func run() -> [Float] {
            var rng = RandomSource(seed: 5)
            let initial = DistributionMatching.initialImages(splits.train, imagesPerClass: 2, initialization: .noise, using: &rng)
            let dm = DistributionMatching(options: .init(imagesPerClass: 2, iterations: 3, batchReal: 32, seed: 5),
                                          network: network, augmentation: DSA(dataset: "digits"))
            return dm.distill(splits.train, from: initial).images.images.storage
        }
        #expect(run() == run())
    }

    @Test func initialisations() throws {
        let splits = try DatasetStore.loadDigits()
        var rng = RandomSource(seed: 6)
        let subset = splits.train.subset(splits.train.indicesByClass()[3] + splits.train.indicesByClass()[7])
        for initialization in SyntheticInitialization.allCases {
            let initial = DistributionMatching.initialImages(subset, imagesPerClass: 4, initialization: initialization, using: &rng)
            #expect(initial.labels == [3, 3, 3, 3, 7, 7, 7, 7], "only classes present get images")
            #expect(initial.images.shape == [8, 1, 8, 8])
        }
        let real = DistributionMatching.initialImages(subset, imagesPerClass: 2, initialization: .real, using: &rng)
        let rows = (0..<subset.count).map { subset.images.slice($0..<($0 + 1)).storage }
        #expect(rows.contains(real.images.slice(0..<1).storage), "real init copies real images")
    }

    @Test func herdingPicksImagesWhoseMeanApproachesTheClassMean() throws {
        let splits = try DatasetStore.loadDigits()
        var rng = RandomSource(seed: 7)
        let net = ConvNet(.init(imageShape: [1, 8, 8], classCount: 10, width: 16), using: &rng)
        let herded = CoresetSelection.herding(splits.train, imagesPerClass: 5, network: net)
        let random = CoresetSelection.random(splits.train, imagesPerClass: 5, using: &rng)
        #expect(herded.classCounts() == [Int](repeating: 5, count: 10))
        func gap(_ set: LabeledImages) -> Double {
            var total = 0.0
            for c in 0..<10 {
                let all = net.embed(splits.train.subset(splits.train.indicesByClass()[c]).images).meanOverBatch()
                var part = net.embed(set.subset(set.indicesByClass()[c]).images).meanOverBatch()
                part.add(all, scaledBy: -1)
                total += part.squaredNorm()
            }
            return total
        }
        #expect(gap(herded) < gap(random))
    }
}

@Suite("Gradient matching")
struct GradientMatchingTests {
    /// The second-order term (finite-difference Hessian-vector product) against finite differences of the whole
    /// matching distance with respect to the synthetic images.
    @Test func matchingGradientMatchesFiniteDifferences() {
        var rng = RandomSource(seed: 61)
        let net = ConvNet(.init(imageShape: [1, 6, 6], classCount: 3, depth: 1, width: 4, activation: .sigmoid), using: &rng)
        let real = Tensor.normal([5, 1, 6, 6], using: &rng)
        let syn = Tensor.normal([2, 1, 6, 6], using: &rng)
        let (_, gradient) = GradientMatching.classMatch(net: net, real: real, synthetic: syn, label: 1)
        expectGradient(gradient, matches: syn, samples: 40, epsilon: 1e-2, absolute: 1e-3, relative: 5e-2, "DC dsyn") {
            GradientMatching.classMatch(net: net, real: real, synthetic: $0, label: 1).distance
        }
    }

    @Test func distanceIsZeroForParallelGradientsAndIgnoresBiases() {
        var rng = RandomSource(seed: 62)
        let g = Tensor.normal([3, 4], using: &rng)
        var scaled = g
        scaled.scale(by: 2.5)
        #expect(GradientMatching.distance(real: [g], synthetic: [scaled]).value < 1e-6)
        let net = ConvNet(.init(imageShape: [1, 8, 8], classCount: 10, width: 4), using: &rng)
        #expect(GradientMatching.matchedParameters(net).allSatisfy { net.parameters[$0].shape.count >= 2 })
        #expect(GradientMatching.matchedParameters(net).count == 4, "three conv weights and the classifier weight")
        #expect(GradientMatching.Options.referenceLoops(imagesPerClass: 1) == (1, 1))
        #expect(GradientMatching.Options.referenceLoops(imagesPerClass: 10) == (10, 50))
        #expect(GradientMatching.Options.referenceLoops(imagesPerClass: 50) == (50, 10))
    }

    @Test func iterationsRunAndStayFinite() throws {
        let splits = try DatasetStore.loadDigits()
        var rng = RandomSource(seed: 63)
        let initial = DistributionMatching.initialImages(splits.train, imagesPerClass: 1, initialization: .noise, using: &rng)
        var options = GradientMatching.Options(imagesPerClass: 1, iterations: 6, batchReal: 64, seed: 4)
        options.imageLearningRate = 1
        let dc = GradientMatching(options: options, network: .init(imageShape: [1, 8, 8], classCount: 10, width: 16), augmentation: nil)
        var losses: [Double] = []
        _ = dc.distill(splits.train, from: initial) { _, loss in losses.append(loss); return true }
        #expect(losses.count == 6)
        #expect(losses.allSatisfy { $0.isFinite })
    }
}

@Suite("Synthetic set files")
struct SyntheticSetTests {
    func sampleSet() -> SyntheticSet {
        var rng = RandomSource(seed: 51)
        let data = LabeledImages(images: .normal([4, 1, 8, 8], using: &rng), labels: [0, 0, 1, 1], classCount: 10)
        return SyntheticSet(data: data, metadata: .init(dataset: "digits", imageShape: [1, 8, 8], classCount: 10,
                                                        normalization: DatasetCatalog.digits.normalization, method: "dm",
                                                        imagesPerClass: 2, iterations: 7, initialization: "noise", seed: 3,
                                                        sourceClassCounts: [5, 6, 0, 0, 0, 0, 0, 0, 0, 0]))
    }

    @Test func roundTrip() throws {
        let set = sampleSet()
        let decoded = try SyntheticSet.decode(set.encoded(), path: "s")
        #expect(decoded.data.images == set.data.images && decoded.data.labels == set.data.labels)
        #expect(decoded.metadata == set.metadata)
        let bytes = set.encoded()
        let headerLength = Int(bytes[0]) | Int(bytes[1]) << 8
        #expect((8 + headerLength) % 8 == 0, "data starts 8-byte aligned")
    }

    /// A file laid out the way Python's safetensors writes it (u64 LE header length, JSON header, packed data).
    @Test func readsFilesWrittenByOtherTools() throws {
        let images: [Float] = (0..<64).map { Float($0) / 64 }
        let labels: [Int64] = [3]
        let header = """
            {"__metadata__":{"dataset":"digits","image_shape":"[1, 8, 8]","class_count":"10","normalization_mean":"[0.3053]",\
            "normalization_std":"[0.376]","method":"dm","ipc":"1","iterations":"0","init":"noise","seed":"0","software_version":"py"},\
            "labels":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"images":{"dtype":"F32","shape":[1,1,8,8],"data_offsets":[8,264]}}
            """
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) } + Array(header.utf8)
        bytes += labels.withUnsafeBytes { Array($0) } + images.withUnsafeBytes { Array($0) }
        let set = try SyntheticSet.decode(bytes, path: "py.safetensors")
        #expect(set.data.labels == [3] && set.data.images.storage == images && set.metadata.imagesPerClass == 1)
    }

    @Test func rejectsCorruptAndInvalidSets() throws {
        let good = sampleSet().encoded()
        #expect(throws: DatasetError.self) { try SyntheticSet.decode(Array(good.prefix(good.count - 3)), path: "s") }
        #expect(throws: DatasetError.self) { try SyntheticSet.decode(Array(good.prefix(5)), path: "s") }
        var huge = good
        huge[7] = 0x7F
        #expect(throws: DatasetError.self) { try SyntheticSet.decode(huge, path: "s") }
        var nan = sampleSet()
        nan.data.images.storage[3] = .nan
        #expect(throws: DatasetError.self) { try SyntheticSet.decode(nan.encoded(), path: "s") }
        var wrongLabel = sampleSet()
        wrongLabel.data.labels[0] = 3
        wrongLabel.metadata.classCount = 3
        wrongLabel.metadata.sourceClassCounts = [5, 6, 0]
        var bytes = wrongLabel.encoded()
        // Patch a label to 9 ≥ class count 3 (labels come first: sorted names put "images" before "labels").
        let headerLength = Int(bytes[0]) | Int(bytes[1]) << 8
        bytes[8 + headerLength + 256 * 4] = 9
        #expect(throws: DatasetError.labelOutOfRange(path: "s", index: 0, label: 9, classCount: 3)) {
            try SyntheticSet.decode(bytes, path: "s")
        }
        #expect(throws: DatasetError.self) { try sampleSet().check(fits: DatasetCatalog.mnist) }
        #expect(throws: Never.self) { try sampleSet().check(fits: DatasetCatalog.digits) }
    }
}

extension Tag {
    @Tag static var slow: Self
}
