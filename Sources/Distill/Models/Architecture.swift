/// The architectures a set can be evaluated on, built as the dataset distillation reference (DC/DSA/DM's
/// `networks.py`) builds them for 28×28 one-channel and 32×32 three-channel images.
///
/// - `convnet`: the ConvNet family (`ConvNet`, the evaluation protocol's network).
/// - `mlp`: 2 hidden layers of 128, ReLU.
/// - `lenet`: conv 5×5 (6) → ReLU → max pool → conv 5×5 (16) → ReLU → max pool → 120 → 84 → classes.
/// - `alexnet`: the reference's small AlexNet: conv 5×5 (128) → pool → conv 5×5 (192) → pool → conv 3×3 (256, 192,
///   192) → pool → classes; no normalisation.
/// - `vgg11`, `vgg11-bn`: VGG-11 (64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M) with instance norm, or batch
///   norm.
/// - `resnet18`, `resnet18-bn`: ResNet-18 (basic blocks [2, 2, 2, 2], 64–512 channels, bias-free convolutions) with
///   instance or batch norm; the stride-2 convolutions run as stride 1 followed by taking every other pixel (the same
///   function); global average pooling before the classifier.
/// - `resnet18-bn-ap`: the reference's `ResNet18BN_AP`: stride-2 convolutions replaced by stride 1 + 2×2 average pooling,
///   and the classifier on the flattened last map.
///
/// Where the reference pads one-channel inputs more (LeNet 2, AlexNet 4, VGG's first convolution 3: a 28×28 image
/// then has the 32×32 geometry), so does this, whatever the one-channel image's size.
public enum Architecture: String, CaseIterable, Sendable, Codable {
    case convnet, mlp, lenet, alexnet, vgg11
    case vgg11BN = "vgg11-bn"
    case resnet18
    case resnet18BN = "resnet18-bn"
    case resnet18BNAP = "resnet18-bn-ap"

    /// Parses the names above, case-insensitively, and the reference's (`ConvNet`, `VGG11BN`, `ResNet18BN_AP`, …).
    public init?(name: String) {
        func compact(_ text: String) -> String { String(text.lowercased().filter { $0 != "-" && $0 != "_" }) }
        guard let match = Architecture.allCases.first(where: { compact($0.rawValue) == compact(name) }) else { return nil }
        self = match
    }

    /// Builds a fresh network of this architecture (PyTorch's default initialisation). `widthMultiplier` scales every
    /// layer's channel count (1 is the reference; tests use small ones). `convnet` is built by `ConvNet` instead.
    public func network(imageShape: [Int], classCount: Int, widthMultiplier: Double = 1,
                        using rng: inout RandomSource) throws(ArchitectureError) -> SequentialNetwork {
        try network(imageShape: imageShape, classCount: classCount, widthMultiplier: widthMultiplier, activation: .relu,
                    maxPooling: .max, using: &rng)
    }

    /// The same with another activation in place of every ReLU and another pooling in place of max pooling (the
    /// gradient checks use a smooth variant).
    func network(imageShape: [Int], classCount: Int, widthMultiplier: Double, activation: Activation, maxPooling: Pooling,
                 using rng: inout RandomSource) throws(ArchitectureError) -> SequentialNetwork {
        var builder = ArchitectureBuilder(architecture: self, shape: imageShape, widthMultiplier: widthMultiplier,
                                          activation: activation)
        let max = maxPooling
        let act: [SequentialNetwork.Layer] = [.activation(activation)]
        let body: [SequentialNetwork.Layer]
        switch self {
        case .convnet:
            throw ArchitectureError(architecture: self, reason: "the ConvNet family is built by ConvNet")
        case .mlp:
            body = try builder.flatten() + builder.linear(128, &rng) + act + builder.linear(128, &rng) + act
        case .lenet:
            let padding = imageShape[0] == 1 ? 2 : 0
            body = try builder.conv(6, kernel: 5, padding: padding, &rng) + act + builder.pool(max)
                + builder.conv(16, kernel: 5, padding: 0, &rng) + act + builder.pool(max)
                + builder.flatten() + builder.linear(120, &rng) + act + builder.linear(84, &rng) + act
        case .alexnet:
            let padding = imageShape[0] == 1 ? 4 : 2
            body = try builder.conv(128, kernel: 5, padding: padding, &rng) + act + builder.pool(max)
                + builder.conv(192, kernel: 5, padding: 2, &rng) + act + builder.pool(max)
                + builder.conv(256, kernel: 3, padding: 1, &rng) + act
                + builder.conv(192, kernel: 3, padding: 1, &rng) + act
                + builder.conv(192, kernel: 3, padding: 1, &rng) + act + builder.pool(max)
                + builder.flatten()
        case .vgg11, .vgg11BN:
            let norm: NormKind = self == .vgg11 ? .instance : .batch
            var layers: [SequentialNetwork.Layer] = []
            for (position, item) in [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0].enumerated() {
                if item == 0 {
                    layers += try builder.pool(max)
                } else {
                    let padding = imageShape[0] == 1 && position == 0 ? 3 : 1
                    layers += try builder.conv(item, kernel: 3, padding: padding, &rng) + builder.norm(norm) + act
                }
            }
            body = layers + (try builder.flatten())
        case .resnet18, .resnet18BN, .resnet18BNAP:
            let norm: NormKind = self == .resnet18 ? .instance : .batch
            let averagePooled = self == .resnet18BNAP
            var layers = try builder.conv(64, kernel: 3, padding: 1, bias: false, &rng) + builder.norm(norm) + act
            for (planes, stride) in [(64, 1), (128, 2), (256, 2), (512, 2)] {
                for block in 0..<2 {
                    layers.append(try builder.basicBlock(planes, downsample: block == 0 && stride == 2, norm: norm,
                                                         averagePooled: averagePooled, &rng))
                }
            }
            body = layers + (averagePooled ? try builder.flatten() : try builder.globalAverage() + builder.flatten())
        }
        let features = builder.shape.reduce(1, *)
        let classifier = Linear(inputFeatures: features, outputFeatures: classCount, using: &rng)
        return SequentialNetwork(body: body, classifier: classifier, featureCount: features, imageShape: imageShape)
    }
}

