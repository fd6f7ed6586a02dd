import Foundation

/// How often the node's ``PrivacyGate`` refuses sets that cannot leak, sets that do, and the sets a node actually
/// makes, measured by repeating what a node does on fresh draws of a pool of records.
///
/// Each run draws, from the pool shuffled with the run's seed, a node partition of `recordsPerClass` records per class,
/// holds out 20% of it as the node does (the gate's non-members; the rest are the members), and a disjoint control
/// population of the members' size. Then, for each kind asked for:
/// - ``Kind/control``: the recipe's set distilled from the control population, judged against the members and the
///   held-out records. It contains nothing of either, so every refusal is a false refusal.
/// - ``Kind/node``: the recipe's set distilled from the members, as a node sends it: the refusal rate of the recipe.
/// - ``Kind/copies``: `imagesPerClass` member records per class shared as they are (a set that leaks by
///   construction): the gate's detection rate.
public struct GateErrorRates: Sendable {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        case control, node, copies
    }

    /// Refusals of one kind over the runs.
    public struct Tally: Sendable, Codable, Equatable {
        public var runs: Int
        public var refused: Int

        public init(runs: Int = 0, refused: Int = 0) {
            self.runs = runs
            self.refused = refused
        }

        public var rate: Double { runs == 0 ? 0 : Double(refused) / Double(runs) }
        /// The 95% Wilson score interval of the rate.
        public var interval: ClosedRange<Double> {
            guard runs > 0 else { return 0...1 }
            let (n, p, z) = (Double(runs), rate, 1.959964)
            let centre = (p + z * z / (2 * n)) / (1 + z * z / n)
            let half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)).squareRoot()
            return max(0, centre - half)...min(1, centre + half)
        }
    }

    public var recipe: DistillationRecipe
    public var gate: PrivacyGate.Options
    public var recordsPerClass: Int
    public var kinds: [Kind]

    public init(recipe: DistillationRecipe, gate: PrivacyGate.Options, recordsPerClass: Int, kinds: [Kind] = Kind.allCases) {
        self.recipe = recipe
        self.gate = gate
        self.recordsPerClass = recordsPerClass
        self.kinds = kinds
    }

    /// Records per class the pool needs: the partition plus a control population as large as the members.
    public var recordsNeededPerClass: Int { recordsPerClass + (recordsPerClass - recordsPerClass / 5) }

    /// One run: the decision per kind asked for.
    /// - Throws: ``DistillerError`` when the recipe cannot run on the drawn records.
    public func run(_ index: Int, pool: LabeledImages, descriptor: DatasetDescriptor) throws(DistillerError) -> [Kind: PrivacyGate.Decision] {
        var rng = RandomSource(seed: gate.seed).derived(0x6A7E &+ UInt64(index))
        var memberRows: [Int] = [], heldOutRows: [Int] = [], controlRows: [Int] = []
        let heldOutPerClass = recordsPerClass / 5
        for members in pool.indicesByClass() where !members.isEmpty {
            let order = rng.permutation(members.count).map { members[$0] }
            let partition = order.prefix(recordsPerClass)
            heldOutRows += partition.prefix(heldOutPerClass)
            memberRows += partition.dropFirst(heldOutPerClass)
            controlRows += order.dropFirst(recordsPerClass).prefix(recordsPerClass - heldOutPerClass)
        }
        let members = pool.subset(memberRows), heldOut = pool.subset(heldOutRows), control = pool.subset(controlRows)
        var runRecipe = recipe
        runRecipe.seed = recipe.seed &+ UInt64(index)
        var gateOptions = gate
        gateOptions.seed = gate.seed &+ UInt64(index)
        let judge = PrivacyGate(options: gateOptions)
        var decisions: [Kind: PrivacyGate.Decision] = [:]
        for kind in kinds {
            let set: SyntheticSet
            switch kind {
            case .control: set = try Distiller.run(recipe: runRecipe, data: control, descriptor: descriptor)
            case .node: set = try Distiller.run(recipe: runRecipe, data: members, descriptor: descriptor)
            case .copies:
                let copies = DistillationRecipe(method: .random, initialization: .real, imagesPerClass: recipe.imagesPerClass,
                                                iterations: 0, augmentation: .none, seed: runRecipe.seed)
                set = try Distiller.run(recipe: copies, data: members, descriptor: descriptor)
            }
            decisions[kind] = judge.judge(set, members: members, nonMembers: heldOut)
        }
        return decisions
    }
}
