import Foundation
import Testing
@testable import Distill

@Suite("Architectures")
struct ArchitectureTests {
    /// Every layer-list architecture at a small width, against central differences of the cross-entropy (training
    /// mode, so batch norm uses batch statistics), compared as vectors over the probes (`expectGradientDirection`).
    /// As for the ConvNet, the normalised networks' parameters are checked on a smooth variant (sigmoid for ReLU,
    /// average for max pooling: a kink crossed by the step biases the numeric derivative of a shared weight; the
    /// analytic value is the limit), and the input gradient of the network itself with a small step.
    static let checked: [(Architecture, [Int], Double)] = [
        (.mlp, [1, 6, 6], 1), (.lenet, [1, 28, 28], 1), (.alexnet, [1, 28, 28], 1.0 / 32),
        (.vgg11, [1, 60, 60], 1.0 / 32), (.vgg11BN, [3, 64, 64], 1.0 / 32), (.resnet18, [1, 28, 28], 1.0 / 16),
        (.resnet18BN, [1, 28, 28], 1.0 / 16), (.resnet18BNAP, [1, 28, 28], 1.0 / 16),
    ]

    @Test(arguments: 0..<checked.count)
    func gradientsToInputAndParameters(index: Int) throws {
        let (architecture, shape, multiplier) = Self.checked[index]
        let name = architecture.rawValue
        let labels = [2, 0, 1]
        func loss(_ net: SequentialNetwork, _ x: Tensor) -> Double {
            Loss.crossEntropy(logits: net.forward(x, training: true, untilEmbedding: false).output, labels: labels).loss
        }
        // Networks without normalisation keep usable gradients with ReLU; through 8–17 normalised layers the
        // parameters are checked with the smooth activation.
        let normalised = ![.mlp, .lenet, .alexnet].contains(architecture)
        for activation in normalised ? [Activation.sigmoid, .relu] : [.relu] {
            var rng = RandomSource(seed: 41 + UInt64(index))
            let net = try architecture.network(imageShape: shape, classCount: 3, widthMultiplier: multiplier,
                                               activation: activation, maxPooling: activation == .relu ? .max : .avg,
                                               using: &rng)
            let x = Tensor.normal([3] + shape, using: &rng)
            let step: Float = activation == .relu ? 1e-3 : 3e-3
            let (logits, trace) = net.forward(x, training: true, untilEmbedding: false)
            let grads = net.backward(trace, outputGradient: Loss.crossEntropy(logits: logits, labels: labels).gradient,
                                     input: true, parameters: true)
            let label = "\(name) (\(activation))"
            expectGradientDirection(grads.input!, matches: x, epsilon: step, "\(label) dx") { loss(net, $0) }
            let parameters = net.parameters
            #expect(grads.parameters.count == parameters.count)
            #expect(zip(grads.parameters, parameters).allSatisfy { $0.shape == $1.shape }, "\(label): gradient shapes")
            for (position, parameter) in parameters.enumerated() where activation == .sigmoid || !normalised {
                func probed(_ value: Tensor) -> Double {
                    var probe = net
                    var all = parameters
                    all[position] = value
                    probe.parameters = all
                    return loss(probe, x)
                }
                if normalised {
                    expectGradientDirection(grads.parameters[position], matches: parameter, samples: 12, epsilon: step,
                                            "\(label) parameter \(position)", loss: probed)
                } else {
                    expectGradient(grads.parameters[position], matches: parameter, samples: 4, epsilon: step, relative: 5e-2,
                                   "\(label) parameter \(position)", loss: probed)
                }
            }
            // The embedding (what distribution matching compares) with respect to the input.
            let (features, embedTrace) = net.forward(x, training: true, untilEmbedding: true)
            #expect(features.shape == [3, net.featureCount])
            let r = Tensor.normal(features.shape, using: &rng)
            let embedGrads = net.backward(embedTrace, outputGradient: r, input: true, parameters: false)
            // A sum over hundreds of Float features: the smooth variant takes a larger step to stay above rounding.
            expectGradientDirection(embedGrads.input!, matches: x, epsilon: activation == .relu ? step : 1e-2,
                                    "\(label) embed dx") {
                weightedSum(net.embed($0, training: true), r)
            }
        }
    }

