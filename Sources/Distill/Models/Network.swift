/// A differentiable image classifier with an embedding: the interface training, distillation and privacy probes use.
///
/// `forward` returns the logits and a trace of what `backward` needs (no hidden tape). `backward` starts from the
/// gradient of either the logits or the embedding and returns the gradient with respect to the input images and/or
/// the parameters, in the order of `parameters`.
public protocol Network: Sendable {
    /// What `backward` needs from `forward`.
    associatedtype Trace: Sendable

    /// All trainable parameters in a fixed order.
    var parameters: [Tensor] { get set }
    /// The size of `embed`'s feature vector.
    var featureCount: Int { get }

    /// Runs the network; `untilEmbedding` stops before the classifier (the logits are then the features).
    func forward(_ x: Tensor, training: Bool, untilEmbedding: Bool) -> (output: Tensor, trace: Trace)

    /// Gradients from `outputGradient` (with respect to the output of the matching `forward`).
    func backward(_ trace: Trace, outputGradient: Tensor, input: Bool, parameters: Bool) -> (input: Tensor?, parameters: [Tensor])

    /// Folds training-pass statistics (batch norm) into the model.
    mutating func absorb(_ trace: Trace)
}

extension Network {
    /// Logits `(N, K)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x, training: false, untilEmbedding: false).output }

    /// Features before the classifier, `(N, featureCount)`: what distribution matching compares.
    public func embed(_ x: Tensor, training: Bool = false) -> Tensor { forward(x, training: training, untilEmbedding: true).output }

    public mutating func absorb(_ trace: Trace) {}
}
