import ArgumentParser
import Distill
import Foundation

struct DistillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill", abstract: "Distill a dataset into a few synthetic images per class.",
        discussion: """
            Methods: dm (distribution matching), dc (gradient matching), dsa (gradient matching with DSA), random and \
            herding (real-image baselines). The set is written as \
            safetensors with its provenance in the metadata. Images that leave a node should use --init noise (the \
            default): --init real starts from private images and is known to leak membership.

            dm's default is the nodes' recipe: DM from noise with a statistics bank. Before the first iteration it \
            computes the per-class mean embeddings of real batches for --bank networks (half of them snapshots of \
            --trained-networks networks trained --training-steps SGD steps on the data) and DSA draws; each of the \
            3000 iterations then runs only the synthetic side against one entry, with a class loss under trained \
            networks. --bank 0 is plain DM (a fresh network and real batch every iteration, 1000 iterations).

            --dp-epsilon is DP-DM: every real mean is released by a Gaussian mechanism (Poisson-sampled batches, \
            clipped embedding deviations, noise on the class sums). By default it keeps the bank, with random \
            networks only: the bank's --bank means are then the run's only releases, however many iterations \
            follow. With --bank 0 it is plain DP-DM, one release per iteration.

            --formation F (dm) is multi-formation: each stored image is cut into F×F tiles, each resized to the full \
            image size, so the set trains models on F² times as many (lower-resolution) images at the same bytes; \
            matching runs on the decoded images.
            """)

    enum Method: String, ExpressibleByArgument, CaseIterable { case dm, dc, dsa, random, herding }

    @Option(help: "Dataset name.") var dataset = "digits"
    @Option(help: "Method: \(Method.allCases.map(\.rawValue).joined(separator: ", ")).") var method = Method.dm
    @Option(help: "Images per class.") var ipc = 10
    @Option(name: .customLong("iterations"), help: "Distillation iterations (dm with a bank: 3000; plain dm, dc, dsa: 1000).")
    var iterationsOption: Int?
    @Option(name: .customLong("batch-real"), help: "Real images per class per iteration (dm, dc, dsa).") var batchReal = 256
    @Option(name: .customLong("init"), help: "Initialisation: noise, real, mean (dm, dc, dsa).") var initialization: String = "noise"
    @Option(name: .customLong("lr-img"), help: "Learning rate of the images (dm: 1.0, or 100 for 8×8 digits; dc/dsa: 0.1).")
    var imageLearningRate: Float?
    @Flag(name: .customLong("no-dsa"), help: "Disable differentiable siamese augmentation.") var noDSA = false
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "dm: entries of the bank of precomputed real statistics (default \(Recommended.bankSize); 0: plain DM, a fresh network and real batch every iteration).")
    var bank: Int?
    @Option(name: .customLong("trained-networks"), help: "dm with a bank: networks trained on the real data whose snapshots make up half the bank (default \(Recommended.trainedNetworks); 0 and only 0 with --dp-epsilon).")
    var trainedNetworks: Int?
    @Option(name: .customLong("training-steps"), help: "dm with a bank: SGD steps (batch 256) per trained network (default \(Recommended.trainingSteps)).")
    var trainingSteps: Int?
    @Option(name: .customLong("class-loss"), help: "dm with a bank: weight of the class loss under trained networks (default \(Recommended.classLossWeight)).")
    var classLoss: Float?
    @Option(help: "dm: multi-formation factor F; each stored image decodes to F×F training images (1: none; 1 to 4, dividing the image size).")
    var formation = 1
    @Option(name: .customLong("dp-epsilon"),
            help: "Differentially private DM with this ε (dm, --init noise): Poisson-sampled real batches, clipped embedding deviations, Gaussian noise on the class sums.")
    var dpEpsilon: Double?
    @Option(name: .customLong("dp-delta"), help: "δ of the DP guarantee.") var dpDelta = 1e-5
    @Option(name: .customLong("dp-clip"), help: "Bound on each record's embedding deviation from its public reference: the class's synthetic mean (plain DP-DM) or the mean of noise images (a bank); default 0.03·√features for 1×1 final maps, else 0.2·√features (a bank: 0.035 and 0.4).") var dpClip: Float?
    @Option(name: .customLong("train-range"),
            help: "Distill from training records FIRST..<LAST only; FIRST-LAST@SEED takes them from the split shuffled with SEED (e.g. 0-1000@1: the members of a later audit, whose non-members are 1000-2000@1).")
    var trainRange: String?
    @Option(name: .customLong("snapshot-every"),
            help: "dm: also write the set after every N iterations, as OUT with -itN before the extension (for accuracy-vs-iterations curves).")
    var snapshotEvery: Int?
    @Option(help: "Output safetensors file.") var out: String
    @Option(help: "Also write a PNG grid (one row per class).") var png: String?
    @Option(help: "Write a JSON report to this file (- for stdout).") var json: String?
    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard ipc > 0 else { throw ValidationError("--ipc must be at least 1") }
        guard iterationsOption ?? 0 >= 0, batchReal > 0 else { throw ValidationError("--iterations must be ≥ 0 and --batch-real ≥ 1") }
        if let snapshotEvery {
            guard snapshotEvery > 0 else { throw ValidationError("--snapshot-every must be positive") }
            guard method == .dm else { throw ValidationError("--snapshot-every applies to --method dm only") }
        }
        guard SyntheticInitialization(rawValue: initialization) != nil else {
            throw ValidationError("--init must be noise, real or mean, got '\(initialization)'")
        }
        if method != .dm {
            guard bank == nil, trainedNetworks == nil, trainingSteps == nil, classLoss == nil, formation == 1 else {
                throw ValidationError("--bank, --trained-networks, --training-steps, --class-loss and --formation apply to --method dm only")
            }
        } else if bank == 0 {
            guard trainedNetworks == nil, trainingSteps == nil, classLoss == nil else {
                throw ValidationError("--trained-networks, --training-steps and --class-loss configure the statistics bank, which is off (--bank 0)")
            }
        } else if dpEpsilon != nil, (trainedNetworks ?? 0) > 0 || (trainingSteps ?? 0) > 0 || (classLoss ?? 0) > 0 {
            throw ValidationError("--dp-epsilon keeps random networks only in the bank (trained networks are not privatised): drop --trained-networks, --training-steps and --class-loss")
        }
        if let budget = privacyBudget {
            if let problem = budget.problem { throw ValidationError("--dp-epsilon/--dp-delta/--dp-clip: \(problem)") }
            guard method == .dm else { throw ValidationError("--dp-epsilon applies to --method dm only") }
            guard initialization == "noise" else { throw ValidationError("--dp-epsilon needs --init noise: other initialisations start from private images") }
            guard NormKind(model.norm) != .batch else { throw ValidationError("--dp-epsilon cannot use --norm batch: batch statistics mix records") }
        }
        do { try recipe.validate() } catch { throw ValidationError("\(error)") }
    }

    var privacyBudget: PrivacyBudget? { dpEpsilon.map { PrivacyBudget(epsilon: $0, delta: dpDelta, clipNorm: dpClip) } }

    typealias Recommended = DistillationRecipe.DistributionMatchingSettings.Recommended

    /// The bank and formation these flags ask for: dm's default is the recommended bank, with random networks only
    /// under differential privacy; other methods have none. nil: dm's plain settings (or not dm).
    var distributionMatchingSettings: DistillationRecipe.DistributionMatchingSettings? {
        guard method == .dm else { return nil }
        let size = bank ?? Recommended.bankSize
        guard size > 0 else {
            return formation == 1 ? nil : .init(formationFactor: formation)
        }
        if dpEpsilon != nil { return .init(bankSize: size, formationFactor: formation) }
        return .init(bankSize: size, trainedNetworks: trainedNetworks ?? min(Recommended.trainedNetworks, size),
                     trainingSteps: trainingSteps ?? Recommended.trainingSteps, classLossWeight: classLoss ?? Recommended.classLossWeight,
                     formationFactor: formation)
    }

    /// `--iterations`, else 3000 for DM with a bank (its iterations run the synthetic side only) and 1000 otherwise.
    var iterations: Int { iterationsOption ?? ((distributionMatchingSettings?.bankSize ?? 0) == 0 ? 1000 : 3000) }

    /// The recipe these flags ask for. `random` and `herding` select real images (initialisation `real`, no
    /// augmentation); `dc` matches without augmentation and `dsa` with it, whatever `--no-dsa` says.
    var recipe: DistillationRecipe {
        let recipeMethod: DistillationRecipe.Method = switch method {
        case .dm: .dm
        case .dc: .dc
        case .dsa: .dsa
        case .random: .random
        case .herding: .herding
        }
        let selectsRealImages = method == .random || method == .herding
        let augmentation: DistillationRecipe.Augmentation = switch method {
        case .dm: noDSA ? .none : .dsa
        case .dsa: .dsa
        case .dc, .random, .herding: .none
        }
        return DistillationRecipe(
            method: recipeMethod,
            initialization: selectsRealImages ? .real : SyntheticInitialization(rawValue: initialization) ?? .noise,
            imagesPerClass: ipc, iterations: iterations, network: model.recipeNetwork, imageLearningRate: imageLearningRate,
            batchReal: batchReal, augmentation: augmentation, privacy: privacyBudget, seed: seed,
            settings: distributionMatchingSettings.map { .distributionMatching($0) } ?? .standard)
    }

    func run() throws {
        compute.apply()
        var splits: DatasetSplits
        do { splits = try data.store.load(dataset) } catch { throw CommandFailure(error) }
        if let trainRange {
            splits.train = try splits.train.records(inRange: trainRange, what: "--train-range '\(trainRange)'")
        }
        let descriptor = splits.descriptor
        let recipe = self.recipe
        let start = Date()
        let privacy: PrivacyCalibration?
        do { privacy = try Distiller.calibration(recipe: recipe, data: splits.train, descriptor: descriptor) } catch { throw CommandFailure(error) }
        if let privacy {
            print(String(format: "DP-DM: (ε %.3g, δ %.1g), noise multiplier %.3f, sampling rate %.4f, clip norm %.3g",
                         privacy.epsilon, privacy.delta, privacy.noiseMultiplier, privacy.sampleRate, privacy.clipNorm))
        }
        let progress = ProgressDisplay(label: "distill \(method.rawValue) iteration")
        let preparation = ProgressDisplay(label: "distill \(method.rawValue) statistics bank entry")
        var loss = 0.0
        var snapshotFailure: (any Error)?
        let snapshots = snapshotEvery.map { every in
            (every: every, body: { (set: SyntheticSet) in
                guard snapshotFailure == nil, set.metadata.iterations < iterations else { return }
                do { try set.write(to: Self.snapshotPath(out, iteration: set.metadata.iterations)) } catch { snapshotFailure = error }
            })
        }
        let set: SyntheticSet
        do {
            // Iteration rates count from the end of the preparation (DM's statistics bank), not from the start.
            var iterationsStart = start
            set = try Distiller.run(recipe: recipe, data: splits.train, descriptor: descriptor, snapshots: snapshots) { iteration, total, iterationLoss in
                loss = iterationLoss
                let elapsed = Date().timeIntervalSince(iterationsStart)
                var fields = [("loss", String(format: "%.4f", iterationLoss))]
                if method == .dm { fields.append(("it/s", String(format: "%.2f", Double(iteration) / max(elapsed, 1e-9)))) }
                progress.update(done: iteration, total: total, elapsed: elapsed, fields: fields)
                return true
            } preparation: { done, total in
                preparation.update(done: done, total: total, elapsed: Date().timeIntervalSince(start), fields: [])
                iterationsStart = Date()
            }
        } catch { throw CommandFailure(error) }
        if let snapshotFailure { throw CommandFailure("cannot write a snapshot: \(snapshotFailure)") }
        let images = set.data
        let iterationsRun = set.metadata.iterations
        let seconds = Date().timeIntervalSince(start)
        do {
            try set.write(to: out)
            if let png { try Data(PNG.grid(images, normalization: descriptor.normalization, zoom: descriptor.imageShape[1] < 16 ? 4 : 2))
                .write(to: URL(fileURLWithPath: png)) }
        } catch { throw CommandFailure("cannot write output: \(error)") }
        print(String(format: "%@ %@ ipc %d: %d images in %.1f s → %@", dataset, method.rawValue, ipc, images.count, seconds, out))
        if let json {
            var report: [String: Any] = ["dataset": dataset, "method": method.rawValue, "ipc": ipc, "iterations": iterationsRun,
                                         "batch_real": batchReal, "init": initialization, "seed": seed, "width": model.width,
                                         "dsa": !noDSA, "seconds": seconds, "final_loss": loss, "images": images.count, "out": out,
                                         "train_range": trainRange ?? "all", "train_records": splits.train.count]
            if let privacy { report["differential_privacy"] = privacy.jsonObject }
            report["recipe"] = try? JSONSerialization.jsonObject(with: Data(recipe.json().utf8))
            try writeJSON(report, to: json)
        }
    }
}

