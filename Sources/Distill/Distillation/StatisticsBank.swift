import Foundation

/// Amortised distribution matching: the real side of DM computed once, for a bank of networks, and reused.
///
/// Plain DM spends most of an iteration embedding `batchReal` real images per class through a fresh random network.
/// A bank instead holds `size` entries, each a network, one DSA draw per class and the per-class mean embedding of a
/// real batch under that network and draw. Distillation then cycles through the entries and runs only the synthetic
/// side. Some entries' networks are snapshots of networks briefly trained on the same real data (the "model
/// enhancement" of IDM, Zhao et al., CVPR 2023): their embeddings separate the classes, so matching under them gives a
/// signal a noise start can follow. Under trained entries an optional class loss (cross-entropy of the entry's own
/// classifier on the synthetic images) adds IDM's class-aware term.
///
/// Everything in the bank is computed from the private records (means, and the weights of trained networks); the set
/// it produces is audited like any DM set. Under differential privacy (``build(_:options:network:augmentation:sampleWeights:privacy:seed:progress:)``
/// with `privacy`) every entry's class means are released by the Gaussian mechanism of DP-DM (Poisson-sampled batches,
/// clipped deviations from a public reference, noise on the sums) and only random networks are allowed: the bank is
/// then the run's only contact with the private records, `size` releases in all however many iterations follow, and a
/// bank reused in later rounds costs nothing more (post-processing).
public struct StatisticsBank: Sendable {
    /// How the bank is built.
    public struct Options: Sendable, Codable, Equatable {
        /// Entries in the bank.
        public var size: Int
        /// Networks trained on the real data; their snapshots make up entries (the rest are random networks).
        public var trainedNetworks: Int
        /// SGD steps (batch 256, lr 0.01, momentum 0.9, weight decay 5e-4, DSA) each trained network takes. Its entries
        /// are snapshots spread evenly over the trajectory, from step `trainingSteps / perNetwork` to the last.
        public var trainingSteps: Int
        /// Real images per class behind each entry's mean (fewer when the class is smaller).
        public var batchReal: Int
        /// Weight of the class loss under trained entries (0: none).
        public var classLossWeight: Float

        public init(size: Int, trainedNetworks: Int, trainingSteps: Int, batchReal: Int, classLossWeight: Float) {
            self.size = size
            self.trainedNetworks = trainedNetworks
            self.trainingSteps = trainingSteps
            self.batchReal = batchReal
            self.classLossWeight = classLossWeight
        }
    }

    /// One network, its per-class draws and the per-class real means under them.
    public struct Entry: Sendable {
        public var network: ConvNet
        /// Whether the network was trained on the real data (the class loss applies only then).
        public var trained: Bool
        /// Per class (indexed by label; nil for classes absent from the data or without augmentation): the draw shared by
        /// the real batch and the synthetic images.
        public var draws: [DSA.Draw?]
        /// Per class (indexed by label; empty for absent classes): the mean embedding of the real batch.
        public var realMeans: [[Float]]
    }

    public var options: Options
    public var entries: [Entry]
    /// Seconds spent training networks and embedding real batches.
    public var buildSeconds: Double
    /// The mechanism every entry's means were released by (nil: exact means, no differential privacy).
    public var privacy: DistributionMatching.PrivateMeans? = nil

    /// Whether this bank is what ``build(_:options:network:augmentation:sampleWeights:seed:progress:)`` would make with
    /// these settings for the same data and equal weights (up to its seed): the same options, every entry of this
    /// architecture, and augmentation draws exactly when `augmented`. A long-lived node reuses its bank across rounds
    /// on this condition.
    /// `privacy` must be the mechanism the bank was released by (nil for an exact bank).
    public func matches(options: Options, network: ConvNet.Configuration, augmented: Bool,
                        privacy: DistributionMatching.PrivateMeans? = nil) -> Bool {
        self.options == options && self.privacy == privacy && !entries.isEmpty && entries.allSatisfy { entry in
            entry.network.configuration == network && entry.draws.contains { $0 != nil } == augmented
        }
    }

