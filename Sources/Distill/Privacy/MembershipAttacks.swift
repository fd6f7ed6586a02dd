/// Membership-inference attacks on a shared synthetic set. Each returns one score per record, higher meaning
/// "more likely a member of the private data the set was distilled from".
public enum MembershipAttacks {
    /// Distance to the closest synthetic image in pixel space: score = −min_j ‖x − s_j‖².
    public static func distanceToClosestRecord(_ records: Tensor, synthetic: Tensor) -> [Double] {
        let n = records.shape[0], m = synthetic.shape[0], size = records.count / max(n, 1)
        var scores = [Double](repeating: 0, count: n)
        scores.withUnsafeMutableBufferPointer { out in
            records.storage.withUnsafeBufferPointer { r in
                synthetic.storage.withUnsafeBufferPointer { s in
                    Parallel.forEach(n) { i in
                        var best = Double.infinity
                        for j in 0..<m {
                            var d: Float = 0
                            for k in 0..<size { let e = r[i * size + k] - s[j * size + k]; d += e * e }
                            best = min(best, Double(d))
                        }
                        out[i] = -best
                    }
                }
            }
        }
        return scores
    }

    /// DCR in the embedding space of `network` (for example a model trained on the synthetic set).
    public static func embeddingDistance<Net: Network>(_ records: Tensor, synthetic: Tensor, network: Net) -> [Double] {
        distanceToClosestRecord(embedInBatches(records, network), synthetic: embedInBatches(synthetic, network))
    }

    /// Loss threshold attack: score = −cross-entropy of the record under a model trained on the set.
    public static func loss<Net: Network>(_ records: LabeledImages, model: Net) -> [Double] {
        perRecordLoss(records, model: model).map { -$0 }
    }

    /// Per-record cross-entropy.
    public static func perRecordLoss<Net: Network>(_ records: LabeledImages, model: Net) -> [Double] {
        mapLogits(records, model: model) { values, label in
            let peak = values.max() ?? 0
            return peak + _log(values.reduce(0) { $0 + _exp($1 - peak) }) - values[label]
        }
    }

    /// LiRA's statistic: the logit-scaled confidence of the true class, log(p / (1 − p)), computed stably.
    public static func logitScaledConfidence<Net: Network>(_ records: LabeledImages, model: Net) -> [Double] {
        mapLogits(records, model: model) { values, label in
            let others = values.indices.filter { $0 != label }.map { values[$0] }
            let peak = others.max() ?? 0
            return values[label] - (peak + _log(others.reduce(0) { $0 + _exp($1 - peak) }))
        }
    }

    /// Runs the model over the records in batches and maps each record's logits (and label) to a value.
    static func mapLogits<Net: Network>(_ records: LabeledImages, model: Net, _ body: ([Double], Int) -> Double) -> [Double] {
        var out: [Double] = []
        out.reserveCapacity(records.count)
        for first in stride(from: 0, to: records.count, by: 500) {
            let range = first..<min(first + 500, records.count)
            let logits = model(records.images.slice(range))
            let k = logits.shape[1]
            for (row, label) in records.labels[range].enumerated() {
                out.append(body((0..<k).map { Double(logits.storage[row * k + $0]) }, label))
            }
        }
        return out
    }

    static func embedInBatches<Net: Network>(_ images: Tensor, _ network: Net) -> Tensor {
        var parts: [Tensor] = []
        for first in stride(from: 0, to: images.shape[0], by: 500) {
            parts.append(network.embed(images.slice(first..<min(first + 500, images.shape[0]))))
        }
        return Tensor.concatenate(parts)
    }

    /// LiRA (Carlini et al., S&P 2022) from per-record statistics of shadow models: `inScores[i]` / `outScores[i]`
    /// are record i's statistics under shadows whose training population included / excluded it. Online: the
    /// likelihood ratio of two Gaussians; offline (`online: false`): how far above the out-distribution the target's
    /// statistic is.
    public static func likelihoodRatio(target: [Double], inScores: [[Double]], outScores: [[Double]], online: Bool) -> [Double] {
        func fit(_ values: [Double], fallbackStd: Double) -> (mean: Double, std: Double) {
            guard !values.isEmpty else { return (0, fallbackStd) }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(values.count - 1, 1))
            return (mean, max(variance.squareRoot(), 1e-3))
        }
        // A global standard deviation for records with too few shadows (the paper's fixed-variance variant).
        let pooled = fit(outScores.flatMap { $0 } + inScores.flatMap { $0 }, fallbackStd: 1).std
        return target.indices.map { i in
            let out = fit(outScores[i], fallbackStd: pooled)
            let outStd = outScores[i].count >= 2 ? out.std : pooled
            let outLog = -0.5 * _pow((target[i] - out.mean) / outStd, 2) - _log(outStd)
            guard online else { return (target[i] - out.mean) / outStd }
            let inn = fit(inScores[i], fallbackStd: pooled)
            let inStd = inScores[i].count >= 2 ? inn.std : pooled
            let inLog = -0.5 * _pow((target[i] - inn.mean) / inStd, 2) - _log(inStd)
            return inLog - outLog
        }
    }
}
