import Foundation
import Testing
@testable import Distill

@Suite("Distillation recipe")
struct DistillationRecipeTests {
    static let full = DistillationRecipe(
        method: .dsa, initialization: .real, imagesPerClass: 3, iterations: 7,
        network: .init(width: 16, depth: 2, norm: .group(4), activation: .leakyrelu, pooling: .max), imageLearningRate: 0.5,
        imageOptimizer: .init(momentum: 0.25), batchReal: 32, augmentation: .dsa, seed: 9,
        settings: .gradientMatching(.init(outerLoop: 2, innerLoop: 3, networkLearningRate: 0.02)))

    @Test(arguments: [
        DistillationRecipe(),
        DistillationRecipe(privacy: PrivacyBudget(epsilon: 2, delta: 1e-6, clipNorm: 0.5)),
        full,
        DistillationRecipe(method: .herding, initialization: .real, augmentation: .none, settings: .herding(.init(pretrainingEpochs: 2))),
        DistillationRecipe(settings: .distributionMatching(.init(bankSize: 50, trainedNetworks: 4, trainingSteps: 300, classLossWeight: 0.5))),
        DistillationRecipe(settings: .distributionMatching(.init())),
    ])
    func roundTripsThroughJSON(recipe: DistillationRecipe) throws {
        #expect(try DistillationRecipe.decode(json: recipe.json()) == recipe)
    }

    @Test func jsonUsesSnakeCaseKeysAndReadableValues() throws {
        let json = Self.full.json()
        for key in ["\"images_per_class\":3", "\"batch_real\":32", "\"image_learning_rate\":0.5", "\"norm\":\"group:4\"",
                    "\"image_optimizer\":{", "\"gradient_matching\":{", "\"outer_loop\":2", "\"network_learning_rate\":"] {
            #expect(json.contains(key), "\(key) in \(json)")
        }
        let dp = DistillationRecipe(privacy: PrivacyBudget(epsilon: 2, clipNorm: 0.5)).json()
        #expect(dp.contains("\"clip_norm\":0.5") && dp.contains("\"image_learning_rate\":null"))
    }

