import Testing
@testable import Distill

@Suite("Layer gradients against finite differences")
struct LayerGradientTests {
    /// Same-size convolutions (2p = k − 1) take im2col's shifted-copy path, the others the general one.
    @Test(arguments: [(batch: 2, cin: 3, cout: 4, size: 6, kernel: 3, padding: 1), (batch: 3, cin: 1, cout: 2, size: 5, kernel: 3, padding: 3),
                      (batch: 1, cin: 2, cout: 3, size: 4, kernel: 3, padding: 0), (batch: 2, cin: 2, cout: 2, size: 5, kernel: 5, padding: 2)])
    func conv2d(batch: Int, cin: Int, cout: Int, size: Int, kernel: Int, padding: Int) {
        var rng = RandomSource(seed: 1)
        let conv = Conv2d(inputChannels: cin, outputChannels: cout, kernelSize: kernel, padding: padding, using: &rng)
        let x = Tensor.normal([batch, cin, size, size], using: &rng)
        let r = Tensor.normal(conv.outputShape(x.shape), using: &rng)
        let grads = conv.backward(x, outputGradient: r)
        expectGradient(grads.input!, matches: x, "conv dx") { weightedSum(conv($0), r) }
        expectGradient(grads.weight!, matches: conv.weight, "conv dW") {
            weightedSum(Conv2d(weight: $0, bias: conv.bias, padding: padding)(x), r)
        }
        expectGradient(grads.bias!, matches: conv.bias, "conv db") {
            weightedSum(Conv2d(weight: conv.weight, bias: $0, padding: padding)(x), r)
        }
    }

