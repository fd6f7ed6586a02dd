import Foundation

/// Everything that decides how a synthetic set is made, as one value: the method, its initialisation, sizes, the
/// embedding network, the image optimiser, augmentation, the privacy budget, the seed and the method's own settings.
///
/// A recipe travels as JSON with snake_case keys (in a set's metadata under `recipe`, and in a round configuration):
/// ```json
/// {"method": "dm", "initialization": "noise", "images_per_class": 10, "iterations": 1000, "batch_real": 256,
///  "network": {"width": 128, "depth": 3, "norm": "instance", "activation": "relu", "pooling": "avg"},
///  "image_learning_rate": null, "image_optimizer": {"kind": "sgd", "momentum": 0.5}, "augmentation": "dsa",
///  "privacy": null, "seed": 0, "settings": {}}
/// ```
/// Decoding validates (see ``validate()``), so a recipe read from a file or a peer is always usable.
public struct DistillationRecipe: Codable, Sendable, Equatable {
    /// The distillation methods.
    public enum Method: String, Codable, Sendable, CaseIterable {
        /// Distribution matching (``DistributionMatching``).
        case dm
        /// Gradient matching without augmentation (``GradientMatching``).
        case dc
        /// Gradient matching with DSA on both sides.
        case dsa
        /// Random real images per class (``CoresetSelection/random(_:imagesPerClass:using:)``).
        case random
        /// Herding in the embedding of a briefly trained ConvNet (``CoresetSelection/herding(_:imagesPerClass:network:)``).
        case herding
    }

    /// The ConvNet used by the method (random embeddings for DM, the matched network for DC/DSA, the herding embedding).
    /// The image shape and class count come from the data.
    public struct Network: Codable, Sendable, Equatable {
        public var width: Int
        public var depth: Int
        public var norm: NormKind
        public var activation: Activation
        public var pooling: Pooling

        public init(width: Int = 128, depth: Int = 3, norm: NormKind = .instance, activation: Activation = .relu,
                    pooling: Pooling = .avg) {
            self.width = width
            self.depth = depth
            self.norm = norm
            self.activation = activation
            self.pooling = pooling
        }

        /// The ConvNet configuration for images of `imageShape` (`[C, H, W]`) in `classCount` classes.
        public func configuration(imageShape: [Int], classCount: Int) -> ConvNet.Configuration {
            ConvNet.Configuration(imageShape: imageShape, classCount: classCount, depth: depth, width: width, norm: norm,
                                  activation: activation, pooling: pooling)
        }

        /// `none`, `instance`, `group:G`, `layer` or `batch` (what ``NormKind/init(_:)`` parses).
        public static func name(of norm: NormKind) -> String {
            switch norm {
            case .none: "none"
            case .instance: "instance"
            case let .group(groups): "group:\(groups)"
            case .layer: "layer"
            case .batch: "batch"
            }
        }