/// Why an architecture cannot be built for an input.
public struct ArchitectureError: Error, Equatable, CustomStringConvertible {
    public var architecture: Architecture
    public var reason: String
    public var description: String { "architecture \(architecture.rawValue): \(reason)" }
}

/// Tracks the activation shape while an architecture's layers are created, and refuses inputs too small for them.
struct ArchitectureBuilder {
    let architecture: Architecture
    /// `[C, H, W]`, or `[features]` after `flatten`.
    var shape: [Int]
    let widthMultiplier: Double
    var activation = Activation.relu

    private func channels(_ reference: Int) -> Int { max(1, Int((Double(reference) * widthMultiplier).rounded())) }

    private func fail(_ reason: String) -> ArchitectureError { ArchitectureError(architecture: architecture, reason: reason) }

    mutating func conv(_ reference: Int, kernel: Int, padding: Int, bias: Bool = true,
                       _ rng: inout RandomSource) throws(ArchitectureError) -> [SequentialNetwork.Layer] {
        guard shape.count == 3 else { throw fail("convolution after flatten") }
        let (h, w) = (shape[1] + 2 * padding - kernel + 1, shape[2] + 2 * padding - kernel + 1)
        guard h > 0, w > 0 else {
            throw fail("a \(kernel)×\(kernel) convolution needs maps of at least \(kernel - 2 * padding) pixels, got \(shape[1])×\(shape[2]) (the input is too small)")
        }
        var conv = Conv2d(inputChannels: shape[0], outputChannels: channels(reference), kernelSize: kernel,
                          padding: padding, using: &rng)
        if !bias { conv.bias = Tensor(shape: conv.bias.shape) }
        shape = [conv.outputChannels, h, w]
        return [.conv(conv, bias: bias)]
    }

    func norm(_ kind: NormKind) -> [SequentialNetwork.Layer] {
        [.norm(Norm(kind, channels: shape[0], height: shape[1], width: shape[2]))]
    }

    mutating func pool(_ pooling: Pooling) throws(ArchitectureError) -> [SequentialNetwork.Layer] {
        guard shape.count == 3, shape[1] >= 2, shape[2] >= 2 else {
            throw fail("2×2 pooling needs maps of at least 2×2, got \(shape.dropFirst().map(String.init).joined(separator: "×")) (the input is too small)")
        }
        shape = [shape[0], shape[1] / 2, shape[2] / 2]
        return [.pool(pooling)]
    }

    mutating func subsample() -> [SequentialNetwork.Layer] {
        shape = [shape[0], (shape[1] + 1) / 2, (shape[2] + 1) / 2]
        return [.subsample]
    }

    mutating func globalAverage() throws(ArchitectureError) -> [SequentialNetwork.Layer] {
        shape = [shape[0], 1, 1]
        return [.globalAverage]
    }

    mutating func flatten() throws(ArchitectureError) -> [SequentialNetwork.Layer] {
        shape = [shape.reduce(1, *)]
        return [.flatten]
    }

    mutating func linear(_ reference: Int, _ rng: inout RandomSource) -> [SequentialNetwork.Layer] {
        let linear = Linear(inputFeatures: shape.reduce(1, *), outputFeatures: channels(reference), using: &rng)
        shape = [linear.weight.shape[0]]
        return [.linear(linear)]
    }

    /// ResNet's basic block: conv 3×3 → norm → ReLU → conv 3×3 → norm, plus a shortcut (1×1 conv → norm where the
    /// shape changes), then ReLU (or the builder's activation). `downsample` halves the map: by taking every other pixel after the first conv (and
    /// the shortcut's conv), or, `averagePooled`, by 2×2 average pooling there.
    mutating func basicBlock(_ reference: Int, downsample: Bool, norm kind: NormKind, averagePooled: Bool,
                             _ rng: inout RandomSource) throws(ArchitectureError) -> SequentialNetwork.Layer {
        let input = shape
        var main = try conv(reference, kernel: 3, padding: 1, bias: false, &rng)
        if downsample && !averagePooled { main += subsample() }
        main += norm(kind) + [.activation(activation)]
        if downsample && averagePooled { main += try pool(.avg) }
        main += try conv(reference, kernel: 3, padding: 1, bias: false, &rng) + norm(kind)
        let output = shape
        var shortcut: [SequentialNetwork.Layer] = []
        if output != input {
            shape = input
            shortcut = try conv(reference, kernel: 1, padding: 0, bias: false, &rng)
            if downsample { shortcut += averagePooled ? try pool(.avg) : subsample() }
            shortcut += norm(kind)
            precondition(shape == output, "ResNet shortcut shape \(shape) differs from the block's \(output)")
        }
        return .residual(main: main, shortcut: shortcut, activation: activation)
    }
}
