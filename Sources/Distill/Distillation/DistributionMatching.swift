import Foundation

/// How synthetic images start.
public enum SyntheticInitialization: String, Sendable, Codable, CaseIterable {
    /// Standard normal noise in normalised pixel space. The default for anything that leaves a node.
    case noise
    /// Randomly chosen real images of the class: faster to converge, but the set then contains private images and is
    /// known to leak membership.
    case real
    /// The class mean image plus Gaussian noise (σ = 0.5): carries only an aggregate of the class.
    case mean
}

/// Distribution matching (Zhao & Bilen, WACV 2023): synthetic images are learned so that their mean embedding under
/// randomly initialised networks matches that of the real images of their class.
///
/// Each iteration draws a fresh ConvNet (never trained), and for every class compares the mean embedding of a
/// real batch with that of the class's synthetic images, `L = Σ_c ‖mean_real_c − mean_syn_c‖²`, under the same DSA
/// draw on both sides. The images follow SGD with momentum 0.5 and learning rate 1.0 (the reference defaults).
public struct DistributionMatching: Sendable {
    /// Settings; defaults are the reference ones.
    public struct Options: Sendable, Codable {
        public var imagesPerClass = 10
        public var iterations = 1000
        public var batchReal = 256
        public var learningRate: Float = 1.0
        public var momentum: Float = 0.5
        public var initialization = SyntheticInitialization.noise
        public var seed: UInt64 = 0
        /// With a budget: DP-DM (see ``PrivacyBudget``); the real batch of a class is then Poisson-sampled at rate
        /// `batchReal / class size`.
        public var privacy: PrivacyBudget?
        /// Amortised DM: match against a bank of precomputed real statistics (``StatisticsBank``) instead of a fresh
        /// network and real batch every iteration. With a privacy budget the bank's means are the only releases (one
        /// per entry) and its networks must all be random (`trainedNetworks` 0).
        public var bank: StatisticsBank.Options?
        /// Multi-formation (``MultiFormation``): each stored image decodes to `formationFactor²` training images, and the
        /// matching runs on the decoded ones. 1: none.
        public var formationFactor: Int

        public init(imagesPerClass: Int = 10, iterations: Int = 1000, batchReal: Int = 256, learningRate: Float = 1.0,
                    momentum: Float = 0.5, initialization: SyntheticInitialization = .noise, seed: UInt64 = 0,
                    privacy: PrivacyBudget? = nil, bank: StatisticsBank.Options? = nil, formationFactor: Int = 1) {
            self.bank = bank
            self.formationFactor = formationFactor
            self.imagesPerClass = imagesPerClass
            self.iterations = iterations
            self.batchReal = batchReal
            self.learningRate = learningRate
            self.momentum = momentum
            self.initialization = initialization
            self.seed = seed
            self.privacy = privacy
        }
    }

    /// The private-mean mechanism of one iteration (with Poisson-sampled class batches): the clip norm and the noise on
    /// each class sum.
    public struct PrivateMeans: Sendable, Equatable {
        public var clipNorm: Float
        /// Standard deviation of the Gaussian noise on each coordinate of a class sum (σ · clip norm).
        public var noiseStandardDeviation: Float
    }

    /// The image learning rate to use when none is given: the reference 1.0 for 28×28 and 32×32 images (2,048
    /// embedding features), 100 for 8×8 digits, whose 128 features give gradients about two orders of magnitude
    /// smaller (measured: at lr 1.0 digits images stay noise after 300 iterations; see docs/benchmarks.md).
    public static func defaultImageLearningRate(imageShape: [Int]) -> Float {
        imageShape[1] <= 8 ? 100 : 1
    }

    public var options: Options
    /// The architecture of the random embedding networks (width, depth, norm…).
    public var network: ConvNet.Configuration
    /// DSA applied to both sides (nil: none).
    public var augmentation: DSA?

    public init(options: Options, network: ConvNet.Configuration, augmentation: DSA?) {
        self.options = options
        self.network = network
        self.augmentation = augmentation
    }

    /// Progress of a run: iteration (1-based) and that iteration's loss. Return `false` to stop early.
    public typealias Progress = (_ iteration: Int, _ loss: Double) -> Bool

    /// Intermediate sets: `body` receives the images after every `every`-th iteration (for accuracy-vs-iterations
    /// curves from a single run).
    public struct Snapshots {
        public var every: Int
        public var body: (_ iteration: Int, _ images: LabeledImages) -> Void
        public init(every: Int, body: @escaping (_ iteration: Int, _ images: LabeledImages) -> Void) {
            self.every = every
            self.body = body
        }
    }