    /// Every value a user or peer can set is checked, and the error names the field.
    @Test(arguments: [
        ("images_per_class", { @Sendable (r: inout DistillationRecipe) in r.imagesPerClass = 0 }),
        ("images_per_class", { @Sendable (r: inout DistillationRecipe) in r.imagesPerClass = 1001 }),
        ("iterations", { @Sendable (r: inout DistillationRecipe) in r.iterations = -1 }),
        ("iterations", { @Sendable (r: inout DistillationRecipe) in r.iterations = 1_000_001 }),
        ("batch_real", { @Sendable (r: inout DistillationRecipe) in r.batchReal = 0 }),
        ("network.width", { @Sendable (r: inout DistillationRecipe) in r.network.width = 0 }),
        ("network.width", { @Sendable (r: inout DistillationRecipe) in r.network.width = 1025 }),
        ("network.depth", { @Sendable (r: inout DistillationRecipe) in r.network.depth = 9 }),
        ("network.norm", { @Sendable (r: inout DistillationRecipe) in r.network.norm = .group(3) }),
        ("image_learning_rate", { @Sendable (r: inout DistillationRecipe) in r.imageLearningRate = .nan }),
        ("image_learning_rate", { @Sendable (r: inout DistillationRecipe) in r.imageLearningRate = 0 }),
        ("image_learning_rate", { @Sendable (r: inout DistillationRecipe) in r.imageLearningRate = .infinity }),
        ("image_optimizer.momentum", { @Sendable (r: inout DistillationRecipe) in r.imageOptimizer.momentum = 1 }),
        ("augmentation", { @Sendable (r: inout DistillationRecipe) in r.method = .dc }),
        ("augmentation", { @Sendable (r: inout DistillationRecipe) in r.method = .dsa; r.augmentation = .none }),
        ("initialization", { @Sendable (r: inout DistillationRecipe) in r.method = .random }),
        ("settings", { @Sendable (r: inout DistillationRecipe) in r.settings = .herding(.init()) }),
        ("settings.herding.pretraining_epochs", { @Sendable (r: inout DistillationRecipe) in
            (r.method, r.initialization, r.augmentation, r.settings) = (.herding, .real, .none, .herding(.init(pretrainingEpochs: 0)))
        }),
        ("settings.gradient_matching.outer_loop", { @Sendable (r: inout DistillationRecipe) in
            (r.method, r.augmentation, r.settings) = (.dc, .none, .gradientMatching(.init(outerLoop: 0)))
        }),
        ("settings", { @Sendable (r: inout DistillationRecipe) in
            (r.method, r.augmentation, r.settings) = (.dsa, .dsa, .distributionMatching(.init(bankSize: 10)))
        }),
        ("settings.distribution_matching.bank_size", { @Sendable (r: inout DistillationRecipe) in
            r.settings = .distributionMatching(.init(bankSize: -1))
        }),
        ("settings.distribution_matching.trained_networks", { @Sendable (r: inout DistillationRecipe) in
            r.settings = .distributionMatching(.init(bankSize: 4, trainedNetworks: 5, trainingSteps: 10))
        }),
        ("settings.distribution_matching.training_steps", { @Sendable (r: inout DistillationRecipe) in
            r.settings = .distributionMatching(.init(bankSize: 4, trainedNetworks: 2, trainingSteps: 0))
        }),
        ("settings.distribution_matching.class_loss_weight", { @Sendable (r: inout DistillationRecipe) in
            r.settings = .distributionMatching(.init(bankSize: 4, classLossWeight: -1))
        }),
        ("settings.distribution_matching.trained_networks", { @Sendable (r: inout DistillationRecipe) in
            r.settings = .distributionMatching(.init(bankSize: 4, trainedNetworks: 1, trainingSteps: 5))
            r.privacy = PrivacyBudget(epsilon: 8)
        }),
        ("privacy", { @Sendable (r: inout DistillationRecipe) in r.privacy = PrivacyBudget(epsilon: -1) }),
        ("privacy", { @Sendable (r: inout DistillationRecipe) in r.privacy = PrivacyBudget(epsilon: 0.001) }),
        ("privacy", { @Sendable (r: inout DistillationRecipe) in r.privacy = PrivacyBudget(epsilon: 1); r.initialization = .real }),
        ("privacy", { @Sendable (r: inout DistillationRecipe) in r.privacy = PrivacyBudget(epsilon: 1); r.network.norm = .batch }),
        ("privacy", { @Sendable (r: inout DistillationRecipe) in
            (r.method, r.augmentation, r.privacy) = (.dsa, .dsa, PrivacyBudget(epsilon: 1))
        }),
    ] as [(String, @Sendable (inout DistillationRecipe) -> Void)])
    func validationNamesTheBadField(field: String, change: @Sendable (inout DistillationRecipe) -> Void) throws {
        var recipe = DistillationRecipe()
        change(&recipe)
        #expect(throws: RecipeError.self) { try recipe.validate() }
        do {
            try recipe.validate()
        } catch {
            #expect(error.field == field, "\(error)")
        }
        // Decoding validates too: the same recipe as JSON is refused with the same field (JSON has no NaN or ∞).
        guard recipe.imageLearningRate?.isFinite ?? true else { return }
        do {
            _ = try DistillationRecipe.decode(json: recipe.json())
            Issue.record("decoded an invalid recipe: \(recipe.json())")
        } catch {
            #expect(error.field == field, "\(error)")
        }
    }

    /// The ε floor is real: with enormous noise the accountant still reports about the floor, never below it.
    @Test(.timeLimit(.minutes(1))) func epsilonFloorIsWhatTheAccountantReportsWithUnboundedNoise() throws {
        let floor = DistillationRecipe.epsilonFloor(delta: 1e-5)
        let reported = GaussianAccountant.epsilon(sampleRate: 0.1, noiseMultiplier: 1e6, steps: 10, delta: 1e-5)
        #expect(floor > 0.01 && floor < 0.05 && abs(reported - floor) < 1e-6, "floor \(floor), reported \(reported)")
        let recipe = DistillationRecipe(imagesPerClass: 1, iterations: 1000, network: .init(width: 4),
                                        privacy: PrivacyBudget(epsilon: 1.1 * floor))
        #expect(throws: Never.self) { try recipe.validate() }
        // Just above the floor, calibration still ends, with a large but finite noise multiplier.
        let digits = DistillerTests.digits
        let calibration = try #require(try Distiller.calibration(recipe: recipe, data: digits.train, descriptor: digits.descriptor))
        #expect(calibration.noiseMultiplier.isFinite && calibration.epsilon <= 1.1 * floor)
    }