    /// Builds the bank from `real` (with optional per-record weights for the means).
    /// - Parameters:
    ///   - network: the architecture of every entry.
    ///   - augmentation: DSA for the per-class draws (nil: none).
    ///   - privacy: release each entry's class means by this Gaussian mechanism (DP-DM's, see
    ///     ``DistributionMatching/privateMean(_:rows:features:reference:expectedCount:mechanism:rng:)``): each class's
    ///     batch a Poisson sample at rate `batchReal / class size`, deviations taken from the mean embedding of public
    ///     noise images under the same network and draw, clipped, and noised. Needs `trainedNetworks` 0 and no
    ///     `sampleWeights`.
    ///   - progress: called after each entry with (entries done, size).
    public static func build(_ real: LabeledImages, options: Options, network: ConvNet.Configuration, augmentation: DSA?,
                             sampleWeights: [Float]? = nil, privacy: DistributionMatching.PrivateMeans? = nil, seed: UInt64,
                             progress: ((_ done: Int, _ total: Int) -> Void)? = nil) -> StatisticsBank {
        precondition(privacy == nil || (options.trainedNetworks == 0 && sampleWeights == nil),
                     "a private bank has random networks only and no per-record weights")
        let start = Date()
        let rng = RandomSource(seed: seed).derived(0xBA4C)
        let byClass = real.indicesByClass()
        let trainedNetworks = min(options.trainedNetworks, options.size)
        // Entries per trained network; the remaining entries are random networks.
        let perNetwork = trainedNetworks == 0 ? 0 : max(1, options.size / (2 * trainedNetworks))
        let trainedEntries = trainedNetworks * perNetwork
        var entries: [Entry] = []
        entries.reserveCapacity(options.size)

        func addEntry(_ net: ConvNet, trained: Bool) {
            var entryRNG = rng.derived(UInt64(entries.count) &+ 1)
            entries.append(entry(net, trained: trained, real: real, byClass: byClass, batchReal: options.batchReal,
                                 augmentation: augmentation, sampleWeights: sampleWeights, privacy: privacy, rng: &entryRNG))
            progress?(entries.count, options.size)
        }

        for trajectory in 0..<trainedNetworks {
            var netRNG = rng.derived(0x7EA1 &+ UInt64(trajectory))
            var net = ConvNet(network, using: &netRNG)
            var optimizer = SGD(learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4)
            var parameters = net.parameters
            var stepRNG = netRNG.derived(1)
            var step = 0
            for stage in 1...perNetwork {
                let target = options.trainingSteps * stage / perNetwork
                while step < target {
                    let picks = (0..<min(256, real.count)).map { _ in stepRNG.integer(below: real.count) }
                    var images = real.images.gather(picks)
                    if let augmentation { images = augmentation.randomlyAugmented(images, using: &stepRNG) }
                    let (logits, trace) = net.forward(images, training: true, untilEmbedding: false)
                    let (_, gradient) = Loss.crossEntropy(logits: logits, labels: picks.map { real.labels[$0] })
                    let grads = net.backward(trace, outputGradient: gradient, input: false, parameters: true)
                    net.absorb(trace)
                    optimizer.step(&parameters, gradients: grads.parameters)
                    net.parameters = parameters
                    step += 1
                }
                addEntry(net, trained: true)
            }
        }
        while entries.count < options.size {
            var netRNG = rng.derived(0x4A4D &+ UInt64(entries.count))
            addEntry(ConvNet(network, using: &netRNG), trained: false)
        }
        precondition(entries.filter(\.trained).count == trainedEntries)
        return StatisticsBank(options: options, entries: entries, buildSeconds: Date().timeIntervalSince(start), privacy: privacy)
    }

    /// Public noise images a private entry centres on: drawn like the noise initialisation, from the entry's own
    /// random stream (data-independent).
    static let referenceCount = 64

    /// One entry: per class a real batch (all of a class no larger than `batchReal`), a shared draw, and the mean
    /// embedding of the augmented batch (weighted by `sampleWeights` when given). With `privacy` the batch is a Poisson
    /// sample and its mean the private estimate centred on the embedding mean of public noise images.
    static func entry(_ net: ConvNet, trained: Bool, real: LabeledImages, byClass: [[Int]], batchReal: Int, augmentation: DSA?,
                      sampleWeights: [Float]?, privacy: DistributionMatching.PrivateMeans? = nil,
                      rng: inout RandomSource) -> Entry {
        let features = net.featureCount
        var draws: [DSA.Draw?] = []
        var means: [[Float]] = []
        for members in byClass {
            guard !members.isEmpty else {
                draws.append(nil)
                means.append([])
                continue
            }
            let picks = privacy != nil ? DistributionMatching.poissonSample(members, batchReal: batchReal, rng: &rng)
                : members.count <= batchReal ? members : rng.choose(batchReal, from: members)
            var batch = real.images.gather(picks)
            var draw: DSA.Draw?
            func augmented(_ images: Tensor) -> Tensor {
                guard let augmentation, let shared = draw else { return images }
                return augmentation.apply(DSA.Draw(operation: shared.operation,
                                                   values: [[Float]](repeating: shared.values[0], count: images.shape[0])), to: images)
            }
            if let augmentation { draw = augmentation.draw(count: 1, shape: real.imageShape, shared: true, using: &rng) }
            if !picks.isEmpty { batch = augmented(batch) }
            if let privacy {
                let noise = augmented(Tensor.normal([referenceCount] + real.imageShape, using: &rng))
                let reference = net.embed(noise, training: true).meanOverBatch().storage.map(Double.init)
                let embedding = picks.isEmpty ? Tensor(shape: [0, features]) : net.embed(batch, training: true)
                let mean = DistributionMatching.privateMean(embedding, rows: 0..<picks.count, features: features, reference: reference,
                                                            expectedCount: Double(min(batchReal, members.count)),
                                                            mechanism: privacy, rng: &rng)
                draws.append(draw)
                means.append(mean.map { Float($0) })
                continue
            }
            let embedding = net.embed(batch, training: true)
            let weights = sampleWeights.map { w in picks.map { Double(w[$0]) } } ?? [Double](repeating: 1, count: picks.count)
            let total = weights.reduce(0, +)
            var mean = [Double](repeating: 0, count: features)
            for (row, weight) in weights.enumerated() where weight > 0 {
                let w = weight / total
                for f in 0..<features { mean[f] += w * Double(embedding.storage[row * features + f]) }
            }
            draws.append(draw)
            means.append(mean.map { Float($0) })
        }
        return Entry(network: net, trained: trained, draws: draws, realMeans: means)
    }