    /// Initial synthetic images for the classes present in `real` (`imagesPerClass` each, grouped by class).
    public static func initialImages(_ real: LabeledImages, imagesPerClass: Int, initialization: SyntheticInitialization,
                                     using rng: inout RandomSource) -> LabeledImages {
        let byClass = real.indicesByClass()
        let imageSize = real.imageShape.reduce(1, *)
        var parts: [LabeledImages] = []
        for (label, members) in byClass.enumerated() where !members.isEmpty {
            var images: Tensor
            switch initialization {
            case .noise:
                images = .normal([imagesPerClass] + real.imageShape, using: &rng)
            case .real:
                // Distinct images while the class has enough, then repeats.
                var chosen = rng.choose(min(imagesPerClass, members.count), from: members)
                while chosen.count < imagesPerClass { chosen.append(members[rng.integer(below: members.count)]) }
                images = real.images.gather(chosen)
            case .mean:
                let mean = real.images.gather(members).meanOverBatch()
                images = .normal([imagesPerClass] + real.imageShape, std: 0.5, using: &rng)
                for k in 0..<imagesPerClass { for j in 0..<imageSize { images.storage[k * imageSize + j] += mean.storage[j] } }
            }
            parts.append(LabeledImages(images: images, labels: [Int](repeating: label, count: imagesPerClass), classCount: real.classCount))
        }
        return LabeledImages.concatenate(parts)
    }

    /// The noise a DP run on `real` uses (nil without a privacy budget): the sampling rate of the smallest class, and
    /// the smallest noise multiplier whose ε over the run's releases fits the budget. Plain DP-DM releases once per
    /// iteration; with a bank, once per entry, all before the first iteration (``releases``).
    public func calibration(for real: LabeledImages) -> PrivacyCalibration? {
        guard let budget = options.privacy else { return nil }
        let smallest = real.indicesByClass().map(\.count).filter { $0 > 0 }.min() ?? 1
        let rate = min(1, Double(options.batchReal) / Double(smallest))
        let steps = releases(afterIterations: options.iterations)
        let sigma = GaussianAccountant.noiseMultiplier(epsilon: budget.epsilon, delta: budget.delta, sampleRate: rate, steps: steps)
        var shapeRNG = RandomSource(seed: 0)
        let featureShape = ConvNet(network, using: &shapeRNG).featureShape
        return PrivacyCalibration(sampleRate: rate, noiseMultiplier: sigma, steps: steps,
                                  clipNorm: budget.clipNorm(featureShape: featureShape, reference: options.bank == nil ? .syntheticMean : .noiseMean),
                                  delta: budget.delta)
    }

    /// How many times a DP run has released private statistics after `iterations` iterations: `iterations` for plain
    /// DP-DM (at least 1), the bank's size with a bank (built in full before the first iteration).
    public func releases(afterIterations iterations: Int) -> Int {
        if let bank = options.bank { return max(bank.size, 1) }
        return max(iterations, 1)
    }

