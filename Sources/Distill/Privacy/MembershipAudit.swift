import Foundation

/// A membership-inference audit of a shared synthetic set: attacks against the set (and against models trained on
/// it) next to the same attacks on a model trained directly on the members, with bootstrap confidence intervals.
public struct MembershipAudit: Sendable {
    public enum Attack: String, Sendable, CaseIterable, Codable {
        /// Distance to the closest synthetic image, in pixel space.
        case dcr
        /// Distance to the closest synthetic image in the embedding of a model trained on the set.
        case dcrEmbedding = "dcr_embedding"
        /// Loss threshold on models trained on the set.
        case loss
        /// LiRA with shadow distillations on random halves of members ∪ non-members (online and offline).
        case lira
    }

    public struct Options: Sendable {
        public var attacks: [Attack] = [.dcr, .dcrEmbedding, .loss]
        public var shadows = 8
        public var shadowIterations = 100
        public var epochs = 100
        public var network: ConvNet.Configuration
        public var augmentation: DSA?
        public var resamples = 200
        /// Label permutations behind each p-value; the smallest p-value possible is `1 / (permutations + 1)`.
        public var permutations = 400
        /// The chance a set that leaks nothing fails the audit (Bonferroni over the attacks and their two tests).
        public var familyWiseAlpha = 0.05
        public var seed: UInt64 = 0
        /// Also attack a model trained directly on the members (the report's `baseline`).
        public var includeBaseline = true

        public init(network: ConvNet.Configuration, augmentation: DSA?) {
            self.network = network
            self.augmentation = augmentation
        }
    }

    public struct Report: Sendable {
        /// Attack name → metrics, against the shared set.
        public var attacks: [String: MembershipMetrics]
        /// The same attacks against a model trained directly on the members.
        public var baseline: [String: MembershipMetrics]
        /// ROC points per attack (for plots).
        public var curves: [String: [(fpr: Double, tpr: Double)]]
        /// The chance a set that leaks nothing fails (5% unless the options say otherwise).
        public var familyWiseAlpha = 0.05
        /// The significance each attack is tested at: ``familyWiseAlpha`` over the attacks and their two tests (AUC and
        /// TPR at 1% FPR), Bonferroni-corrected, so that a set that leaks nothing fails at most that often.
        public var alpha: Double { familyWiseAlpha / Double(max(1, 2 * attacks.count)) }
        /// Pass when every attack on the set is consistent with chance at ``alpha``.
        public var passed: Bool { attacks.values.allSatisfy { $0.consistentWithChance(alpha: alpha) } }
    }

    public var options: Options

    public init(options: Options) { self.options = options }

