import Foundation

/// One way of making a synthetic set from a recipe. Each ``DistillationRecipe/Method`` has one conforming type,
/// registered in ``Distiller/registered``.
public protocol DistillationMethod: Sendable {
    /// The recipe method this type implements.
    var method: DistillationRecipe.Method { get }

    /// Whether the method honours ``DistillationJob/start`` and ``DistillationJob/sampleWeights``. The default is
    /// false: ``Distiller`` refuses such jobs for it.
    var supportsWeightedStarts: Bool { get }

    /// The differential-privacy noise the method would run with on `job` (nil: no DP). The default is nil.
    func calibration(for job: DistillationJob) -> PrivacyCalibration?

    /// Learns (or selects) the images. The recipe in `job` is valid and fits the data.
    /// - Parameter progress: called after every iteration; returning `false` stops early.
    func distill(_ job: DistillationJob, progress: Distiller.Progress?) -> DistillationOutcome
}

extension DistillationMethod {
    public func calibration(for job: DistillationJob) -> PrivacyCalibration? { nil }
    public var supportsWeightedStarts: Bool { false }
}

/// What a method works on: a validated recipe, the private records and what the dataset is.
public struct DistillationJob {
    public var recipe: DistillationRecipe
    /// The real records to distill from (labels in `0..<descriptor.classCount`).
    public var data: LabeledImages
    public var descriptor: DatasetDescriptor
    /// Receives the images after every `every`-th iteration (methods that iterate; nil: none).
    public var snapshots: DistributionMatching.Snapshots?
    /// Images to start from instead of the recipe's initialisation (the coordinator's merge starts from node images).
    public var start: LabeledImages?
    /// A weight per record of `data` (the merge weighs each node's images by its reported counts); nil: equal.
    public var sampleWeights: [Float]?
    /// Progress of work done before the first iteration (DM's statistics bank): steps done and total.
    public var preparation: Distiller.Preparation?
    /// DM: a statistics bank built earlier from the same records, used when it matches the recipe (else built anew).
    public var bank: StatisticsBank?
    /// DM: receives a statistics bank the run built.
    public var builtBank: ((StatisticsBank) -> Void)?

    /// The recipe's ConvNet for this dataset.
    public var network: ConvNet.Configuration {
        recipe.network.configuration(imageShape: descriptor.imageShape, classCount: descriptor.classCount)
    }

    /// The recipe's augmentation for this dataset (nil: none).
    public var augmentation: DSA? { recipe.augmentation == .dsa ? DSA(dataset: descriptor.name) : nil }
}

@available(*, unavailable)
extension DistillationJob: Sendable {}

/// What a method produced.
public struct DistillationOutcome: Sendable {
    public var images: LabeledImages
    /// Iterations run (0 for methods that select real images).
    public var iterations: Int
    /// The last iteration's loss (0 when none).
    public var loss: Double
    /// The DP guarantee of the whole run as calibrated (nil: none); the set records it after `iterations` steps when
    /// the recipe releases once per iteration (plain DP-DM), as calibrated otherwise (a bank releases everything first).
    public var privacy: PrivacyCalibration?

    public init(images: LabeledImages, iterations: Int, loss: Double, privacy: PrivacyCalibration? = nil) {
        self.images = images
        self.iterations = iterations
        self.loss = loss
        self.privacy = privacy
    }
}

/// Why a distillation could not run.
public enum DistillerError: Error, Equatable, CustomStringConvertible {
    /// The recipe is invalid, or does not fit the data (e.g. a network too deep for the images).
    case recipe(RecipeError)
    /// No method is registered for the recipe's method.
    case notRegistered(DistillationRecipe.Method)
    /// The method cannot use what the job asks for (e.g. per-record weights).
    case unsupported(DistillationRecipe.Method, String)
    /// There are no real records to distill from.
    case noData

    public var description: String {
        switch self {
        case let .recipe(error): "\(error)"
        case let .notRegistered(method): "no distillation method is registered for '\(method.rawValue)'"
        case let .unsupported(method, what): "method '\(method.rawValue)' does not support \(what)"
        case .noData: "there are no real records to distill from"
        }
    }
}

