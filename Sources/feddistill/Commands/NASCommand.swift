import ArgumentParser
import Distill
import Foundation

struct NASCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nas", abstract: "Use a synthetic set as a proxy for neural architecture search (DC's NAS experiment).",
        discussion: """
            Draws --candidates ConvNets from DC's search space (depth 1–4, width 32/64/128, norm none/batch/layer/\
            instance/group:4, activation sigmoid/relu/leakyrelu, pooling none/max/avg; width 256 left out on 2 cores), \
            trains each on the set (--proxy-epochs, with DSA as the evaluation protocol does) and on real training data \
            (--real-per-class random images per class, 0 for the whole split; --target-epochs, no augmentation), tests \
            both on the test split, and reports Spearman's rank correlation of the two rankings, the real-data accuracy \
            of the architecture the proxy ranks first against the best candidate's, and the speed-up (real-data training \
            time over proxy training time). --random-baseline adds random real images of the set's size as a second proxy.
            """)

    @Option(help: "Synthetic set used as the proxy (safetensors).") var set: String
    @Option(help: "Dataset (default: the set's).") var dataset: String?
    @Option(help: "Architectures drawn from the search space.") var candidates = 30
    @Option(name: .customLong("proxy-epochs"), help: "Epochs on the proxy set.") var proxyEpochs = 300
    @Option(name: .customLong("target-epochs"), help: "Epochs on the real data.") var targetEpochs = 20
    @Option(name: .customLong("real-per-class"), help: "Real training images per class for the target ranking (0: the whole split).")
    var realPerClass = 0
    @Flag(name: .customLong("random-baseline"), help: "Also rank with random real images of the set's size.") var randomBaseline = false
    @Flag(name: .customLong("no-dsa"), help: "Train on the proxy without DSA augmentation.") var noDSA = false
    @Option(help: "Random seed (candidate draw, initialisations, subsets).") var seed: UInt64 = 0
    @Option(help: "Write a JSON report to this file (- for stdout).") var json: String?
    @OptionGroup var data: DataOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard (2...540).contains(candidates) else { throw ValidationError("--candidates must be in 2...540") }
        guard proxyEpochs > 0, targetEpochs > 0 else { throw ValidationError("--proxy-epochs and --target-epochs must be positive") }
        guard realPerClass >= 0 else { throw ValidationError("--real-per-class must be 0 (all) or positive") }
    }

    func run() throws {
        compute.apply()
        let synthetic: SyntheticSet
        let splits: DatasetSplits
        do {
            synthetic = try SyntheticSet.read(set)
            splits = try data.store.load(dataset ?? synthetic.metadata.dataset)
            try synthetic.check(fits: splits.descriptor)
        } catch { throw CommandFailure(error) }
        let descriptor = splits.descriptor
        let proxy = synthetic.trainingData
        var rng = RandomSource(seed: seed ^ 0x4E_A5)
        var sets = [proxy]
        var labels = ["proxy"]
        if randomBaseline {
            let perClass = max(1, proxy.count / max(descriptor.classCount, 1))
            sets.append(CoresetSelection.random(splits.train, imagesPerClass: perClass, using: &rng))
            labels.append("random")
        }
        sets.append(realPerClass == 0 ? splits.train : splits.train.randomSubset(imagesPerClass: realPerClass, using: &rng))
        labels.append("real")
        let search = ArchitectureSearch(
            candidates: ArchitectureSearch.candidates(count: candidates, imageShape: descriptor.imageShape,
                                                      classCount: descriptor.classCount, seed: seed),
            proxyEpochs: proxyEpochs, targetEpochs: targetEpochs, augmentation: noDSA ? nil : DSA(dataset: descriptor.name),
            seed: seed)
        print("\(search.candidates.count) candidates; proxy \(proxy.count) images, " + (randomBaseline ? "random \(sets[1].count), " : "")
              + "real \(sets.last!.count) images")
        let progress = ProgressDisplay(label: "nas training")
        let start = Date()
        let entries = search.run(sets: sets, test: splits.test) { candidate, set, _ in
            progress.update(done: candidate * sets.count + set + 1, total: search.candidates.count * sets.count,
                            elapsed: Date().timeIntervalSince(start), fields: [("on", labels[set])])
        }
        print("candidate".padding(36) + labels.map { $0.padding(10) }.joined())
        for entry in entries {
            print(entry.name.padding(36) + entry.accuracies.map { String(format: "%.2f%%", 100 * $0).padding(10) }.joined())
        }
        var qualities: [[String: Any]] = []
        for (index, label) in labels.dropLast().enumerated() {
            let quality = ArchitectureSearch.quality(of: entries, proxy: index)
            print(String(format: "%@: Spearman ρ %.3f; picks %@ → %.2f%% on real data (best candidate %.2f%%); %.1f× faster than ranking on real data",
                         label, quality.spearman, quality.picked, 100 * quality.pickedTargetAccuracy, 100 * quality.bestTargetAccuracy,
                         quality.speedUp))
            qualities.append(["proxy": label, "spearman": quality.spearman, "picked": quality.picked,
                              "picked_real_accuracy": quality.pickedTargetAccuracy, "best_real_accuracy": quality.bestTargetAccuracy,
                              "speed_up": quality.speedUp])
        }
        if let json {
            try writeJSON([
                "set": set, "dataset": descriptor.name, "candidates": entries.map { entry in
                    ["name": entry.name, "accuracies": Dictionary(uniqueKeysWithValues: zip(labels, entry.accuracies)),
                     "seconds": Dictionary(uniqueKeysWithValues: zip(labels, entry.seconds))] as [String: Any]
                },
                "proxies": qualities, "proxy_epochs": proxyEpochs, "target_epochs": targetEpochs,
                "real_images": sets.last!.count, "seconds": Date().timeIntervalSince(start),
            ], to: json)
        }
    }
}
