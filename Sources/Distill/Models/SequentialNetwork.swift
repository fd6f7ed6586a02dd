/// A network written as a list of layers (with residual blocks), then a linear classifier: the architectures other
/// than the ConvNet family — MLP, LeNet, AlexNet, VGG-11 and ResNet-18 as the dataset distillation reference builds them
/// (`Architecture`).
///
/// `forward` keeps each layer's input (and batch statistics) in the trace; `backward` walks the list in reverse.
/// Parameters are in forward order, a residual block's main path before its shortcut.
public struct SequentialNetwork: Network {
    /// One step of the body.
    public indirect enum Layer: Sendable {
        /// A convolution; `bias: false` keeps the bias at zero and out of `parameters` (ResNet's convolutions).
        case conv(Conv2d, bias: Bool)
        case norm(Norm)
        case activation(Activation)
        /// 2×2 pooling, stride 2.
        case pool(Pooling)
        /// Keeps rows and columns 0, 2, 4, …: after a stride-1 convolution with padding `(k−1)/2` this is the
        /// stride-2 convolution (ResNet's downsampling), at four times its arithmetic.
        case subsample
        /// Mean over each channel's map: `(N, C, H, W) → (N, C, 1, 1)`.
        case globalAverage
        /// `(N, …) → (N, features)`.
        case flatten
        case linear(Linear)
        /// `activation(main(x) + shortcut(x))`; an empty shortcut is the identity.
        case residual(main: [Layer], shortcut: [Layer], activation: Activation)
    }

    public var body: [Layer]
    public var classifier: Linear
    public let featureCount: Int
    /// `[C, H, W]` of the input.
    public let imageShape: [Int]

    public init(body: [Layer], classifier: Linear, featureCount: Int, imageShape: [Int]) {
        self.body = body
        self.classifier = classifier
        self.featureCount = featureCount
        self.imageShape = imageShape
    }

    /// What one layer saw.
    public struct LayerTrace: Sendable {
        var input: Tensor
        var statistics: Norm.Statistics?
        /// A residual block's pre-activation sum.
        var sum: Tensor?
        var main: [LayerTrace] = []
        var shortcut: [LayerTrace] = []
    }

    public struct Trace: Sendable {
        var layers: [LayerTrace] = []
        var features = Tensor(shape: [0])
        var training = false
        var untilEmbedding = false
    }

    public func forward(_ x: Tensor, training: Bool, untilEmbedding: Bool) -> (output: Tensor, trace: Trace) {
        precondition(Array(x.shape.dropFirst()) == imageShape,
                     "network expects images \(imageShape), got \(Array(x.shape.dropFirst()))")
        var trace = Trace(training: training, untilEmbedding: untilEmbedding)
        let (h, traces) = Self.run(body, x, training: training)
        trace.layers = traces
        let features = h.reshaped([x.shape[0], featureCount])
        trace.features = features
        return (untilEmbedding ? features : classifier(features), trace)
    }

    static func run(_ layers: [Layer], _ x: Tensor, training: Bool) -> (Tensor, [LayerTrace]) {
        var h = x
        var traces: [LayerTrace] = []
        traces.reserveCapacity(layers.count)
        for layer in layers {
            var trace = LayerTrace(input: h)
            switch layer {
            case let .conv(conv, _): h = conv(h)
            case let .norm(norm):
                let (y, stats) = norm.forward(h, training: training)
                h = y
                trace.statistics = stats
            case let .activation(activation): h = activation.forward(h)
            case let .pool(pooling): h = pooling.forward(h)
            case .subsample: h = subsample(h)
            case .globalAverage: h = globalAverage(h)
            case .flatten: h = h.reshaped([h.shape[0], h.count / max(h.shape[0], 1)])
            case let .linear(linear): h = linear(h)
            case let .residual(main, shortcut, activation):
                let (m, mainTraces) = run(main, h, training: training)
                let (s, shortcutTraces) = run(shortcut, h, training: training)
                var sum = m
                sum.add(s)
                trace.sum = sum
                trace.main = mainTraces
                trace.shortcut = shortcutTraces
                h = activation.forward(sum)
            }
            traces.append(trace)
        }
        return (h, traces)
    }

