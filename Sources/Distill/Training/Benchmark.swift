import Foundation

/// Throughput measurements for `feddistill bench`: the machine's sgemm rate on the ConvNet-3 shapes and the
/// ConvNet's forward and backward passes, reported as images/s and achieved GFLOP/s.
public enum ComputeBenchmark {
    /// One measured case.
    public struct Case: Sendable, Codable {
        public var name: String
        public var seconds: Double
        public var imagesPerSecond: Double
        public var gflops: Double
    }

    /// What a pass computes, for FLOP accounting.
    public enum Pass: String, Sendable, CaseIterable {
        case forward, backwardToParameters = "forward+backward(params)", backwardToInput = "forward+backward(input)"
    }

    /// The GEMM shapes `(m, n, k)` of a ConvNet's convolutions and classifier forward pass on a batch.
    public static func forwardGEMMs(_ configuration: ConvNet.Configuration, batch: Int) -> [(m: Int, n: Int, k: Int)] {
        var rng = RandomSource(seed: 0)
        let net = ConvNet(configuration, using: &rng)
        var shape = [batch] + configuration.imageShape
        var gemms: [(Int, Int, Int)] = []
        for conv in net.convolutions {
            let out = conv.outputShape(shape)
            gemms.append((conv.outputChannels, batch * out[2] * out[3], conv.inputChannels * conv.kernelSize * conv.kernelSize))
            shape = configuration.pooling.outputShape(out)
        }
        gemms.append((batch, configuration.classCount, net.featureCount))
        return gemms
    }

    /// FLOPs of a pass (multiply-adds ×2 of the GEMMs; the first conv needs no input gradient).
    public static func flops(_ configuration: ConvNet.Configuration, batch: Int, pass: Pass) -> Double {
        let gemms = forwardGEMMs(configuration, batch: batch).map { 2 * Double($0.m) * Double($0.n) * Double($0.k) }
        let forward = gemms.reduce(0, +)
        switch pass {
        case .forward: return forward
        case .backwardToParameters: return forward + forward + (forward - gemms[0])  // dW for all, dX except first
        case .backwardToInput: return forward + forward  // dX for all layers, no dW
        }
    }

    /// Best time of `repeats` runs of `body` after one warm-up run.
    public static func time(repeats: Int, _ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    /// The sgemm rate in GFLOP/s on the convolution GEMM shapes of `configuration` (batch `batch`), with the
    /// same work split FedDistill uses: each worker multiplies its own contiguous block of columns on one thread.
    public static func sgemmRate(_ configuration: ConvNet.Configuration, batch: Int, repeats: Int = 3) -> Double {
        let shapes = forwardGEMMs(configuration, batch: batch).dropLast()  // convolutions only
        var totalFlops = 0.0, totalSeconds = 0.0
        for (m, n, k) in shapes {
            var rng = RandomSource(seed: 1)
            let a = Tensor.uniform([m, k], using: &rng).storage
            let b = Tensor.uniform([k, n], using: &rng).storage
            var c = [Float](repeating: 0, count: m * n)
            let seconds = time(repeats: repeats) {
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        c.withUnsafeMutableBufferPointer { cp in
                            Parallel.forRanges(Parallel.threads) { _, range in
                                for w in range {
                                    let lo = w * n / Parallel.threads, hi = (w + 1) * n / Parallel.threads
                                    BLAS.gemm(m: m, n: hi - lo, k: k, a: ap.baseAddress!, b: bp.baseAddress! + lo,
                                              c: cp.baseAddress! + lo, ldb: n, ldc: n)
                                }
                            }
                        }
                    }
                }
            }
            totalFlops += 2 * Double(m) * Double(n) * Double(k)
            totalSeconds += seconds
        }
        return totalFlops / totalSeconds / 1e9
    }

    /// Best time of `pass` of `net` on the batch `x` (labels cycle through the classes).
    static func time<Net: Network>(_ pass: Pass, of net: Net, on x: Tensor, classCount: Int, repeats: Int) -> Double {
        let labels = (0..<x.shape[0]).map { $0 % classCount }
        return time(repeats: repeats) {
            switch pass {
            case .forward:
                _ = net(x)
            case .backwardToParameters, .backwardToInput:
                let (logits, trace) = net.forward(x, training: true, untilEmbedding: false)
                let gradient = Loss.crossEntropy(logits: logits, labels: labels).gradient
                _ = net.backward(trace, outputGradient: gradient, input: pass == .backwardToInput,
                                 parameters: pass == .backwardToParameters)
            }
        }
    }

    /// Measures one pass of a freshly initialised ConvNet on a random batch.
    public static func measure(_ configuration: ConvNet.Configuration, batch: Int, pass: Pass, repeats: Int = 3) -> Case {
        var rng = RandomSource(seed: 2)
        let net = ConvNet(configuration, using: &rng)
        let x = Tensor.normal([batch] + configuration.imageShape, using: &rng)
        let seconds = time(pass, of: net, on: x, classCount: configuration.classCount, repeats: repeats)
        let shape = configuration.imageShape.map(String.init).joined(separator: "x")
        return Case(name: "convnet3-w\(configuration.width) \(shape) b\(batch) \(pass.rawValue)", seconds: seconds,
                    imagesPerSecond: Double(batch) / seconds,
                    gflops: flops(configuration, batch: batch, pass: pass) / seconds / 1e9)
    }

    /// Measures one pass of a freshly initialised architecture (reference widths) on a random batch; GFLOP/s counts the
    /// convolutions' and linear layers' multiply-adds as `SequentialNetwork.forwardFLOPs` does (the backward pass to the
    /// parameters as 3× the forward's, less the first layer's input gradient).
    public static func measure(_ architecture: Architecture, imageShape: [Int], batch: Int, pass: Pass,
                               repeats: Int = 3) throws(ArchitectureError) -> Case {
        var rng = RandomSource(seed: 2)
        let net = try architecture.network(imageShape: imageShape, classCount: 10, using: &rng)
        let x = Tensor.normal([batch] + imageShape, using: &rng)
        let seconds = time(pass, of: net, on: x, classCount: 10, repeats: repeats)
        let (forward, first) = net.forwardFLOPs()
        let perImage = switch pass {
        case .forward: forward
        case .backwardToParameters: 3 * forward - first
        case .backwardToInput: 2 * forward
        }
        let shape = imageShape.map(String.init).joined(separator: "x")
        return Case(name: "\(architecture.rawValue) \(shape) b\(batch) \(pass.rawValue)", seconds: seconds,
                    imagesPerSecond: Double(batch) / seconds, gflops: perImage * Double(batch) / seconds / 1e9)
    }
}
