/// Distribution matching (``DistributionMatching``), optionally with differential privacy (DP-DM).
///
/// The recipe's seed draws the initial images (`RandomSource(seed:)`) and seeds the matching loop; the image learning
/// rate defaults to ``DistributionMatching/defaultImageLearningRate(imageShape:)``.
public struct DistributionMatchingMethod: DistillationMethod {
    public init() {}
    public var method: DistillationRecipe.Method { .dm }
    /// The coordinator's merge starts from node images and weighs them by the nodes' counts.
    public var supportsWeightedStarts: Bool { true }

    func matcher(_ job: DistillationJob) -> DistributionMatching {
        let recipe = job.recipe
        let learningRate = recipe.imageLearningRate ?? DistributionMatching.defaultImageLearningRate(imageShape: job.descriptor.imageShape)
        var bank: StatisticsBank.Options?
        if case let .distributionMatching(settings) = recipe.settings { bank = settings.bank(batchReal: recipe.batchReal) }
        return DistributionMatching(
            options: .init(imagesPerClass: recipe.imagesPerClass, iterations: recipe.iterations, batchReal: recipe.batchReal,
                           learningRate: learningRate, momentum: recipe.imageOptimizer.momentum,
                           initialization: recipe.initialization, seed: recipe.seed, privacy: recipe.privacy, bank: bank,
                           formationFactor: recipe.formationFactor),
            network: job.network, augmentation: job.augmentation)
    }

    public func calibration(for job: DistillationJob) -> PrivacyCalibration? {
        matcher(job).calibration(for: job.data)
    }

    public func distill(_ job: DistillationJob, progress: Distiller.Progress?) -> DistillationOutcome {
        let recipe = job.recipe
        var rng = RandomSource(seed: recipe.seed)
        let initial = job.start ?? DistributionMatching.initialImages(job.data, imagesPerClass: recipe.imagesPerClass,
                                                                      initialization: recipe.initialization, using: &rng)
        let dm = matcher(job)
        let result = dm.distill(job.data, from: initial, sampleWeights: job.sampleWeights, snapshots: job.snapshots,
                                progress: { iteration, loss in progress?(iteration, recipe.iterations, loss) ?? true },
                                preparation: job.preparation, reusing: job.bank, built: job.builtBank)
        return DistillationOutcome(images: result.images, iterations: result.iterations, loss: result.loss,
                                   privacy: dm.calibration(for: job.data))
    }
}

/// Gradient matching (``GradientMatching``) as DC and DSA share it.
enum GradientMatchingRun {
    static func distill(_ job: DistillationJob, progress: Distiller.Progress?) -> DistillationOutcome {
        let recipe = job.recipe
        var rng = RandomSource(seed: recipe.seed)
        let initial = DistributionMatching.initialImages(job.data, imagesPerClass: recipe.imagesPerClass,
                                                         initialization: recipe.initialization, using: &rng)
        var options = GradientMatching.Options(imagesPerClass: recipe.imagesPerClass, iterations: recipe.iterations,
                                               batchReal: recipe.batchReal, seed: recipe.seed)
        if let imageLearningRate = recipe.imageLearningRate { options.imageLearningRate = imageLearningRate }
        options.imageMomentum = recipe.imageOptimizer.momentum
        if case let .gradientMatching(settings) = recipe.settings {
            if let outer = settings.outerLoop { options.outerLoop = outer }
            if let inner = settings.innerLoop { options.innerLoop = inner }
            if let rate = settings.networkLearningRate { options.networkLearningRate = rate }
        }
        let dc = GradientMatching(options: options, network: job.network, augmentation: job.augmentation)
        let result = dc.distill(job.data, from: initial) { iteration, loss in
            progress?(iteration, recipe.iterations, loss) ?? true
        }
        return DistillationOutcome(images: result.images, iterations: result.iterations, loss: result.loss)
    }
}

/// Dataset condensation by gradient matching, without augmentation (the recipe's augmentation is `none`).
public struct GradientMatchingMethod: DistillationMethod {
    public init() {}
    public var method: DistillationRecipe.Method { .dc }

    public func distill(_ job: DistillationJob, progress: Distiller.Progress?) -> DistillationOutcome {
        GradientMatchingRun.distill(job, progress: progress)
    }
}

/// Gradient matching with differentiable siamese augmentation (the recipe's augmentation is `dsa`).
public struct SiameseGradientMatchingMethod: DistillationMethod {
    public init() {}
    public var method: DistillationRecipe.Method { .dsa }

    public func distill(_ job: DistillationJob, progress: Distiller.Progress?) -> DistillationOutcome {
        GradientMatchingRun.distill(job, progress: progress)
    }
}

/// Random real images per class (a baseline; the set contains private images).
public struct RandomSelectionMethod: DistillationMethod {
    public init() {}
    public var method: DistillationRecipe.Method { .random }

    public func distill(_ job: DistillationJob, progress: Distiller.Progress?) -> DistillationOutcome {
        var rng = RandomSource(seed: job.recipe.seed)
        return DistillationOutcome(images: CoresetSelection.random(job.data, imagesPerClass: job.recipe.imagesPerClass, using: &rng),
                                   iterations: 0, loss: 0)
    }
}

/// Herding in the embedding of a ConvNet trained briefly on the data (a baseline; the set contains private images).
public struct HerdingMethod: DistillationMethod {
    public init() {}
    public var method: DistillationRecipe.Method { .herding }

    public func distill(_ job: DistillationJob, progress: Distiller.Progress?) -> DistillationOutcome {
        let recipe = job.recipe
        var epochs = HerdingSettings().pretrainingEpochs
        if case let .herding(settings) = recipe.settings { epochs = settings.pretrainingEpochs }
        var rng = RandomSource(seed: recipe.seed)
        var net = ConvNet(job.network, using: &rng)
        Trainer.train(&net, on: job.data, options: TrainingOptions(epochs: epochs, seed: recipe.seed))
        return DistillationOutcome(images: CoresetSelection.herding(job.data, imagesPerClass: recipe.imagesPerClass, network: net),
                                   iterations: 0, loss: 0)
    }

    typealias HerdingSettings = DistillationRecipe.HerdingSettings
}
