/// The normalisation layers of the ConvNet family.
///
/// - `instance`: GroupNorm(C, C) with per-channel affine, the dataset distillation reference's "instancenorm".
/// - `group(g)`: GroupNorm(g, C) with per-channel affine.
/// - `layer`: LayerNorm over `(C, H, W)` with element-wise affine, as `nn.LayerNorm([C, H, W])`.
/// - `batch`: BatchNorm2d (batch statistics in training, running statistics in evaluation; momentum 0.1).
/// - `none`.
public enum NormKind: Sendable, Equatable, Codable {
    case none, instance, group(Int), layer, batch

    /// Parses `none`, `instance`, `group:G`, `layer`, `batch`.
    public init?(_ text: String) {
        switch text {
        case "none": self = .none
        case "instance", "instancenorm": self = .instance
        case "layer", "layernorm": self = .layer
        case "batch", "batchnorm": self = .batch
        default:
            guard text.hasPrefix("group"), let g = Int(text.drop { !$0.isNumber }), g > 0 else { return nil }
            self = .group(g)
        }
    }
}

/// A normalisation layer over `(N, C, H, W)` with its affine parameters (and running statistics for batch norm).
public struct Norm: Sendable {
    public let kind: NormKind
    /// Scale: `(C)`, or `(C·H·W)` for layer norm.
    public var gamma: Tensor
    /// Shift, shaped like `gamma`.
    public var beta: Tensor
    /// Batch norm's running mean and (unbiased) variance, `(C)`.
    public var runningMean: Tensor
    public var runningVariance: Tensor
    public static let epsilon: Float = 1e-5

    /// Identity affine parameters (PyTorch's initialisation) for `channels` channels of `height×width` maps.
    public init(_ kind: NormKind, channels: Int, height: Int, width: Int) {
        if case let .group(g) = kind { precondition(channels % g == 0, "GroupNorm(\(g)) needs channels divisible by groups") }
        self.kind = kind
        let size = kind == .layer ? channels * height * width : (kind == .none ? 0 : channels)
        gamma = Tensor(shape: [size], repeating: 1)
        beta = Tensor(shape: [size])
        runningMean = Tensor(shape: [kind == .batch ? channels : 0])
        runningVariance = Tensor(shape: [kind == .batch ? channels : 0], repeating: 1)
    }

    /// Statistics of one forward pass, needed by `backward`: mean and 1/σ per normalisation group.
    public struct Statistics: Sendable {
        public var mean: [Float]
        public var inverseStd: [Float]
    }

    /// How elements group: `groups` groups per sample for group/instance/layer norm, or per channel across the batch.
    private func groupsPerSample(_ channels: Int) -> Int {
        switch kind {
        case .instance: channels
        case let .group(g): g
        case .layer: 1
        case .none, .batch: 0
        }
    }