    /// Audits `set` given the `members` it was distilled from and held-out `nonMembers` of the same distribution.
    /// `distill` re-runs the set's distillation on a population (used by LiRA's shadows).
    public func run(set: LabeledImages, members: LabeledImages, nonMembers: LabeledImages,
                    distill: ((_ population: LabeledImages, _ seed: UInt64) -> LabeledImages)? = nil) -> Report {
        var attacks: [String: MembershipMetrics] = [:], baseline: [String: MembershipMetrics] = [:]
        var curves: [String: [(fpr: Double, tpr: Double)]] = [:]
        func record(_ name: String, _ memberScores: [Double], _ nonMemberScores: [Double], baselineModel: Bool = false) {
            let metrics = MembershipMetrics(members: memberScores, nonMembers: nonMemberScores, resamples: options.resamples,
                                            permutations: options.permutations, seed: options.seed)
            if baselineModel {
                baseline[name] = metrics
            } else {
                attacks[name] = metrics
                curves[name] = MembershipMetrics.rocCurve(members: memberScores, nonMembers: nonMemberScores)
            }
        }
        let setModel = trainModel(on: set, seed: options.seed &+ 1)
        let membersModel: ConvNet? = options.includeBaseline ? trainModel(on: members, seed: options.seed &+ 2) : nil
        for attack in options.attacks {
            switch attack {
            case .dcr:
                record(attack.rawValue, MembershipAttacks.distanceToClosestRecord(members.images, synthetic: set.images),
                       MembershipAttacks.distanceToClosestRecord(nonMembers.images, synthetic: set.images))
            case .dcrEmbedding:
                record(attack.rawValue, MembershipAttacks.embeddingDistance(members.images, synthetic: set.images, network: setModel),
                       MembershipAttacks.embeddingDistance(nonMembers.images, synthetic: set.images, network: setModel))
            case .loss:
                record(attack.rawValue, MembershipAttacks.loss(members, model: setModel), MembershipAttacks.loss(nonMembers, model: setModel))
                if let membersModel {
                    record(attack.rawValue, MembershipAttacks.loss(members, model: membersModel),
                           MembershipAttacks.loss(nonMembers, model: membersModel), baselineModel: true)
                }
            case .lira:
                guard let distill else { continue }
                let population = LabeledImages.concatenate([members, nonMembers])
                var inScores = [[Double]](repeating: [], count: population.count), outScores = inScores
                var rng = RandomSource(seed: options.seed ^ 0x11A)
                var baselineIn = inScores, baselineOut = inScores
                for shadow in 0..<options.shadows {
                    let half = Set(rng.permutation(population.count).prefix(population.count / 2))
                    let subset = population.subset(half.sorted())
                    let shadowModel = trainModel(on: distill(subset, options.seed &+ UInt64(100 + shadow)), seed: options.seed &+ UInt64(200 + shadow))
                    let scores = MembershipAttacks.logitScaledConfidence(population, model: shadowModel)
                    let baseScores = options.includeBaseline
                        ? MembershipAttacks.logitScaledConfidence(population, model: trainModel(on: subset, seed: options.seed &+ UInt64(300 + shadow)))
                        : scores
                    for i in 0..<population.count {
                        if half.contains(i) { inScores[i].append(scores[i]); baselineIn[i].append(baseScores[i]) } else {
                            outScores[i].append(scores[i]); baselineOut[i].append(baseScores[i])
                        }
                    }
                }
                let target = MembershipAttacks.logitScaledConfidence(population, model: setModel)
                for online in [true, false] {
                    let name = online ? "lira_online" : "lira_offline"
                    let scores = MembershipAttacks.likelihoodRatio(target: target, inScores: inScores, outScores: outScores, online: online)
                    record(name, Array(scores[0..<members.count]), Array(scores[members.count...]))
                    if let membersModel {
                        let baseTarget = MembershipAttacks.logitScaledConfidence(population, model: membersModel)
                        let base = MembershipAttacks.likelihoodRatio(target: baseTarget, inScores: baselineIn, outScores: baselineOut, online: online)
                        record(name, Array(base[0..<members.count]), Array(base[members.count...]), baselineModel: true)
                    }
                }
            }
        }
        return Report(attacks: attacks, baseline: baseline, curves: curves, familyWiseAlpha: options.familyWiseAlpha)
    }

    /// The worst case with canaries: `count` records of `pool` get a wrong label (seeded) and are inserted into the
    /// members; `count` more, mislabeled the same way, are held out. The set is distilled again from members ∪
    /// inserted canaries with `distill` (the set's own recipe) and the attacks are asked which canaries were inside.
    /// LiRA's shadows distill from the members plus a random half of all canaries. No members baseline: the
    /// question is only how exposed an outlier is.
    /// - Returns: The attacks' metrics on the canaries, or nil if `pool` has fewer than 2 × `count` records.
    public func canaries(count: Int, members: LabeledImages, pool: LabeledImages,
                         distill: @escaping (_ population: LabeledImages, _ seed: UInt64) -> LabeledImages) -> Report? {
        guard count > 0, pool.count >= 2 * count, pool.classCount > 1 else { return nil }
        var rng = RandomSource(seed: options.seed ^ 0xCA1A)
        let chosen = Array(rng.permutation(pool.count).prefix(2 * count))
        var records = pool.subset(chosen)
        records.labels = records.labels.map { ($0 + 1 + rng.integer(below: pool.classCount - 1)) % pool.classCount }
        let inserted = records.subset(Array(0..<count)), heldOut = records.subset(Array(count..<(2 * count)))
        let set = distill(LabeledImages.concatenate([members, inserted]), options.seed &+ 0xCA1A)
        var canaryOptions = options
        canaryOptions.includeBaseline = false
        return MembershipAudit(options: canaryOptions).run(set: set, members: inserted, nonMembers: heldOut) { population, seed in
            distill(LabeledImages.concatenate([members, population]), seed)
        }
    }

