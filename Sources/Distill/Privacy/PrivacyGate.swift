import Foundation

/// The node's privacy gate: before a set leaves, audit it against records the node held out of its distillation, and
/// refuse it when an attack tells the members it was distilled from apart from the held-out records.
///
/// The decision is a hypothesis test per attack (`dcr`, `dcr_embedding`, `loss`; for a multi-formation set also the
/// distance attacks on the stored images): permutation p-values of the AUC and of the TPR at 1% FPR, Bonferroni over
/// every test of every view at ``Options/familyWiseAlpha``. A set that leaks nothing is therefore refused at most
/// `familyWiseAlpha` of the time, whatever the partition size: at the default 0.5%, a round of 10 honest nodes loses
/// one of them less than 5% of the time. ``Options/permutations`` is large enough for the smallest p-value to clear the
/// corrected level, so a set that copies members is still refused.
///
/// On top of the test, ``Options/maxTPRAt1PercentFPR`` bounds the effect size: a TPR at 1% FPR above it refuses the set,
/// but only when at least ``Options/minimumNonMembersForRate`` held-out records make "1% FPR" a rate the sample can
/// resolve (with 76 held-out records it means "above every one of them", and honest sets cross 0.1 by chance).
public struct PrivacyGate: Sendable {
    public struct Options: Sendable {
        /// The attack models' architecture.
        public var network: ConvNet.Configuration
        public var seed: UInt64 = 0
        /// Epochs of the models the attacks train on the set.
        public var epochs = 100
        /// The chance a set that leaks nothing is refused.
        public var familyWiseAlpha = 0.005
        /// Label permutations per p-value.
        public var permutations = 4000
        /// Largest TPR at 1% FPR tolerated for any attack (applied from ``minimumNonMembersForRate`` held-out records).
        public var maxTPRAt1PercentFPR = 0.1
        public var minimumNonMembersForRate = 500

        public init(network: ConvNet.Configuration) { self.network = network }
    }

    /// What the gate decided.
    public struct Decision: Sendable {
        public var passed: Bool
        /// Why the set was refused, one entry per failed check (empty when it passed).
        public var reasons: [String]
        /// The attack behind each of `reasons`, in the same order (`stored images: ` before the name for the stored view).
        public var refusedBy: [String]
        /// The audit report on what models train on (the decoded images of a multi-formation set).
        public var report: MembershipAudit.Report
        /// For a multi-formation set, the distance attacks on the stored images.
        public var storedReport: MembershipAudit.Report?

        /// The summary a set carries (metrics only, never data): the audit report's JSON with `stored_images`.
        public var summary: [String: Any] {
            var summary = report.json()
            if let storedReport { summary["stored_images"] = storedReport.json() }
            return summary
        }
    }

    public var options: Options

    public init(options: Options) { self.options = options }

    /// Audits `set` with `members` (records it was distilled from) against `nonMembers` (held out), using equally many
    /// of each (a seeded random sample of the members when they are more).
    public func judge(_ set: SyntheticSet, members: LabeledImages, nonMembers: LabeledImages) -> Decision {
        let count = min(members.count, nonMembers.count)
        var rng = RandomSource(seed: options.seed).derived(0x6A7E)
        let sample = count == members.count ? members : members.subset(rng.choose(count, from: Array(0..<members.count)).sorted())
        let views = set.metadata.formationFactor > 1 ? 2 : 1
        var auditOptions = MembershipAudit.Options(network: options.network, augmentation: nil)
        auditOptions.attacks = [.dcr, .dcrEmbedding, .loss]
        auditOptions.epochs = options.epochs
        auditOptions.includeBaseline = false  // the gate judges the set only
        auditOptions.seed = options.seed
        auditOptions.permutations = options.permutations
        auditOptions.familyWiseAlpha = options.familyWiseAlpha / Double(views)
        let audit = MembershipAudit(options: auditOptions)
        let report = audit.run(set: set.trainingData, members: sample, nonMembers: nonMembers)
        let stored = audit.storedImagesReport(set, members: sample, nonMembers: nonMembers)
        var reasons: [String] = [], refusedBy: [String] = []
        let rateResolved = nonMembers.count >= options.minimumNonMembersForRate
        func judge(_ report: MembershipAudit.Report, view: String) {
            for (name, metrics) in report.attacks.sorted(by: { $0.key < $1.key }) {
                if !metrics.consistentWithChance(alpha: report.alpha) {
                    refusedBy.append(view + name)
                    reasons.append(String(format: "%@%@ beats chance (AUC %.3f, p = %.4f; TPR@1%%FPR %.3f, p = %.4f; alpha %.5f)",
                                          view, name, metrics.auc, metrics.aucPValue, metrics.tprAt1PercentFPR,
                                          metrics.tprAt1PercentFPRPValue, report.alpha))
                }
                if rateResolved, metrics.tprAt1PercentFPR > options.maxTPRAt1PercentFPR {
                    refusedBy.append(view + name)
                    reasons.append(String(format: "%@%@ TPR@1%%FPR %.3f > %.3f", view, name, metrics.tprAt1PercentFPR,
                                          options.maxTPRAt1PercentFPR))
                }
            }
        }
        judge(report, view: "")
        if let stored { judge(stored, view: "stored images: ") }
        return Decision(passed: reasons.isEmpty, reasons: reasons, refusedBy: refusedBy, report: report, storedReport: stored)
    }
}