    /// Normalises `x`. `training` selects batch statistics for batch norm.
    public func forward(_ x: Tensor, training: Bool) -> (output: Tensor, statistics: Statistics) {
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        if kind == .none { return (x, Statistics(mean: [], inverseStd: [])) }
        var y = Tensor(uninitializedShape: x.shape)
        var stats: Statistics
        if kind == .batch {
            stats = Statistics(mean: [Float](repeating: 0, count: c), inverseStd: [Float](repeating: 0, count: c))
            x.storage.withUnsafeBufferPointer { xp in
                var means = [Float](repeating: 0, count: c), inv = [Float](repeating: 0, count: c)
                means.withUnsafeMutableBufferPointer { mp in
                    inv.withUnsafeMutableBufferPointer { ip in
                        Parallel.forEach(c) { ch in
                            if training {
                                var sum = 0.0, sq = 0.0
                                for b in 0..<n {
                                    let p = xp.baseAddress! + (b * c + ch) * plane
                                    for i in 0..<plane { sum += Double(p[i]); sq += Double(p[i]) * Double(p[i]) }
                                }
                                let m = sum / Double(n * plane)
                                mp[ch] = Float(m)
                                ip[ch] = Float(1 / (max(sq / Double(n * plane) - m * m, 0) + Double(Norm.epsilon)).squareRoot())
                            } else {
                                mp[ch] = runningMean.storage[ch]
                                ip[ch] = 1 / (runningVariance.storage[ch] + Norm.epsilon).squareRoot()
                            }
                        }
                    }
                }
                stats = Statistics(mean: means, inverseStd: inv)
            }
            applyAffine(x, into: &y, channelStats: stats)
            return (y, stats)
        }
        let groups = groupsPerSample(c)
        let groupSize = (c / groups) * plane
        var means = [Float](repeating: 0, count: n * groups), inv = [Float](repeating: 0, count: n * groups)
        x.storage.withUnsafeBufferPointer { xp in
            y.storage.withUnsafeMutableBufferPointer { yp in
                gamma.storage.withUnsafeBufferPointer { gp in
                    beta.storage.withUnsafeBufferPointer { bp in
                        means.withUnsafeMutableBufferPointer { mp in
                            inv.withUnsafeMutableBufferPointer { ip in
                                Parallel.forEach(n * groups) { ng in
                                    let src = xp.baseAddress! + ng * groupSize, dst = yp.baseAddress! + ng * groupSize
                                    let m = Kernels.sum(src, groupSize) / Float(groupSize)
                                    let variance = Kernels.squaredDeviation(src, groupSize, mean: m) / Float(groupSize)
                                    let r = 1 / (variance + Norm.epsilon).squareRoot()
                                    mp[ng] = m
                                    ip[ng] = r
                                    if kind == .layer {
                                        for i in 0..<groupSize { dst[i] = (src[i] - m) * r * gp[i] + bp[i] }
                                    } else {
                                        let firstChannel = (ng % groups) * (c / groups)
                                        for k in 0..<(c / groups) {
                                            let scale = r * gp[firstChannel + k], shift = bp[firstChannel + k] - m * scale
                                            let s = src + k * plane, d = dst + k * plane
                                            for i in 0..<plane { d[i] = s[i] * scale + shift }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (y, Statistics(mean: means, inverseStd: inv))
    }

    private func applyAffine(_ x: Tensor, into y: inout Tensor, channelStats stats: Statistics) {
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        x.storage.withUnsafeBufferPointer { xp in
            y.storage.withUnsafeMutableBufferPointer { yp in
                Parallel.forEach(n * c) { nc in
                    let ch = nc % c
                    let scale = stats.inverseStd[ch] * gamma.storage[ch], shift = beta.storage[ch] - stats.mean[ch] * scale
                    let src = xp.baseAddress! + nc * plane, dst = yp.baseAddress! + nc * plane
                    for i in 0..<plane { dst[i] = src[i] * scale + shift }
                }
            }
        }
    }

    /// Updates batch norm's running statistics from a training pass over `x` (momentum 0.1, unbiased variance).
    public mutating func updateRunningStatistics(_ x: Tensor, statistics: Statistics) {
        guard kind == .batch else { return }
        let count = Float(x.shape[0] * x.shape[2] * x.shape[3])
        for ch in 0..<x.shape[1] {
            let variance = 1 / (statistics.inverseStd[ch] * statistics.inverseStd[ch]) - Norm.epsilon
            runningMean.storage[ch] = 0.9 * runningMean.storage[ch] + 0.1 * statistics.mean[ch]
            runningVariance.storage[ch] = 0.9 * runningVariance.storage[ch] + 0.1 * variance * count / max(count - 1, 1)
        }
    }

    /// Returns `(dx, dγ, dβ)` given the forward input and statistics. In evaluation mode batch norm is affine, so
    /// `training` must match the forward call.
    public func backward(_ x: Tensor, statistics: Statistics, outputGradient dy: Tensor,
                         training: Bool) -> (input: Tensor, gamma: Tensor, beta: Tensor) {
        if kind == .none { return (dy, gamma, beta) }
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        var dx = Tensor(uninitializedShape: x.shape)
        var dgamma = Tensor(shape: gamma.shape), dbeta = Tensor(shape: beta.shape)
        if kind == .batch {
            Self.batchBackward(x, stats: statistics, dy: dy, gamma: gamma, training: training, dx: &dx,
                               dgamma: &dgamma, dbeta: &dbeta)
            return (dx, dgamma, dbeta)
        }
        let groups = groupsPerSample(c)
        let channelsPerGroup = c / groups
        let groupSize = channelsPerGroup * plane
        let affineSize = gamma.count
        // Per-sample partial sums of dγ and dβ, reduced over the batch in order afterwards.
        var partialGamma = [Float](repeating: 0, count: n * affineSize), partialBeta = partialGamma
        x.storage.withUnsafeBufferPointer { xp in
            dy.storage.withUnsafeBufferPointer { gyp in
                dx.storage.withUnsafeMutableBufferPointer { dxp in
                    gamma.storage.withUnsafeBufferPointer { gp in
                        partialGamma.withUnsafeMutableBufferPointer { pg in
                            partialBeta.withUnsafeMutableBufferPointer { pb in
                                Parallel.forEach(n * groups) { ng in
                                    let sample = ng / groups, firstChannel = (ng % groups) * channelsPerGroup
                                    let m = statistics.mean[ng], r = statistics.inverseStd[ng]
                                    let src = xp.baseAddress! + ng * groupSize, g = gyp.baseAddress! + ng * groupSize
                                    let dst = dxp.baseAddress! + ng * groupSize
                                    let pgs = pg.baseAddress! + sample * affineSize, pbs = pb.baseAddress! + sample * affineSize
                                    // d = dy·γ; need mean(d) and mean(d·x̂) over the group, and dγ = Σ dy·x̂, dβ = Σ dy.
                                    var sumD: Float = 0, sumDX: Float = 0
                                    if kind == .layer {
                                        for i in 0..<groupSize {
                                            let xhat = (src[i] - m) * r, d = g[i] * gp[i]
                                            sumD += d
                                            sumDX += d * xhat
                                            pgs[i] += g[i] * xhat
                                            pbs[i] += g[i]
                                        }
                                    } else {
                                        for k in 0..<channelsPerGroup {
                                            let (sg, sgx) = Kernels.sumAndCentredDot(g + k * plane, src + k * plane, plane, mean: m)
                                            let gamma = gp[firstChannel + k]
                                            sumD += gamma * sg
                                            sumDX += gamma * sgx * r
                                            pgs[firstChannel + k] += sgx * r
                                            pbs[firstChannel + k] += sg
                                        }
                                    }
                                    let meanD = sumD / Float(groupSize), meanDX = sumDX / Float(groupSize)
                                    if kind == .layer {
                                        for i in 0..<groupSize {
                                            let xhat = (src[i] - m) * r
                                            dst[i] = r * (g[i] * gp[i] - meanD - xhat * meanDX)
                                        }
                                    } else {
                                        for k in 0..<channelsPerGroup {
                                            let gamma = gp[firstChannel + k]
                                            let s = src + k * plane, gk = g + k * plane, d = dst + k * plane
                                            // dx = r·(γ·dy − meanD − (x − m)·r·meanDX)
                                            let a = r * gamma, b = r * r * meanDX, c0 = -r * meanD + b * m
                                            for i in 0..<plane { d[i] = a * gk[i] - b * s[i] + c0 }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for sample in 0..<n {
            for j in 0..<affineSize {
                dgamma.storage[j] += partialGamma[sample * affineSize + j]
                dbeta.storage[j] += partialBeta[sample * affineSize + j]
            }
        }
        return (dx, dgamma, dbeta)
    }

    private static func batchBackward(_ x: Tensor, stats: Statistics, dy: Tensor, gamma: Tensor, training: Bool,
                                      dx: inout Tensor, dgamma: inout Tensor, dbeta: inout Tensor) {
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let count = Float(n * plane)
        var sums = [Float](repeating: 0, count: 2 * c)
        sums.withUnsafeMutableBufferPointer { sp in
            Parallel.forEach(c) { ch in
                var sumD: Float = 0, sumDX: Float = 0
                for b in 0..<n {
                    for i in 0..<plane {
                        let index = (b * c + ch) * plane + i
                        let xhat = (x.storage[index] - stats.mean[ch]) * stats.inverseStd[ch]
                        sumD += dy.storage[index]
                        sumDX += dy.storage[index] * xhat
                    }
                }
                sp[2 * ch] = sumD
                sp[2 * ch + 1] = sumDX
            }
        }
        for ch in 0..<c {
            dbeta.storage[ch] = sums[2 * ch]
            dgamma.storage[ch] = sums[2 * ch + 1]
        }
        for b in 0..<n {
            for ch in 0..<c {
                let r = stats.inverseStd[ch], g = gamma.storage[ch]
                let meanD = sums[2 * ch] / count, meanDX = sums[2 * ch + 1] / count
                for i in 0..<plane {
                    let index = (b * c + ch) * plane + i
                    if training {
                        let xhat = (x.storage[index] - stats.mean[ch]) * r
                        dx.storage[index] = g * r * (dy.storage[index] - meanD - xhat * meanDX)
                    } else {
                        dx.storage[index] = g * r * dy.storage[index]
                    }
                }
            }
        }
    }
}
