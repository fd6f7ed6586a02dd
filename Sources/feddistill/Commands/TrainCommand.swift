import ArgumentParser
import Distill
import Foundation

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a ConvNet on a dataset (or a random subset of it) and test it.",
        discussion: "Uses the reference evaluation protocol: SGD, momentum 0.9, weight decay 5e-4, lr ×0.1 after half the epochs.")

    @Option(help: "Dataset name.") var dataset = "digits"
    @Option(help: "Train on a subset: random:IPC (IPC random images per class).") var subset: String?
    @Option(help: "Epochs.") var epochs = 10
    @Option(name: .customLong("batch-size"), help: "Minibatch size.") var batchSize = 256
    @Option(help: "Learning rate.") var lr: Float = 0.01
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write a JSON report to this file (- for stdout).") var json: String?
    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if let subset, Self.parseSubset(subset) == nil { throw ValidationError("--subset must be random:IPC with IPC ≥ 1, got '\(subset)'") }
        guard epochs > 0, batchSize > 0 else { throw ValidationError("--epochs and --batch-size must be positive") }
    }

    static func parseSubset(_ text: String) -> Int? {
        guard text.hasPrefix("random:"), let k = Int(text.dropFirst(7)), k > 0 else { return nil }
        return k
    }

    func run() throws {
        compute.apply()
        let splits: DatasetSplits
        do { splits = try data.store.load(dataset) } catch { throw CommandFailure(error) }
        var rng = RandomSource(seed: seed)
        var train = splits.train
        if let subset, let k = Self.parseSubset(subset) { train = train.randomSubset(imagesPerClass: k, using: &rng) }
        var net = ConvNet(model.configuration(imageShape: splits.descriptor.imageShape, classCount: splits.descriptor.classCount),
                          using: &rng)
        let progress = ProgressDisplay(label: "train epoch")
        let start = Date()
        let options = TrainingOptions(epochs: epochs, batchSize: batchSize, learningRate: lr, seed: seed &+ 1)
        Trainer.train(&net, on: train, options: options, progress: { report in
            progress.update(done: report.epoch, total: report.epochs, elapsed: report.elapsedSeconds,
                            fields: [("loss", String(format: "%.4f", report.loss)),
                                     ("images/s", String(format: "%.0f", report.imagesPerSecond))])
        })
        let seconds = Date().timeIntervalSince(start)
        let result = Trainer.evaluate(net, on: splits.test)
        print(String(format: "%@: trained on %d images for %d epochs in %.1f s (%.2f s/epoch); test accuracy %.2f%%",
                     dataset, train.count, epochs, seconds, seconds / Double(epochs), 100 * result.accuracy))
        print("per class: " + result.perClassAccuracy.map { String(format: "%.1f", 100 * $0) }.joined(separator: " "))
        if let json {
            try writeJSON(["test_accuracy": result.accuracy, "epochs": epochs, "seconds": seconds, "dataset": dataset,
                           "train_images": train.count, "per_class": result.perClassAccuracy,
                           "confusion": result.confusion], to: json)
        }
    }
}
