import Foundation
import Testing
@testable import Distill

/// A measurement, not a test: how far the default shared set (DM from noise) is from chance over many seeds, next to
/// a control set distilled from other records of the same split. Off by default; run with
/// `FEDDISTILL_MEASURE=1 swift test --filter PrivacyMeasurements` (about 3 minutes). Results are in docs/privacy.md.
@Suite("Privacy measurements", .serialized, .enabled(if: ProcessInfo.processInfo.environment["FEDDISTILL_MEASURE"] == "1"))
struct PrivacyMeasurements {
    /// `plain`: DM from noise, 150 iterations (the default before 2026-12-02). `bank`: the nodes' default recipe
    /// (``DistillationRecipe/reference(_:)``, DM from noise with the recommended statistics bank) at the probe's width
    /// and 1000 iterations.
    /// `plain-1000`: plain DM, 1000 iterations; `bank-random`: a bank of random networks only; `bank-noclass`: trained
    /// networks without the class loss (both 1000 iterations). `FEDDISTILL_MEASURE_KINDS` (comma-separated) picks some;
    /// `FEDDISTILL_MEASURE_MEMBERS_ONLY=1` skips the control.
    @Test(arguments: ["plain", "bank", "plain-1000", "bank-random", "bank-noclass"])
    func defaultSetOverSeeds(recipe kind: String) throws {
        let environment = ProcessInfo.processInfo.environment
        if let kinds = environment["FEDDISTILL_MEASURE_KINDS"], !kinds.split(separator: ",").contains(Substring(kind)) { return }
        let probes = PrivacyProbeTests()
        let draw = try probes.populationDraw()
        let (members, nonMembers) = (draw.splits.train.subset(draw.members), draw.splits.test.subset(draw.nonMembers))
        // The control: 200 training records that are not members.
        let memberIndices = Set(draw.members)
        var otherDraw = RandomSource(seed: 99)
        let others = draw.splits.train.subset(otherDraw.choose(200, from: (0..<draw.splits.train.count).filter { !memberIndices.contains($0) }))
        let sources = environment["FEDDISTILL_MEASURE_MEMBERS_ONLY"] == "1" ? [("members", members)] : [("members", members), ("control", others)]
        for (name, source) in sources {
            var failures = 0
            var auc: [String: [Double]] = [:]
            for seed in UInt64(1)...10 {
                let set: LabeledImages
                if kind.hasPrefix("bank") {
                    var recipe = DistillationRecipe.reference(.dm)
                    (recipe.network.width, recipe.iterations, recipe.seed) = (probes.network.width, 1000, seed)
                    var settings = DistillationRecipe.DistributionMatchingSettings.recommended
                    if kind == "bank-random" { (settings.trainedNetworks, settings.classLossWeight) = (0, 0) }
                    if kind == "bank-noclass" { settings.classLossWeight = 0 }
                    recipe.settings = .distributionMatching(settings)
                    set = try Distiller.run(recipe: recipe, data: source, descriptor: draw.splits.descriptor).data
                } else {
                    var rng = RandomSource(seed: 73 + seed)
                    let initial = DistributionMatching.initialImages(source, imagesPerClass: 10, initialization: .noise, using: &rng)
                    let dm = DistributionMatching(options: .init(imagesPerClass: 10, iterations: kind == "plain" ? 150 : 1000,
                                                                 batchReal: 64, learningRate: 100,
                                                                 seed: seed),
                                                  network: probes.network, augmentation: DSA(dataset: "digits"))
                    set = dm.distill(source, from: initial).images
                }
                let report = probes.audit([.dcr, .dcrEmbedding, .loss]).run(set: set, members: members, nonMembers: nonMembers)
                if !report.passed { failures += 1 }
                for (attack, metrics) in report.attacks { auc[attack, default: []].append(metrics.auc) }
            }
            let means = auc.sorted { $0.key < $1.key }.map { String(format: "%@ mean AUC %.3f", $0.key, $0.value.reduce(0, +) / 10) }
            print("MEASURE \(kind) \(name): audit failed in \(failures) of 10 seeds; " + means.joined(separator: ", "))
        }
    }
}
