import ArgumentParser
import Distill
import FederationProtocol
import Foundation

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Membership-inference audit of a shared synthetic set.",
        discussion: """
            Members are the private records the set was distilled from; non-members are held-out records of the same \
            distribution. A SPEC is DATASET:SPLIT[:FIRST-LAST[@SEED]] (e.g. digits:train:0-200, indices FIRST..<LAST; with \
            @SEED, of the split shuffled with that seed, as `distill --train-range` takes them) or @FILE.safetensors. \
            Take members and non-members from one shuffled order (mnist:train:0-6000@1 and mnist:train:6000-12000@1): \
            consecutive ranges of MNIST's stored order differ enough that an audit tells them apart. Attacks: dcr, dcr_embedding, loss, lira (shadow distillations with the set's method \
            settings). The same attacks run against a model trained directly on the members. Exit status: 0 pass, \
            3 fail (some attack beats chance), other non-zero on error.
            """)

    @Option(help: "The synthetic set (safetensors).") var set: String
    @Option(help: "Member records: DATASET:SPLIT[:FIRST-LAST[@SEED]] or @FILE.safetensors.") var members: String
    @Option(help: "Non-member records, same forms.") var nonmembers: String
    @Option(help: "Comma-separated attacks: dcr, dcr_embedding, loss, lira.") var attacks = "dcr,dcr_embedding,loss"
    @Option(help: "Shadow distillations for LiRA.") var shadows = 8
    @Option(name: .customLong("shadow-iterations"), help: "Iterations per shadow distillation (the shadows otherwise repeat the set's own recipe).") var shadowIterations = 100
    @Option(help: "Epochs for the attack models.") var epochs = 100
    @Option(help: "Bootstrap resamples for the confidence intervals.") var resamples = 200
    @Option(help: "Family-wise significance over every attack's two tests (Bonferroni); the node's gate uses 0.005.") var alpha = 0.05
    @Option(help: "Label permutations behind each p-value (the smallest p-value is 1/(N+1): below the per-test level alpha/(2·attacks) none can fail; the gate uses 4000).")
    var permutations = 400
    @Option(help: "Worst case: insert C mislabeled non-member records into the members, distill again (the shadow recipe, --shadow-iterations), and attack the canaries (0: off).")
    var canaries = 0
    @Flag(name: .customLong("no-baseline"), help: "Skip the baseline (the attacks on a model trained directly on the members; its training dominates the audit of a large member set).")
    var noBaseline = false
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write the JSON report to this file (- for stdout).") var json: String?
    @Option(help: "Write ROC curves (log scale) as SVG.") var roc: String?
    @OptionGroup var model: NetworkOverrides
    @OptionGroup var data: DataOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        for name in attacks.split(separator: ",") where MembershipAudit.Attack(rawValue: String(name)) == nil {
            throw ValidationError("unknown attack '\(name)' (dcr, dcr_embedding, loss, lira)")
        }
        guard shadows >= 2, shadowIterations >= 0, epochs > 0, resamples >= 10, canaries >= 0 else {
            throw ValidationError("--shadows ≥ 2, --epochs ≥ 1, --resamples ≥ 10 and --canaries ≥ 0 are required")
        }
        guard alpha > 0, alpha < 1, (10...1_000_000).contains(permutations) else {
            throw ValidationError("--alpha must be in (0, 1) and --permutations in 10...1000000")
        }
    }

    /// The recipe the shadows (and the canary set) are distilled with: the set's own recipe, or for sets written
    /// before recipes were recorded, DM with the set's images per class, initialisation and DP budget. Its iterations
    /// are `--shadow-iterations`; `--width`, `--depth`, `--norm`, `--activation` and `--pooling` override its network.
    func shadowRecipe(for metadata: SyntheticSet.Metadata) -> DistillationRecipe {
        var recipe = metadata.recipe ?? DistillationRecipe(
            method: .dm, initialization: SyntheticInitialization(rawValue: metadata.initialization) ?? .noise,
            imagesPerClass: metadata.imagesPerClass,
            privacy: metadata.privacy.map { PrivacyBudget(epsilon: $0.epsilon, delta: $0.delta, clipNorm: $0.clipNorm) })
        recipe.iterations = shadowIterations
        model.apply(to: &recipe.network)
        return recipe
    }

    /// A warning when members and non-members are ranges of one split's stored order (no `@SEED`): such ranges are not
    /// exchangeable in MNIST (an audit tells them apart for a set that saw neither; docs/privacy.md), nor across
    /// writer-ordered splits in general.
    static func orderWarning(members: String, nonMembers: String) -> String? {
        func storedRange(_ spec: String) -> String? {
            let parts = spec.split(separator: ":")
            guard !spec.hasPrefix("@"), parts.count == 3, !parts[2].contains("@") else { return nil }
            return parts[0 ..< 2].joined(separator: ":")
        }
        let dataset = { (spec: String) in spec.hasPrefix("@") ? nil : spec.split(separator: ":").first.map(String.init) }
        let split = { (spec: String) in spec.split(separator: ":").dropFirst().first.map(String.init) }
        if let name = dataset(members), name == dataset(nonMembers), split(members) != split(nonMembers) {
            return """
                warning: members and non-members come from different splits of \(name); a dataset's splits can differ by \
                writer or source, so a failed verdict may be the split, not membership. Take both from one shuffled \
                order of one split: FIRST-LAST@SEED.
                """
        }
        guard let split = storedRange(members), split == storedRange(nonMembers) else { return nil }
        return """
            warning: members and non-members are ranges of \(split) in its stored order; that order groups records (in MNIST \
            an audit tells two ranges apart even for a set that saw neither), so a failed verdict may be the order, not \
            membership. Take both from one shuffled order: FIRST-LAST@SEED, with the set distilled from the members' range.
            """
    }

    func records(_ spec: String) throws -> LabeledImages {
        if spec.hasPrefix("@") { return try SyntheticSet.read(String(spec.dropFirst())).trainingData }
        let parts = spec.split(separator: ":").map(String.init)
        guard parts.count == 2 || parts.count == 3, ["train", "test"].contains(parts[1]) else {
            throw CommandFailure("record spec '\(spec)' must be DATASET:train|test[:FIRST-LAST[@SEED]] or @FILE")
        }
        let splits = try data.store.load(parts[0])
        let split = parts[1] == "train" ? splits.train : splits.test
        guard parts.count == 3 else { return split }
        return try split.records(inRange: parts[2], what: "range '\(parts[2])' in '\(spec)'")
    }

    func run() throws {
        compute.apply()
        let shared: SyntheticSet, memberRecords: LabeledImages, nonMemberRecords: LabeledImages
        let setDigest: String
        do {
            let bytes = try FileBytes.read(set)
            setDigest = sha256Hex(bytes)
            shared = try SyntheticSet.decode(bytes, path: set)
            memberRecords = try records(members)
            nonMemberRecords = try records(nonmembers)
        } catch { throw CommandFailure(error) }
        guard memberRecords.imageShape == shared.metadata.imageShape, nonMemberRecords.imageShape == shared.metadata.imageShape else {
            throw CommandFailure("records have images \(memberRecords.imageShape) but the set has \(shared.metadata.imageShape)")
        }
        guard nonMemberRecords.count >= 2 * canaries else {
            throw CommandFailure("--canaries \(canaries) needs at least \(2 * canaries) non-member records to draw them from")
        }
        let metadata = shared.metadata
        let shadowRecipe = self.shadowRecipe(for: metadata)
        let descriptor = DatasetDescriptor(name: metadata.dataset, classCount: metadata.classCount, imageShape: metadata.imageShape,
                                           normalization: metadata.normalization, classNames: [])
        // Refuse a recipe that cannot run here before any shadow starts.
        do { _ = try Distiller.calibration(recipe: shadowRecipe, data: memberRecords, descriptor: descriptor) } catch {
            throw CommandFailure("shadow recipe: \(error)")
        }
        if let warning = Self.orderWarning(members: members, nonMembers: nonmembers) { FileHandle.standardError.write(Data((warning + "\n").utf8)) }
        print("shadow recipe (\(metadata.recipe == nil ? "the set has none: DM defaults" : "the set's own")): \(shadowRecipe.json())")
        let network = shadowRecipe.network.configuration(imageShape: metadata.imageShape, classCount: metadata.classCount)
        var options = MembershipAudit.Options(network: network, augmentation: nil)
        options.attacks = attacks.split(separator: ",").compactMap { MembershipAudit.Attack(rawValue: String($0)) }
        options.shadows = shadows
        options.shadowIterations = shadowIterations
        options.epochs = epochs
        options.resamples = resamples
        options.familyWiseAlpha = alpha
        options.permutations = permutations
        options.seed = seed
        options.includeBaseline = !noBaseline
        var shadowFailure: (any Error)?
        let recipe: (LabeledImages, UInt64) -> LabeledImages = { population, shadowSeed in
            // Shadows repeat the set's own recipe on a random half of the population, with their own seed.
            var shadow = shadowRecipe
            shadow.seed = shadowSeed
            do {
                return try Distiller.run(recipe: shadow, data: population, descriptor: descriptor).trainingData
            } catch {
                shadowFailure = shadowFailure ?? error
                return population
            }
        }
        let audit = MembershipAudit(options: options)
        let report = audit.run(set: shared.trainingData, members: memberRecords, nonMembers: nonMemberRecords, distill: recipe)
        var canaryReport: MembershipAudit.Report?
        if canaries > 0 {
            canaryReport = audit.canaries(count: canaries, members: memberRecords, pool: nonMemberRecords, distill: recipe)
        }
        if let shadowFailure { throw CommandFailure("a shadow distillation failed: \(shadowFailure)") }
        // A multi-formation set trains models on decoded tiles, but what is shared are the stored images: the distance
        // attacks also run on those, and either view failing fails the audit.
        let storedReport = audit.storedImagesReport(shared, members: memberRecords, nonMembers: nonMemberRecords)
        let passed = report.passed && (storedReport?.passed ?? true)
        print("attack".padding(16) + "AUC [95% CI]".padding(24) + "TPR@1%FPR [CI]".padding(24) + "TPR@0.1%FPR".padding(13) + "p(AUC)".padding(9) + "p(TPR)".padding(9) + "chance?")
        func line(_ name: String, _ m: MembershipMetrics, alpha: Double? = nil) -> String {
            name.padding(16) + String(format: "%.3f [%.3f, %.3f]", m.auc, m.aucInterval[0], m.aucInterval[1]).padding(24)
                + String(format: "%.3f [%.3f, %.3f]", m.tprAt1PercentFPR, m.tprAt1PercentFPRInterval[0], m.tprAt1PercentFPRInterval[1]).padding(24)
                + String(format: "%.3f", m.tprAt01PercentFPR).padding(13) + String(format: "%.4f", m.aucPValue).padding(9)
                + String(format: "%.4f", m.tprAt1PercentFPRPValue).padding(9) + (m.consistentWithChance(alpha: alpha ?? report.alpha) ? "yes" : "NO")
        }
        for (name, metrics) in report.attacks.sorted(by: { $0.key < $1.key }) { print(line(name, metrics)) }
        if !report.baseline.isEmpty {
            print("baseline: the same attacks on a model trained directly on the members")
            for (name, metrics) in report.baseline.sorted(by: { $0.key < $1.key }) { print(line(name, metrics)) }
        }
        if let storedReport {
            print("stored images (what is shared; each decodes to \(metadata.formationFactor)×\(metadata.formationFactor) training images)")
            for (name, metrics) in storedReport.attacks.sorted(by: { $0.key < $1.key }) { print(line(name, metrics, alpha: storedReport.alpha)) }
        }
        if let canaryReport {
            print("canaries: \(canaries) mislabeled records inside vs \(canaries) outside a set distilled again (worst case; not in the verdict)")
            for (name, metrics) in canaryReport.attacks.sorted(by: { $0.key < $1.key }) { print(line(name, metrics)) }
        }
        print(String(format: "verdict: %@ (each attack tested at alpha %.4f: %g%% family-wise, Bonferroni; %d permutations)",
                     passed ? "pass" : "fail", report.alpha, 100 * alpha, permutations))
        if let json {
            var object = report.json()
            // Binds the report to the exact bytes audited (a marketplace preview checks it).
            object["set_sha256"] = setDigest
            if let canaryReport { object["canaries"] = (canaryReport.json()["attacks"] ?? [:]) }
            if let storedReport {
                object["stored_images"] = storedReport.json()
                object["verdict"] = passed ? "pass" : "fail"  // both views
            }
            try writeJSON(object, to: json)
        }
        if let roc {
            do { try report.rocSVG().write(toFile: roc, atomically: true, encoding: .utf8) } catch { throw CommandFailure("cannot write \(roc): \(error)") }
        }
        if !passed { throw ExitCode(3) }
    }
}

