/// Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021) with the reference parameters.
///
/// In 'S' mode one transformation family is drawn per call (color, crop, cutout, flip, scale or rotate); its random
/// parameters are drawn per image, or once for the whole batch when `shared` (the siamese use in DM/DSA, where the
/// real and the synthetic batch of a class get the same draw). Every transformation is linear in the images for
/// fixed parameters, so `backward` applies the transposed map: gradients flow back to synthetic images (bilinear
/// sampling for scale and rotate).
public struct DSA: Sendable {
    /// A transformation family.
    public enum Operation: String, Sendable, CaseIterable, Codable {
        case color, crop, cutout, flip, scale, rotate
    }

    /// The reference hyper-parameters (`ParamDiffAug`).
    public var flipProbability: Float = 0.5
    public var scaleRatio: Float = 1.2
    public var rotateDegrees: Float = 15
    public var cropPadRatio: Float = 0.125
    public var cutoutRatio: Float = 0.5
    public var brightness: Float = 1.0
    public var saturation: Float = 2.0
    public var contrast: Float = 0.5
    /// The families drawn from.
    public var operations: [Operation]

    /// `color_crop_cutout_flip_scale_rotate`, without `flip` for digit datasets (a flipped digit is another symbol).
    public init(dataset: String) {
        let digitsLike = ["digits", "mnist", "svhn", "usps"].contains(dataset)
        operations = Operation.allCases.filter { !(digitsLike && $0 == .flip) }
    }

    /// Explicit families, e.g. parsed from `color_crop_cutout`.
    public init(operations: [Operation]) {
        precondition(!operations.isEmpty, "DSA needs at least one operation")
        self.operations = operations
    }

    /// One draw: the family and per-image parameters.
    public struct Draw: Sendable {
        public var operation: Operation
        /// Per image: color (brightness shift, saturation factor, contrast factor); crop (dy, dx); cutout (centre y, x);
        /// flip (1 = flip); scale (sx, sy); rotate (θ radians).
        public var values: [[Float]]
    }

    /// Draws a family and its parameters for a batch of `count` images of `shape` `[C, H, W]`.
    public func draw(count: Int, shape: [Int], shared: Bool, using rng: inout RandomSource) -> Draw {
        let operation = operations[rng.integer(below: operations.count)]
        let (h, w) = (shape[1], shape[2])
        func one() -> [Float] {
            switch operation {
            case .color:
                return [(rng.uniform() - 0.5) * brightness, rng.uniform() * saturation, rng.uniform() + contrast]
            case .crop:
                let sy = Int(Float(h) * cropPadRatio + 0.5), sx = Int(Float(w) * cropPadRatio + 0.5)
                return [Float(rng.integer(below: 2 * sy + 1) - sy), Float(rng.integer(below: 2 * sx + 1) - sx)]
            case .cutout:
                let size = (Int(Float(h) * cutoutRatio + 0.5), Int(Float(w) * cutoutRatio + 0.5))
                return [Float(rng.integer(below: h + (1 - size.0 % 2))), Float(rng.integer(below: w + (1 - size.1 % 2)))]
            case .flip:
                return [rng.uniform() < flipProbability ? 1 : 0]
            case .scale:
                let low = 1 / scaleRatio
                return [rng.uniform() * (scaleRatio - low) + low, rng.uniform() * (scaleRatio - low) + low]
            case .rotate:
                return [(rng.uniform() - 0.5) * 2 * rotateDegrees / 180 * .pi]
            }
        }
        if shared {
            let value = one()
            return Draw(operation: operation, values: [[Float]](repeating: value, count: count))
        }
        return Draw(operation: operation, values: (0..<count).map { _ in one() })
    }

    /// The siamese use: one draw shared by every image of a real and a synthetic batch of the same class.
    /// - Returns: both augmented batches and the synthetic side's draw (for ``backward(_:outputGradient:)``).
    public func siamese(real: Tensor, synthetic: Tensor, using rng: inout RandomSource) -> (real: Tensor, synthetic: Tensor, draw: Draw) {
        let shared = draw(count: 1, shape: Array(real.shape.dropFirst()), shared: true, using: &rng)
        func repeated(_ count: Int) -> Draw { Draw(operation: shared.operation, values: [[Float]](repeating: shared.values[0], count: count)) }
        let syntheticDraw = repeated(synthetic.shape[0])
        return (apply(repeated(real.shape[0]), to: real), apply(syntheticDraw, to: synthetic), syntheticDraw)
    }

    /// The training-time use: one family for the batch, parameters drawn per image.
    public func randomlyAugmented(_ images: Tensor, using rng: inout RandomSource) -> Tensor {
        apply(draw(count: images.shape[0], shape: Array(images.shape.dropFirst()), shared: false, using: &rng), to: images)
    }

    /// ``randomlyAugmented(_:using:)`` as a trainer's batch augmentation.
    public var batchAugmentation: BatchAugmentation {
        { @Sendable images, rng in self.randomlyAugmented(images, using: &rng) }
    }

    /// Applies a draw to `x` `(N, C, H, W)`.
    public func apply(_ draw: Draw, to x: Tensor) -> Tensor { transform(draw, x, transpose: false) }

    /// dL/dx given dL/dy of `apply(draw, to: x)`.
    public func backward(_ draw: Draw, outputGradient dy: Tensor) -> Tensor { transform(draw, dy, transpose: true) }