    /// Learns a synthetic set from `real`, starting from `initial` images (see ``initialImages``). With
    /// `sampleWeights` (one per real image), each class's real mean embedding is the weighted mean. With a privacy
    /// budget the initial images must not come from `real` (use `.noise`), and `sampleWeights` must be nil.
    /// - Returns: the learned images, the last iteration's loss and the iterations run.
    public func distill(_ real: LabeledImages, from initial: LabeledImages, sampleWeights: [Float]? = nil,
                        snapshots: Snapshots? = nil, progress: Progress? = nil,
                        preparation: ((_ done: Int, _ total: Int) -> Void)? = nil,
                        reusing prebuilt: StatisticsBank? = nil,
                        built: ((StatisticsBank) -> Void)? = nil) -> (images: LabeledImages, loss: Double, iterations: Int) {
        var rng = RandomSource(seed: options.seed).derived(1)
        let realByClass = real.indicesByClass()
        let synByClass = initial.indicesByClass()
        let classes = (0..<real.classCount).filter { !realByClass[$0].isEmpty && !synByClass[$0].isEmpty }
        precondition(options.privacy == nil || sampleWeights == nil, "DP-DM does not take sample weights")
        let privateMeans = calibration(for: real).map {
            PrivateMeans(clipNorm: $0.clipNorm, noiseStandardDeviation: Float($0.noiseMultiplier) * $0.clipNorm)
        }
        var syn = [initial.images]  // the one "parameter" the image optimiser updates
        var optimizer = SGD(learningRate: options.learningRate, momentum: options.momentum)
        var lastLoss = 0.0
        var completed = 0
        precondition(options.privacy == nil || (options.bank?.trainedNetworks ?? 0) == 0, "a DP-DM bank has random networks only")
        // A bank built earlier from the same records (`prebuilt`, unweighted runs only) replaces building one when it
        // matches these settings; a new bank goes to `built`.
        let bank = options.bank.map { bankOptions in
            if sampleWeights == nil, let prebuilt,
               prebuilt.matches(options: bankOptions, network: network, augmented: augmentation != nil, privacy: privateMeans) {
                preparation?(bankOptions.size, bankOptions.size)
                return prebuilt
            }
            let fresh = StatisticsBank.build(real, options: bankOptions, network: network, augmentation: augmentation,
                                             sampleWeights: sampleWeights, privacy: privateMeans, seed: options.seed,
                                             progress: preparation)
            built?(fresh)
            return fresh
        }
        // With a bank, its entries in a fixed shuffled order per pass, so every entry is used equally often.
        var bankOrder: [Int] = []
        for iteration in 1...max(options.iterations, 1) where options.iterations > 0 {
            if let size = bank?.entries.count, (iteration - 1) % size == 0 {
                var orderRNG = rng.derived(0x0BDE &+ UInt64((iteration - 1) / size))
                bankOrder = orderRNG.permutation(size)
            }
            // With multi-formation the matching sees the decoded images; the gradient comes back to the stored ones.
            let (loss, gradient) = MultiFormation.lossAndGradient(factor: options.formationFactor, images: syn[0],
                                                                  rowsByClass: synByClass) { images, rowsByClass in
                if let bank {
                    return bank.lossAndGradient(entry: bankOrder[(iteration - 1) % bank.entries.count], syn: images,
                                                synByClass: rowsByClass, classes: classes, augmentation: augmentation)
                }
                var netRNG = rng.derived(UInt64(iteration))
                let net = ConvNet(network, using: &netRNG)
                return Self.matchingLossAndGradient(net: net, real: real, realByClass: realByClass, syn: images,
                                                    synByClass: rowsByClass, classes: classes, batchReal: options.batchReal,
                                                    augmentation: augmentation, sampleWeights: sampleWeights,
                                                    privateMeans: privateMeans, rng: &rng)
            }
            optimizer.step(&syn, gradients: [gradient])
            lastLoss = loss
            completed = iteration
            if let snapshots, snapshots.every > 0, iteration % snapshots.every == 0 {
                snapshots.body(iteration, LabeledImages(images: syn[0], labels: initial.labels, classCount: initial.classCount))
            }
            if let progress, !progress(iteration, loss) { break }
        }
        return (LabeledImages(images: syn[0], labels: initial.labels, classCount: initial.classCount), lastLoss, completed)
    }