    /// Parameter and feature counts of the reference networks (`networks.py`; torchvision-style ResNet-18 on CIFAR
    /// has 11,173,962 parameters, VGG-11 with batch norm and one linear classifier 9,231,114).
    @Test func shapesAndSizesFollowTheReference() throws {
        var rng = RandomSource(seed: 3)
        func build(_ a: Architecture, _ shape: [Int]) throws -> SequentialNetwork {
            try a.network(imageShape: shape, classCount: 10, using: &rng)
        }
        func count(_ net: SequentialNetwork) -> Int { net.parameters.reduce(0) { $0 + $1.count } }
        let mnist = [1, 28, 28], cifar = [3, 32, 32]
        #expect(try build(.mlp, mnist).featureCount == 128)
        #expect(try count(build(.mlp, mnist)) == 784 * 128 + 128 + 128 * 128 + 128 + 1290)
        #expect(try build(.lenet, mnist).body.count == 11)
        #expect(try count(build(.lenet, cifar)) == 62006)  // the classic LeNet-5 on 32×32×3
        #expect(try build(.alexnet, mnist).featureCount == 192 * 4 * 4)
        #expect(try build(.vgg11, mnist).featureCount == 512)
        #expect(try count(build(.vgg11BN, cifar)) == 9_231_114)
        #expect(try count(build(.resnet18BN, cifar)) == 11_173_962)
        #expect(try count(build(.resnet18BN, mnist)) == 11_173_962 - 2 * 9 * 64)
        #expect(try build(.resnet18, mnist).featureCount == 512)
        #expect(try build(.resnet18BNAP, mnist).featureCount == 512 * 3 * 3)
        #expect(try build(.resnet18BNAP, cifar).featureCount == 512 * 4 * 4)
        let logits = try build(.resnet18BN, mnist)(Tensor(shape: [2, 1, 28, 28]))
        #expect(logits.shape == [2, 10])
    }

    @Test func tooSmallInputsAndUnknownNamesAreErrors() {
        var rng = RandomSource(seed: 4)
        #expect(throws: ArchitectureError.self) { try Architecture.vgg11.network(imageShape: [1, 8, 8], classCount: 10, using: &rng) }
        do {
            _ = try Architecture.lenet.network(imageShape: [1, 8, 8], classCount: 10, using: &rng)
            Issue.record("LeNet on 8×8 should not build")
        } catch {
            #expect(error.description.contains("lenet") && error.description.contains("too small"))
        }
        #expect(Architecture(name: "ResNet18BN_AP") == .resnet18BNAP)
        #expect(Architecture(name: "VGG11BN") == .vgg11BN)
        #expect(Architecture(name: "resnet18-bn") == .resnet18BN)
        #expect(Architecture(name: "ConvNet") == .convnet)
        #expect(Architecture(name: "resnet50") == nil)
    }

    /// The stride-2 convolution as stride 1 then every other pixel: checked against a direct strided convolution.
    @Test func subsampledConvolutionIsTheStridedOne() {
        var rng = RandomSource(seed: 5)
        let conv = Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1, using: &rng)
        let x = Tensor.normal([1, 2, 7, 7], using: &rng)
        let y = SequentialNetwork.subsample(conv(x))
        #expect(y.shape == [1, 3, 4, 4])
        for o in 0..<3 {
            for i in 0..<4 {
                for j in 0..<4 {
                    var sum = Double(conv.bias.storage[o])
                    for c in 0..<2 {
                        for dy in -1...1 {
                            for dx in -1...1 {
                                let (yy, xx) = (2 * i + dy, 2 * j + dx)
                                guard (0..<7).contains(yy), (0..<7).contains(xx) else { continue }
                                sum += Double(conv.weight.storage[((o * 2 + c) * 3 + dy + 1) * 3 + dx + 1])
                                    * Double(x.storage[(c * 7 + yy) * 7 + xx])
                            }
                        }
                    }
                    #expect(abs(Double(y.storage[(o * 4 + i) * 4 + j]) - sum) < 1e-4)
                }
            }
        }
    }

    /// Batch norm's running statistics move during training, inside residual blocks (main path and shortcut) too,
    /// and are used in evaluation.
    @Test func batchNormNetworksAbsorbRunningStatistics() throws {
        var rng = RandomSource(seed: 6)
        var net = try Architecture.resnet18BN.network(imageShape: [1, 8, 8], classCount: 3, widthMultiplier: 1.0 / 16, using: &rng)
        /// Running means of every batch norm, in forward order (main path before shortcut).
        func runningMeans(_ layers: [SequentialNetwork.Layer]) -> [[Float]] {
            layers.flatMap { layer -> [[Float]] in
                switch layer {
                case let .norm(norm): [norm.runningMean.storage]
                case let .residual(main, shortcut, _): runningMeans(main) + runningMeans(shortcut)
                default: []
                }
            }
        }
        let x = Tensor.normal([4, 1, 8, 8], mean: 2, std: 3, using: &rng)
        let before = (logits: net(x), means: runningMeans(net.body))
        #expect(before.means.count == 1 + 8 * 2 + 3)  // the stem, two per block, three shortcuts
        let (_, trace) = net.forward(x, training: true, untilEmbedding: false)
        net.absorb(trace)
        let after = runningMeans(net.body)
        for (index, (old, new)) in zip(before.means, after).enumerated() {
            #expect(old != new, "batch norm \(index) kept its running mean")
        }
        #expect(net(x) != before.logits)
    }
}
