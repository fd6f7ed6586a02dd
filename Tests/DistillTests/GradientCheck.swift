import Testing
@testable import Distill

/// Central finite differences of a scalar loss (accumulated in Double) at up to `samples` elements of `tensor`.
func numericalGradient(of tensor: Tensor, at indices: [Int], epsilon: Float = 1e-2,
                       loss: (Tensor) -> Double) -> [Double] {
    var probe = tensor
    return indices.map { i in
        let saved = probe.storage[i]
        probe.storage[i] = saved + epsilon
        let plus = loss(probe)
        probe.storage[i] = saved - epsilon
        let minus = loss(probe)
        probe.storage[i] = saved
        return (plus - minus) / Double(2 * epsilon)
    }
}

/// A fixed random weighting of an output, so that `loss(y) = Σ r·y` and `dL/dy = r`.
func weightedSum(_ y: Tensor, _ r: Tensor) -> Double {
    zip(y.storage, r.storage).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// Indices to probe: all of a small tensor, or a seeded sample of a large one.
func probeIndices(_ count: Int, samples: Int = 48, seed: UInt64 = 7) -> [Int] {
    guard count > samples else { return Array(0..<count) }
    var rng = RandomSource(seed: seed)
    return Array(rng.permutation(count).prefix(samples))
}

/// Expects the analytic gradient to match finite differences at the probed indices.
func expectGradient(_ analytic: Tensor, matches tensor: Tensor, samples: Int = 48, epsilon: Float = 1e-2,
                    absolute: Double = 2e-3, relative: Double = 2e-2, _ label: String,
                    sourceLocation: SourceLocation = #_sourceLocation, loss: (Tensor) -> Double) {
    #expect(analytic.shape == tensor.shape, "\(label): gradient shape", sourceLocation: sourceLocation)
    let indices = probeIndices(tensor.count, samples: samples)
    let numeric = numericalGradient(of: tensor, at: indices, epsilon: epsilon, loss: loss)
    var failures = 0
    for (i, index) in indices.enumerated() {
        let a = Double(analytic.storage[index]), n = numeric[i]
        if abs(a - n) > absolute + relative * max(abs(a), abs(n)) {
            failures += 1
            if failures <= 3 {
                Issue.record("\(label)[\(index)]: analytic \(a) vs numeric \(n)", sourceLocation: sourceLocation)
            }
        }
    }
}

/// Expects the analytic gradient to match finite differences as a vector: `‖a − n‖ ≤ absolute + tolerance · max(‖a‖, ‖n‖)` over
/// the probed indices. For deep networks in Float, where single probes carry rounding noise and the occasional ReLU or
/// max-pool kink crossed by the step, but a wrong term (a missing path, a swapped parameter) moves the whole vector.
func expectGradientDirection(_ analytic: Tensor, matches tensor: Tensor, samples: Int = 32, epsilon: Float = 1e-3,
                             tolerance: Double = 0.05, absolute: Double = 1e-4, _ label: String,
                             sourceLocation: SourceLocation = #_sourceLocation, loss: (Tensor) -> Double) {
    #expect(analytic.shape == tensor.shape, "\(label): gradient shape", sourceLocation: sourceLocation)
    let indices = probeIndices(tensor.count, samples: samples)
    let numeric = numericalGradient(of: tensor, at: indices, epsilon: epsilon, loss: loss)
    let a = indices.map { Double(analytic.storage[$0]) }
    let difference = zip(a, numeric).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
    let scale = max(a.reduce(0) { $0 + $1 * $1 }.squareRoot(), numeric.reduce(0) { $0 + $1 * $1 }.squareRoot())
    #expect(scale > 0 && difference <= absolute + tolerance * scale,
            "\(label): ‖analytic − numeric‖ = \(difference), ‖gradient‖ = \(scale)", sourceLocation: sourceLocation)
}
