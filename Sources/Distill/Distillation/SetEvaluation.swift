import Foundation

/// The reference evaluation protocol for a synthetic set: train `models` fresh ConvNets on it (SGD lr 0.01,
/// momentum 0.9, weight decay 5e-4, batch 256, lr ×0.1 after half the epochs, DSA while training) and test each on
/// held-out data. Another `architecture` takes the ConvNet's place with the same training (cross-architecture
/// evaluation); `attacks` also test each model on adversarial versions of the test data.
public struct SetEvaluation: Sendable {
    /// The ConvNet's configuration; for another architecture its image shape and class count.
    public var network: ConvNet.Configuration
    public var architecture = Architecture.convnet
    public var models = 5
    public var epochs = 300
    public var augmentation: DSA?
    public var seed: UInt64 = 0
    /// Robust accuracy under each attack (needs `normalization`, the test data's).
    public var attacks: [AdversarialAttack] = []
    public var normalization: Normalization?

    public init(network: ConvNet.Configuration, architecture: Architecture = .convnet, models: Int = 5, epochs: Int = 300,
                augmentation: DSA?, seed: UInt64 = 0, attacks: [AdversarialAttack] = [], normalization: Normalization? = nil) {
        self.network = network
        self.architecture = architecture
        self.models = models
        self.epochs = epochs
        self.augmentation = augmentation
        self.seed = seed
        self.attacks = attacks
        self.normalization = normalization
    }

    /// Checks that the architecture (the ConvNet's configuration, or another architecture) can take the images,
    /// before any training starts.
    public func validate() throws(ArchitectureError) {
        guard architecture != .convnet else {
            if let problem = ConvNet.problem(network) { throw ArchitectureError(architecture: .convnet, reason: problem) }
            return
        }
        var rng = RandomSource(seed: 0)
        _ = try architecture.network(imageShape: network.imageShape, classCount: network.classCount, using: &rng)
    }

    /// Mean and spread over models, per-class accuracy and the summed confusion matrix.
    public struct Report: Sendable, Codable {
        public var accuracies: [Double]
        public var perClass: [Double]
        public var confusion: [[Int]]
        public var seconds: Double
        /// Per attack (in `attacks` order), each model's robust accuracy.
        public var robustAccuracies: [[Double]] = []

        public var mean: Double { accuracies.reduce(0, +) / Double(max(accuracies.count, 1)) }
        /// Population standard deviation, as the reference reports it (`np.std`).
        public var standardDeviation: Double {
            let m = mean
            return (accuracies.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(max(accuracies.count, 1))).squareRoot()
        }
    }

    /// Trains and tests the models. `progress(model, epoch)` is called after each epoch. An architecture other than the
    /// ConvNet must have passed `validate()` for these images.
    public func evaluate(_ train: LabeledImages, test: LabeledImages,
                         progress: ((_ model: Int, _ epoch: Int) -> Void)? = nil) -> Report {
        let start = Date()
        var accuracies: [Double] = []
        var robust = [[Double]](repeating: [], count: attacks.count)
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: test.classCount), count: test.classCount)
        let augment = augmentation?.batchAugmentation
        precondition(attacks.isEmpty || normalization != nil, "attacks need the test data's normalisation")
        func trainAndTest<Net: Network>(_ net: inout Net, model: Int, seed trainingSeed: UInt64) {
            let options = TrainingOptions(epochs: epochs, batchSize: 256, seed: trainingSeed)
            Trainer.train(&net, on: train, options: options, augmentation: augment) { report in progress?(model, report.epoch) }
            let result = Trainer.evaluate(net, on: test)
            accuracies.append(result.accuracy)
            for i in confusion.indices { for j in confusion.indices { confusion[i][j] += result.confusion[i][j] } }
            for (index, attack) in attacks.enumerated() {
                robust[index].append(attack.robustAccuracy(of: net, on: test, normalization: normalization!,
                                                           seed: trainingSeed ^ UInt64(index + 1)))
            }
        }
        for model in 0..<models {
            var rng = RandomSource(seed: seed).derived(UInt64(model))
            if architecture == .convnet {
                var net = ConvNet(network, using: &rng)
                trainAndTest(&net, model: model, seed: rng.next())
            } else {
                let built = Result { () throws(ArchitectureError) in
                    try architecture.network(imageShape: network.imageShape, classCount: network.classCount, using: &rng)
                }
                guard case var .success(net) = built else { preconditionFailure("\(built): call validate() first") }
                trainAndTest(&net, model: model, seed: rng.next())
            }
        }
        let perClass = confusion.indices.map { c -> Double in
            let total = confusion[c].reduce(0, +)
            return total == 0 ? 0 : Double(confusion[c][c]) / Double(total)
        }
        return Report(accuracies: accuracies, perClass: perClass, confusion: confusion, seconds: Date().timeIntervalSince(start),
                      robustAccuracies: robust)
    }
}