/// Architecture flags that override a recipe's network only when given (`audit` takes the set's own by default).
struct NetworkOverrides: ParsableArguments {
    @Option(help: "ConvNet width (default: the set's recipe, else 128).") var width: Int?
    @Option(help: "ConvNet depth (default: the set's recipe, else 3).") var depth: Int?
    @Option(help: "Normalisation: instance, batch, layer, group:G, none (default: the set's recipe, else instance).") var norm: String?
    @Option(help: "Activation: relu, leakyrelu, sigmoid (default: the set's recipe, else relu).") var activation: String?
    @Option(help: "Pooling: avg, max, none (default: the set's recipe, else avg).") var pooling: String?

    func validate() throws {
        if let width, !DistillationRecipe.Limits.width.contains(width) { throw ValidationError("--width must lie in 1...1024") }
        if let depth, !DistillationRecipe.Limits.depth.contains(depth) { throw ValidationError("--depth must lie in 1...8") }
        if let norm, NormKind(norm) == nil { throw ValidationError("unknown --norm '\(norm)'") }
        if let activation, Activation(rawValue: activation) == nil { throw ValidationError("unknown --activation '\(activation)'") }
        if let pooling, Pooling(pooling) == nil { throw ValidationError("unknown --pooling '\(pooling)'") }
    }

    /// Replaces the fields that were given.
    func apply(to network: inout DistillationRecipe.Network) {
        if let width { network.width = width }
        if let depth { network.depth = depth }
        if let norm = norm.flatMap { NormKind($0) } { network.norm = norm }
        if let activation = activation.flatMap(Activation.init(rawValue:)) { network.activation = activation }
        if let pooling = pooling.flatMap { Pooling($0) } { network.pooling = pooling }
    }
}