    /// A ConvNet trained with the evaluation protocol's optimiser and the audit's augmentation (none by default).
    func trainModel(on data: LabeledImages, seed: UInt64) -> ConvNet {
        var rng = RandomSource(seed: seed)
        var net = ConvNet(options.network, using: &rng)
        Trainer.train(&net, on: data, options: TrainingOptions(epochs: options.epochs, batchSize: 256, seed: seed),
                      augmentation: options.augmentation?.batchAugmentation)
        return net
    }
}

extension MembershipAudit.Report {
    /// The machine-readable report.
    public func json() -> [String: Any] {
        func metrics(_ m: MembershipMetrics) -> [String: Any] {
            ["auc": m.auc, "balanced_accuracy": m.balancedAccuracy, "tpr_at_1pct_fpr": m.tprAt1PercentFPR,
             "tpr_at_0_1pct_fpr": m.tprAt01PercentFPR,
             "ci": ["auc": m.aucInterval, "balanced_accuracy": m.balancedAccuracyInterval,
                    "tpr_at_1pct_fpr": m.tprAt1PercentFPRInterval, "tpr_at_0_1pct_fpr": m.tprAt01PercentFPRInterval],
             "p_values": ["auc": m.aucPValue, "tpr_at_1pct_fpr": m.tprAt1PercentFPRPValue],
             "consistent_with_chance": m.consistentWithChance(alpha: alpha)]
        }
        return ["verdict": passed ? "pass" : "fail", "alpha": alpha, "attacks": attacks.mapValues(metrics),
                "baseline": baseline.mapValues(metrics)]
    }

    /// ROC curves on log-scaled axes (FPR and TPR from 10⁻³ to 1) as an SVG document.
    public func rocSVG() -> String {
        let size = 400.0, margin = 50.0
        func scale(_ v: Double) -> Double { (log10(max(v, 1e-3)) + 3) / 3 * size }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(size + 2 * margin + 160))\" height=\"\(Int(size + 2 * margin))\">\n"
        svg += "<rect x=\"\(margin)\" y=\"\(margin)\" width=\"\(size)\" height=\"\(size)\" fill=\"none\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(margin)\" y1=\"\(margin + size)\" x2=\"\(margin + size)\" y2=\"\(margin)\" stroke=\"gray\" stroke-dasharray=\"4\"/>\n"
        for tick in [0.001, 0.01, 0.1, 1.0] {
            let p = scale(tick)
            svg += "<text x=\"\(margin + p - 10)\" y=\"\(margin + size + 18)\" font-size=\"11\">\(tick)</text>\n"
            svg += "<text x=\"\(margin - 40)\" y=\"\(margin + size - p + 4)\" font-size=\"11\">\(tick)</text>\n"
        }
        svg += "<text x=\"\(margin + size / 2 - 60)\" y=\"\(margin + size + 38)\" font-size=\"12\">false positive rate (log)</text>\n"
        svg += "<text x=\"12\" y=\"\(margin - 15)\" font-size=\"12\">true positive rate (log)</text>\n"
        for (index, (name, curve)) in curves.sorted(by: { $0.key < $1.key }).enumerated() {
            let color = colors[index % colors.count]
            let points = curve.map { String(format: "%.1f,%.1f", margin + scale($0.fpr), margin + size - scale($0.tpr)) }.joined(separator: " ")
            svg += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"/>\n"
            svg += "<text x=\"\(margin + size + 10)\" y=\"\(margin + 15 + 18 * Double(index))\" font-size=\"12\" fill=\"\(color)\">\(name)</text>\n"
        }
        return svg + "</svg>\n"
    }
}

extension MembershipAudit {
    /// A multi-formation set trains models on decoded tiles, but what is shared are its stored images: this runs the
    /// distance attacks among `options.attacks` (`dcr`, `dcr_embedding`) on the stored images, without a baseline.
    /// nil when the set is not multi-formation or no distance attack is asked for.
    public func storedImagesReport(_ set: SyntheticSet, members: LabeledImages, nonMembers: LabeledImages) -> Report? {
        let distance = options.attacks.filter { $0 == .dcr || $0 == .dcrEmbedding }
        guard set.metadata.formationFactor > 1, !distance.isEmpty else { return nil }
        var stored = options
        stored.attacks = distance
        stored.includeBaseline = false
        return MembershipAudit(options: stored).run(set: set.data, members: members, nonMembers: nonMembers)
    }
}