    @Test func malformedJSONIsRefusedWithTheField() {
        let valid = DistillationRecipe().json()
        for (json, field) in [(valid.replacingOccurrences(of: "\"dm\"", with: "\"dx\""), "method"),
                              (valid.replacingOccurrences(of: "\"instance\"", with: "\"weird\""), "network.norm"),
                              (valid.replacingOccurrences(of: "\"seed\":0", with: "\"seed\":\"zero\""), "seed"),
                              (valid.replacingOccurrences(of: "\"iterations\":1000,", with: ""), "iterations")] {
            do {
                _ = try DistillationRecipe.decode(json: json)
                Issue.record("decoded \(json)")
            } catch {
                #expect(error.field == field, "\(error)")
            }
        }
        #expect(throws: RecipeError.self) { try DistillationRecipe.decode(json: "[1]") }
        #expect(throws: RecipeError.self) { try DistillationRecipe.decode(json: "") }
    }
}

@Suite("Distiller")
struct DistillerTests {
    static let digits = try! DatasetStore.loadDigits()

    /// The Distiller runs exactly today's DM code path: same RNG draws, bit-identical images.
    @Test func distributionMatchingIsBitIdenticalToTheDirectPath() throws {
        let (train, descriptor) = (Self.digits.train, Self.digits.descriptor)
        let recipe = DistillationRecipe(method: .dm, imagesPerClass: 2, iterations: 3, network: .init(width: 8), seed: 5)
        let network = ConvNet.Configuration(imageShape: descriptor.imageShape, classCount: descriptor.classCount, width: 8)
        var rng = RandomSource(seed: 5)
        let initial = DistributionMatching.initialImages(train, imagesPerClass: 2, initialization: .noise, using: &rng)
        let dm = DistributionMatching(options: .init(imagesPerClass: 2, iterations: 3, batchReal: 256,
                                                     learningRate: DistributionMatching.defaultImageLearningRate(imageShape: descriptor.imageShape),
                                                     initialization: .noise, seed: 5),
                                      network: network, augmentation: DSA(dataset: "digits"))
        let direct = dm.distill(train, from: initial)
        var reported: [Int] = []
        let set = try Distiller.run(recipe: recipe, data: train, descriptor: descriptor) { iteration, total, _ in
            reported.append(iteration * 100 + total)
            return true
        }
        #expect(set.data.images.storage.map(\.bitPattern) == direct.images.images.storage.map(\.bitPattern))
        #expect(set.data.labels == direct.images.labels && reported == [103, 203, 303])
        var expected = SyntheticSet.Metadata(
            dataset: "digits", imageShape: descriptor.imageShape, classCount: 10, normalization: descriptor.normalization,
            method: "dm", imagesPerClass: 2, iterations: 3, initialization: "noise", seed: 5,
            sourceClassCounts: train.classCounts())
        expected.recipe = recipe
        #expect(set.metadata == expected)
    }

    /// The recipe's bank settings reach DM: bit-identical to DM given the same bank options directly.
    @Test func bankSettingsAreTheDirectBankPath() throws {
        let (train, descriptor) = (Self.digits.train, Self.digits.descriptor)
        let settings = DistillationRecipe.DistributionMatchingSettings(bankSize: 4, trainedNetworks: 1, trainingSteps: 5, classLossWeight: 0.5)
        let recipe = DistillationRecipe(method: .dm, imagesPerClass: 2, iterations: 5, network: .init(width: 8), batchReal: 64, seed: 3,
                                        settings: .distributionMatching(settings))
        let network = ConvNet.Configuration(imageShape: descriptor.imageShape, classCount: descriptor.classCount, width: 8)
        var rng = RandomSource(seed: 3)
        let initial = DistributionMatching.initialImages(train, imagesPerClass: 2, initialization: .noise, using: &rng)
        let dm = DistributionMatching(options: .init(imagesPerClass: 2, iterations: 5, batchReal: 64,
                                                     learningRate: DistributionMatching.defaultImageLearningRate(imageShape: descriptor.imageShape),
                                                     initialization: .noise, seed: 3, bank: settings.bank(batchReal: 64)),
                                      network: network, augmentation: DSA(dataset: "digits"))
        let direct = dm.distill(train, from: initial)
        let set = try Distiller.run(recipe: recipe, data: train, descriptor: descriptor)
        #expect(set.data.images.storage.map(\.bitPattern) == direct.images.images.storage.map(\.bitPattern))
        #expect(set.metadata.recipe == recipe)
    }

