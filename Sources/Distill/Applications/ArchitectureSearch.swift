import Foundation

/// A synthetic set as a neural-architecture-search proxy (the DC paper's NAS experiment): every candidate ConvNet is
/// trained on the small set and, as the target the proxy stands in for, on real data; the two rankings of the
/// candidates' test accuracies are compared (Spearman's ρ), and the architecture the proxy ranks first is scored by
/// its accuracy when trained on the real data.
public struct ArchitectureSearch: Sendable {
    /// The DC paper's grid (depth, width, normalisation, activation and pooling of the ConvNet family) without its
    /// width 256, which a 2-core machine cannot train on the real data in reasonable time: 540 architectures.
    public static let depths = [1, 2, 3, 4]
    public static let widths = [32, 64, 128]
    public static let norms: [NormKind] = [.none, .batch, .layer, .instance, .group(4)]
    public static let activations: [Activation] = [.sigmoid, .relu, .leakyrelu]
    public static let poolings: [Pooling] = [.none, .max, .avg]

    /// `count` distinct candidates drawn from the grid with `seed`, keeping only those the image shape allows (every
    /// pooling step needs a map of at least 2×2), in grid order.
    public static func candidates(count: Int, imageShape: [Int], classCount: Int, seed: UInt64) -> [ConvNet.Configuration] {
        var valid: [ConvNet.Configuration] = []
        for depth in depths {
            for width in widths {
                for norm in norms {
                    for activation in activations {
                        for pooling in poolings {
                            let configuration = ConvNet.Configuration(imageShape: imageShape, classCount: classCount, depth: depth,
                                                                      width: width, norm: norm, activation: activation, pooling: pooling)
                            if ConvNet.problem(configuration) == nil { valid.append(configuration) }
                        }
                    }
                }
            }
        }
        var rng = RandomSource(seed: seed)
        return rng.permutation(valid.count).prefix(count).sorted().map { valid[$0] }
    }

    /// A short name: `d3-w128-instance-relu-avg`.
    public static func name(_ configuration: ConvNet.Configuration) -> String {
        "d\(configuration.depth)-w\(configuration.width)-\(DistillationRecipe.Network.name(of: configuration.norm))-"
            + "\(configuration.activation.rawValue)-\(configuration.pooling.rawValue)"
    }

    public var candidates: [ConvNet.Configuration]
    /// Epochs on the proxy set (the evaluation protocol's 300) and on the real data.
    public var proxyEpochs: Int
    public var targetEpochs: Int
    /// DSA while training on the proxy set (as the protocol does); none on the real data.
    public var augmentation: DSA?
    public var seed: UInt64

    public init(candidates: [ConvNet.Configuration], proxyEpochs: Int = 300, targetEpochs: Int = 20, augmentation: DSA?,
                seed: UInt64 = 0) {
        self.candidates = candidates
        self.proxyEpochs = proxyEpochs
        self.targetEpochs = targetEpochs
        self.augmentation = augmentation
        self.seed = seed
    }

    /// One candidate trained on each training set.
    public struct Entry: Sendable, Codable {
        public var name: String
        /// Test accuracy and training seconds per training set, in the order the sets were given.
        public var accuracies: [Double]
        public var seconds: [Double]
    }

    /// Trains every candidate on each of `sets` (the proxies first, the target last) and tests it on `test`.
    /// `progress(candidate, set)` is called after each training.
    public func run(sets: [LabeledImages], test: LabeledImages,
                    progress: ((_ candidate: Int, _ set: Int, _ entry: Entry) -> Void)? = nil) -> [Entry] {
        var entries: [Entry] = []
        for (index, configuration) in candidates.enumerated() {
            var entry = Entry(name: Self.name(configuration), accuracies: [], seconds: [])
            for (setIndex, training) in sets.enumerated() {
                let isTarget = setIndex == sets.count - 1
                var rng = RandomSource(seed: seed).derived(UInt64(index))
                var net = ConvNet(configuration, using: &rng)
                let options = TrainingOptions(epochs: isTarget ? targetEpochs : proxyEpochs, batchSize: 256, seed: rng.next())
                let start = Date()
                Trainer.train(&net, on: training, options: options, augmentation: isTarget ? nil : augmentation?.batchAugmentation)
                entry.seconds.append(Date().timeIntervalSince(start))
                entry.accuracies.append(Trainer.evaluate(net, on: test).accuracy)
                progress?(index, setIndex, entry)
            }
            entries.append(entry)
        }
        return entries
    }

    /// How well one proxy's ranking predicts the target's.
    public struct ProxyQuality: Sendable, Codable {
        /// Spearman's rank correlation of the candidates' accuracies (proxy against target).
        public var spearman: Double
        /// The candidate the proxy ranks first, its accuracy when trained on the target data, and the best target
        /// accuracy of any candidate.
        public var picked: String
        public var pickedTargetAccuracy: Double
        public var bestTargetAccuracy: Double
        /// Target training time over proxy training time, summed over candidates.
        public var speedUp: Double
    }

    /// The quality of proxy `set` against the target (the last set of `run`).
    public static func quality(of entries: [Entry], proxy set: Int) -> ProxyQuality {
        let target = entries[0].accuracies.count - 1
        let proxyAccuracies = entries.map { $0.accuracies[set] }
        let targetAccuracies = entries.map { $0.accuracies[target] }
        let pick = proxyAccuracies.indices.max { proxyAccuracies[$0] < proxyAccuracies[$1] } ?? 0
        let proxySeconds = entries.reduce(0) { $0 + $1.seconds[set] }
        let targetSeconds = entries.reduce(0) { $0 + $1.seconds[target] }
        return ProxyQuality(spearman: spearman(proxyAccuracies, targetAccuracies), picked: entries[pick].name,
                            pickedTargetAccuracy: targetAccuracies[pick], bestTargetAccuracy: targetAccuracies.max() ?? 0,
                            speedUp: targetSeconds / max(proxySeconds, 1e-9))
    }

    /// Spearman's ρ: the Pearson correlation of the ranks, ties given their average rank (0 when either side is
    /// constant).
    public static func spearman(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "rank correlation needs paired samples")
        func ranks(_ values: [Double]) -> [Double] {
            let order = values.indices.sorted { values[$0] < values[$1] }
            var result = [Double](repeating: 0, count: values.count)
            var start = 0
            while start < order.count {
                var end = start
                while end + 1 < order.count && values[order[end + 1]] == values[order[start]] { end += 1 }
                let average = Double(start + end) / 2 + 1
                for position in start...end { result[order[position]] = average }
                start = end + 1
            }
            return result
        }
        let (ra, rb) = (ranks(a), ranks(b))
        let n = Double(a.count)
        let (ma, mb) = (ra.reduce(0, +) / n, rb.reduce(0, +) / n)
        var (covariance, va, vb) = (0.0, 0.0, 0.0)
        for i in ra.indices {
            covariance += (ra[i] - ma) * (rb[i] - mb)
            va += (ra[i] - ma) * (ra[i] - ma)
            vb += (rb[i] - mb) * (rb[i] - mb)
        }
        return va > 0 && vb > 0 ? covariance / (va * vb).squareRoot() : 0
    }
}