    @Test func convMatchesDirectComputation() {
        var rng = RandomSource(seed: 2)
        let conv = Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1, using: &rng)
        let x = Tensor.normal([2, 2, 5, 4], using: &rng)
        let y = conv(x)
        for b in 0..<2 {
            for o in 0..<3 {
                for oy in 0..<5 {
                    for ox in 0..<4 {
                        var sum = Double(conv.bias.storage[o])
                        for c in 0..<2 {
                            for ky in 0..<3 {
                                for kx in 0..<3 {
                                    let (iy, ix) = (oy + ky - 1, ox + kx - 1)
                                    guard iy >= 0, iy < 5, ix >= 0, ix < 4 else { continue }
                                    sum += Double(conv.weight.storage[((o * 2 + c) * 3 + ky) * 3 + kx])
                                        * Double(x.storage[((b * 2 + c) * 5 + iy) * 4 + ix])
                                }
                            }
                        }
                        #expect(abs(Double(y.storage[((b * 3 + o) * 5 + oy) * 4 + ox]) - sum) < 1e-4)
                    }
                }
            }
        }
    }

    @Test func linear() {
        var rng = RandomSource(seed: 3)
        let layer = Linear(inputFeatures: 5, outputFeatures: 3, using: &rng)
        let x = Tensor.normal([4, 5], using: &rng)
        let r = Tensor.normal([4, 3], using: &rng)
        let grads = layer.backward(x, outputGradient: r)
        expectGradient(grads.input, matches: x, "linear dx") { weightedSum(layer($0), r) }
        expectGradient(grads.weight, matches: layer.weight, "linear dW") { weightedSum(Linear(weight: $0, bias: layer.bias)(x), r) }
        expectGradient(grads.bias, matches: layer.bias, "linear db") { weightedSum(Linear(weight: layer.weight, bias: $0)(x), r) }
    }

    @Test(arguments: [NormKind.instance, .group(2), .layer, .batch])
    func norm(kind: NormKind) {
        for training in kind == .batch ? [true, false] : [true] {
            var rng = RandomSource(seed: 4)
            var norm = Norm(kind, channels: 4, height: 3, width: 3)
            norm.gamma = .normal(norm.gamma.shape, mean: 1, std: 0.3, using: &rng)
            norm.beta = .normal(norm.beta.shape, std: 0.3, using: &rng)
            if kind == .batch {
                norm.runningMean = .normal([4], std: 0.2, using: &rng)
                norm.runningVariance = .uniform([4], low: 0.5, high: 1.5, using: &rng)
            }
            let x = Tensor.normal([3, 4, 3, 3], mean: 0.5, std: 1.5, using: &rng)
            let r = Tensor.normal(x.shape, using: &rng)
            let (_, stats) = norm.forward(x, training: training)
            let grads = norm.backward(x, statistics: stats, outputGradient: r, training: training)
            let frozen = norm
            expectGradient(grads.input, matches: x, "\(kind) dx") { weightedSum(frozen.forward($0, training: training).output, r) }
            expectGradient(grads.gamma, matches: norm.gamma, "\(kind) dγ") {
                var n = frozen; n.gamma = $0; return weightedSum(n.forward(x, training: training).output, r)
            }
            expectGradient(grads.beta, matches: norm.beta, "\(kind) dβ") {
                var n = frozen; n.beta = $0; return weightedSum(n.forward(x, training: training).output, r)
            }
        }
    }

    @Test(arguments: Activation.allCases)
    func activation(_ activation: Activation) {
        var rng = RandomSource(seed: 5)
        var x = Tensor.normal([2, 3, 4, 4], using: &rng)
        for i in x.storage.indices where abs(x.storage[i]) < 0.05 { x.storage[i] = 0.3 }  // stay off the kink
        let r = Tensor.normal(x.shape, using: &rng)
        expectGradient(activation.backward(x, outputGradient: r), matches: x, epsilon: 1e-3, "\(activation)") {
            weightedSum(activation.forward($0), r)
        }
    }

    @Test(arguments: [Pooling.avg, .max])
    func pooling(_ pooling: Pooling) {
        var rng = RandomSource(seed: 6)
        let x = Tensor.normal([2, 2, 5, 4], using: &rng)  // odd height: last row dropped
        let r = Tensor.normal(pooling.outputShape(x.shape), using: &rng)
        expectGradient(pooling.backward(x, outputGradient: r), matches: x, epsilon: 1e-3, "\(pooling)") {
            weightedSum(pooling.forward($0), r)
        }
    }

    @Test func crossEntropyHardAndSoft() {
        var rng = RandomSource(seed: 8)
        let logits = Tensor.normal([4, 5], std: 2, using: &rng)
        let labels = [0, 3, 4, 1]
        expectGradient(Loss.crossEntropy(logits: logits, labels: labels).gradient, matches: logits, "CE hard") {
            Loss.crossEntropy(logits: $0, labels: labels).loss
        }
        var soft = Tensor.uniform([4, 5], low: 0, high: 1, using: &rng)
        for row in 0..<4 {
            let total = (0..<5).reduce(Float(0)) { $0 + soft.storage[row * 5 + $1] }
            for j in 0..<5 { soft.storage[row * 5 + j] /= total }
        }
        expectGradient(Loss.crossEntropy(logits: logits, softTargets: soft).gradient, matches: logits, "CE soft") {
            Loss.crossEntropy(logits: $0, softTargets: soft).loss
        }
        // Cross-entropy of a one-hot soft target equals the hard-label loss.
        var oneHot = Tensor(shape: [4, 5])
        for (row, label) in labels.enumerated() { oneHot.storage[row * 5 + label] = 1 }
        #expect(abs(Loss.crossEntropy(logits: logits, softTargets: oneHot).loss - Loss.crossEntropy(logits: logits, labels: labels).loss) < 1e-9)
    }

    @Test func meanSquaredError() {
        var rng = RandomSource(seed: 9)
        let x = Tensor.normal([3, 4], using: &rng), target = Tensor.normal([3, 4], using: &rng)
        expectGradient(Loss.meanSquaredError(x, target: target).gradient, matches: x, "MSE") {
            Loss.meanSquaredError($0, target: target).loss
        }
    }
}