        enum CodingKeys: String, CodingKey { case width, depth, norm, activation, pooling }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let normText = try container.decode(String.self, forKey: .norm)
            guard let norm = NormKind(normText) else {
                throw RecipeError.invalid(field: "network.norm", reason: "unknown normalisation \(PeerText.quoted(normText, maxCharacters: 40))")
            }
            self.init(width: try container.decode(Int.self, forKey: .width), depth: try container.decode(Int.self, forKey: .depth),
                      norm: norm, activation: try container.decode(Activation.self, forKey: .activation),
                      pooling: try container.decode(Pooling.self, forKey: .pooling))
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(width, forKey: .width)
            try container.encode(depth, forKey: .depth)
            try container.encode(Self.name(of: norm), forKey: .norm)
            try container.encode(activation, forKey: .activation)
            try container.encode(pooling, forKey: .pooling)
        }
    }

    /// The optimiser of the synthetic images: SGD with momentum (the reference's, momentum 0.5, for DM and DC).
    public struct ImageOptimizer: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable { case sgd }
        public var kind: Kind
        public var momentum: Float

        public init(kind: Kind = .sgd, momentum: Float = 0.5) {
            self.kind = kind
            self.momentum = momentum
        }
    }

    /// Augmentation applied to both sides while matching.
    public enum Augmentation: String, Codable, Sendable {
        /// None.
        case none
        /// Differentiable siamese augmentation with the dataset's operations (``DSA/init(dataset:)``).
        case dsa
    }

    /// Gradient matching's loops (nil: the reference's for the images per class) and network learning rate.
    public struct GradientMatchingSettings: Codable, Sendable, Equatable {
        public var outerLoop: Int?
        public var innerLoop: Int?
        public var networkLearningRate: Float?

        public init(outerLoop: Int? = nil, innerLoop: Int? = nil, networkLearningRate: Float? = nil) {
            self.outerLoop = outerLoop
            self.innerLoop = innerLoop
            self.networkLearningRate = networkLearningRate
        }

        enum CodingKeys: String, CodingKey {
            case outerLoop = "outer_loop", innerLoop = "inner_loop", networkLearningRate = "network_learning_rate"
        }
    }

    /// Herding's embedding network is trained this many epochs first.
    public struct HerdingSettings: Codable, Sendable, Equatable {
        public var pretrainingEpochs: Int

        public init(pretrainingEpochs: Int = 5) { self.pretrainingEpochs = pretrainingEpochs }

        enum CodingKeys: String, CodingKey { case pretrainingEpochs = "pretraining_epochs" }
    }

    /// Amortised DM (``StatisticsBank``): a bank of `bank_size` precomputed real statistics, `trained_networks` of whose
    /// networks are trained on the real data for `training_steps` SGD steps, and IDM's class loss under trained entries.
    /// `bank_size` 0 is plain DM (a fresh random network and real batch every iteration). `formation_factor` f > 1 is
    /// multi-formation (``MultiFormation``): each stored image decodes to f² training images (absent in JSON: 1).
    public struct DistributionMatchingSettings: Codable, Sendable, Equatable {
        public var bankSize: Int
        public var trainedNetworks: Int
        public var trainingSteps: Int
        public var classLossWeight: Float
        public var formationFactor: Int

        public init(bankSize: Int = 0, trainedNetworks: Int = 0, trainingSteps: Int = 0, classLossWeight: Float = 0,
                    formationFactor: Int = 1) {
            self.bankSize = bankSize
            self.trainedNetworks = trainedNetworks
            self.trainingSteps = trainingSteps
            self.classLossWeight = classLossWeight
            self.formationFactor = formationFactor
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.init(bankSize: try container.decode(Int.self, forKey: .bankSize),
                      trainedNetworks: try container.decode(Int.self, forKey: .trainedNetworks),
                      trainingSteps: try container.decode(Int.self, forKey: .trainingSteps),
                      classLossWeight: try container.decode(Float.self, forKey: .classLossWeight),
                      formationFactor: try container.decodeIfPresent(Int.self, forKey: .formationFactor) ?? 1)
        }

        /// The nodes' default (measured in docs/benchmarks.md, "Convergence"): 100 entries, half of them snapshots of 4
        /// networks trained for 200 steps, class loss weight 1.
        public enum Recommended {
            public static let bankSize = 100
            public static let trainedNetworks = 4
            public static let trainingSteps = 200
            public static let classLossWeight: Float = 1
            /// Iterations with a bank: each runs only the synthetic side, so three times plain DM's default.
            public static let iterations = 3000
        }

        /// ``Recommended``'s settings.
        public static let recommended = DistributionMatchingSettings(
            bankSize: Recommended.bankSize, trainedNetworks: Recommended.trainedNetworks, trainingSteps: Recommended.trainingSteps,
            classLossWeight: Recommended.classLossWeight)

        /// The default under differential privacy: ``Recommended``'s bank of 100 entries, all random networks (trained
        /// networks are not privatised, so no class loss either); its means are the run's only releases.
        public static let recommendedPrivate = DistributionMatchingSettings(bankSize: Recommended.bankSize)

        /// These settings made fit for differential privacy: the bank keeps its size but holds random networks only
        /// (no trained networks, no class loss); the formation factor stays.
        public var privatised: DistributionMatchingSettings {
            var settings = self
            (settings.trainedNetworks, settings.trainingSteps, settings.classLossWeight) = (0, 0, 0)
            return settings
        }

        /// The bank's options for real batches of `batchReal` per class (nil when the bank is off).
        public func bank(batchReal: Int) -> StatisticsBank.Options? {
            bankSize == 0 ? nil : StatisticsBank.Options(size: bankSize, trainedNetworks: trainedNetworks, trainingSteps: trainingSteps,
                                                         batchReal: batchReal, classLossWeight: classLossWeight)
        }

        enum CodingKeys: String, CodingKey {
            case bankSize = "bank_size", trainedNetworks = "trained_networks", trainingSteps = "training_steps"
            case classLossWeight = "class_loss_weight", formationFactor = "formation_factor"
        }
    }

    /// Settings only one family of methods has. JSON: `{}`, `{"distribution_matching": {…}}`,
    /// `{"gradient_matching": {…}}` or `{"herding": {…}}`.
    public enum MethodSettings: Codable, Sendable, Equatable {
        /// The method's defaults.
        case standard
        /// For `dm`.
        case distributionMatching(DistributionMatchingSettings)
        /// For `dc` and `dsa`.
        case gradientMatching(GradientMatchingSettings)
        /// For `herding`.
        case herding(HerdingSettings)

        enum CodingKeys: String, CodingKey { case distributionMatching = "distribution_matching", gradientMatching = "gradient_matching", herding }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            switch container.allKeys.count {
            case 0: self = .standard
            case 1 where container.contains(.distributionMatching):
                self = .distributionMatching(try container.decode(DistributionMatchingSettings.self, forKey: .distributionMatching))
            case 1 where container.contains(.gradientMatching):
                self = .gradientMatching(try container.decode(GradientMatchingSettings.self, forKey: .gradientMatching))
            case 1: self = .herding(try container.decode(HerdingSettings.self, forKey: .herding))
            default: throw RecipeError.invalid(field: "settings", reason: "give at most one of distribution_matching, gradient_matching, herding")
            }
        }

        /// Plain DM (no bank) with multi-formation factor `formationFactor`: `.standard` when the factor is 1.
        public static func plainDistributionMatching(formationFactor: Int) -> MethodSettings {
            formationFactor == 1 ? .standard : .distributionMatching(.init(formationFactor: formationFactor))
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .standard: break
            case let .distributionMatching(settings): try container.encode(settings, forKey: .distributionMatching)
            case let .gradientMatching(settings): try container.encode(settings, forKey: .gradientMatching)
            case let .herding(settings): try container.encode(settings, forKey: .herding)
            }
        }
    }

    public var method: Method
    /// How the synthetic images start (dm, dc, dsa); `random` and `herding` select real images, so theirs is `.real`.
    public var initialization: SyntheticInitialization
    public var imagesPerClass: Int
    /// Distillation iterations (dm, dc, dsa).
    public var iterations: Int
    public var network: Network
    /// nil: the method's default (DM: ``DistributionMatching/defaultImageLearningRate(imageShape:)``; DC/DSA: 0.1).
    public var imageLearningRate: Float?
    public var imageOptimizer: ImageOptimizer
    /// Real images per class per iteration (dm, dc, dsa).
    public var batchReal: Int
    public var augmentation: Augmentation
    /// DP-DM with this budget (dm with noise initialisation only); nil: no differential privacy.
    public var privacy: PrivacyBudget?
    public var seed: UInt64
    public var settings: MethodSettings

    /// Creates a recipe; the defaults are the reference ones (DM from noise, 10 images per class, 1000 iterations,
    /// ConvNet-3 of width 128, DSA). Call ``validate()`` before use.
    public init(method: Method = .dm, initialization: SyntheticInitialization = .noise, imagesPerClass: Int = 10,
                iterations: Int = 1000, network: Network = Network(), imageLearningRate: Float? = nil,
                imageOptimizer: ImageOptimizer = ImageOptimizer(), batchReal: Int = 256, augmentation: Augmentation = .dsa,
                privacy: PrivacyBudget? = nil, seed: UInt64 = 0, settings: MethodSettings = .standard) {
        self.method = method
        self.initialization = initialization
        self.imagesPerClass = imagesPerClass
        self.iterations = iterations
        self.network = network
        self.imageLearningRate = imageLearningRate
        self.imageOptimizer = imageOptimizer
        self.batchReal = batchReal
        self.augmentation = augmentation
        self.privacy = privacy
        self.seed = seed
        self.settings = settings
    }

    enum CodingKeys: String, CodingKey {
        case method, initialization, imagesPerClass = "images_per_class", iterations, network
        case imageLearningRate = "image_learning_rate", imageOptimizer = "image_optimizer", batchReal = "batch_real"
        case augmentation, privacy, seed, settings
    }

    /// Decodes and validates: a recipe that decodes is usable.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(method: try container.decode(Method.self, forKey: .method),
                  initialization: try container.decode(SyntheticInitialization.self, forKey: .initialization),
                  imagesPerClass: try container.decode(Int.self, forKey: .imagesPerClass),
                  iterations: try container.decode(Int.self, forKey: .iterations),
                  network: try container.decode(Network.self, forKey: .network),
                  imageLearningRate: try container.decodeIfPresent(Float.self, forKey: .imageLearningRate),
                  imageOptimizer: try container.decode(ImageOptimizer.self, forKey: .imageOptimizer),
                  batchReal: try container.decode(Int.self, forKey: .batchReal),
                  augmentation: try container.decode(Augmentation.self, forKey: .augmentation),
                  privacy: try container.decodeIfPresent(PrivacyBudget.self, forKey: .privacy),
                  seed: try container.decode(UInt64.self, forKey: .seed),
                  settings: try container.decodeIfPresent(MethodSettings.self, forKey: .settings) ?? .standard)
        try validate()
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(method, forKey: .method)
        try container.encode(initialization, forKey: .initialization)
        try container.encode(imagesPerClass, forKey: .imagesPerClass)
        try container.encode(iterations, forKey: .iterations)
        try container.encode(network, forKey: .network)
        try container.encode(imageLearningRate, forKey: .imageLearningRate)  // explicit null: "the method's default"
        try container.encode(imageOptimizer, forKey: .imageOptimizer)
        try container.encode(batchReal, forKey: .batchReal)
        try container.encode(augmentation, forKey: .augmentation)
        try container.encode(privacy, forKey: .privacy)
        try container.encode(seed, forKey: .seed)
        try container.encode(settings, forKey: .settings)
    }
}

