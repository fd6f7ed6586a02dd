import Foundation
import Testing
@testable import Distill

@Suite("Robustness and cross-architecture evaluation")
struct RobustnessTests {
    /// A ConvNet trained briefly on the digits, and the test split.
    static func trainedDigitsNetwork() throws -> (ConvNet, DatasetSplits) {
        let splits = try DatasetStore.loadDigits()
        var rng = RandomSource(seed: 21)
        var net = ConvNet(.init(imageShape: splits.descriptor.imageShape, classCount: 10, depth: 2, width: 16), using: &rng)
        Trainer.train(&net, on: splits.train, options: TrainingOptions(epochs: 15, batchSize: 64, seed: 3))
        return (net, splits)
    }

    /// Adversarial images stay within ε of the originals (in pixels) and inside [0, 1]; FGSM and PGD lower the accuracy
    /// of a trained network, PGD (which starts inside the ball and takes ten steps) at least as much as FGSM.
    @Test func attacksStayInTheirBudgetAndLowerAccuracy() throws {
        let (net, splits) = try Self.trainedDigitsNetwork()
        let normalization = splits.descriptor.normalization
        let (mean, std) = (normalization.mean[0], normalization.std[0])
        let clean = Trainer.evaluate(net, on: splits.test).accuracy
        #expect(clean > 0.85)
        let batch = splits.test.images.slice(0..<64)
        let labels = Array(splits.test.labels[0..<64])
        for attack in [AdversarialAttack.fgsm(epsilon: 0.1), .pgd(epsilon: 0.1)] {
            var rng = RandomSource(seed: 9)
            let adversarial = attack.perturb(batch, labels: labels, network: net, normalization: normalization, using: &rng)
            let moved = zip(adversarial.storage, batch.storage).map { abs($0 - $1) * std }
            #expect(moved.max()! <= 0.1 + 1e-5, "\(attack): moved \(moved.max()!)")
            #expect(moved.max()! > 0.09, "\(attack) uses its budget")
            let pixels = adversarial.storage.map { $0 * std + mean }
            #expect(pixels.min()! >= -1e-5 && pixels.max()! <= 1 + 1e-5, "\(attack) leaves [0, 1]")
        }
        let fgsm = AdversarialAttack.fgsm(epsilon: 0.15).robustAccuracy(of: net, on: splits.test, normalization: normalization)
        let pgd = AdversarialAttack.pgd(epsilon: 0.15).robustAccuracy(of: net, on: splits.test, normalization: normalization)
        #expect(fgsm < clean - 0.1, "FGSM \(fgsm) against clean \(clean)")
        #expect(pgd <= fgsm + 0.01, "PGD \(pgd) against FGSM \(fgsm)")
        #expect(AdversarialAttack.pgd(epsilon: 0.15).robustAccuracy(of: net, on: splits.test, normalization: normalization) == pgd)
    }

    /// `SetEvaluation` trains the named architecture with the protocol and reports robust accuracy per attack; an
    /// architecture that cannot take the images is refused before training.
    @Test func setEvaluationTrainsOtherArchitectures() throws {
        let splits = try DatasetStore.loadDigits()
        let network = ConvNet.Configuration(imageShape: splits.descriptor.imageShape, classCount: 10)
        let evaluation = SetEvaluation(network: network, architecture: .mlp, models: 2, epochs: 40, augmentation: nil, seed: 1,
                                       attacks: [.fgsm(epsilon: 0.1), .fgsm(epsilon: 0.3)],
                                       normalization: splits.descriptor.normalization)
        try evaluation.validate()
        let report = evaluation.evaluate(splits.train, test: splits.test)
        #expect(report.accuracies.count == 2 && report.mean > 0.7, "MLP on the digits: \(report.accuracies)")
        #expect(report.robustAccuracies.count == 2 && report.robustAccuracies.allSatisfy { $0.count == 2 })
        for model in 0..<2 {
            #expect(report.robustAccuracies[1][model] <= report.robustAccuracies[0][model])
            #expect(report.robustAccuracies[0][model] < report.accuracies[model])
        }
        for architecture in [Architecture.vgg11, .lenet] {
            let refused = SetEvaluation(network: network, architecture: architecture, augmentation: nil)
            #expect(throws: ArchitectureError.self) { try refused.validate() }
        }
        try SetEvaluation(network: network, architecture: .resnet18BN, augmentation: nil).validate()
        // The ConvNet's own configuration is checked the same way (it would trap in ConvNet.init).
        try SetEvaluation(network: network, augmentation: nil).validate()
        for bad in [ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 10, depth: 4),
                    ConvNet.Configuration(imageShape: [1, 8, 8], classCount: 10, width: 8, norm: .group(3))] {
            #expect(throws: ArchitectureError.self) { try SetEvaluation(network: bad, augmentation: nil).validate() }
        }
    }
}
