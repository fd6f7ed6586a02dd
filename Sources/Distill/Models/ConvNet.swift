/// The ConvNet family of the dataset distillation literature: `depth` blocks of
/// conv 3×3 (width channels) → norm → activation → 2×2 pooling, then a linear classifier.
///
/// Defaults are the reference ones: depth 3, width 128, instance norm, ReLU, average pooling. A 28×28 one-channel
/// input gets padding 3 on the first conv so that the maps go 32→16→8→4; 8×8 digits go 8→4→2→1.
public struct ConvNet: Network {
    /// The architecture.
    public struct Configuration: Sendable, Codable, Equatable {
        public var depth = 3
        public var width = 128
        public var norm = NormKind.instance
        public var activation = Activation.relu
        public var pooling = Pooling.avg
        /// `[C, H, W]` of the input.
        public var imageShape: [Int]
        public var classCount: Int

        public init(imageShape: [Int], classCount: Int, depth: Int = 3, width: Int = 128, norm: NormKind = .instance,
                    activation: Activation = .relu, pooling: Pooling = .avg) {
            self.imageShape = imageShape
            self.classCount = classCount
            self.depth = depth
            self.width = width
            self.norm = norm
            self.activation = activation
            self.pooling = pooling
        }
    }

    public let configuration: Configuration
    public var convolutions: [Conv2d]
    public var norms: [Norm]
    public var classifier: Linear
    public let featureCount: Int
    /// `[C, H, W]` of the last block's output.
    public let featureShape: [Int]

    /// Why `configuration` cannot be built (nil: it can): maps that vanish before the last block, or group norm
    /// whose groups do not divide the width.
    public static func problem(_ configuration: Configuration) -> String? {
        if case let .group(groups) = configuration.norm, configuration.width % groups != 0 {
            return "group norm with \(groups) groups needs a width divisible by \(groups), got \(configuration.width)"
        }
        guard configuration.imageShape.count == 3, configuration.depth > 0, configuration.width > 0 else {
            return "needs [C, H, W] images, a positive depth and width"
        }
        var (height, width) = (configuration.imageShape[1], configuration.imageShape[2])
        for block in 0..<configuration.depth {
            let padding = block == 0 && configuration.imageShape[0] == 1 && height == 28 ? 3 : 1
            height += 2 * padding - 2
            width += 2 * padding - 2
            if configuration.pooling != .none { (height, width) = (height / 2, width / 2) }
            if height <= 0 || width <= 0 {
                return "depth \(configuration.depth) is too deep for \(configuration.imageShape[1])×\(configuration.imageShape[2]) images with pooling"
            }
        }
        return nil
    }

    /// A freshly initialised network (PyTorch default initialisation).
    public init(_ configuration: Configuration, using rng: inout RandomSource) {
        self.configuration = configuration
        var (channels, height, width) = (configuration.imageShape[0], configuration.imageShape[1], configuration.imageShape[2])
        convolutions = []
        norms = []
        for block in 0..<configuration.depth {
            let padding = block == 0 && channels == 1 && height == 28 ? 3 : 1
            convolutions.append(Conv2d(inputChannels: channels, outputChannels: configuration.width, kernelSize: 3,
                                       padding: padding, using: &rng))
            channels = configuration.width
            height += 2 * padding - 2
            width += 2 * padding - 2
            norms.append(Norm(configuration.norm, channels: channels, height: height, width: width))
            if configuration.pooling != .none {
                height /= 2
                width /= 2
            }
        }
        precondition(height > 0 && width > 0, "image \(configuration.imageShape) is too small for depth \(configuration.depth)")
        featureShape = [channels, height, width]
        featureCount = channels * height * width
        classifier = Linear(inputFeatures: featureCount, outputFeatures: configuration.classCount, using: &rng)
    }

