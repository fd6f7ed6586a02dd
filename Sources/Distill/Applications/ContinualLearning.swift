import Foundation

/// Class-incremental learning with a small memory, the DM paper's continual-learning protocol (after GDumb): classes
/// arrive in tasks; after each task the memory gains `imagesPerClass` images for each new class, made by one of the
/// registered methods from that task's records only (distilled by DM, chosen by herding, or at random); a fresh
/// model is trained on the whole memory and tested on every class seen so far (prediction restricted to them).
///
/// Reported: the accuracy on each earlier task's test classes after every task, the average over seen tasks, and
/// forgetting (for each task but the last, its best accuracy before the end minus its final accuracy; averaged).
public struct ClassIncrementalBenchmark: Sendable {
    /// Classes of each task, in order.
    public var tasks: [[Int]]
    /// How memory images are made; its `imagesPerClass` is the memory's size per class.
    public var recipe: DistillationRecipe
    /// How each stage's model is trained and tested (its `models` fresh ConvNets are averaged; its architecture must
    /// be the ConvNet and it has no attacks).
    public var evaluation: SetEvaluation

    public init(tasks: [[Int]], recipe: DistillationRecipe, evaluation: SetEvaluation) {
        precondition(evaluation.architecture == .convnet && evaluation.attacks.isEmpty,
                     "continual learning trains ConvNets without attacks")
        self.tasks = tasks
        self.recipe = recipe
        self.evaluation = evaluation
    }

    /// `count` tasks of consecutive classes (10 classes in 5 tasks: [0, 1], [2, 3], …).
    public static func split(classCount: Int, tasks count: Int) -> [[Int]] {
        let size = max(1, classCount / max(count, 1))
        return (0..<count).map { task in Array(task * size..<(task == count - 1 ? classCount : (task + 1) * size)) }
    }

    public struct Report: Sendable, Codable {
        /// `accuracy[t][j]`: after task `t`, the mean accuracy (over models) on task `j`'s test classes, `j ≤ t`.
        public var accuracy: [[Double]]
        /// After each task, the mean accuracy on all test records of the classes seen so far.
        public var average: [Double]
        /// Mean over tasks but the last of (best accuracy before the end − final accuracy).
        public var forgetting: Double
        /// Seconds spent making the memory and training/testing.
        public var memorySeconds: Double
        public var trainingSeconds: Double
    }

    /// Runs every task. `progress(task)` is called as each task starts.
    public func run(train: LabeledImages, test: LabeledImages, descriptor: DatasetDescriptor,
                    progress: ((_ task: Int) -> Void)? = nil) throws(DistillerError) -> Report {
        var memory: [LabeledImages] = []
        var accuracy: [[Double]] = []
        var average: [Double] = []
        var (memorySeconds, trainingSeconds) = (0.0, 0.0)
        var seen: [Int] = []
        for (taskIndex, classes) in tasks.enumerated() {
            progress?(taskIndex)
            var start = Date()
            let records = train.subset(train.labels.indices.filter { classes.contains(train.labels[$0]) })
            var taskRecipe = recipe
            taskRecipe.seed = recipe.seed &+ UInt64(taskIndex)
            let made = try Distiller.run(recipe: taskRecipe, data: records, descriptor: descriptor)
            memory.append(made.trainingData)
            memorySeconds += Date().timeIntervalSince(start)
            seen += classes
            start = Date()
            let stage = Self.concatenate(memory)
            let seenTest = test.subset(test.labels.indices.filter { seen.contains(test.labels[$0]) })
            var perTask = [Double](repeating: 0, count: taskIndex + 1)
            var overall = 0.0
            for model in 0..<evaluation.models {
                let predictions = Self.trainAndPredict(evaluation, model: model, on: stage, test: seenTest, allowed: seen)
                overall += Self.accuracy(predictions, seenTest.labels, where: { _ in true })
                for task in 0...taskIndex {
                    perTask[task] += Self.accuracy(predictions, seenTest.labels, where: { tasks[task].contains($0) })
                }
            }
            let models = Double(max(evaluation.models, 1))
            accuracy.append(perTask.map { $0 / models })
            average.append(overall / models)
            trainingSeconds += Date().timeIntervalSince(start)
        }
        return Report(accuracy: accuracy, average: average, forgetting: Self.forgetting(accuracy),
                      memorySeconds: memorySeconds, trainingSeconds: trainingSeconds)
    }

    /// Mean over tasks but the last of (best accuracy after any earlier stage − accuracy after the last), from the
    /// lower-triangular `accuracy[stage][task]`.
    public static func forgetting(_ accuracy: [[Double]]) -> Double {
        let last = accuracy.count - 1
        guard last > 0 else { return 0 }
        let drops = (0..<last).map { task in (task..<last).map { accuracy[$0][task] }.max()! - accuracy[last][task] }
        return drops.reduce(0, +) / Double(drops.count)
    }

    static func concatenate(_ parts: [LabeledImages]) -> LabeledImages {
        LabeledImages(images: .concatenate(parts.map(\.images)), labels: parts.flatMap(\.labels), classCount: parts[0].classCount)
    }

    static func accuracy(_ predictions: [Int], _ labels: [Int], where include: (Int) -> Bool) -> Double {
        var (correct, total) = (0, 0)
        for (prediction, label) in zip(predictions, labels) where include(label) {
            total += 1
            if prediction == label { correct += 1 }
        }
        return total == 0 ? 0 : Double(correct) / Double(total)
    }

    /// Trains model `model` of the protocol on `memory` and predicts `test`, choosing among `allowed` classes only.
    static func trainAndPredict(_ evaluation: SetEvaluation, model: Int, on memory: LabeledImages, test: LabeledImages,
                                allowed: [Int]) -> [Int] {
        var rng = RandomSource(seed: evaluation.seed).derived(UInt64(model))
        var net = ConvNet(evaluation.network, using: &rng)
        let options = TrainingOptions(epochs: evaluation.epochs, batchSize: 256, seed: rng.next())
        Trainer.train(&net, on: memory, options: options, augmentation: evaluation.augmentation?.batchAugmentation)
        var predictions: [Int] = []
        for first in stride(from: 0, to: test.count, by: 500) {
            let logits = net(test.images.slice(first..<min(first + 500, test.count)))
            let k = logits.shape[1]
            for row in 0..<logits.shape[0] {
                predictions.append(allowed.max { logits.storage[row * k + $0] < logits.storage[row * k + $1] }!)
            }
        }
        return predictions
    }
}
