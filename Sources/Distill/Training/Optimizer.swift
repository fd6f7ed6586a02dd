/// Updates a list of tensors from their gradients.
public protocol Optimizer: Sendable {
    /// The current learning rate.
    var learningRate: Float { get set }
    /// Applies one update to `parameters` given `gradients` in the same order.
    mutating func step(_ parameters: inout [Tensor], gradients: [Tensor])
}

/// Stochastic gradient descent with momentum and L2 weight decay, with PyTorch's semantics:
/// `d = g + λ·p; v = μ·v + d; p −= lr·v`.
public struct SGD: Optimizer {
    public var learningRate: Float
    public var momentum: Float
    public var weightDecay: Float
    private var velocity: [Tensor] = []

    public init(learningRate: Float, momentum: Float = 0, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    public mutating func step(_ parameters: inout [Tensor], gradients: [Tensor]) {
        precondition(parameters.count == gradients.count, "\(gradients.count) gradients for \(parameters.count) parameters")
        if velocity.isEmpty { velocity = parameters.map { Tensor(shape: $0.shape) } }
        for index in parameters.indices {
            let (lr, mu, decay) = (learningRate, momentum, weightDecay)
            parameters[index].storage.withUnsafeMutableBufferPointer { p in
                gradients[index].storage.withUnsafeBufferPointer { g in
                    velocity[index].storage.withUnsafeMutableBufferPointer { v in
                        for i in 0..<p.count {
                            let d = g[i] + decay * p[i]
                            v[i] = mu * v[i] + d
                            p[i] -= lr * v[i]
                        }
                    }
                }
            }
        }
    }
}

/// Adam (Kingma & Ba) with bias correction and optional L2 weight decay added to the gradient.
public struct Adam: Optimizer {
    public var learningRate: Float
    public var beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    private var first: [Tensor] = [], second: [Tensor] = []
    private var steps = 0

    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public mutating func step(_ parameters: inout [Tensor], gradients: [Tensor]) {
        precondition(parameters.count == gradients.count, "\(gradients.count) gradients for \(parameters.count) parameters")
        if first.isEmpty {
            first = parameters.map { Tensor(shape: $0.shape) }
            second = first
        }
        steps += 1
        let correction1 = 1 - Float(_pow(Double(beta1), Double(steps)))
        let correction2 = 1 - Float(_pow(Double(beta2), Double(steps)))
        for index in parameters.indices {
            let (b1, b2, eps, lr, decay) = (beta1, beta2, epsilon, learningRate, weightDecay)
            parameters[index].storage.withUnsafeMutableBufferPointer { p in
                gradients[index].storage.withUnsafeBufferPointer { g in
                    first[index].storage.withUnsafeMutableBufferPointer { m in
                        second[index].storage.withUnsafeMutableBufferPointer { v in
                            for i in 0..<p.count {
                                let d = g[i] + decay * p[i]
                                m[i] = b1 * m[i] + (1 - b1) * d
                                v[i] = b2 * v[i] + (1 - b2) * d * d
                                p[i] -= lr * (m[i] / correction1) / ((v[i] / correction2).squareRoot() + eps)
                            }
                        }
                    }
                }
            }
        }
    }
}
