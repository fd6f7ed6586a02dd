import Foundation

/// Dataset condensation by gradient matching (DC, Zhao et al. ICLR 2021), and with DSA augmentation (DSA, ICML 2021).
///
/// For a network θ, the synthetic images of class c are moved so that the training gradient they induce,
/// `g_syn = ∇θ L(θ; syn_c)`, points like the gradient of a real batch, `g_real = ∇θ L(θ; real_c)`. The distance is the
/// reference's: per output channel (rows of a weight reshaped to `[out, −1]`) `1 − cos(g_real, g_syn)`, summed;
/// biases and norm parameters are ignored. Its derivative with respect to the images is second order:
/// with `v = ∂D/∂g_syn`, `∇ₓ(v·∇θL) ≈ [∇ₓL(θ + εv) − ∇ₓL(θ − εv)] / 2ε` (a central finite-difference
/// Hessian-vector product, ε = 0.01/‖v‖). Outer/inner loops follow the reference: each iteration a fresh network;
/// `outerLoop` image updates, between which the network trains `innerLoop` steps on the synthetic set.
public struct GradientMatching: Sendable {
    public struct Options: Sendable, Codable {
        public var imagesPerClass = 10
        public var iterations = 1000
        public var batchReal = 256
        public var imageLearningRate: Float = 0.1
        /// Momentum of the images' SGD (the reference's 0.5).
        public var imageMomentum: Float = 0.5
        public var networkLearningRate: Float = 0.01
        public var outerLoop: Int
        public var innerLoop: Int
        public var seed: UInt64 = 0

        /// The reference loops: IPC 1 → (1, 1), 10 → (10, 50), 50 → (50, 10); others interpolate to the nearest.
        public static func referenceLoops(imagesPerClass: Int) -> (outer: Int, inner: Int) {
            switch imagesPerClass {
            case ..<5: (1, 1)
            case ..<30: (10, 50)
            default: (50, 10)
            }
        }

        public init(imagesPerClass: Int = 10, iterations: Int = 1000, batchReal: Int = 256, seed: UInt64 = 0) {
            self.imagesPerClass = imagesPerClass
            self.iterations = iterations
            self.batchReal = batchReal
            self.seed = seed
            (outerLoop, innerLoop) = Self.referenceLoops(imagesPerClass: imagesPerClass)
        }
    }

    public var options: Options
    public var network: ConvNet.Configuration
    /// DSA on both sides with the same draw (nil: plain DC).
    public var augmentation: DSA?

    public init(options: Options, network: ConvNet.Configuration, augmentation: DSA?) {
        self.options = options
        self.network = network
        self.augmentation = augmentation
    }

    /// Indices of the parameters that take part in the distance: weights of rank ≥ 2 (conv and linear weights).
    static func matchedParameters(_ net: ConvNet) -> [Int] {
        net.parameters.indices.filter { net.parameters[$0].shape.count >= 2 }
    }

    /// `D = Σ_params Σ_rows (1 − cos)` and its gradient with respect to `synthetic` (both parameter lists in order).
    static func distance(real: [Tensor], synthetic: [Tensor]) -> (value: Double, gradient: [Tensor]) {
        var total = 0.0
        var gradients: [Tensor] = []
        for (r, s) in zip(real, synthetic) {
            let rows = r.shape[0], width = r.count / rows
            var g = Tensor(shape: s.shape)
            for row in 0..<rows {
                var dot = 0.0, nr = 0.0, ns = 0.0
                for j in 0..<width {
                    let (a, b) = (Double(r.storage[row * width + j]), Double(s.storage[row * width + j]))
                    dot += a * b
                    nr += a * a
                    ns += b * b
                }
                let (lr, ls) = (nr.squareRoot(), ns.squareRoot())
                let denominator = lr * ls + 1e-6
                total += 1 - dot / denominator
                // d(−dot/(|r||s| + δ))/ds = −r/den + dot·|r|·s/(|s|·den²)
                for j in 0..<width {
                    let (a, b) = (Double(r.storage[row * width + j]), Double(s.storage[row * width + j]))
                    let ds = -a / denominator + (ls > 0 ? dot * lr * b / (ls * denominator * denominator) : 0)
                    g.storage[row * width + j] = Float(ds)
                }
            }
            gradients.append(g)
        }
        return (total, gradients)
    }

    /// Parameter gradients of the mean cross-entropy of `net` on `images` with one label, and the net's trace.
    static func parameterGradients(_ net: ConvNet, images: Tensor, label: Int) -> [Tensor] {
        let (logits, trace) = net.forward(images, training: true, untilEmbedding: false)
        let gradient = Loss.crossEntropy(logits: logits, labels: [Int](repeating: label, count: images.shape[0])).gradient
        return net.backward(trace, outputGradient: gradient, input: false, parameters: true).parameters
    }

