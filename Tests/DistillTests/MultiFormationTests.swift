import Foundation
import Testing
@testable import Distill

@Suite("Multi-formation")
struct MultiFormationTests {
    /// A 2×2 tile resized to 4×4 with half-pixel centres reads, per axis, weights (1, 0), (¾, ¼), (¼, ¾), (0, 1): the
    /// values PyTorch's `interpolate(scale_factor=2, mode="bilinear", align_corners=False)` gives.
    @Test func decodesEachTileByBilinearResize() {
        // One 1×4×4 image; its tiles are [[1, 2], [5, 6]], [[3, 4], [7, 8]], [[9, 10], [13, 14]], [[11, 12], [15, 16]].
        let image = Tensor(shape: [1, 1, 4, 4], storage: (1...16).map(Float.init))
        let decoded = MultiFormation.decode(image, factor: 2)
        #expect(decoded.shape == [4, 1, 4, 4])
        let weights: [[Float]] = [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]]
        let tiles: [[[Float]]] = [[[1, 2], [5, 6]], [[3, 4], [7, 8]], [[9, 10], [13, 14]], [[11, 12], [15, 16]]]
        for (t, tile) in tiles.enumerated() {
            for y in 0..<4 {
                for x in 0..<4 {
                    var expected: Float = 0
                    for i in 0..<2 { for j in 0..<2 { expected += weights[y][i] * weights[x][j] * tile[i][j] } }
                    let got = decoded.storage[t * 16 + y * 4 + x]
                    #expect(abs(got - expected) <= 1e-6, "tile \(t) pixel (\(y), \(x)): \(got) vs \(expected)")
                }
            }
        }
        // The corners of a tile keep the tile's corner values.
        #expect(decoded.storage[0] == 1 && decoded.storage[15] == 6)
    }

    @Test func factorOneIsTheIdentityAndConstantTilesStayConstant() {
        var rng = RandomSource(seed: 3)
        let images = Tensor.normal([2, 3, 8, 8], using: &rng)
        #expect(MultiFormation.decode(images, factor: 1) == images)
        #expect(MultiFormation.adjoint(images, factor: 1) == images)
        // A 28×28 image whose 14×14 quadrants are constant decodes to four constant images.
        var quadrants = Tensor(shape: [1, 1, 28, 28])
        for y in 0..<28 { for x in 0..<28 { quadrants.storage[y * 28 + x] = Float((y / 14) * 2 + x / 14) - 1.5 } }
        let decoded = MultiFormation.decode(quadrants, factor: 2)
        for t in 0..<4 {
            let values = Set(decoded.storage[(t * 784)..<((t + 1) * 784)])
            #expect(values == [Float(t) - 1.5], "tile \(t)")
        }
    }

    /// Decoding is linear and ``MultiFormation/adjoint(_:factor:)`` is its transpose: ⟨decode x, y⟩ = ⟨x, adjoint y⟩.
    @Test(arguments: [2, 4])
    func adjointIsTheTranspose(factor: Int) {
        var rng = RandomSource(seed: UInt64(10 + factor))
        let x = Tensor.normal([3, 2, 8, 8], using: &rng)
        let y = Tensor.normal([3 * factor * factor, 2, 8, 8], using: &rng)
        let left = zip(MultiFormation.decode(x, factor: factor).storage, y.storage).map { Double($0) * Double($1) }.reduce(0, +)
        let right = zip(x.storage, MultiFormation.adjoint(y, factor: factor).storage).map { Double($0) * Double($1) }.reduce(0, +)
        #expect(abs(left - right) <= 1e-4 * max(1, abs(left)), "\(left) vs \(right)")
    }

    @Test func labelsAndRowsFollowTheTiles() {
        let set = LabeledImages(images: Tensor(shape: [3, 1, 4, 4]), labels: [2, 0, 1], classCount: 3)
        let decoded = MultiFormation.decode(set, factor: 2)
        #expect(decoded.labels == [2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1])
        #expect(MultiFormation.decodedRows([2, 0], factor: 2) == [8, 9, 10, 11, 0, 1, 2, 3])
        #expect(MultiFormation.problem(factor: 3, imageShape: [1, 28, 28]) != nil)
        #expect(MultiFormation.problem(factor: 5, imageShape: [1, 40, 40]) != nil)
        #expect(MultiFormation.problem(factor: 2, imageShape: [1, 28, 28]) == nil)
        #expect(MultiFormation.problem(factor: 4, imageShape: [1, 8, 8]) == nil)
    }

    /// The DM loss on decoded images, carried back to the stored ones, against finite differences of the stored pixels.
    @Test(arguments: [false, true])
    func matchingGradientThroughFormationMatchesFiniteDifferences(withDSA: Bool) {
        var rng = RandomSource(seed: 21)
        let configuration = ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 2, depth: 2, width: 6, activation: .sigmoid)
        let net = ConvNet(configuration, using: &rng)
        let real = LabeledImages(images: .normal([8, 1, 8, 8], using: &rng), labels: [0, 0, 0, 0, 1, 1, 1, 1], classCount: 2)
        let syn = Tensor.normal([4, 1, 8, 8], using: &rng)
        let synByClass = [[0, 1], [2, 3]]
        let dsa = withDSA ? DSA(operations: [.scale, .color, .crop]) : nil
        func loss(_ images: Tensor) -> (loss: Double, gradient: Tensor) {
            MultiFormation.lossAndGradient(factor: 2, images: images, rowsByClass: synByClass) { decoded, rows in
                var drawRNG = RandomSource(seed: 99)  // the same draws at every probe
                return DistributionMatching.matchingLossAndGradient(
                    net: net, real: real, realByClass: real.indicesByClass(), syn: decoded, synByClass: rows, classes: [0, 1],
                    batchReal: 256, augmentation: dsa, rng: &drawRNG)
            }
        }
        let (_, gradient) = loss(syn)
        #expect(gradient.shape == syn.shape)
        expectGradient(gradient, matches: syn, samples: 40, epsilon: 1e-2, "formation dm loss dsyn") { loss($0).loss }
    }

    /// A set distilled with multi-formation records its factor, survives a write and read, and trains on factor² as
    /// many images; bad factors are refused where they are read.
    @Test func setsCarryTheirFactor() throws {
        let splits = try DatasetStore.loadDigits()
        var recipe = DistillationRecipe(imagesPerClass: 1, iterations: 3, network: .init(width: 8),
                                        settings: .distributionMatching(.init(formationFactor: 2)))
        let set = try Distiller.run(recipe: recipe, data: splits.train, descriptor: splits.descriptor)
        #expect(set.metadata.formationFactor == 2 && set.data.count == 10 && set.trainingData.count == 40)
        #expect(set.data.images.isFinite)
        let read = try SyntheticSet.decode(set.encoded(), path: "set")
        #expect(read.metadata.formationFactor == 2 && read.trainingData.images == set.trainingData.images)
        #expect(read.metadata.recipe?.formationFactor == 2)

        // A factor that does not divide 8×8 is refused by the distiller, naming the field.
        recipe.settings = .distributionMatching(.init(formationFactor: 3))
        do {
            _ = try Distiller.run(recipe: recipe, data: splits.train, descriptor: splits.descriptor)
            Issue.record("factor 3 on 8×8 images ran")
        } catch {
            guard case let .recipe(recipeError) = error else { Issue.record("\(error)"); return }
            #expect(recipeError.field == "settings.distribution_matching.formation_factor")
        }
        recipe.settings = .distributionMatching(.init(formationFactor: 5))
        #expect(throws: RecipeError.self) { try recipe.validate() }

        // A file declaring an impossible factor is malformed.
        var bad = set
        bad.metadata.formationFactor = 3
        #expect(throws: DatasetError.self) { try SyntheticSet.decode(bad.encoded(), path: "bad") }
        bad.metadata.formationFactor = 9
        #expect(throws: DatasetError.self) { try SyntheticSet.decode(bad.encoded(), path: "bad") }
    }

    /// Recipes written before the factor existed decode as factor 1, and the factor round-trips through JSON.
    @Test func recipesWithoutTheFactorMeanOne() throws {
        let old = """
            {"augmentation":"dsa","batch_real":256,"image_learning_rate":null,"image_optimizer":{"kind":"sgd","momentum":0.5},\
            "images_per_class":10,"initialization":"noise","iterations":3000,"method":"dm","network":{"activation":"relu",\
            "depth":3,"norm":"instance","pooling":"avg","width":128},"privacy":null,"seed":0,"settings":{"distribution_matching":\
            {"bank_size":100,"class_loss_weight":1,"trained_networks":4,"training_steps":200}}}
            """
        let recipe = try DistillationRecipe.decode(json: old)
        #expect(recipe.formationFactor == 1 && recipe == DistillationRecipe.reference(.dm))
        var formed = recipe
        formed.settings = .distributionMatching(.init(bankSize: 100, trainedNetworks: 4, trainingSteps: 200, classLossWeight: 1,
                                                      formationFactor: 2))
        #expect(try DistillationRecipe.decode(json: formed.json()) == formed)
        #expect(throws: RecipeError.self) {
            try DistillationRecipe.decode(json: formed.json().replacingOccurrences(of: "\"formation_factor\":2", with: "\"formation_factor\":0"))
        }
    }
}
