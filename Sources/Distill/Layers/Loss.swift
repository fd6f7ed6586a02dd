/// Losses: each returns the mean loss over the batch and its gradient with respect to the input.
public enum Loss {
    /// Softmax cross-entropy with hard labels. `logits`: `(N, K)`.
    public static func crossEntropy(logits: Tensor, labels: [Int]) -> (loss: Double, gradient: Tensor) {
        let (n, k) = (logits.shape[0], logits.shape[1])
        precondition(labels.count == n, "\(labels.count) labels for \(n) rows")
        var targets = Tensor(shape: [n, k])
        for (row, label) in labels.enumerated() { targets.storage[row * k + label] = 1 }
        return crossEntropy(logits: logits, softTargets: targets)
    }

    /// Softmax cross-entropy with soft labels (rows of `softTargets` are distributions).
    public static func crossEntropy(logits: Tensor, softTargets: Tensor) -> (loss: Double, gradient: Tensor) {
        let (n, k) = (logits.shape[0], logits.shape[1])
        precondition(softTargets.shape == logits.shape, "targets \(softTargets.shape) do not match logits \(logits.shape)")
        var gradient = Tensor(shape: logits.shape)
        var total = 0.0
        for row in 0..<n {
            let base = row * k
            var peak = -Float.infinity
            for j in 0..<k { peak = max(peak, logits.storage[base + j]) }
            var sum: Double = 0
            for j in 0..<k { sum += Double(_expf(logits.storage[base + j] - peak)) }
            let logSum = Double(peak) + _log(sum)
            for j in 0..<k {
                let logProbability = Double(logits.storage[base + j]) - logSum
                let target = Double(softTargets.storage[base + j])
                total -= target * logProbability
                gradient.storage[base + j] = Float((_exp(logProbability) - target) / Double(n))
            }
        }
        return (total / Double(max(n, 1)), gradient)
    }

    /// Mean squared error `mean((x − target)²)`.
    public static func meanSquaredError(_ x: Tensor, target: Tensor) -> (loss: Double, gradient: Tensor) {
        precondition(x.shape == target.shape, "MSE shapes differ: \(x.shape) vs \(target.shape)")
        var gradient = Tensor(shape: x.shape)
        var total = 0.0
        let scale = 2 / Float(max(x.count, 1))
        for i in 0..<x.count {
            let d = x.storage[i] - target.storage[i]
            total += Double(d) * Double(d)
            gradient.storage[i] = scale * d
        }
        return (total / Double(max(x.count, 1)), gradient)
    }
}