    /// What each block computed.
    public struct Trace: Sendable {
        var inputs: [Tensor] = []          // block inputs (conv inputs)
        var convOutputs: [Tensor] = []     // norm inputs
        var statistics: [Norm.Statistics] = []
        var normOutputs: [Tensor] = []     // activation inputs
        var features = Tensor(shape: [0])  // flattened last block output
        var training = false
        var untilEmbedding = false
    }

    public func forward(_ x: Tensor, training: Bool, untilEmbedding: Bool) -> (output: Tensor, trace: Trace) {
        precondition(Array(x.shape.dropFirst()) == configuration.imageShape,
                     "ConvNet expects images \(configuration.imageShape), got \(Array(x.shape.dropFirst()))")
        var trace = Trace(training: training, untilEmbedding: untilEmbedding)
        var h = x
        for block in 0..<configuration.depth {
            trace.inputs.append(h)
            let z = convolutions[block](h)
            let (normalized, stats) = norms[block].forward(z, training: training)
            let activated = configuration.activation.forward(normalized)
            h = configuration.pooling.forward(activated)
            trace.convOutputs.append(z)
            trace.statistics.append(stats)
            trace.normOutputs.append(normalized)
        }
        let features = h.reshaped([x.shape[0], featureCount])
        trace.features = features
        return (untilEmbedding ? features : classifier(features), trace)
    }

    public func backward(_ trace: Trace, outputGradient: Tensor, input needInput: Bool,
                         parameters needParameters: Bool) -> (input: Tensor?, parameters: [Tensor]) {
        let n = trace.features.shape[0]
        var classifierGradients: [Tensor] = []
        var g: Tensor
        if trace.untilEmbedding {
            g = outputGradient
        } else {
            let grads = classifier.backward(trace.features, outputGradient: outputGradient)
            g = grads.input
            classifierGradients = [grads.weight, grads.bias]
        }
        g = g.reshaped([n] + featureShape)
        var blockGradients: [[Tensor]] = []
        for block in stride(from: configuration.depth - 1, through: 0, by: -1) {
            let activated = configuration.pooling == .max ? configuration.activation.forward(trace.normOutputs[block])
                                                          : trace.normOutputs[block]
            g = configuration.pooling.backward(activated, outputGradient: g)
            g = configuration.activation.backward(trace.normOutputs[block], outputGradient: g)
            let normGrads = norms[block].backward(trace.convOutputs[block], statistics: trace.statistics[block],
                                                  outputGradient: g, training: trace.training)
            let convGrads = convolutions[block].backward(trace.inputs[block], outputGradient: normGrads.input,
                                                         input: block > 0 || needInput, parameters: needParameters)
            if needParameters {
                var grads = [convGrads.weight!, convGrads.bias!]
                if configuration.norm != .none { grads += [normGrads.gamma, normGrads.beta] }
                blockGradients.append(grads)
            }
            if let dx = convGrads.input { g = dx }
        }
        let parameterGradients = needParameters ? blockGradients.reversed().flatMap { $0 } + classifierGradients : []
        return (needInput ? g : nil, parameterGradients)
    }

    public var parameters: [Tensor] {
        get {
            var all: [Tensor] = []
            for block in 0..<configuration.depth {
                all += [convolutions[block].weight, convolutions[block].bias]
                if configuration.norm != .none { all += [norms[block].gamma, norms[block].beta] }
            }
            return all + [classifier.weight, classifier.bias]
        }
        set {
            var index = 0
            func take() -> Tensor { defer { index += 1 }; return newValue[index] }
            for block in 0..<configuration.depth {
                convolutions[block].weight = take()
                convolutions[block].bias = take()
                if configuration.norm != .none {
                    norms[block].gamma = take()
                    norms[block].beta = take()
                }
            }
            classifier.weight = take()
            classifier.bias = take()
        }
    }

    public mutating func absorb(_ trace: Trace) {
        guard configuration.norm == .batch, trace.training else { return }
        for block in 0..<configuration.depth {
            norms[block].updateRunningStatistics(trace.convOutputs[block], statistics: trace.statistics[block])
        }
    }
}