    /// A given start and per-record weights (the coordinator's merge) go to DM unchanged: bit-identical to the direct
    /// weighted path; methods that cannot use them refuse the job.
    @Test func weightedStartsAreTheDirectWeightedPath() throws {
        let (train, descriptor) = (Self.digits.train.subset(Array(0..<300)), Self.digits.descriptor)
        var rng = RandomSource(seed: 8)
        let start = train.randomSubset(imagesPerClass: 2, using: &rng)
        let weights = (0..<train.count).map { Float($0 % 5) }
        let recipe = DistillationRecipe(method: .dm, initialization: .real, imagesPerClass: 2, iterations: 3,
                                        network: .init(width: 8), imageLearningRate: 10, seed: 9)
        let dm = DistributionMatching(options: .init(imagesPerClass: 2, iterations: 3, batchReal: 256, learningRate: 10,
                                                     initialization: .real, seed: 9),
                                      network: .init(imageShape: descriptor.imageShape, classCount: 10, width: 8),
                                      augmentation: DSA(dataset: "digits"))
        let direct = dm.distill(train, from: start, sampleWeights: weights)
        let set = try Distiller.run(recipe: recipe, data: train, descriptor: descriptor, start: start, sampleWeights: weights)
        #expect(set.data.images.storage.map(\.bitPattern) == direct.images.images.storage.map(\.bitPattern))
        var herding = recipe
        herding.method = .herding
        #expect(throws: DistillerError.self) {
            try Distiller.run(recipe: herding, data: train, descriptor: descriptor, sampleWeights: weights)
        }
        #expect(throws: DistillerError.self, "one weight per record") {
            try Distiller.run(recipe: recipe, data: train, descriptor: descriptor, sampleWeights: [1, 2])
        }
    }

    /// DC and DSA through the Distiller equal the direct GradientMatching path bit for bit.
    @Test(arguments: [DistillationRecipe.Method.dc, .dsa])
    func gradientMatchingIsBitIdenticalToTheDirectPath(method: DistillationRecipe.Method) throws {
        let (train, descriptor) = (Self.digits.train.subset(Array(0..<200)), Self.digits.descriptor)
        let recipe = DistillationRecipe(method: method, initialization: .real, imagesPerClass: 1, iterations: 2,
                                        network: .init(width: 4, depth: 2), batchReal: 16,
                                        augmentation: method == .dsa ? .dsa : .none, seed: 3)
        let network = ConvNet.Configuration(imageShape: descriptor.imageShape, classCount: descriptor.classCount, depth: 2, width: 4)
        var rng = RandomSource(seed: 3)
        let initial = DistributionMatching.initialImages(train, imagesPerClass: 1, initialization: .real, using: &rng)
        let dc = GradientMatching(options: .init(imagesPerClass: 1, iterations: 2, batchReal: 16, seed: 3), network: network,
                                  augmentation: method == .dsa ? DSA(dataset: "digits") : nil)
        let direct = dc.distill(train, from: initial)
        let set = try Distiller.run(recipe: recipe, data: train, descriptor: descriptor)
        #expect(set.data.images.storage.map(\.bitPattern) == direct.images.images.storage.map(\.bitPattern))
        #expect(set.metadata.method == method.rawValue && set.metadata.iterations == 2 && set.metadata.initialization == "real")
    }

    @Test func baselinesSelectRealImagesAsBefore() throws {
        let (train, descriptor) = (Self.digits.train, Self.digits.descriptor)
        let recipe = DistillationRecipe(method: .random, initialization: .real, imagesPerClass: 3, augmentation: .none, seed: 4)
        var rng = RandomSource(seed: 4)
        let direct = CoresetSelection.random(train, imagesPerClass: 3, using: &rng)
        let set = try Distiller.run(recipe: recipe, data: train, descriptor: descriptor)
        #expect(set.data.images.storage == direct.images.storage && set.data.labels == direct.labels)
        #expect(set.metadata.iterations == 0 && set.metadata.initialization == "real" && set.metadata.method == "random")
    }

    @Test func stoppingEarlyAndSnapshots() throws {
        let (train, descriptor) = (Self.digits.train, Self.digits.descriptor)
        let recipe = DistillationRecipe(imagesPerClass: 1, iterations: 5, network: .init(width: 4),
                                        privacy: PrivacyBudget(epsilon: 3))
        var snapshots: [SyntheticSet] = []
        let set = try Distiller.run(recipe: recipe, data: train, descriptor: descriptor,
                                    snapshots: (every: 1, body: { snapshots.append($0) })) { iteration, _, _ in iteration < 2 }
        #expect(set.metadata.iterations == 2 && set.metadata.privacy?.steps == 2)
        #expect(snapshots.map(\.metadata.iterations) == [1, 2] && snapshots[0].metadata.privacy?.steps == 1)
        let calibration = try #require(try Distiller.calibration(recipe: recipe, data: train, descriptor: descriptor))
        #expect(calibration.steps == 5 && calibration.noiseMultiplier == set.metadata.privacy?.noiseMultiplier)
    }

    @Test func refusesRecipesThatDoNotFitTheData() {
        let (train, descriptor) = (Self.digits.train, Self.digits.descriptor)
        #expect(throws: DistillerError.recipe(.invalid(field: "images_per_class", reason: "must lie in 1...1000, got 0"))) {
            try Distiller.run(recipe: DistillationRecipe(imagesPerClass: 0), data: train, descriptor: descriptor)
        }
        // 8×8 digits halve to nothing after four pooled blocks: an error, not a trap in ConvNet.init.
        do {
            _ = try Distiller.run(recipe: DistillationRecipe(network: .init(depth: 4)), data: train, descriptor: descriptor)
            Issue.record("a depth-4 ConvNet on 8×8 images ran")
        } catch {
            guard case let .recipe(recipeError) = error else { Issue.record("\(error)"); return }
            #expect(recipeError.field == "network.depth")
        }
        #expect(throws: DistillerError.noData) {
            try Distiller.run(recipe: DistillationRecipe(), data: train.subset([]), descriptor: descriptor)
        }
    }

    @Test func everyMethodIsRegisteredOnce() {
        #expect(Distiller.capabilities == DistillationRecipe.Method.allCases.map(\.rawValue))
        for method in DistillationRecipe.Method.allCases { #expect(Distiller.registry[method]?.method == method) }
    }
}