/// The one entry point of distillation: a recipe and data in, a synthetic set (with the recipe in its metadata) out.
///
/// ```swift
/// let set = try Distiller.run(recipe: DistillationRecipe(imagesPerClass: 1, iterations: 20), data: splits.train,
///                             descriptor: splits.descriptor)
/// ```
public enum Distiller {
    /// Progress: iteration (1-based), total iterations and that iteration's loss. Return `false` to stop early.
    public typealias Progress = (_ iteration: Int, _ total: Int, _ loss: Double) -> Bool
    /// Preparation before the first iteration (building DM's statistics bank): steps done and total steps.
    public typealias Preparation = (_ done: Int, _ total: Int) -> Void

    /// Every method, one line each.
    public static let registered: [any DistillationMethod] = [
        DistributionMatchingMethod(),
        GradientMatchingMethod(),
        SiameseGradientMatchingMethod(),
        RandomSelectionMethod(),
        HerdingMethod(),
    ]

    /// The registered methods by name.
    public static let registry: [DistillationRecipe.Method: any DistillationMethod] =
        Dictionary(registered.map { ($0.method, $0) }, uniquingKeysWith: { first, _ in first })

    /// The names of the registered methods, in registration order (what a node announces as its capabilities).
    public static var capabilities: [String] { registered.map(\.method.rawValue) }

    /// Validates `recipe` against the data and finds its method.
    static func job(recipe: DistillationRecipe, data: LabeledImages, descriptor: DatasetDescriptor,
                    snapshots: DistributionMatching.Snapshots?) throws(DistillerError) -> (any DistillationMethod, DistillationJob) {
        do { try recipe.validate() } catch { throw .recipe(error) }
        guard let method = registry[recipe.method] else { throw .notRegistered(recipe.method) }
        guard data.count > 0 else { throw .noData }
        guard data.imageShape == descriptor.imageShape, descriptor.imageShape.count == 3 else {
            throw .recipe(.invalid(field: "data", reason: "images \(data.imageShape) do not match \(descriptor.name)'s \(descriptor.imageShape)"))
        }
        if let problem = MultiFormation.problem(factor: recipe.formationFactor, imageShape: descriptor.imageShape) {
            throw .recipe(.invalid(field: "settings.distribution_matching.formation_factor", reason: problem))
        }
        // The ConvNet's maps must not vanish (the same arithmetic as ConvNet.init).
        var (channels, height, width) = (descriptor.imageShape[0], descriptor.imageShape[1], descriptor.imageShape[2])
        for block in 0..<recipe.network.depth {
            let padding = block == 0 && channels == 1 && height == 28 ? 3 : 1
            height += 2 * padding - 2
            width += 2 * padding - 2
            if recipe.network.pooling != .none { (height, width) = (height / 2, width / 2) }
            channels = recipe.network.width
            guard height > 0, width > 0 else {
                throw .recipe(.invalid(field: "network.depth", reason: "depth \(recipe.network.depth) is too deep for "
                                       + "\(descriptor.imageShape[1])×\(descriptor.imageShape[2]) images with pooling"))
            }
        }
        return (method, DistillationJob(recipe: recipe, data: data, descriptor: descriptor, snapshots: snapshots, start: nil,
                                        sampleWeights: nil, preparation: nil))
    }

    /// The differential-privacy noise `recipe` would run with on `data` (nil: no DP), e.g. to report it before a run.
    public static func calibration(recipe: DistillationRecipe, data: LabeledImages,
                                   descriptor: DatasetDescriptor) throws(DistillerError) -> PrivacyCalibration? {
        let (method, job) = try job(recipe: recipe, data: data, descriptor: descriptor, snapshots: nil)
        return method.calibration(for: job)
    }