    /// The matching loss of `syn` under entry `index` and its gradient with respect to the synthetic images:
    /// `Σ_c ‖mean_real_c − mean φ(A_c(syn_c))‖²`, plus, for a trained entry, `classLossWeight` times the mean
    /// cross-entropy of the entry's classifier on the augmented synthetic images.
    /// - Parameters:
    ///   - synByClass: the rows of `syn` per label.
    ///   - classes: the labels matched (present in both the data and the synthetic set).
    public func lossAndGradient(entry index: Int, syn: Tensor, synByClass: [[Int]], classes: [Int],
                                augmentation: DSA?) -> (loss: Double, gradient: Tensor) {
        let entry = entries[index]
        let net = entry.network
        var parts: [Tensor] = [], partDraws: [DSA.Draw?] = [], partLabels: [Int] = []
        for c in classes {
            var batch = syn.gather(synByClass[c])
            var draw: DSA.Draw?
            if let augmentation, let shared = entry.draws[c] {
                let repeated = DSA.Draw(operation: shared.operation, values: [[Float]](repeating: shared.values[0], count: synByClass[c].count))
                batch = augmentation.apply(repeated, to: batch)
                draw = repeated
            }
            parts.append(batch)
            partDraws.append(draw)
            partLabels += [Int](repeating: c, count: synByClass[c].count)
        }
        let useClassLoss = entry.trained && options.classLossWeight > 0
        var (output, trace) = net.forward(Tensor.concatenate(parts), training: true, untilEmbedding: !useClassLoss)
        let embedding = useClassLoss ? trace.features : output
        let features = net.featureCount
        var dEmbedding = Tensor(shape: embedding.shape)
        var loss = 0.0
        var row = 0
        for (k, c) in classes.enumerated() {
            let count = parts[k].shape[0]
            var synMean = [Double](repeating: 0, count: features)
            for s in 0..<count {
                for f in 0..<features { synMean[f] += Double(embedding.storage[(row + s) * features + f]) }
            }
            for f in 0..<features {
                let d = synMean[f] / Double(count) - Double(entry.realMeans[c][f])
                loss += d * d
                let g = Float(2 * d / Double(count))
                for s in 0..<count { dEmbedding.storage[(row + s) * features + f] = g }
            }
            row += count
        }
        if useClassLoss {
            let (classLoss, dLogits) = Loss.crossEntropy(logits: output, labels: partLabels)
            loss += Double(options.classLossWeight) * classLoss
            var scaled = dLogits
            for i in 0..<scaled.count { scaled.storage[i] *= options.classLossWeight }
            let dFeatures = net.classifier.backward(trace.features, outputGradient: scaled).input
            for i in 0..<dEmbedding.count { dEmbedding.storage[i] += dFeatures.storage[i] }
            trace.untilEmbedding = true
        }
        let dAugmented = net.backward(trace, outputGradient: dEmbedding, input: true, parameters: false).input!
        var gradient = Tensor(shape: syn.shape)
        row = 0
        for (k, c) in classes.enumerated() {
            let count = parts[k].shape[0]
            var part = dAugmented.slice(row..<(row + count))
            if let draw = partDraws[k], let augmentation { part = augmentation.backward(draw, outputGradient: part) }
            gradient.setRows(synByClass[c], from: part)
            row += count
        }
        return (loss, gradient)
    }
}