@Suite("Recipe in a synthetic set")
struct SyntheticSetRecipeTests {
    static let descriptor = DatasetCatalog.digits

    func set(recipe: DistillationRecipe?) -> SyntheticSet {
        var metadata = SyntheticSet.Metadata(
            dataset: "digits", imageShape: [1, 8, 8], classCount: 10, normalization: Self.descriptor.normalization,
            method: "dm", imagesPerClass: 1, iterations: 2, initialization: "noise", seed: 1,
            sourceClassCounts: Array(repeating: 3, count: 10))
        metadata.recipe = recipe
        return SyntheticSet(data: LabeledImages(images: Tensor(shape: [2, 1, 8, 8]), labels: [0, 1], classCount: 10), metadata: metadata)
    }

    @Test func theRecipeRoundTripsNextToTheExistingKeys() throws {
        let recipe = DistillationRecipe(imagesPerClass: 1, iterations: 2, network: .init(width: 64), imageLearningRate: 5, seed: 1)
        let written = set(recipe: recipe)
        let (_, strings) = try SafeTensors.decode(written.encoded(), path: "set")
        #expect(strings["recipe"] == recipe.json())
        for key in ["dataset", "image_shape", "method", "ipc", "iterations", "init", "seed", "source_class_counts", "format"] {
            #expect(strings[key] != nil, "\(key)")
        }
        #expect(try SyntheticSet.decode(written.encoded(), path: "set").metadata == written.metadata)
    }

    @Test func setsWithoutARecipeReadAsNil() throws {
        let bytes = set(recipe: nil).encoded()
        let (_, strings) = try SafeTensors.decode(bytes, path: "old")
        #expect(strings["recipe"] == nil)
        #expect(try SyntheticSet.decode(bytes, path: "old").metadata.recipe == nil)
    }

    /// A present but invalid recipe (here ipc 0, and not JSON at all) is a clear DatasetError, not a silent nil.
    @Test(arguments: [DistillationRecipe().json().replacingOccurrences(of: "\"images_per_class\":10", with: "\"images_per_class\":0"),
                      "not json"])
    func anInvalidRecipeIsRefused(text: String) throws {
        let valid = set(recipe: nil)
        var strings = valid.metadata.strings
        strings["recipe"] = text
        let bytes = SafeTensors.encode(["images": .float32(valid.data.images.storage, shape: valid.data.images.shape),
                                        "labels": .int64([0, 1], shape: [2])], metadata: strings)
        do {
            _ = try SyntheticSet.decode(bytes, path: "bad.safetensors")
            Issue.record("decoded a set with recipe \(text)")
        } catch {
            guard case let .malformed(path, reason) = error else { Issue.record("\(error)"); return }
            #expect(path == "bad.safetensors" && reason.contains("recipe"), "\(reason)")
        }
    }
}