/// Why a recipe cannot be used: the snake_case name of the field and the reason.
public enum RecipeError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, reason: String)
    /// The JSON could not be parsed as a recipe.
    case malformed(String)

    public var description: String {
        switch self {
        case let .invalid(field, reason): "recipe field '\(field)': \(reason)"
        case let .malformed(reason): "malformed recipe: \(reason)"
        }
    }

    /// The field a `.invalid` error names.
    public var field: String? {
        if case let .invalid(field, _) = self { return field }
        return nil
    }
}

extension DistillationRecipe {
    /// Upper bounds on what a user or a peer may ask for.
    public enum Limits {
        public static let imagesPerClass = 1...1000
        public static let iterations = 0...1_000_000
        public static let width = 1...1024
        public static let depth = 1...8
        public static let batchReal = 1...100_000
        public static let loops = 1...1000
        public static let innerLoops = 0...1000
        public static let pretrainingEpochs = 1...10_000
        public static let bankSize = 0...100_000
        public static let trainingSteps = 0...1_000_000
        /// What a recipe's JSON may be: 64 KiB, depth 8, 1,000 values.
        public static let json = StrictJSON.Limits(maxBytes: 64 << 10, maxDepth: 8, maxValues: 1000)
    }

    /// Checks every field a user or a peer can set.
    /// - Throws: ``RecipeError/invalid(field:reason:)`` naming the first bad field.
    public func validate() throws(RecipeError) {
        func check(_ condition: Bool, _ field: String, _ reason: @autoclosure () -> String) throws(RecipeError) {
            if !condition { throw .invalid(field: field, reason: reason()) }
        }
        func within(_ value: Int, _ range: ClosedRange<Int>, _ field: String) throws(RecipeError) {
            try check(range.contains(value), field, "must lie in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
        func positive(_ value: Float, _ field: String) throws(RecipeError) {
            try check(value.isFinite && value > 0, field, "must be a finite number > 0, got \(value)")
        }
        try within(imagesPerClass, Limits.imagesPerClass, "images_per_class")
        try within(iterations, Limits.iterations, "iterations")
        try within(batchReal, Limits.batchReal, "batch_real")
        try within(network.width, Limits.width, "network.width")
        try within(network.depth, Limits.depth, "network.depth")
        if case let .group(groups) = network.norm {
            try check(groups >= 1 && network.width % groups == 0, "network.norm",
                      "group:\(groups) needs 1 ≤ groups and a width (\(network.width)) divisible by the groups")
        }
        if let imageLearningRate { try positive(imageLearningRate, "image_learning_rate") }
        try check(imageOptimizer.momentum.isFinite && imageOptimizer.momentum >= 0 && imageOptimizer.momentum < 1,
                  "image_optimizer.momentum", "must lie in [0, 1), got \(imageOptimizer.momentum)")
        switch method {
        case .dc:
            try check(augmentation == .none, "augmentation", "dc matches gradients without augmentation (use method dsa)")
        case .dsa:
            try check(augmentation == .dsa, "augmentation", "dsa is gradient matching with augmentation dsa")
        case .random, .herding:
            try check(initialization == .real, "initialization", "\(method.rawValue) selects real images: use real")
            try check(augmentation == .none, "augmentation", "\(method.rawValue) selects real images and uses no augmentation")
        case .dm:
            break
        }
        switch settings {
        case .standard:
            break
        case let .distributionMatching(dm):
            try check(method == .dm, "settings", "distribution_matching settings apply to dm only")
            try within(dm.bankSize, Limits.bankSize, "settings.distribution_matching.bank_size")
            try within(dm.trainedNetworks, 0...max(dm.bankSize, 0), "settings.distribution_matching.trained_networks")
            try within(dm.trainingSteps, Limits.trainingSteps, "settings.distribution_matching.training_steps")
            try check(dm.trainedNetworks == 0 || dm.trainingSteps > 0, "settings.distribution_matching.training_steps",
                      "trained networks need at least one training step")
            try check(dm.classLossWeight.isFinite && dm.classLossWeight >= 0 && dm.classLossWeight <= 1000,
                      "settings.distribution_matching.class_loss_weight", "must lie in [0, 1000], got \(dm.classLossWeight)")
            try within(dm.formationFactor, MultiFormation.factors, "settings.distribution_matching.formation_factor")
            try check(privacy == nil || dm.bankSize == 0 || dm.trainedNetworks == 0, "settings.distribution_matching.trained_networks",
                      "under differential privacy a bank holds random networks only: trained networks are not privatised (use trained_networks 0)")
        case let .gradientMatching(gm):
            try check(method == .dc || method == .dsa, "settings", "gradient_matching settings apply to dc and dsa only")
            if let outer = gm.outerLoop { try within(outer, Limits.loops, "settings.gradient_matching.outer_loop") }
            if let inner = gm.innerLoop { try within(inner, Limits.innerLoops, "settings.gradient_matching.inner_loop") }
            if let rate = gm.networkLearningRate { try positive(rate, "settings.gradient_matching.network_learning_rate") }
        case let .herding(herding):
            try check(method == .herding, "settings", "herding settings apply to herding only")
            try within(herding.pretrainingEpochs, Limits.pretrainingEpochs, "settings.herding.pretraining_epochs")
        }
        if let privacy {
            if let problem = privacy.problem { throw .invalid(field: "privacy", reason: problem) }
            // Below this no amount of noise certifies the budget, and calibration would search forever.
            let floor = Self.epsilonFloor(delta: privacy.delta)
            try check(privacy.epsilon > 1.05 * floor, "privacy",
                      "epsilon \(privacy.epsilon) is below what the accountant can certify at delta \(privacy.delta) (> \(1.05 * floor))")
            try check(method == .dm, "privacy", "differential privacy applies to method dm only")
            try check(initialization == .noise, "privacy",
                      "differential privacy needs initialization noise: other initialisations start from private images")
            try check(network.norm != .batch, "privacy", "differential privacy cannot use batch norm: batch statistics mix records")
        }
    }

    /// The reference recipe of `method` (the defaults of ``init(method:initialization:imagesPerClass:iterations:network:imageLearningRate:imageOptimizer:batchReal:augmentation:privacy:seed:settings:)``),
    /// made consistent: `dc` without augmentation, `random` and `herding` from real images without augmentation; `dm`
    /// is the nodes' default, DM from noise with the recommended statistics bank
    /// (``DistributionMatchingSettings/recommended``, 3000 iterations).
    public static func reference(_ method: Method) -> DistillationRecipe {
        switch method {
        case .dm: DistillationRecipe(method: .dm, iterations: DistributionMatchingSettings.Recommended.iterations,
                                     settings: .distributionMatching(.recommended))
        case .dsa: DistillationRecipe(method: method)
        case .dc: DistillationRecipe(method: .dc, augmentation: .none)
        case .random, .herding: DistillationRecipe(method: method, initialization: .real, augmentation: .none)
        }
    }

    /// This recipe under the privacy budget `budget`: a statistics bank keeps its size but holds random networks only
    /// (trained networks and the class loss are not privatised; see ``DistributionMatchingSettings/privatised``); the
    /// formation factor and everything else stay.
    public mutating func applyPrivacy(_ budget: PrivacyBudget) {
        privacy = budget
        if case let .distributionMatching(dm) = settings { settings = .distributionMatching(dm.privatised) }
    }

    /// Whether a DP run of this recipe releases private statistics once per iteration (plain DP-DM: a snapshot after k
    /// iterations has spent k releases) rather than all up front (DP-DM with a bank: one release per entry).
    public var releasesPerIteration: Bool {
        if case let .distributionMatching(settings) = settings { return settings.bankSize == 0 }
        return true
    }

    /// How many training images each stored image decodes to, per axis (``MultiFormation``; 1: none).
    public var formationFactor: Int {
        if case let .distributionMatching(settings) = settings { return settings.formationFactor }
        return 1
    }

    /// The smallest ε ``GaussianAccountant`` reports at `delta` with unbounded noise: the conversion's own term,
    /// `min over orders α of log((α−1)/α) − (log δ + log α)/(α − 1)`.
    static func epsilonFloor(delta: Double) -> Double {
        GaussianAccountant.orders.map { order in
            let alpha = Double(order)
            return log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)
        }.min() ?? 0
    }

    /// The recipe as compact JSON with sorted keys (what sets and round configurations carry).
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Parses and validates a recipe.
    /// - Throws: ``RecipeError/invalid(field:reason:)`` for a bad value, ``RecipeError/malformed(_:)`` for bad JSON.
    public static func decode(json text: String) throws(RecipeError) -> DistillationRecipe {
        // Outside text: the strict reader first (bounded size and depth, no duplicate keys), then the typed decode.
        do { _ = try StrictJSON.parse(text, limits: Limits.json) } catch { throw .malformed(error.description) }
        do {
            return try JSONDecoder().decode(DistillationRecipe.self, from: Data(text.utf8))
        } catch let error as RecipeError {
            throw error
        } catch let DecodingError.keyNotFound(key, _) {
            throw .invalid(field: key.stringValue, reason: "missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.dataCorrupted(context),
                let DecodingError.valueNotFound(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            let reason = PeerText.escaped(context.debugDescription, maxCharacters: 200)
            throw field.isEmpty ? .malformed(reason) : .invalid(field: field, reason: reason)
        } catch {
            throw .malformed(PeerText.escaped("\(error)", maxCharacters: 200))
        }
    }
}
