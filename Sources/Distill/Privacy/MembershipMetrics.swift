/// How well membership scores separate members from non-members (higher score = "member"), with bootstrap
/// confidence intervals: ROC AUC, balanced accuracy at the best threshold, and TPR at 1% and 0.1% FPR.
public struct MembershipMetrics: Sendable, Codable, Equatable {
    public var auc: Double
    public var balancedAccuracy: Double
    public var tprAt1PercentFPR: Double
    public var tprAt01PercentFPR: Double
    /// 95% bootstrap intervals `[low, high]` of the same figures.
    public var aucInterval: [Double]
    public var balancedAccuracyInterval: [Double]
    public var tprAt1PercentFPRInterval: [Double]
    public var tprAt01PercentFPRInterval: [Double]
    /// One-sided permutation p-values (member/non-member labels shuffled, seeded): the chance of an AUC, or a TPR at
    /// 1% FPR, at least as high as the observed one if membership made no difference. Exact for any sample size,
    /// unlike a bootstrap interval of a tail rate, which is biased upwards on small samples.
    public var aucPValue: Double
    public var tprAt1PercentFPRPValue: Double

    /// Point estimates without intervals.
    public static func point(members: [Double], nonMembers: [Double]) -> (auc: Double, balancedAccuracy: Double, tpr1: Double, tpr01: Double) {
        let roc = rocCurve(members: members, nonMembers: nonMembers)
        var auc = 0.0
        for (a, b) in zip(roc, roc.dropFirst()) { auc += (b.fpr - a.fpr) * (a.tpr + b.tpr) / 2 }
        let balanced = roc.map { ($0.tpr + 1 - $0.fpr) / 2 }.max() ?? 0.5
        func tpr(at limit: Double) -> Double { roc.filter { $0.fpr <= limit }.map(\.tpr).max() ?? 0 }
        return (auc, balanced, tpr(at: 0.01), tpr(at: 0.001))
    }

    /// ROC points from the strictest threshold to the loosest (ties form one step).
    public static func rocCurve(members: [Double], nonMembers: [Double]) -> [(fpr: Double, tpr: Double)] {
        let scored = (members.map { ($0, true) } + nonMembers.map { ($0, false) }).sorted { $0.0 > $1.0 }
        var points: [(Double, Double)] = [(0, 0)]
        var tp = 0, fp = 0, i = 0
        while i < scored.count {
            let threshold = scored[i].0
            while i < scored.count && scored[i].0 == threshold {
                if scored[i].1 { tp += 1 } else { fp += 1 }
                i += 1
            }
            points.append((Double(fp) / Double(max(nonMembers.count, 1)), Double(tp) / Double(max(members.count, 1))))
        }
        return points
    }

    /// Metrics with `resamples` bootstrap resamples (members and non-members resampled separately, seeded) and
    /// `permutations` label permutations for the p-values.
    public init(members: [Double], nonMembers: [Double], resamples: Int = 200, permutations: Int = 400, seed: UInt64 = 0) {
        precondition(!members.isEmpty && !nonMembers.isEmpty, "need members and non-members")
        let estimate = Self.point(members: members, nonMembers: nonMembers)
        auc = estimate.auc
        balancedAccuracy = estimate.balancedAccuracy
        tprAt1PercentFPR = estimate.tpr1
        tprAt01PercentFPR = estimate.tpr01
        var rng = RandomSource(seed: seed)
        var samples: [[Double]] = [[], [], [], []]
        for _ in 0..<resamples {
            let m = (0..<members.count).map { _ in members[rng.integer(below: members.count)] }
            let n = (0..<nonMembers.count).map { _ in nonMembers[rng.integer(below: nonMembers.count)] }
            let e = Self.point(members: m, nonMembers: n)
            samples[0].append(e.auc); samples[1].append(e.balancedAccuracy); samples[2].append(e.tpr1); samples[3].append(e.tpr01)
        }
        func interval(_ values: [Double]) -> [Double] {
            let sorted = values.sorted()
            return [sorted[Int(0.025 * Double(sorted.count - 1))], sorted[Int(0.975 * Double(sorted.count - 1))]]
        }
        aucInterval = interval(samples[0])
        balancedAccuracyInterval = interval(samples[1])
        tprAt1PercentFPRInterval = interval(samples[2])
        tprAt01PercentFPRInterval = interval(samples[3])
        var pooled = members + nonMembers
        var atLeastAUC = 0, atLeastTPR = 0
        for _ in 0..<permutations {
            for i in stride(from: pooled.count - 1, to: 0, by: -1) { pooled.swapAt(i, rng.integer(below: i + 1)) }
            let e = Self.point(members: Array(pooled[..<members.count]), nonMembers: Array(pooled[members.count...]))
            if e.auc >= estimate.auc - 1e-12 { atLeastAUC += 1 }
            if e.tpr1 >= estimate.tpr1 - 1e-12 { atLeastTPR += 1 }
        }
        aucPValue = Double(1 + atLeastAUC) / Double(1 + permutations)
        tprAt1PercentFPRPValue = Double(1 + atLeastTPR) / Double(1 + permutations)
    }

    /// Consistent with no leakage at significance `alpha`: neither the AUC nor the TPR at 1% FPR is significantly
    /// above what shuffled labels give (both permutation p-values at least `alpha`).
    public func consistentWithChance(alpha: Double) -> Bool {
        aucPValue >= alpha && tprAt1PercentFPRPValue >= alpha
    }

    /// ``consistentWithChance(alpha:)`` at 5%, for one attack read on its own.
    public var consistentWithChance: Bool { consistentWithChance(alpha: 0.05) }
}
