import Foundation

/// The reference evaluation protocol for a synthetic set: train `models` fresh ConvNets on it (SGD lr 0.01,
/// momentum 0.9, weight decay 5e-4, batch 256, lr ×0.1 after half the epochs, DSA while training) and test each on
/// held-out data.
public struct SetEvaluation: Sendable {
    public var network: ConvNet.Configuration
    public var models = 5
    public var epochs = 300
    public var augmentation: DSA?
    public var seed: UInt64 = 0

    public init(network: ConvNet.Configuration, models: Int = 5, epochs: Int = 300, augmentation: DSA?, seed: UInt64 = 0) {
        self.network = network
        self.models = models
        self.epochs = epochs
        self.augmentation = augmentation
        self.seed = seed
    }

    /// Mean and spread over models, per-class accuracy and the summed confusion matrix.
    public struct Report: Sendable, Codable {
        public var accuracies: [Double]
        public var perClass: [Double]
        public var confusion: [[Int]]
        public var seconds: Double

        public var mean: Double { accuracies.reduce(0, +) / Double(max(accuracies.count, 1)) }
        /// Population standard deviation, as the reference reports it (`np.std`).
        public var standardDeviation: Double {
            let m = mean
            return (accuracies.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(max(accuracies.count, 1))).squareRoot()
        }
    }

    /// Trains and tests the models. `progress(model, epoch)` is called after each epoch.
    public func evaluate(_ train: LabeledImages, test: LabeledImages,
                         progress: ((_ model: Int, _ epoch: Int) -> Void)? = nil) -> Report {
        let start = Date()
        var accuracies: [Double] = []
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: test.classCount), count: test.classCount)
        let augment = augmentation?.batchAugmentation
        for model in 0..<models {
            var rng = RandomSource(seed: seed).derived(UInt64(model))
            var net = ConvNet(network, using: &rng)
            let options = TrainingOptions(epochs: epochs, batchSize: 256, seed: rng.next())
            Trainer.train(&net, on: train, options: options, augmentation: augment) { report in progress?(model, report.epoch) }
            let result = Trainer.evaluate(net, on: test)
            accuracies.append(result.accuracy)
            for i in confusion.indices { for j in confusion.indices { confusion[i][j] += result.confusion[i][j] } }
        }
        let perClass = confusion.indices.map { c -> Double in
            let total = confusion[c].reduce(0, +)
            return total == 0 ? 0 : Double(confusion[c][c]) / Double(total)
        }
        return Report(accuracies: accuracies, perClass: perClass, confusion: confusion, seconds: Date().timeIntervalSince(start))
    }
}
