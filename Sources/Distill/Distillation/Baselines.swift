/// Coreset baselines: sets made of real images chosen per class.
public enum CoresetSelection {
    /// `imagesPerClass` random real images of each class present.
    public static func random(_ real: LabeledImages, imagesPerClass: Int, using rng: inout RandomSource) -> LabeledImages {
        real.randomSubset(imagesPerClass: imagesPerClass, using: &rng)
    }

    /// Herding (Welling 2009) in the embedding space of `network`: per class, greedily add the image that brings the
    /// running mean of the chosen embeddings closest to the class mean embedding.
    public static func herding<Net: Network>(_ real: LabeledImages, imagesPerClass: Int, network: Net) -> LabeledImages {
        var chosen: [Int] = []
        for members in real.indicesByClass() where !members.isEmpty {
            var embeddings: [Float] = []
            for first in stride(from: 0, to: members.count, by: 500) {
                let batch = real.images.gather(Array(members[first..<min(first + 500, members.count)]))
                embeddings += network.embed(batch).storage
            }
            let features = network.featureCount
            var target = [Double](repeating: 0, count: features)
            for (row, _) in members.enumerated() {
                for f in 0..<features { target[f] += Double(embeddings[row * features + f]) / Double(members.count) }
            }
            var sum = [Double](repeating: 0, count: features)
            var available = Set(members.indices)
            for step in 1...min(imagesPerClass, members.count) {
                var best = -1, bestDistance = Double.infinity
                for row in available.sorted() {
                    var distance = 0.0
                    for f in 0..<features {
                        let d = (sum[f] + Double(embeddings[row * features + f])) / Double(step) - target[f]
                        distance += d * d
                    }
                    if distance < bestDistance { (best, bestDistance) = (row, distance) }
                }
                available.remove(best)
                for f in 0..<features { sum[f] += Double(embeddings[best * features + f]) }
                chosen.append(members[best])
            }
        }
        return real.subset(chosen)
    }
}
