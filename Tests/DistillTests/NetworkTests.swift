import Foundation
import Testing
@testable import Distill

@Suite("Networks")
struct NetworkTests {
    /// Every norm and pooling. Full parameter checks use the smooth sigmoid: a ReLU or max-pool kink crossed by
    /// the finite-difference step biases the numeric derivative of a weight shared by a whole channel (the
    /// analytic value is the limit as the step shrinks; kinks are checked layer by layer and through the input).
    static let variants: [(NormKind, Activation, Pooling)] = [
        (.instance, .sigmoid, .avg), (.batch, .sigmoid, .avg), (.layer, .sigmoid, .avg), (.group(2), .sigmoid, .none),
        (.none, .sigmoid, .max), (.instance, .relu, .avg), (.batch, .leakyrelu, .max),
    ]

    @Test(arguments: 0..<variants.count)
    func convNetGradientsToInputAndParameters(variant: Int) {
        let (norm, activation, pooling) = Self.variants[variant]
        var rng = RandomSource(seed: 11)
        let configuration = ConvNet.Configuration(imageShape: [2, 8, 8], classCount: 3, depth: pooling == .none ? 1 : 2,
                                                  width: 4, norm: norm, activation: activation, pooling: pooling)
        let net = ConvNet(configuration, using: &rng)
        let x = Tensor.normal([3, 2, 8, 8], using: &rng)
        let labels = [0, 2, 1]
        let step: Float = activation == .sigmoid ? 1e-2 : 1e-3  // kinked nets need a step small enough to cross few kinks
        // Loss with respect to the input image, through the classifier.
        let (logits, trace) = net.forward(x, training: true, untilEmbedding: false)
        let dLogits = Loss.crossEntropy(logits: logits, labels: labels).gradient
        let grads = net.backward(trace, outputGradient: dLogits, input: true, parameters: true)
        func loss(_ net: ConvNet, _ x: Tensor) -> Double {
            Loss.crossEntropy(logits: net.forward(x, training: true, untilEmbedding: false).output, labels: labels).loss
        }
        expectGradient(grads.input!, matches: x, samples: 24, epsilon: step, relative: 3e-2, "\(norm) loss dx") { loss(net, $0) }
        let parameters = net.parameters
        for (index, parameter) in parameters.enumerated() where activation == .sigmoid {
            expectGradient(grads.parameters[index], matches: parameter, samples: 12, epsilon: 1e-2, relative: 3e-2, "\(norm) param \(index)") {
                var probe = net
                var all = parameters
                all[index] = $0
                probe.parameters = all
                return loss(probe, x)
            }
        }
        // The embedding with respect to the input image.
        let (features, embedTrace) = net.forward(x, training: true, untilEmbedding: true)
        let r = Tensor.normal(features.shape, using: &rng)
        let embedGrads = net.backward(embedTrace, outputGradient: r, input: true, parameters: false)
        expectGradient(embedGrads.input!, matches: x, samples: 24, epsilon: step, relative: 3e-2, "\(norm) embed dx") {
            weightedSum(net.embed($0, training: true), r)
        }
    }

    @Test func convNetShapesFollowTheReference() {
        var rng = RandomSource(seed: 12)
        let mnist = ConvNet(.init(imageShape: [1, 28, 28], classCount: 10), using: &rng)
        #expect(mnist.featureShape == [128, 4, 4])
        #expect(mnist.convolutions[0].padding == 3)
        let cifar = ConvNet(.init(imageShape: [3, 32, 32], classCount: 10), using: &rng)
        #expect(cifar.featureCount == 2048)
        let digits = ConvNet(.init(imageShape: [1, 8, 8], classCount: 10), using: &rng)
        #expect(digits.featureShape == [128, 1, 1])
        #expect(digits.embed(Tensor(shape: [2, 1, 8, 8])).shape == [2, 128])
    }

    @Test(arguments: ["convnet-mnist", "convnet-rgb-batchnorm-max"])
    func goldenForward(name: String) throws {
        let directory = try #require(Bundle.module.resourceURL?.appendingPathComponent("Fixtures/\(name)")).path
        let spec = try String(contentsOfFile: directory + "/spec.txt", encoding: .utf8)
        var fields: [String: String] = [:]
        for line in spec.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        let input = try NPY.read(directory + "/input.npy")
        let configuration = ConvNet.Configuration(
            imageShape: Array(input.shape.dropFirst()), classCount: Int(fields["classes"]!)!, depth: Int(fields["depth"]!)!,
            width: Int(fields["width"]!)!, norm: NormKind(fields["norm"]!)!, activation: Activation(rawValue: fields["activation"]!)!,
            pooling: Pooling(fields["pooling"]!)!)
        var rng = RandomSource(seed: 0)
        var net = ConvNet(configuration, using: &rng)
        var parameters = net.parameters
        for index in parameters.indices {
            let array = try NPY.read(directory + "/param\(index).npy")
            #expect(array.values.count == parameters[index].count, "parameter \(index) size")
            parameters[index] = Tensor(shape: parameters[index].shape, storage: array.values)
        }
        net.parameters = parameters
        let x = Tensor(shape: input.shape, storage: input.values)
        for (file, output) in [("logits", net(x)), ("embedding", net.embed(x))] {
            let expected = try NPY.read(directory + "/\(file).npy")
            #expect(expected.shape == output.shape)
            let worst = zip(expected.values, output.storage).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-3, "\(name) \(file): largest difference \(worst)")
        }
    }
}

@Suite("Training", .serialized)
struct TrainingTests {
    @Test func convNetLearnsDigits() throws {
        let splits = try DatasetStore.loadDigits()
        var rng = RandomSource(seed: 21)
        var net = ConvNet(.init(imageShape: [1, 8, 8], classCount: 10, width: 32), using: &rng)
        Trainer.train(&net, on: splits.train, options: TrainingOptions(epochs: 12, batchSize: 64, learningRate: 0.05, seed: 3))
        let result = Trainer.evaluate(net, on: splits.test)
        #expect(result.accuracy >= 0.95, "digits test accuracy \(result.accuracy)")
        #expect(result.confusion.joined().reduce(0, +) == splits.test.count)
        #expect(result.perClassAccuracy.count == 10)
    }

    @Test func sameSeedAndThreadsGiveIdenticalTraining() throws {
        let splits = try DatasetStore.loadDigits()
        let subset = splits.train.subset(Array(0..<200))
        func run() -> [Float] {
            var rng = RandomSource(seed: 5)
            var net = ConvNet(.init(imageShape: [1, 8, 8], classCount: 10, width: 16), using: &rng)
            Trainer.train(&net, on: subset, options: TrainingOptions(epochs: 2, batchSize: 32, seed: 9))
            return net.parameters.flatMap(\.storage)
        }
        #expect(run() == run())
    }

    @Test func optimizersDescend() {
        // Minimise ‖p − t‖² with both optimizers.
        var rng = RandomSource(seed: 22)
        let target = Tensor.normal([10], using: &rng)
        var optimizers: [any Optimizer] = [SGD(learningRate: 0.1, momentum: 0.9), Adam(learningRate: 0.05)]
        for index in optimizers.indices {
            var parameters = [Tensor(shape: [10])]
            for _ in 0..<300 {
                let gradient = Loss.meanSquaredError(parameters[0], target: target).gradient
                optimizers[index].step(&parameters, gradients: [gradient])
            }
            #expect(Loss.meanSquaredError(parameters[0], target: target).loss < 1e-4)
        }
    }
}