extension DistillCommand {
    /// `set.safetensors` → `set-it100.safetensors`.
    static func snapshotPath(_ out: String, iteration: Int) -> String {
        let url = URL(fileURLWithPath: out)
        let ext = url.pathExtension
        let base = ext.isEmpty ? out : String(out.dropLast(ext.count + 1))
        return base + "-it\(iteration)" + (ext.isEmpty ? "" : "." + ext)
    }
}

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate", abstract: "Evaluate a synthetic set with the reference protocol.",
        discussion: """
            Trains --models fresh networks on the set (SGD lr 0.01, momentum 0.9, weight decay 5e-4, lr ×0.1 after \
            half the epochs, batch 256, DSA while training) and tests each on the dataset's test split. The papers \
            use 1000 epochs for DM/DSA sets.

            --arch trains other architectures the same way (cross-architecture evaluation): \
            \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")). The ConvNet flags (--width, --depth, …) \
            apply to convnet only. --attack fgsm|pgd --eps E[,E…] also reports each model's accuracy on adversarial \
            test images (L∞ budget E in pixel units, images in [0, 1]; PGD from a random start, --pgd-steps steps of \
            2.5·E/steps).
            """)

    @Option(help: "Synthetic set (safetensors).") var set: String
    @Option(help: "Dataset whose test split is used.") var dataset: String?
    @OptionGroup var evaluation: EvaluationOptions
    @OptionGroup var data: DataOptions

    func run() throws {
        let synthetic: SyntheticSet
        let splits: DatasetSplits
        do {
            synthetic = try SyntheticSet.read(set)
            splits = try data.store.load(dataset ?? synthetic.metadata.dataset)
        } catch { throw CommandFailure(error) }
        try evaluation.evaluate(synthetic, label: set, splits: splits)
    }
}

