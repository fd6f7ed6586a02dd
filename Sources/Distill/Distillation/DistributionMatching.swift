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

        public init(imagesPerClass: Int = 10, iterations: Int = 1000, batchReal: Int = 256, learningRate: Float = 1.0,
                    momentum: Float = 0.5, initialization: SyntheticInitialization = .noise, seed: UInt64 = 0) {
            self.imagesPerClass = imagesPerClass
            self.iterations = iterations
            self.batchReal = batchReal
            self.learningRate = learningRate
            self.momentum = momentum
            self.initialization = initialization
            self.seed = seed
        }
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

    /// Learns a synthetic set from `real`, starting from `initial` images (see ``initialImages``). With
    /// `sampleWeights` (one per real image), each class's real mean embedding is the weighted mean.
    /// - Returns: the learned images, the last iteration's loss and the iterations run.
    public func distill(_ real: LabeledImages, from initial: LabeledImages, sampleWeights: [Float]? = nil,
                        progress: Progress? = nil) -> (images: LabeledImages, loss: Double, iterations: Int) {
        var rng = RandomSource(seed: options.seed).derived(1)
        let realByClass = real.indicesByClass()
        let synByClass = initial.indicesByClass()
        let classes = (0..<real.classCount).filter { !realByClass[$0].isEmpty && !synByClass[$0].isEmpty }
        var syn = [initial.images]  // the one "parameter" the image optimiser updates
        var optimizer = SGD(learningRate: options.learningRate, momentum: options.momentum)
        var lastLoss = 0.0
        var completed = 0
        for iteration in 1...max(options.iterations, 1) where options.iterations > 0 {
            var netRNG = rng.derived(UInt64(iteration))
            let net = ConvNet(network, using: &netRNG)
            let (loss, gradient) = Self.matchingLossAndGradient(net: net, real: real, realByClass: realByClass, syn: syn[0],
                                                                synByClass: synByClass, classes: classes, batchReal: options.batchReal,
                                                                augmentation: augmentation, sampleWeights: sampleWeights, rng: &rng)
            optimizer.step(&syn, gradients: [gradient])
            lastLoss = loss
            completed = iteration
            if let progress, !progress(iteration, loss) { break }
        }
        return (LabeledImages(images: syn[0], labels: initial.labels, classCount: initial.classCount), lastLoss, completed)
    }

    /// `Σ_c ‖mean φ(A_c(real_c)) − mean φ(A_c(syn_c))‖²` for one network φ and per-class DSA draws `A_c`, and its
    /// gradient with respect to the synthetic images. Real embeddings need the forward pass only.
    public static func matchingLossAndGradient(net: ConvNet, real: LabeledImages, realByClass: [[Int]], syn: Tensor,
                                               synByClass: [[Int]], classes: [Int], batchReal: Int, augmentation: DSA?,
                                               sampleWeights: [Float]? = nil,
                                               rng: inout RandomSource) -> (loss: Double, gradient: Tensor) {
        var realParts: [Tensor] = [], synParts: [Tensor] = [], draws: [DSA.Draw?] = []
        var realCounts: [Int] = [], synCounts: [Int] = []
        var realWeightParts: [[Float]] = []
        for c in classes {
            let members = realByClass[c]
            let picks = members.count <= batchReal ? members : rng.choose(batchReal, from: members)
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
        let realEmbedding = net.embed(Tensor.concatenate(realParts), training: true)
        let (synEmbedding, trace) = net.forward(Tensor.concatenate(synParts), training: true, untilEmbedding: true)
        let features = net.featureCount
        var dEmbedding = Tensor(shape: synEmbedding.shape)
        var loss = 0.0
        var realRow = 0, synRow = 0
        for (k, _) in classes.enumerated() {
            var realMean = [Double](repeating: 0, count: features), synMean = [Double](repeating: 0, count: features)
            let weights = realWeightParts.isEmpty ? [Float](repeating: 1, count: realCounts[k]) : realWeightParts[k]
            let weightSum = Double(weights.reduce(0, +))
            for r in 0..<realCounts[k] {
                let w = Double(weights[r]) / weightSum
                for f in 0..<features { realMean[f] += w * Double(realEmbedding.storage[(realRow + r) * features + f]) }
            }
            for s in 0..<synCounts[k] {
                for f in 0..<features { synMean[f] += Double(synEmbedding.storage[(synRow + s) * features + f]) / Double(synCounts[k]) }
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
}