    public func backward(_ trace: Trace, outputGradient: Tensor, input needInput: Bool,
                         parameters needParameters: Bool) -> (input: Tensor?, parameters: [Tensor]) {
        var g: Tensor
        var classifierGradients: [Tensor] = []
        if trace.untilEmbedding {
            g = outputGradient
        } else {
            let grads = classifier.backward(trace.features, outputGradient: outputGradient)
            g = grads.input
            classifierGradients = [grads.weight, grads.bias]
        }
        let (dx, bodyGradients) = Self.back(body, trace.layers, g, training: trace.training, needInput: needInput,
                                            needParameters: needParameters)
        return (needInput ? dx : nil, needParameters ? bodyGradients + classifierGradients : [])
    }

    /// The input gradient (nil when the first layer need not compute it) and the parameter gradients in forward order.
    static func back(_ layers: [Layer], _ traces: [LayerTrace], _ outputGradient: Tensor, training: Bool,
                     needInput: Bool, needParameters: Bool) -> (Tensor, [Tensor]) {
        var g = outputGradient
        var reversedGradients: [[Tensor]] = []
        for index in stride(from: layers.count - 1, through: 0, by: -1) {
            let trace = traces[index]
            let inputNeeded = index > 0 || needInput
            switch layers[index] {
            case let .conv(conv, bias):
                let grads = conv.backward(trace.input, outputGradient: g, input: inputNeeded, parameters: needParameters)
                if needParameters { reversedGradients.append(bias ? [grads.weight!, grads.bias!] : [grads.weight!]) }
                if let dx = grads.input { g = dx }
            case let .norm(norm):
                let grads = norm.backward(trace.input, statistics: trace.statistics!, outputGradient: g, training: training)
                if needParameters { reversedGradients.append([grads.gamma, grads.beta]) }
                g = grads.input
            case let .activation(activation): g = activation.backward(trace.input, outputGradient: g)
            case let .pool(pooling): g = pooling.backward(trace.input, outputGradient: g)
            case .subsample: g = subsampleBackward(g, inputShape: trace.input.shape)
            case .globalAverage: g = globalAverageBackward(g, inputShape: trace.input.shape)
            case .flatten: g = g.reshaped(trace.input.shape)
            case let .linear(linear):
                let grads = linear.backward(trace.input, outputGradient: g)
                if needParameters { reversedGradients.append([grads.weight, grads.bias]) }
                g = grads.input
            case let .residual(main, shortcut, activation):
                let gs = activation.backward(trace.sum!, outputGradient: g)
                let (dm, mainGradients) = back(main, trace.main, gs, training: training, needInput: true,
                                               needParameters: needParameters)
                let (ds, shortcutGradients) = back(shortcut, trace.shortcut, gs, training: training, needInput: true,
                                                   needParameters: needParameters)
                if needParameters { reversedGradients.append(mainGradients + shortcutGradients) }
                g = dm
                g.add(ds)
            }
        }
        return (g, reversedGradients.reversed().flatMap { $0 })
    }

    public var parameters: [Tensor] {
        get { Self.collect(body) + [classifier.weight, classifier.bias] }
        set {
            var index = 0
            Self.assign(&body, newValue, &index)
            classifier.weight = newValue[index]
            classifier.bias = newValue[index + 1]
        }
    }

    static func collect(_ layers: [Layer]) -> [Tensor] {
        layers.flatMap { layer -> [Tensor] in
            switch layer {
            case let .conv(conv, bias): bias ? [conv.weight, conv.bias] : [conv.weight]
            case let .norm(norm): [norm.gamma, norm.beta]
            case let .linear(linear): [linear.weight, linear.bias]
            case let .residual(main, shortcut, _): collect(main) + collect(shortcut)
            case .activation, .pool, .subsample, .globalAverage, .flatten: []
            }
        }
    }

    static func assign(_ layers: inout [Layer], _ values: [Tensor], _ index: inout Int) {
        func take() -> Tensor { defer { index += 1 }; return values[index] }
        for position in layers.indices {
            switch layers[position] {
            case .conv(var conv, let bias):
                conv.weight = take()
                if bias { conv.bias = take() }
                layers[position] = .conv(conv, bias: bias)
            case .norm(var norm):
                norm.gamma = take()
                norm.beta = take()
                layers[position] = .norm(norm)
            case .linear(var linear):
                linear.weight = take()
                linear.bias = take()
                layers[position] = .linear(linear)
            case .residual(var main, var shortcut, let activation):
                assign(&main, values, &index)
                assign(&shortcut, values, &index)
                layers[position] = .residual(main: main, shortcut: shortcut, activation: activation)
            case .activation, .pool, .subsample, .globalAverage, .flatten: break
            }
        }
    }

    public mutating func absorb(_ trace: Trace) {
        guard trace.training else { return }
        Self.absorb(&body, trace.layers)
    }

