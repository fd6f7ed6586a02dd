/// White-box L∞ attacks on a trained classifier, for the robustness of models trained on a set (the DD-RobustBench
/// direction): FGSM (Goodfellow et al., 2015) and PGD (Madry et al., 2018).
///
/// `epsilon` is in pixel units (images in [0, 1]); the attack works on normalised images, so per channel the budget
/// is `ε / std` and adversarial images stay inside the normalised image of [0, 1].
public enum AdversarialAttack: Sendable, Equatable, Codable, CustomStringConvertible {
    /// One signed-gradient step of size ε.
    case fgsm(epsilon: Float)
    /// `steps` signed-gradient steps of `stepSize` from a uniform random start in the ε-ball, projected after each.
    case pgd(epsilon: Float, steps: Int, stepSize: Float)

    /// PGD with the common step size 2.5 ε / steps.
    public static func pgd(epsilon: Float, steps: Int = 10) -> AdversarialAttack {
        .pgd(epsilon: epsilon, steps: steps, stepSize: 2.5 * epsilon / Float(max(steps, 1)))
    }

    public var epsilon: Float {
        switch self {
        case let .fgsm(epsilon), let .pgd(epsilon, _, _): epsilon
        }
    }

    public var description: String {
        switch self {
        case let .fgsm(epsilon): "fgsm ε=\(epsilon)"
        case let .pgd(epsilon, steps, _): "pgd ε=\(epsilon) (\(steps) steps)"
        }
    }

    /// Adversarial versions of `images` (normalised) against `network`, for the true `labels`.
    public func perturb<Net: Network>(_ images: Tensor, labels: [Int], network: Net, normalization: Normalization,
                                      using rng: inout RandomSource) -> Tensor {
        let channels = images.shape[1], plane = images.shape[2] * images.shape[3]
        // Per element: the budget and the valid range, in normalised units.
        func perChannel(_ value: (Int) -> Float) -> [Float] { (0..<channels).map(value) }
        let budget = perChannel { epsilon / normalization.std[$0] }
        let low = perChannel { -normalization.mean[$0] / normalization.std[$0] }
        let high = perChannel { (1 - normalization.mean[$0]) / normalization.std[$0] }
        func channel(_ index: Int) -> Int { (index / plane) % channels }
        func project(_ x: inout Tensor) {
            for i in x.storage.indices {
                let c = channel(i)
                let lower = max(images.storage[i] - budget[c], low[c]), upper = min(images.storage[i] + budget[c], high[c])
                x.storage[i] = min(max(x.storage[i], lower), upper)
            }
        }
        func step(_ x: inout Tensor, size: Float) {
            let (logits, trace) = network.forward(x, training: false, untilEmbedding: false)
            let gradient = Loss.crossEntropy(logits: logits, labels: labels).gradient
            let dx = network.backward(trace, outputGradient: gradient, input: true, parameters: false).input!
            for i in x.storage.indices where dx.storage[i] != 0 {
                x.storage[i] += (dx.storage[i] > 0 ? 1 : -1) * size / normalization.std[channel(i)]
            }
            project(&x)
        }
        var x = images
        switch self {
        case let .fgsm(epsilon):
            step(&x, size: epsilon)
        case let .pgd(_, steps, stepSize):
            for i in x.storage.indices { x.storage[i] += budget[channel(i)] * rng.uniform(-1, 1) }
            project(&x)
            for _ in 0..<steps { step(&x, size: stepSize) }
        }
        return x
    }

    /// Accuracy of `network` on adversarial versions of `data`.
    public func robustAccuracy<Net: Network>(of network: Net, on data: LabeledImages, normalization: Normalization,
                                             seed: UInt64 = 0, batchSize: Int = 500) -> Double {
        var rng = RandomSource(seed: seed)
        var correct = 0
        for first in stride(from: 0, to: data.count, by: batchSize) {
            let range = first..<min(first + batchSize, data.count)
            let labels = Array(data.labels[range])
            let adversarial = perturb(data.images.slice(range), labels: labels, network: network,
                                      normalization: normalization, using: &rng)
            correct += zip(Trainer.predictions(network(adversarial)), labels).filter { $0 == $1 }.count
        }
        return data.count == 0 ? 0 : Double(correct) / Double(data.count)
    }
}
