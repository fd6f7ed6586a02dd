import ArgumentParser
import Distill
import Foundation

struct GateRatesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate-rates", abstract: "Measure the node privacy gate's refusal rates: false refusals, detection, and the recipe's own.",
        discussion: """
            Repeats what a node does, --runs times on fresh draws from the dataset's training split: a partition of \
            --records-per-class records per class, 20% held out as the gate's non-members, the rest as members, and a \
            disjoint control population of the members' size. Kinds: control (the recipe's set distilled from the \
            control population: it cannot leak, so a refusal is a false refusal), node (the recipe's set distilled \
            from the members, as a node sends it), copies (--ipc member records per class shared as they are: the \
            gate must refuse). The gate is the node's: dcr, dcr_embedding and loss, permutation tests at the \
            family-wise --alpha. The recipe is dm's default with the overrides given, or --recipe-json.
            """)

    @Option(help: "Dataset name.") var dataset = "digits"
    @Option(name: .customLong("records-per-class"), help: "Records per class in each node partition (20% of them held out).")
    var recordsPerClass = 40
    @Option(help: "Runs (fresh draws of partition, held-out records and control population).") var runs = 50
    @Option(help: "Comma-separated kinds: control, node, copies.") var kinds = "control,node,copies"
    @Option(help: "Images per class of the sets.") var ipc = 10
    @Option(help: "Distillation iterations (default: the recipe's).") var iterations: Int?
    @Option(help: "Statistics bank entries (default: the recipe's; 0: plain DM).") var bank: Int?
    @Option(help: "ConvNet width of the distillation and of the gate's attack models.") var width = 32
    @Option(name: .customLong("dp-epsilon"), help: "Distill with DP-DM at this ε (a bank of random networks).") var dpEpsilon: Double?
    @Option(name: .customLong("recipe-json"), help: "A recipe JSON file to distill with instead (its network width is used for the gate).")
    var recipeJSON: String?
    @Option(help: "The gate's family-wise significance (the node's privacy_gate_alpha).") var alpha = 0.005
    @Option(help: "Epochs of the gate's attack models.") var epochs = 100
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write a JSON report to this file (- for stdout).") var json: String?
    @OptionGroup var data: DataOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard recordsPerClass >= 5 else { throw ValidationError("--records-per-class must be at least 5 (one held out per class)") }
        guard runs >= 1, ipc >= 1, width >= 1, epochs >= 1 else { throw ValidationError("--runs, --ipc, --width and --epochs must be positive") }
        guard alpha > 0, alpha < 1 else { throw ValidationError("--alpha must lie strictly between 0 and 1") }
        guard !parsedKinds.isEmpty, kinds.split(separator: ",").count == parsedKinds.count else {
            throw ValidationError("--kinds takes control, node and copies, comma-separated; got '\(kinds)'")
        }
        if let dpEpsilon, let problem = PrivacyBudget(epsilon: dpEpsilon).problem { throw ValidationError("--dp-epsilon: \(problem)") }
        if recipeJSON != nil, iterations != nil || bank != nil || dpEpsilon != nil {
            throw ValidationError("--recipe-json replaces --iterations, --bank and --dp-epsilon")
        }
    }

    var parsedKinds: [GateErrorRates.Kind] { kinds.split(separator: ",").compactMap { GateErrorRates.Kind(rawValue: String($0)) } }

    func recipe() throws -> DistillationRecipe {
        if let recipeJSON {
            let text: String
            do { text = try String(contentsOfFile: recipeJSON, encoding: .utf8) } catch { throw CommandFailure("cannot read \(recipeJSON): \(error)") }
            do { return try DistillationRecipe.decode(json: text) } catch { throw CommandFailure("\(recipeJSON): \(error)") }
        }
        var recipe = DistillationRecipe.reference(.dm)
        recipe.imagesPerClass = ipc
        recipe.network.width = width
        recipe.seed = seed
        if let dpEpsilon { recipe.applyPrivacy(PrivacyBudget(epsilon: dpEpsilon)) }
        if let bank {
            if bank == 0 {
                recipe.settings = .standard
                recipe.iterations = 1000
            } else if case var .distributionMatching(settings) = recipe.settings {
                settings.bankSize = bank
                settings.trainedNetworks = min(settings.trainedNetworks, bank)
                recipe.settings = .distributionMatching(settings)
            }
        }
        if let iterations { recipe.iterations = iterations }
        do { try recipe.validate() } catch { throw CommandFailure("\(error)") }
        return recipe
    }

    func run() throws {
        compute.apply()
        let recipe = try self.recipe()
        let splits: DatasetSplits
        do { splits = try data.store.load(dataset) } catch { throw CommandFailure(error) }
        var options = PrivacyGate.Options(network: recipe.network.configuration(imageShape: splits.descriptor.imageShape,
                                                                                classCount: splits.descriptor.classCount))
        options.familyWiseAlpha = alpha
        options.epochs = epochs
        options.seed = seed
        let rates = GateErrorRates(recipe: recipe, gate: options, recordsPerClass: recordsPerClass, kinds: parsedKinds)
        let smallest = splits.train.indicesByClass().map(\.count).filter { $0 > 0 }.min() ?? 0
        guard smallest >= rates.recordsNeededPerClass else {
            throw CommandFailure("\(dataset)'s smallest training class has \(smallest) records; --records-per-class \(recordsPerClass) needs \(rates.recordsNeededPerClass) (partition and control population)")
        }
        print("recipe: \(recipe.json())")
        var tallies: [GateErrorRates.Kind: GateErrorRates.Tally] = [:]
        var reasons: [GateErrorRates.Kind: [String: Int]] = [:]
        let display = ProgressDisplay(label: "gate-rates run")
        let start = Date()
        for index in 0..<runs {
            let decisions: [GateErrorRates.Kind: PrivacyGate.Decision]
            do { decisions = try rates.run(index, pool: splits.train, descriptor: splits.descriptor) } catch { throw CommandFailure(error) }
            for (kind, decision) in decisions {
                tallies[kind, default: .init()].runs += 1
                if !decision.passed {
                    tallies[kind, default: .init()].refused += 1
                    // Which attacks refused, by name only (the reasons' figures differ run to run).
                    for attack in decision.refusedBy { reasons[kind, default: [:]][attack, default: 0] += 1 }
                }
            }
            display.update(done: index + 1, total: runs, elapsed: Date().timeIntervalSince(start),
                           fields: parsedKinds.map { ($0.rawValue, "\(tallies[$0]?.refused ?? 0) refused") })
        }
        print("kind".padding(10) + "refused".padding(12) + "rate [95% Wilson]")
        for kind in parsedKinds {
            let tally = tallies[kind] ?? .init()
            print(kind.rawValue.padding(10) + "\(tally.refused)/\(tally.runs)".padding(12)
                  + String(format: "%.3f [%.3f, %.3f]", tally.rate, tally.interval.lowerBound, tally.interval.upperBound))
        }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "%d runs in %.0f s; gate alpha %.4f family-wise, %d records per class (%d held out)", runs, seconds, alpha,
                     recordsPerClass, recordsPerClass / 5))
        if let json {
            var object: [String: Any] = ["dataset": dataset, "records_per_class": recordsPerClass, "runs": runs, "alpha": alpha,
                                         "seconds": seconds, "recipe": recipe.json()]
            for kind in parsedKinds {
                let tally = tallies[kind] ?? .init()
                object[kind.rawValue] = ["runs": tally.runs, "refused": tally.refused, "rate": tally.rate,
                                         "interval": [tally.interval.lowerBound, tally.interval.upperBound],
                                         "refused_by": reasons[kind] ?? [:]] as [String: Any]
            }
            try writeJSON(object, to: json)
        }
    }
}