    /// `Σ_c ‖mean φ(A_c(real_c)) − mean φ(A_c(syn_c))‖²` for one network φ and per-class DSA draws `A_c`, and its
    /// gradient with respect to the synthetic images. Real embeddings need the forward pass only.
    ///
    /// With `privateMeans` (DP-DM), each class's real batch is a Poisson sample and its mean is replaced by
    /// ``privateMean(_:rows:features:reference:expectedCount:mechanism:rng:)`` centred on the class's synthetic mean.
    public static func matchingLossAndGradient(net: ConvNet, real: LabeledImages, realByClass: [[Int]], syn: Tensor,
                                               synByClass: [[Int]], classes: [Int], batchReal: Int, augmentation: DSA?,
                                               sampleWeights: [Float]? = nil, privateMeans: PrivateMeans? = nil,
                                               rng: inout RandomSource) -> (loss: Double, gradient: Tensor) {
        var realParts: [Tensor] = [], synParts: [Tensor] = [], draws: [DSA.Draw?] = []
        var realCounts: [Int] = [], synCounts: [Int] = []
        var realWeightParts: [[Float]] = []
        for c in classes {
            let members = realByClass[c]
            let picks = privateMeans != nil ? poissonSample(members, batchReal: batchReal, rng: &rng)
                : members.count <= batchReal ? members : rng.choose(batchReal, from: members)
            var realBatch = real.images.gather(picks)
            var synBatch = syn.gather(synByClass[c])
            var draw: DSA.Draw?
            if let augmentation {
                (realBatch, synBatch, draw) = augmentation.siamese(real: realBatch, synthetic: synBatch, using: &rng)
            }
            if let sampleWeights { realWeightParts.append(picks.map { sampleWeights[$0] }) }
            realParts.append(realBatch)
            synParts.append(synBatch)
            draws.append(draw)
            realCounts.append(picks.count)
            synCounts.append(synByClass[c].count)
        }
        // Real embeddings class by class, as the reference does: forward only, and a class batch's activations
        // (134 MB per layer for 256 MNIST images at width 128) are reused instead of one multi-GB batch for all classes.
        let realEmbedding = Tensor.concatenate(realParts.map { $0.shape[0] == 0 ? Tensor(shape: [0, net.featureCount]) : net.embed($0, training: true) })
        let (synEmbedding, trace) = net.forward(Tensor.concatenate(synParts), training: true, untilEmbedding: true)
        let features = net.featureCount
        var dEmbedding = Tensor(shape: synEmbedding.shape)
        var loss = 0.0
        var realRow = 0, synRow = 0
        for (k, c) in classes.enumerated() {
            var realMean = [Double](repeating: 0, count: features), synMean = [Double](repeating: 0, count: features)
            for s in 0..<synCounts[k] {
                for f in 0..<features { synMean[f] += Double(synEmbedding.storage[(synRow + s) * features + f]) / Double(synCounts[k]) }
            }
            if let privateMeans {
                // Centred on the synthetic mean (public: a function of earlier releases), clipped, summed, noised.
                realMean = privateMean(realEmbedding, rows: realRow..<(realRow + realCounts[k]), features: features, reference: synMean,
                                       expectedCount: Double(min(batchReal, realByClass[c].count)), mechanism: privateMeans, rng: &rng)
            } else {
                let weights = realWeightParts.isEmpty ? [Float](repeating: 1, count: realCounts[k]) : realWeightParts[k]
                let weightSum = Double(weights.reduce(0, +))
                for r in 0..<realCounts[k] {
                    let w = Double(weights[r]) / weightSum
                    for f in 0..<features { realMean[f] += w * Double(realEmbedding.storage[(realRow + r) * features + f]) }
                }
            }
            for f in 0..<features {
                let d = synMean[f] - realMean[f]
                loss += d * d
                let g = Float(2 * d / Double(synCounts[k]))
                for s in 0..<synCounts[k] { dEmbedding.storage[(synRow + s) * features + f] = g }
            }
            realRow += realCounts[k]
            synRow += synCounts[k]
        }
        let dAugmented = net.backward(trace, outputGradient: dEmbedding, input: true, parameters: false).input!
        var gradient = Tensor(shape: syn.shape)
        synRow = 0
        for (k, c) in classes.enumerated() {
            var part = dAugmented.slice(synRow..<(synRow + synCounts[k]))
            if let draw = draws[k], let augmentation { part = augmentation.backward(draw, outputGradient: part) }
            gradient.setRows(synByClass[c], from: part)
            synRow += synCounts[k]
        }
        return (loss, gradient)
    }

    /// The batch of a DP release: every record of `members` (one class) independently with probability
    /// `min(1, batchReal / members.count)`, the sampling rate the accountant assumes.
    static func poissonSample(_ members: [Int], batchReal: Int, rng: inout RandomSource) -> [Int] {
        let rate = Double(batchReal) / Double(members.count)
        return rate >= 1 ? members : members.filter { _ in rng.unitDouble() < rate }
    }

    /// The private estimate of a class's mean embedding: `reference + (Σ clip(φ(x) − reference) + N(0, s²·I)) / n`,
    /// where each record's deviation from the (public) reference is clipped to the clip norm, s is the mechanism's noise
    /// standard deviation and n the expected Poisson batch size. Adding or removing one record moves the sum by at most
    /// the clip norm, which is what the accountant assumes.
    static func privateMean(_ embeddings: Tensor, rows: Range<Int>, features: Int, reference: [Double], expectedCount: Double,
                            mechanism: PrivateMeans, rng: inout RandomSource) -> [Double] {
        var sum = [Double](repeating: 0, count: features)
        var deviation = [Double](repeating: 0, count: features)
        let bound = Double(mechanism.clipNorm)
        for r in rows {
            var squared = 0.0
            for f in 0..<features {
                deviation[f] = Double(embeddings.storage[r * features + f]) - reference[f]
                squared += deviation[f] * deviation[f]
            }
            let scale = min(1, bound / max(squared.squareRoot(), .leastNormalMagnitude))
            for f in 0..<features { sum[f] += scale * deviation[f] }
        }
        return (0..<features).map { f in reference[f] + (sum[f] + Double(mechanism.noiseStandardDeviation * rng.normal())) / expectedCount }
    }
}
