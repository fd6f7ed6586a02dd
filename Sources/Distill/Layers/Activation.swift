/// Element-wise activations: `relu`, `leakyrelu` (slope 0.01), `sigmoid`.
public enum Activation: String, Sendable, Codable, CaseIterable {
    case relu, leakyrelu, sigmoid

    /// y = f(x).
    public func forward(_ x: Tensor) -> Tensor {
        var y = Tensor(uninitializedShape: x.shape)
        x.storage.withUnsafeBufferPointer { xp in
            y.storage.withUnsafeMutableBufferPointer { yp in
                let (src, dst) = (xp.baseAddress!, yp.baseAddress!)
                Parallel.forRanges(yp.count) { _, range in
                    switch self {
                    case .relu: for i in range { dst[i] = src[i] > 0 ? src[i] : 0 }
                    case .leakyrelu: for i in range { dst[i] = src[i] > 0 ? src[i] : 0.01 * src[i] }
                    case .sigmoid: for i in range { dst[i] = 1 / (1 + _expf(-src[i])) }
                    }
                }
            }
        }
        return y
    }

    /// dL/dx from the forward input `x` and dL/dy.
    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Tensor {
        var dx = Tensor(uninitializedShape: x.shape)
        x.storage.withUnsafeBufferPointer { xp in
            dy.storage.withUnsafeBufferPointer { gp in
                dx.storage.withUnsafeMutableBufferPointer { dp in
                    let (src, g, dst) = (xp.baseAddress!, gp.baseAddress!, dp.baseAddress!)
                    Parallel.forRanges(dp.count) { _, range in
                        switch self {
                        // Both operands are loaded unconditionally so that the loops vectorise (a load only on
                        // one side of `?:` cannot be speculated).
                        case .relu:
                            for i in range {
                                let (xi, gi) = (src[i], g[i])
                                dst[i] = xi > 0 ? gi : 0
                            }
                        case .leakyrelu:
                            for i in range {
                                let (xi, gi) = (src[i], g[i])
                                dst[i] = xi > 0 ? gi : 0.01 * gi
                            }
                        case .sigmoid:
                            for i in range {
                                let s = 1 / (1 + _expf(-src[i]))
                                dst[i] = g[i] * s * (1 - s)
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}

/// 2×2 pooling with stride 2 (odd trailing rows/columns are dropped, as in PyTorch).
public enum Pooling: String, Sendable, Codable, CaseIterable {
    case avg, max, none

    /// Parses `avg`/`avgpooling`, `max`/`maxpooling`, `none`.
    public init?(_ text: String) {
        switch text {
        case "avg", "avgpooling": self = .avg
        case "max", "maxpooling": self = .max
        case "none": self = .none
        default: return nil
        }
    }

    /// The output shape.
    public func outputShape(_ shape: [Int]) -> [Int] {
        self == .none ? shape : [shape[0], shape[1], shape[2] / 2, shape[3] / 2]
    }

    /// y = pool(x).
    public func forward(_ x: Tensor) -> Tensor {
        if self == .none { return x }
        let (h, w) = (x.shape[2], x.shape[3])
        let outShape = outputShape(x.shape)
        let (ho, wo) = (outShape[2], outShape[3])
        var y = Tensor(uninitializedShape: outShape)
        x.storage.withUnsafeBufferPointer { xp in
            y.storage.withUnsafeMutableBufferPointer { yp in
                Parallel.forEach(x.shape[0] * x.shape[1]) { plane in
                    let src = xp.baseAddress! + plane * h * w, dst = yp.baseAddress! + plane * ho * wo
                    for oy in 0..<ho {
                        for ox in 0..<wo {
                            let a = src[2 * oy * w + 2 * ox], b = src[2 * oy * w + 2 * ox + 1]
                            let c = src[(2 * oy + 1) * w + 2 * ox], d = src[(2 * oy + 1) * w + 2 * ox + 1]
                            dst[oy * wo + ox] = self == .avg ? 0.25 * (a + b + c + d) : Swift.max(Swift.max(a, b), Swift.max(c, d))
                        }
                    }
                }
            }
        }
        return y
    }

    /// dL/dx from the forward input and dL/dy. Max pooling routes each gradient to the first maximal input.
    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Tensor {
        if self == .none { return dy }
        let (h, w) = (x.shape[2], x.shape[3])
        let (ho, wo) = (h / 2, w / 2)
        var dx = Tensor(shape: x.shape)
        x.storage.withUnsafeBufferPointer { xp in
            dy.storage.withUnsafeBufferPointer { gp in
                dx.storage.withUnsafeMutableBufferPointer { dp in
                    Parallel.forEach(x.shape[0] * x.shape[1]) { plane in
                        let src = xp.baseAddress! + plane * h * w, g = gp.baseAddress! + plane * ho * wo
                        let dst = dp.baseAddress! + plane * h * w
                        for oy in 0..<ho {
                            for ox in 0..<wo {
                                let top = 2 * oy * w + 2 * ox, bottom = top + w
                                let grad = g[oy * wo + ox]
                                if self == .avg {
                                    dst[top] = 0.25 * grad; dst[top + 1] = 0.25 * grad
                                    dst[bottom] = 0.25 * grad; dst[bottom + 1] = 0.25 * grad
                                } else {
                                    var best = top
                                    if src[top + 1] > src[best] { best = top + 1 }
                                    if src[bottom] > src[best] { best = bottom }
                                    if src[bottom + 1] > src[best] { best = bottom + 1 }
                                    dst[best] = grad
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}
