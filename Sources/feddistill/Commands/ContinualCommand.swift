import ArgumentParser
import Distill
import Foundation

struct ContinualCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "continual", abstract: "Class-incremental learning with a distilled, herding or random memory.",
        discussion: """
            The DM paper's continual-learning protocol (after GDumb): the classes arrive in --tasks tasks; after each \
            task the memory gains --ipc images for each new class, made from that task's training records only — \
            distilled (the nodes' default DM recipe, from noise), chosen by herding, or at random — and --models fresh \
            ConvNets are trained on the whole memory (the evaluation protocol) and tested on every class seen so far. \
            Reports the accuracy after each task, per task, and forgetting. In a federation the global set plays the \
            memory's part: `simulate` and the coordinator produce it.
            """)

    @Option(help: "Dataset.") var dataset = "digits"
    @Option(help: "Number of tasks (classes split in order).") var tasks = 5
    @Option(help: "Memory images per class.") var ipc = 10
    @Option(help: "Memories to compare, comma-separated: distilled, herding, random.") var memory = "distilled,herding,random"
    @Option(help: "Distillation iterations for the distilled memory (default: the recipe's).") var iterations: Int?
    @Option(help: "Statistics-bank entries for the distilled memory (0: plain DM; default: the recipe's).") var bank: Int?
    @Option(name: .customLong("distill-width"), help: "ConvNet width used to distill (default: the recipe's 128).") var distillWidth: Int?
    @Option(help: "Fresh models per stage.") var models = 1
    @Option(help: "Training epochs per model.") var epochs = 300
    @Flag(name: .customLong("no-dsa"), help: "Train without DSA augmentation.") var noDSA = false
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write a JSON report to this file (- for stdout).") var json: String?
    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var compute: ComputeOptions

    enum Memory: String, CaseIterable { case distilled, herding, random }

    func memories() throws -> [Memory] {
        try memory.split(separator: ",", omittingEmptySubsequences: false).map { name in
            guard let kind = Memory(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("unknown memory '\(name.prefix(40))' (distilled, herding, random)")
            }
            return kind
        }
    }

    func validate() throws {
        guard (2...100).contains(tasks) else { throw ValidationError("--tasks must be in 2...100") }
        guard (1...1000).contains(ipc), models > 0, epochs > 0 else { throw ValidationError("--ipc, --models and --epochs must be positive") }
        if let iterations, iterations <= 0 { throw ValidationError("--iterations must be positive") }
        if let distillWidth, distillWidth <= 0 { throw ValidationError("--distill-width must be positive") }
        if let bank, bank < 0 { throw ValidationError("--bank must be 0 (plain DM) or positive") }
        _ = try memories()
    }

    func recipe(_ kind: Memory) -> DistillationRecipe {
        var recipe = DistillationRecipe.reference(kind == .distilled ? .dm : kind == .herding ? .herding : .random)
        recipe.imagesPerClass = ipc
        recipe.seed = seed
        if kind == .distilled {
            if let iterations { recipe.iterations = iterations }
            if let distillWidth { recipe.network.width = distillWidth }
            if let bank, case var .distributionMatching(settings) = recipe.settings {
                if bank == 0 {
                    recipe.settings = .plainDistributionMatching(formationFactor: settings.formationFactor)
                } else {
                    settings.bankSize = bank
                    recipe.settings = .distributionMatching(settings)
                }
            }
        }
        return recipe
    }

    func run() throws {
        compute.apply()
        let splits: DatasetSplits
        do { splits = try data.store.load(dataset) } catch { throw CommandFailure(error) }
        let descriptor = splits.descriptor
        guard tasks <= descriptor.classCount else { throw CommandFailure("--tasks \(tasks) exceeds \(descriptor.name)'s \(descriptor.classCount) classes") }
        let split = ClassIncrementalBenchmark.split(classCount: descriptor.classCount, tasks: tasks)
        let evaluation = SetEvaluation(network: model.configuration(imageShape: descriptor.imageShape, classCount: descriptor.classCount),
                                       models: models, epochs: epochs, augmentation: noDSA ? nil : DSA(dataset: descriptor.name), seed: seed)
        do { try evaluation.validate() } catch { throw CommandFailure(error) }
        for kind in try memories() {
            do { try recipe(kind).validate() } catch { throw CommandFailure("\(kind.rawValue) memory: \(error)") }
        }
        print("\(descriptor.name): tasks " + split.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: " ")
              + ", \(ipc) memory images per class")
        var results: [[String: Any]] = []
        let start = Date()
        for kind in try memories() {
            let benchmark = ClassIncrementalBenchmark(tasks: split, recipe: recipe(kind), evaluation: evaluation)
            let report: ClassIncrementalBenchmark.Report
            do {
                report = try benchmark.run(train: splits.train, test: splits.test, descriptor: descriptor) { task in
                    FileHandle.standardError.write(Data(String(format: "continual %@ task %d/%d  elapsed %.0f s\n", kind.rawValue,
                                                               task + 1, split.count, Date().timeIntervalSince(start)).utf8))
                }
            } catch { throw CommandFailure("\(kind.rawValue) memory: \(error)") }
            print(kind.rawValue.padding(10) + "accuracy after each task: "
                  + report.average.map { String(format: "%.2f%%", 100 * $0) }.joined(separator: " → ")
                  + String(format: "; forgetting %.2f points (memory %.0f s, training %.0f s)", 100 * report.forgetting,
                           report.memorySeconds, report.trainingSeconds))
            results.append(["memory": kind.rawValue, "average": report.average, "per_task": report.accuracy,
                            "forgetting": report.forgetting, "memory_seconds": report.memorySeconds,
                            "training_seconds": report.trainingSeconds])
        }
        if let json {
            try writeJSON(["dataset": descriptor.name, "tasks": split, "images_per_class": ipc, "models": models, "epochs": epochs,
                           "memories": results], to: json)
        }
    }
}