    /// Distills `data` by `recipe`.
    /// - Parameters:
    ///   - recipe: validated here; see ``DistillationRecipe/validate()``.
    ///   - data: the real records (`[N, C, H, W]`, normalised like `descriptor` says).
    ///   - descriptor: what the dataset is (name for DSA, shape, classes, normalisation for the metadata).
    ///   - snapshots: for iterating methods, a set after every `every`-th iteration (before the last).
    ///   - start: images to start from instead of the recipe's initialisation (methods with
    ///     ``DistillationMethod/supportsWeightedStarts`` only).
    ///   - sampleWeights: one weight per record of `data` (same methods only).
    ///   - progress: called after every iteration; returning `false` stops early.
    ///   - preparation: progress of the work before the first iteration (DM's statistics bank), if any.
    ///   - bank: DM only: a statistics bank an earlier run built from the same `data` (the caller's promise), reused
    ///     when it matches the recipe's bank, network and augmentation; otherwise a new one is built.
    ///   - builtBank: DM only: receives the bank a run built, for the next run on the same data.
    /// - Returns: the set, whose metadata holds the recipe, the class counts of `data` and any DP guarantee.
    /// - Throws: ``DistillerError`` when the recipe is invalid or does not fit the data.
    public static func run(recipe: DistillationRecipe, data: LabeledImages, descriptor: DatasetDescriptor,
                           snapshots: (every: Int, body: (SyntheticSet) -> Void)? = nil,
                           start: LabeledImages? = nil, sampleWeights: [Float]? = nil,
                           progress: Progress? = nil, preparation: Preparation? = nil, bank: StatisticsBank? = nil,
                           builtBank: ((StatisticsBank) -> Void)? = nil) throws(DistillerError) -> SyntheticSet {
        var privacy: PrivacyCalibration?
        let imageSnapshots = snapshots.map { snapshots in
            DistributionMatching.Snapshots(every: snapshots.every) { iteration, images in
                snapshots.body(set(images, recipe: recipe, data: data, descriptor: descriptor, iterations: iteration, privacy: privacy))
            }
        }
        var (method, job) = try job(recipe: recipe, data: data, descriptor: descriptor, snapshots: imageSnapshots)
        if start != nil || sampleWeights != nil {
            guard method.supportsWeightedStarts else { throw .unsupported(recipe.method, "a given start or per-record weights") }
            guard recipe.privacy == nil || sampleWeights == nil else {
                throw .unsupported(recipe.method, "per-record weights under differential privacy")
            }
            if let start {
                guard start.imageShape == descriptor.imageShape, start.count > 0 else {
                    throw .recipe(.invalid(field: "start", reason: "start images \(start.imageShape) do not match \(descriptor.imageShape)"))
                }
            }
            if let sampleWeights {
                guard sampleWeights.count == data.count, sampleWeights.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                    throw .recipe(.invalid(field: "sample_weights", reason: "need one finite, non-negative weight per record"))
                }
            }
            job.start = start
            job.sampleWeights = sampleWeights
        }
        job.preparation = preparation
        job.bank = bank
        job.builtBank = builtBank
        privacy = method.calibration(for: job)
        let outcome = method.distill(job, progress: progress)
        return set(outcome.images, recipe: recipe, data: data, descriptor: descriptor, iterations: outcome.iterations,
                   privacy: outcome.privacy)
    }

    /// The set with the metadata every method writes.
    static func set(_ images: LabeledImages, recipe: DistillationRecipe, data: LabeledImages, descriptor: DatasetDescriptor,
                    iterations: Int, privacy: PrivacyCalibration?) -> SyntheticSet {
        var metadata = SyntheticSet.Metadata(
            dataset: descriptor.name, imageShape: descriptor.imageShape, classCount: descriptor.classCount,
            normalization: descriptor.normalization, method: recipe.method.rawValue, imagesPerClass: recipe.imagesPerClass,
            iterations: iterations, initialization: recipe.initialization.rawValue, seed: recipe.seed,
            sourceClassCounts: data.classCounts(), privacy: privacy.map { recipe.releasesPerIteration ? $0.after(steps: iterations) : $0 })
        metadata.recipe = recipe
        metadata.formationFactor = recipe.formationFactor
        return SyntheticSet(data: images, metadata: metadata)
    }
}
