import Foundation

/// Settings for training a classifier. Defaults are the reference evaluation protocol of the dataset distillation
/// literature: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, learning rate ×0.1 after epoch E/2.
public struct TrainingOptions: Sendable, Codable {
    public var epochs = 300
    public var batchSize = 256
    public var learningRate: Float = 0.01
    public var momentum: Float = 0.9
    public var weightDecay: Float = 5e-4
    /// Multiply the learning rate by 0.1 once, after epoch `epochs / 2 + 1` (1-based), as the reference does.
    public var stepDecay = true
    public var seed: UInt64 = 0

    public init(epochs: Int = 300, batchSize: Int = 256, learningRate: Float = 0.01, momentum: Float = 0.9,
                weightDecay: Float = 5e-4, stepDecay: Bool = true, seed: UInt64 = 0) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.stepDecay = stepDecay
        self.seed = seed
    }
}

/// One epoch's summary, for progress displays.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var epochs: Int
    public var loss: Double
    public var imagesPerSecond: Double
    public var elapsedSeconds: Double
}

/// An augmentation applied to each training batch: images in, augmented images out (same shape).
public typealias BatchAugmentation = @Sendable (_ images: Tensor, _ rng: inout RandomSource) -> Tensor

/// Minibatch training and evaluation of classifiers.
public enum Trainer {
    /// Trains `network` in place on `data` and returns the last epoch's mean loss.
    @discardableResult
    public static func train<Net: Network>(_ network: inout Net, on data: LabeledImages, options: TrainingOptions,
                                           augmentation: BatchAugmentation? = nil,
                                           progress: ((EpochReport) -> Void)? = nil) -> Double {
        var rng = RandomSource(seed: options.seed)
        var optimizer = SGD(learningRate: options.learningRate, momentum: options.momentum, weightDecay: options.weightDecay)
        var parameters = network.parameters
        let start = Date()
        var lastLoss = 0.0
        for epoch in 0..<options.epochs {
            let epochStart = Date()
            let order = rng.permutation(data.count)
            var total = 0.0
            for first in stride(from: 0, to: data.count, by: options.batchSize) {
                let indices = Array(order[first..<min(first + options.batchSize, data.count)])
                var images = data.images.gather(indices)
                if let augmentation { images = augmentation(images, &rng) }
                let labels = indices.map { data.labels[$0] }
                let (logits, trace) = network.forward(images, training: true, untilEmbedding: false)
                let (loss, gradient) = Loss.crossEntropy(logits: logits, labels: labels)
                let grads = network.backward(trace, outputGradient: gradient, input: false, parameters: true)
                network.absorb(trace)
                optimizer.step(&parameters, gradients: grads.parameters)
                network.parameters = parameters
                total += loss * Double(indices.count)
            }
            lastLoss = total / Double(max(data.count, 1))
            if options.stepDecay && epoch + 1 == options.epochs / 2 + 1 { optimizer.learningRate *= 0.1 }
            let seconds = Date().timeIntervalSince(epochStart)
            progress?(EpochReport(epoch: epoch + 1, epochs: options.epochs, loss: lastLoss,
                                  imagesPerSecond: Double(data.count) / max(seconds, 1e-9),
                                  elapsedSeconds: Date().timeIntervalSince(start)))
        }
        return lastLoss
    }

    /// The highest-scoring class of each row of `logits` `(N, K)` (the first on ties).
    public static func predictions(_ logits: Tensor) -> [Int] {
        let k = logits.shape[1]
        return (0..<logits.shape[0]).map { row in
            var best = 0
            for j in 1..<k where logits.storage[row * k + j] > logits.storage[row * k + best] { best = j }
            return best
        }
    }

    /// Accuracy, per-class accuracy and confusion matrix of `network` on `data`.
    public static func evaluate<Net: Network>(_ network: Net, on data: LabeledImages, batchSize: Int = 500) -> EvaluationResult {
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: data.classCount), count: data.classCount)
        var lossSum = 0.0
        for first in stride(from: 0, to: data.count, by: batchSize) {
            let range = first..<min(first + batchSize, data.count)
            let logits = network(data.images.slice(range))
            let labels = Array(data.labels[range])
            lossSum += Loss.crossEntropy(logits: logits, labels: labels).loss * Double(range.count)
            for (label, predicted) in zip(labels, predictions(logits)) { confusion[label][predicted] += 1 }
        }
        return EvaluationResult(confusion: confusion, loss: lossSum / Double(max(data.count, 1)))
    }
}

/// Test-set results of one model.
public struct EvaluationResult: Sendable, Codable {
    /// `confusion[true][predicted]` counts.
    public var confusion: [[Int]]
    /// Mean cross-entropy.
    public var loss: Double

    public init(confusion: [[Int]], loss: Double) {
        self.confusion = confusion
        self.loss = loss
    }

    /// Fraction classified correctly.
    public var accuracy: Double {
        let total = confusion.joined().reduce(0, +)
        let correct = confusion.indices.reduce(0) { $0 + confusion[$1][$1] }
        return total == 0 ? 0 : Double(correct) / Double(total)
    }

    /// Accuracy of each true class (0 for an absent class).
    public var perClassAccuracy: [Double] {
        confusion.indices.map { c in
            let total = confusion[c].reduce(0, +)
            return total == 0 ? 0 : Double(confusion[c][c]) / Double(total)
        }
    }
}