    /// The input gradient of the mean cross-entropy on `images` (label `label`) at parameters `parameters`.
    static func inputGradient(_ net: ConvNet, parameters: [Tensor], images: Tensor, label: Int) -> Tensor {
        var probe = net
        probe.parameters = parameters
        let (logits, trace) = probe.forward(images, training: true, untilEmbedding: false)
        let gradient = Loss.crossEntropy(logits: logits, labels: [Int](repeating: label, count: images.shape[0])).gradient
        return probe.backward(trace, outputGradient: gradient, input: true, parameters: false).input!
    }

    /// The matching distance of one class and its gradient with respect to the (augmented) synthetic images, via the
    /// finite-difference Hessian-vector product.
    static func classMatch(net: ConvNet, real: Tensor, synthetic: Tensor, label: Int) -> (distance: Double, gradient: Tensor) {
        let matched = matchedParameters(net)
        let realGrads = parameterGradients(net, images: real, label: label)
        let synGrads = parameterGradients(net, images: synthetic, label: label)
        let (value, dDistance) = distance(real: matched.map { realGrads[$0] }, synthetic: matched.map { synGrads[$0] })
        // v = ∂D/∂g_syn on the matched parameters, zero elsewhere.
        var v = net.parameters.map { Tensor(shape: $0.shape) }
        for (k, index) in matched.enumerated() { v[index] = dDistance[k] }
        let norm = v.reduce(0) { $0 + $1.squaredNorm() }.squareRoot()
        guard norm > 0 else { return (value, Tensor(shape: synthetic.shape)) }
        let epsilon = Float(0.01 / norm)
        var plus = net.parameters, minus = net.parameters
        for index in plus.indices {
            plus[index].add(v[index], scaledBy: epsilon)
            minus[index].add(v[index], scaledBy: -epsilon)
        }
        var gradient = inputGradient(net, parameters: plus, images: synthetic, label: label)
        gradient.add(inputGradient(net, parameters: minus, images: synthetic, label: label), scaledBy: -1)
        gradient.scale(by: 1 / (2 * epsilon))
        return (value, gradient)
    }

    public typealias Progress = (_ iteration: Int, _ loss: Double) -> Bool

    /// Learns a synthetic set from `real`, starting from `initial`.
    public func distill(_ real: LabeledImages, from initial: LabeledImages,
                        progress: Progress? = nil) -> (images: LabeledImages, loss: Double, iterations: Int) {
        var rng = RandomSource(seed: options.seed).derived(2)
        let realByClass = real.indicesByClass(), synByClass = initial.indicesByClass()
        let classes = (0..<real.classCount).filter { !realByClass[$0].isEmpty && !synByClass[$0].isEmpty }
        var syn = initial.images
        var imageOptimizer = SGD(learningRate: options.imageLearningRate, momentum: options.imageMomentum)
        var lastLoss = 0.0, completed = 0
        for iteration in 1...max(options.iterations, 1) where options.iterations > 0 {
            var netRNG = rng.derived(UInt64(iteration))
            var net = ConvNet(network, using: &netRNG)
            var optimizer = SGD(learningRate: options.networkLearningRate, momentum: 0.5)
            var loss = 0.0
            for outer in 0..<options.outerLoop {
                var gradient = Tensor(shape: syn.shape)
                loss = 0
                for c in classes {
                    let members = realByClass[c]
                    let picks = members.count <= options.batchReal ? members : rng.choose(options.batchReal, from: members)
                    var realBatch = real.images.gather(picks)
                    var synBatch = syn.gather(synByClass[c])
                    var draw: DSA.Draw?
                    if let augmentation {
                        (realBatch, synBatch, draw) = augmentation.siamese(real: realBatch, synthetic: synBatch, using: &rng)
                    }
                    var (value, classGradient) = Self.classMatch(net: net, real: realBatch, synthetic: synBatch, label: c)
                    if let draw, let augmentation { classGradient = augmentation.backward(draw, outputGradient: classGradient) }
                    loss += value
                    gradient.setRows(synByClass[c], from: classGradient)
                }
                var images = [syn]
                imageOptimizer.step(&images, gradients: [gradient])
                syn = images[0]
                if outer == options.outerLoop - 1 { break }
                // Train the network a little on the current synthetic set (the reference's inner loop).
                let synSet = LabeledImages(images: syn, labels: initial.labels, classCount: initial.classCount)
                var parameters = net.parameters
                for _ in 0..<options.innerLoop {
                    let order = rng.permutation(synSet.count)
                    for first in stride(from: 0, to: synSet.count, by: 256) {
                        let batch = synSet.subset(Array(order[first..<min(first + 256, synSet.count)]))
                        let images = augmentation?.randomlyAugmented(batch.images, using: &rng) ?? batch.images
                        let (logits, trace) = net.forward(images, training: true, untilEmbedding: false)
                        let dLogits = Loss.crossEntropy(logits: logits, labels: batch.labels).gradient
                        let grads = net.backward(trace, outputGradient: dLogits, input: false, parameters: true).parameters
                        optimizer.step(&parameters, gradients: grads)
                        net.parameters = parameters
                    }
                }
            }
            lastLoss = loss
            completed = iteration
            if let progress, !progress(iteration, loss) { break }
        }
        return (LabeledImages(images: syn, labels: initial.labels, classCount: initial.classCount), lastLoss, completed)
    }
}