    private func transform(_ draw: Draw, _ x: Tensor, transpose: Bool) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        precondition(draw.values.count == n, "draw made for \(draw.values.count) images, got \(n)")
        let plane = h * w, image = c * plane
        var y = Tensor(shape: x.shape)
        x.storage.withUnsafeBufferPointer { xp in
            y.storage.withUnsafeMutableBufferPointer { yp in
                Parallel.forEach(n) { b in
                    let src = xp.baseAddress! + b * image, dst = yp.baseAddress! + b * image
                    let v = draw.values[b]
                    switch draw.operation {
                    case .color:
                        Self.color(src, dst, channels: c, plane: plane, shift: v[0], saturation: v[1], contrast: v[2], transpose: transpose)
                    case .crop:
                        // y[i, j] = x[i + dy, j + dx] (0 outside); the transpose shifts the other way.
                        let (sy, sx) = transpose ? (-Int(v[0]), -Int(v[1])) : (Int(v[0]), Int(v[1]))
                        for ch in 0..<c {
                            for i in 0..<h {
                                let si = i + sy
                                for j in 0..<w {
                                    let sj = j + sx
                                    dst[ch * plane + i * w + j] = si >= 0 && si < h && sj >= 0 && sj < w ? src[ch * plane + si * w + sj] : 0
                                }
                            }
                        }
                    case .cutout:
                        let size = (Int(Float(h) * cutoutRatio + 0.5), Int(Float(w) * cutoutRatio + 0.5))
                        let rows = max(0, Int(v[0]) - size.0 / 2)..<min(h, Int(v[0]) - size.0 / 2 + size.0)
                        let cols = max(0, Int(v[1]) - size.1 / 2)..<min(w, Int(v[1]) - size.1 / 2 + size.1)
                        for k in 0..<image { dst[k] = src[k] }
                        for ch in 0..<c { for i in rows { for j in cols { dst[ch * plane + i * w + j] = 0 } } }
                    case .flip:
                        for ch in 0..<c {
                            for i in 0..<h {
                                for j in 0..<w { dst[ch * plane + i * w + j] = src[ch * plane + i * w + (v[0] > 0 ? w - 1 - j : j)] }
                            }
                        }
                    case .scale:
                        Self.affine(src, dst, channels: c, h: h, w: w, theta: (v[0], 0, 0, v[1]), transpose: transpose)
                    case .rotate:
                        let (cs, sn) = (Float(_cos(Double(v[0]))), Float(_sin(Double(v[0]))))
                        Self.affine(src, dst, channels: c, h: h, w: w, theta: (cs, sn, -sn, cs), transpose: transpose)
                    }
                }
            }
        }
        return y
    }

    /// Brightness shift, then saturation (about the per-pixel channel mean), then contrast (about the image mean).
    /// All three are self-adjoint maps plus a constant, so the transpose applies the linear parts in reverse order.
    private static func color(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, channels c: Int, plane: Int,
                              shift: Float, saturation s: Float, contrast k: Float, transpose: Bool) {
        let image = c * plane
        for i in 0..<image { dst[i] = src[i] }
        func saturate() {
            guard c > 1 else { return }
            for p in 0..<plane {
                var mean: Float = 0
                for ch in 0..<c { mean += dst[ch * plane + p] }
                mean /= Float(c)
                for ch in 0..<c { dst[ch * plane + p] = (dst[ch * plane + p] - mean) * s + mean }
            }
        }
        func contrastStep() {
            let mean = Kernels.sum(UnsafePointer(dst), image) / Float(image)
            for i in 0..<image { dst[i] = (dst[i] - mean) * k + mean }
        }
        if transpose {
            contrastStep()
            saturate()
        } else {
            for i in 0..<image { dst[i] += shift }
            saturate()
            contrastStep()
        }
    }

    /// Bilinear `grid_sample` (zeros outside, `align_corners=True`) of an affine grid
    /// `(gx, gy) = θ · (xn, yn)` with `θ = (a, b; c, d)` and no translation. The transpose scatters instead of gathers.
    private static func affine(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, channels: Int, h: Int, w: Int,
                               theta: (Float, Float, Float, Float), transpose: Bool) {
        let plane = h * w
        if transpose { for i in 0..<(channels * plane) { dst[i] = 0 } }
        for i in 0..<h {
            let yn: Float = h > 1 ? -1 + 2 * Float(i) / Float(h - 1) : 0
            for j in 0..<w {
                let xn: Float = w > 1 ? -1 + 2 * Float(j) / Float(w - 1) : 0
                let gx = theta.0 * xn + theta.1 * yn, gy = theta.2 * xn + theta.3 * yn
                let px = (gx + 1) / 2 * Float(w - 1), py = (gy + 1) / 2 * Float(h - 1)
                let x0 = Int(_floorf(px)), y0 = Int(_floorf(py))
                let fx = px - Float(x0), fy = py - Float(y0)
                let weights = SIMD4<Float>((1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx)
                for ch in 0..<channels {
                    let out = ch * plane + i * w + j, base = ch * plane
                    var value: Float = 0
                    for corner in 0..<4 {
                        let yy = y0 + corner / 2, xx = x0 + corner % 2
                        guard yy >= 0 && yy < h && xx >= 0 && xx < w else { continue }
                        if transpose {
                            dst[base + yy * w + xx] += weights[corner] * src[out]
                        } else {
                            value += weights[corner] * src[base + yy * w + xx]
                        }
                    }
                    if !transpose { dst[out] = value }
                }
            }
        }
    }
}