    static func absorb(_ layers: inout [Layer], _ traces: [LayerTrace]) {
        for position in layers.indices {
            switch layers[position] {
            case .norm(var norm) where norm.kind == .batch:
                norm.updateRunningStatistics(traces[position].input, statistics: traces[position].statistics!)
                layers[position] = .norm(norm)
            case .residual(var main, var shortcut, let activation):
                absorb(&main, traces[position].main)
                absorb(&shortcut, traces[position].shortcut)
                layers[position] = .residual(main: main, shortcut: shortcut, activation: activation)
            default: break
            }
        }
    }

    /// Per image: the forward pass's FLOPs (2 × the multiply-adds of the convolutions and linear layers, the
    /// classifier included) and those of the first layer alone.
    public func forwardFLOPs() -> (total: Double, firstLayer: Double) {
        var firstLayer: Double?
        func walk(_ layers: [Layer], _ shape: inout [Int]) -> Double {
            var total = 0.0
            for layer in layers {
                var flops = 0.0
                switch layer {
                case let .conv(conv, _):
                    let (h, w) = (shape[1] + 2 * conv.padding - conv.kernelSize + 1, shape[2] + 2 * conv.padding - conv.kernelSize + 1)
                    flops = 2 * Double(conv.outputChannels * conv.inputChannels * conv.kernelSize * conv.kernelSize * h * w)
                    shape = [conv.outputChannels, h, w]
                case let .linear(linear):
                    flops = 2 * Double(linear.weight.count)
                    shape = [linear.weight.shape[0]]
                case let .pool(pooling): if pooling != .none { shape = [shape[0], shape[1] / 2, shape[2] / 2] }
                case .subsample: shape = [shape[0], (shape[1] + 1) / 2, (shape[2] + 1) / 2]
                case .globalAverage: shape = [shape[0], 1, 1]
                case .flatten: shape = [shape.reduce(1, *)]
                case let .residual(main, shortcut, _):
                    var other = shape
                    flops = walk(main, &shape) + walk(shortcut, &other)
                case .norm, .activation: break
                }
                if firstLayer == nil, flops > 0 { firstLayer = flops }
                total += flops
            }
            return total
        }
        var shape = imageShape
        let total = walk(body, &shape) + 2 * Double(classifier.weight.count)
        return (total, firstLayer ?? 0)
    }

    // MARK: - The two shape-changing ops the layer types above do not have

    static func subsample(_ x: Tensor) -> Tensor {
        let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let (ho, wo) = ((h + 1) / 2, (w + 1) / 2)
        var y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], ho, wo])
        x.storage.withUnsafeBufferPointer { xp in
            y.storage.withUnsafeMutableBufferPointer { yp in
                for plane in 0..<planes {
                    for i in 0..<ho { for j in 0..<wo { yp[(plane * ho + i) * wo + j] = xp[(plane * h + 2 * i) * w + 2 * j] } }
                }
            }
        }
        return y
    }

    static func subsampleBackward(_ dy: Tensor, inputShape: [Int]) -> Tensor {
        let (planes, h, w) = (inputShape[0] * inputShape[1], inputShape[2], inputShape[3])
        let (ho, wo) = (dy.shape[2], dy.shape[3])
        var dx = Tensor(shape: inputShape)
        dy.storage.withUnsafeBufferPointer { gp in
            dx.storage.withUnsafeMutableBufferPointer { dp in
                for plane in 0..<planes {
                    for i in 0..<ho { for j in 0..<wo { dp[(plane * h + 2 * i) * w + 2 * j] = gp[(plane * ho + i) * wo + j] } }
                }
            }
        }
        return dx
    }

    static func globalAverage(_ x: Tensor) -> Tensor {
        let plane = x.shape[2] * x.shape[3]
        var y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], 1, 1])
        for p in 0..<(x.shape[0] * x.shape[1]) {
            var sum: Float = 0
            for i in 0..<plane { sum += x.storage[p * plane + i] }
            y.storage[p] = sum / Float(plane)
        }
        return y
    }

    static func globalAverageBackward(_ dy: Tensor, inputShape: [Int]) -> Tensor {
        let plane = inputShape[2] * inputShape[3]
        var dx = Tensor(uninitializedShape: inputShape)
        for p in 0..<(inputShape[0] * inputShape[1]) {
            let g = dy.storage[p] / Float(plane)
            for i in 0..<plane { dx.storage[p * plane + i] = g }
        }
        return dx
    }
}