/// How `evaluate` and `preview evaluate` train and test on a set.
struct EvaluationOptions: ParsableArguments {
    @Option(help: "Number of fresh models.") var models = 5
    @Option(help: "Training epochs per model.") var epochs = 300
    @Option(help: ArgumentHelp("Architectures to train, comma-separated: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).",
                               valueName: "names")) var arch = "convnet"
    @Option(help: "Adversarial attack on the test images: fgsm or pgd.") var attack: String?
    @Option(help: "Attack budgets (L∞, pixel units), comma-separated.") var eps: String?
    @Option(name: .customLong("pgd-steps"), help: "PGD steps.") var pgdSteps = 10
    @Flag(name: .customLong("no-dsa"), help: "Train without DSA augmentation.") var noDSA = false
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write a JSON report to this file (- for stdout).") var json: String?
    @OptionGroup var model: ModelOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard models > 0, epochs > 0 else { throw ValidationError("--models and --epochs must be positive") }
        _ = try architectures()
        _ = try attacks()
    }

    func architectures() throws -> [Architecture] {
        let names = arch.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var chosen: [Architecture] = []
        for name in names {
            guard let architecture = Architecture(name: name) else {
                throw ValidationError("unknown architecture '\(name.prefix(40))' in --arch (known: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if !chosen.contains(architecture) { chosen.append(architecture) }
        }
        return chosen
    }

    func attacks() throws -> [AdversarialAttack] {
        guard let attack else {
            if eps != nil { throw ValidationError("--eps needs --attack fgsm|pgd") }
            return []
        }
        guard let eps else { throw ValidationError("--attack needs --eps E[,E…]") }
        guard attack == "fgsm" || attack == "pgd" else { throw ValidationError("unknown --attack '\(attack.prefix(40))' (fgsm or pgd)") }
        guard pgdSteps > 0 else { throw ValidationError("--pgd-steps must be positive") }
        return try eps.split(separator: ",", omittingEmptySubsequences: false).map { text in
            guard let value = Float(text.trimmingCharacters(in: .whitespaces)), value > 0, value <= 1 else {
                throw ValidationError("--eps '\(text.prefix(40))' is not a budget in (0, 1]")
            }
            return attack == "fgsm" ? .fgsm(epsilon: value) : .pgd(epsilon: value, steps: pgdSteps)
        }
    }

    /// Trains and tests on `synthetic` (named `label` in the output) against `splits`' test split.
    func evaluate(_ synthetic: SyntheticSet, label set: String, splits: DatasetSplits) throws {
        compute.apply()
        do { try synthetic.check(fits: splits.descriptor) } catch { throw CommandFailure(error) }
        let network = model.configuration(imageShape: splits.descriptor.imageShape, classCount: splits.descriptor.classCount)
        let attacks = try attacks()
        let evaluations = try architectures().map { architecture in
            SetEvaluation(network: network, architecture: architecture, models: models, epochs: epochs,
                          augmentation: noDSA ? nil : DSA(dataset: splits.descriptor.name), seed: seed,
                          attacks: attacks, normalization: splits.descriptor.normalization)
        }
        for evaluation in evaluations {
            do { try evaluation.validate() } catch { throw CommandFailure("\(error) (\(splits.descriptor.name) images are \(splits.descriptor.imageShape.map(String.init).joined(separator: "×")))") }
        }
        let training = synthetic.trainingData
        var results: [[String: Any]] = []
        for evaluation in evaluations {
            let name = evaluation.architecture.rawValue
            let progress = ProgressDisplay(label: "evaluate epoch")
            let start = Date()
            let report = evaluation.evaluate(training, test: splits.test) { model, epoch in
                progress.update(done: model * epochs + epoch, total: models * epochs, elapsed: Date().timeIntervalSince(start),
                                fields: [("arch", name), ("model", "\(model + 1)/\(models)")])
            }
            print(String(format: "%@: %@, %d images, %d models × %d epochs: accuracy %.2f%% ± %.2f%% (%.0f s)", set, name,
                         training.count, models, epochs, 100 * report.mean, 100 * report.standardDeviation, report.seconds))
            print("per class: " + report.perClass.map { String(format: "%.1f", 100 * $0) }.joined(separator: " "))
            var robust: [[String: Any]] = []
            for (attack, accuracies) in zip(attacks, report.robustAccuracies) {
                let (mean, deviation) = meanAndDeviation(accuracies)
                print(String(format: "  %@: robust accuracy %.2f%% ± %.2f%%", attack.description, 100 * mean, 100 * deviation))
                var entry: [String: Any] = ["epsilon": Double("\(attack.epsilon)") ?? Double(attack.epsilon), "accuracy_mean": mean, "accuracy_std": deviation,
                                            "accuracies": accuracies]
                switch attack {
                case .fgsm: entry["attack"] = "fgsm"
                case let .pgd(_, steps, stepSize):
                    entry["attack"] = "pgd"
                    entry["steps"] = steps
                    entry["step_size"] = Double(stepSize)
                }
                robust.append(entry)
            }
            results.append(["architecture": name, "accuracy_mean": report.mean, "accuracy_std": report.standardDeviation,
                            "accuracies": report.accuracies, "per_class": report.perClass, "confusion": report.confusion,
                            "seconds": report.seconds, "robust": robust])
        }
        if let json {
            // The first architecture's figures stay at the top level (the single-architecture report).
            var document = results[0]
            document.removeValue(forKey: "robust")
            document.merge(["models": models, "epochs": epochs, "set": set, "dataset": splits.descriptor.name,
                            "architectures": results]) { $1 }
            try writeJSON(document, to: json)
        }
    }

    private func meanAndDeviation(_ values: [Double]) -> (Double, Double) {
        let mean = values.reduce(0, +) / Double(max(values.count, 1))
        return (mean, (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(values.count, 1))).squareRoot())
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export a synthetic set as a PNG grid or plain .npy arrays.")

    @Option(help: "Synthetic set (safetensors).") var set: String
    @Option(help: "Write a PNG grid (one row per class, de-normalised).") var png: String?
    @Option(help: "Write images.npy (float32, normalised) and labels.npy (int64) into this directory: the training images (a multi-formation set's decoded ones).") var npy: String?
    @Option(help: "Pixel zoom for the PNG.") var zoom = 4

    func validate() throws {
        guard png != nil || npy != nil else { throw ValidationError("give --png FILE and/or --npy DIR") }
        guard zoom > 0 else { throw ValidationError("--zoom must be positive") }
    }

    func run() throws {
        let synthetic: SyntheticSet
        do { synthetic = try SyntheticSet.read(set) } catch { throw CommandFailure(error) }
        do {
            if let png {
                try Data(PNG.grid(synthetic.data, normalization: synthetic.metadata.normalization, zoom: zoom)).write(to: URL(fileURLWithPath: png))
            }
            if let npy {
                try FileManager.default.createDirectory(atPath: npy, withIntermediateDirectories: true)
                let training = synthetic.trainingData
                try Data(NPY.encode(shape: training.images.shape, values: training.images.storage))
                    .write(to: URL(fileURLWithPath: npy + "/images.npy"))
                try Data(NPY.encode(shape: [training.count], values: training.labels.map(Int64.init)))
                    .write(to: URL(fileURLWithPath: npy + "/labels.npy"))
            }
        } catch { throw CommandFailure("cannot write output: \(error)") }
    }
}
