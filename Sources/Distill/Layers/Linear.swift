/// Fully connected layer: `(N, in) → (N, out)`, `y = x·Wᵀ + b`.
public struct Linear: Sendable {
    /// `(out, in)`.
    public var weight: Tensor
    /// `(out)`.
    public var bias: Tensor

    /// Initialised like PyTorch: weight and bias uniform in `±1/√in`.
    public init(inputFeatures: Int, outputFeatures: Int, using rng: inout RandomSource) {
        let bound = 1 / Float(inputFeatures).squareRoot()
        weight = .uniform([outputFeatures, inputFeatures], low: -bound, high: bound, using: &rng)
        bias = .uniform([outputFeatures], low: -bound, high: bound, using: &rng)
    }

    /// Creates a layer from given parameters.
    public init(weight: Tensor, bias: Tensor) {
        precondition(weight.shape.count == 2 && bias.shape == [weight.shape[0]], "Linear expects (out, in) and (out)")
        self.weight = weight
        self.bias = bias
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x) }

    /// `x` is `(N, in)` (or any shape whose trailing elements number `in` per row).
    public func forward(_ x: Tensor) -> Tensor {
        let (n, inF, outF) = (x.shape[0], weight.shape[1], weight.shape[0])
        precondition(x.count == n * inF, "Linear expects \(inF) features per row, got \(x.shape)")
        var y = Tensor(shape: [n, outF])
        for row in 0..<n { for o in 0..<outF { y.storage[row * outF + o] = bias.storage[o] } }
        x.storage.withUnsafeBufferPointer { xp in
            weight.storage.withUnsafeBufferPointer { wp in
                y.storage.withUnsafeMutableBufferPointer { yp in
                    BLAS.gemm(transposeB: true, m: n, n: outF, k: inF, a: xp.baseAddress!, b: wp.baseAddress!, beta: 1,
                              c: yp.baseAddress!)
                }
            }
        }
        return y
    }

    /// Returns `(dx, dW, db)`; `dx` has `x`'s shape.
    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> (input: Tensor, weight: Tensor, bias: Tensor) {
        let (n, inF, outF) = (x.shape[0], weight.shape[1], weight.shape[0])
        var dx = Tensor(shape: x.shape), dw = Tensor(shape: weight.shape), db = Tensor(shape: bias.shape)
        dy.storage.withUnsafeBufferPointer { gp in
            weight.storage.withUnsafeBufferPointer { wp in
                dx.storage.withUnsafeMutableBufferPointer { dxp in
                    BLAS.gemm(m: n, n: inF, k: outF, a: gp.baseAddress!, b: wp.baseAddress!, c: dxp.baseAddress!)
                }
            }
            x.storage.withUnsafeBufferPointer { xp in
                dw.storage.withUnsafeMutableBufferPointer { dwp in
                    BLAS.gemm(transposeA: true, m: outF, n: inF, k: n, a: gp.baseAddress!, b: xp.baseAddress!, c: dwp.baseAddress!)
                }
            }
        }
        for row in 0..<n { for o in 0..<outF { db.storage[o] += dy.storage[row * outF + o] } }
        return (dx, dw, db)
    }
}
