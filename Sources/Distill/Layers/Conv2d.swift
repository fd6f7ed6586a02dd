/// 2-D convolution, `k×k` kernel, stride 1, zero padding `p`: `(N, Cin, H, W) → (N, Cout, H+2p−k+1, W+2p−k+1)`.
///
/// im2col + GEMM per image: the image's columns `cols[Cin·k·k, Ho·Wo]` (a per-worker buffer that stays in cache) are
/// multiplied by the weight matrix `W[Cout, Cin·k·k]` straight into the image's `(Cout, Ho·Wo)` output, which is
/// already NCHW, so no transposes are needed; the backward GEMMs read `dy` in place the same way. Images are split
/// across workers; parameter gradients are summed per worker and then reduced in worker order (deterministic).
public struct Conv2d: Sendable {
    /// `(Cout, Cin, k, k)`.
    public var weight: Tensor
    /// `(Cout)`.
    public var bias: Tensor
    /// Zero padding on each side.
    public let padding: Int

    /// Kernel size.
    public var kernelSize: Int { weight.shape[2] }
    public var inputChannels: Int { weight.shape[1] }
    public var outputChannels: Int { weight.shape[0] }

    /// Creates a convolution initialised like PyTorch (`kaiming_uniform_(a=√5)`: weight and bias uniform in
    /// `±1/√fan_in`).
    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, padding: Int, using rng: inout RandomSource) {
        let bound = 1 / Float(inputChannels * kernelSize * kernelSize).squareRoot()
        weight = .uniform([outputChannels, inputChannels, kernelSize, kernelSize], low: -bound, high: bound, using: &rng)
        bias = .uniform([outputChannels], low: -bound, high: bound, using: &rng)
        self.padding = padding
    }

    /// Creates a convolution from given parameters.
    public init(weight: Tensor, bias: Tensor, padding: Int) {
        precondition(weight.shape.count == 4 && weight.shape[2] == weight.shape[3], "weight must be (Cout, Cin, k, k)")
        precondition(bias.shape == [weight.shape[0]], "bias must be (Cout)")
        self.weight = weight
        self.bias = bias
        self.padding = padding
    }

    /// The output shape for an input shape.
    public func outputShape(_ input: [Int]) -> [Int] {
        [input[0], outputChannels, input[2] + 2 * padding - kernelSize + 1, input[3] + 2 * padding - kernelSize + 1]
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x) }

    /// y = conv(x) + bias.
    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[1] == inputChannels, "conv expects (N, \(inputChannels), H, W), got \(x.shape)")
        let outShape = outputShape(x.shape)
        let (n, cout) = (x.shape[0], outputChannels)
        let plane = outShape[2] * outShape[3]
        let kdim = inputChannels * kernelSize * kernelSize
        let workers = min(Parallel.threads, n)
        var y = Tensor(uninitializedShape: outShape)
        var scratch = Tensor(uninitializedShape: [workers * kdim * plane])  // one image's columns per worker
        x.storage.withUnsafeBufferPointer { xp in
            weight.storage.withUnsafeBufferPointer { wp in
                bias.storage.withUnsafeBufferPointer { bp in
                    y.storage.withUnsafeMutableBufferPointer { yp in
                        scratch.storage.withUnsafeMutableBufferPointer { sp in
                            Parallel.forRanges(n) { worker, images in
                                let cols = sp.baseAddress! + worker * kdim * plane
                                for image in images {
                                    im2col(xp, shape: x.shape, image: image, into: cols)
                                    // The image's output (Cout, P) starts as the bias and the GEMM adds W·cols to it.
                                    let out = yp.baseAddress! + image * cout * plane
                                    for o in 0..<cout { (out + o * plane).update(repeating: bp[o], count: plane) }
                                    BLAS.gemm(m: cout, n: plane, k: kdim, a: wp.baseAddress!, b: cols, beta: 1, c: out)
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Gradients of a convolution.
    public struct Gradients: Sendable {
        /// dL/dx, when requested.
        public var input: Tensor?
        /// dL/dW and dL/db, when requested.
        public var weight: Tensor?
        public var bias: Tensor?
    }

    /// Backward pass: `dy` is dL/dy; returns dL/dx and/or dL/dW, dL/db.
    public func backward(_ x: Tensor, outputGradient dy: Tensor, input needInput: Bool = true,
                         parameters needParameters: Bool = true) -> Gradients {
        let outShape = outputShape(x.shape)
        precondition(dy.shape == outShape, "output gradient \(dy.shape) does not match \(outShape)")
        let (n, cout) = (x.shape[0], outputChannels)
        let plane = outShape[2] * outShape[3]
        let kdim = inputChannels * kernelSize * kernelSize
        let imageSize = x.count / max(n, 1)
        let workers = min(Parallel.threads, n)
        var dx = needInput ? Tensor(uninitializedShape: x.shape) : Tensor(shape: [0])
        var scratch = Tensor(uninitializedShape: [workers * kdim * plane])  // one image's columns per worker
        var partialW = [Float](repeating: 0, count: needParameters ? workers * cout * kdim : 0)
        var partialB = [Float](repeating: 0, count: needParameters ? workers * cout : 0)
        x.storage.withUnsafeBufferPointer { xp in
            dy.storage.withUnsafeBufferPointer { dyp in
                weight.storage.withUnsafeBufferPointer { wp in
                    dx.storage.withUnsafeMutableBufferPointer { dxp in
                        partialW.withUnsafeMutableBufferPointer { pw in
                            partialB.withUnsafeMutableBufferPointer { pb in
                                scratch.storage.withUnsafeMutableBufferPointer { sp in
                                    Parallel.forRanges(n) { worker, images in
                                        let cols = sp.baseAddress! + worker * kdim * plane
                                        for image in images {
                                            let grad = dyp.baseAddress! + image * cout * plane  // (Cout, P)
                                            if needParameters {
                                                // dW += dy_image · cols^T; db += row sums of dy_image.
                                                im2col(xp, shape: x.shape, image: image, into: cols)
                                                BLAS.gemm(transposeB: true, m: cout, n: kdim, k: plane, a: grad, b: cols, beta: 1,
                                                          c: pw.baseAddress! + worker * cout * kdim)
                                                for o in 0..<cout {
                                                    var sum: Float = 0
                                                    let row = grad + o * plane
                                                    for j in 0..<plane { sum += row[j] }
                                                    pb[worker * cout + o] += sum
                                                }
                                            }
                                            if needInput {
                                                // cols = W^T · dy_image, folded back onto the image.
                                                BLAS.gemm(transposeA: true, m: kdim, n: plane, k: cout, a: wp.baseAddress!, b: grad, c: cols)
                                                (dxp.baseAddress! + image * imageSize).update(repeating: 0, count: imageSize)
                                                col2im(cols, shape: x.shape, image: image, into: dxp.baseAddress!)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var result = Gradients()
        if needInput { result.input = dx }
        if needParameters {
            var dw = Tensor(shape: weight.shape), db = Tensor(shape: bias.shape)
            for w in 0..<workers {
                for i in 0..<(cout * kdim) { dw.storage[i] += partialW[w * cout * kdim + i] }
                for o in 0..<cout { db.storage[o] += partialB[w * cout + o] }
            }
            result.weight = dw
            result.bias = db
        }
        return result
    }

    /// Whether the output has the input's size (`2p = k − 1`, the ConvNet's case), so that im2col rows are shifted
    /// copies of the channels.
    @inline(__always)
    private func sameSize(h: Int, w: Int) -> Bool { 2 * padding == kernelSize - 1 && padding < h && padding < w }

    /// For the shift (dy, dx) of an `h×w` plane: the output positions `d` whose source `d + shift` lies in the plane
    /// and in a valid row. Positions in the span whose column leaves the plane are fixed by ``zeroBand``.
    @inline(__always)
    private func shiftedSpan(h: Int, w: Int, dy: Int, dx: Int) -> (span: Range<Int>, shift: Int) {
        let shift = dy * w + dx
        let low = max(max(0, -dy) * w, -shift), high = min(min(h, h - dy) * w, h * w - shift)
        return (low..<max(low, high), shift)
    }

    /// Zeros the columns of `row` (an `h×w` plane) whose source column `ox + dx` is outside the plane.
    @inline(__always)
    private func zeroBand(_ row: UnsafeMutablePointer<Float>, h: Int, w: Int, dy: Int, dx: Int) {
        guard dx != 0 else { return }
        let (first, count) = dx < 0 ? (0, -dx) : (w - dx, dx)
        for oy in max(0, -dy)..<min(h, h - dy) { (row + oy * w + first).update(repeating: 0, count: count) }
    }

    /// Fills `cols[(ci·k + ky)·k + kx, oy·Wo + ox] = x[image, ci, oy + ky − p, ox + kx − p]` (0 outside).
    @inline(__always)
    private func im2col(_ x: UnsafeBufferPointer<Float>, shape: [Int], image index: Int, into cols: UnsafeMutablePointer<Float>) {
        let (cin, h, w, k, p) = (shape[1], shape[2], shape[3], kernelSize, padding)
        let (ho, wo) = (h + 2 * p - k + 1, w + 2 * p - k + 1)
        let plane = ho * wo
        if sameSize(h: h, w: w) {
            // Each row is the channel shifted by (ky − p, kx − p): one contiguous copy, then zeros where the shift
            // leaves the image (whole rows at the top or bottom, one band of columns at the left or right).
            for ci in 0..<cin {
                let image = x.baseAddress! + (index * cin + ci) * h * w
                for ky in 0..<k {
                    for kx in 0..<k {
                        let row = cols + ((ci * k + ky) * k + kx) * plane
                        let (span, shift) = shiftedSpan(h: h, w: w, dy: ky - p, dx: kx - p)
                        row.update(repeating: 0, count: span.lowerBound)
                        if !span.isEmpty { (row + span.lowerBound).update(from: image + span.lowerBound + shift, count: span.count) }
                        (row + span.upperBound).update(repeating: 0, count: plane - span.upperBound)
                        zeroBand(row, h: h, w: w, dy: ky - p, dx: kx - p)
                    }
                }
            }
            return
        }
        for ci in 0..<cin {
            let image = x.baseAddress! + (index * cin + ci) * h * w
            for ky in 0..<k {
                for kx in 0..<k {
                    let row = cols + ((ci * k + ky) * k + kx) * plane
                    let oxLow = max(0, p - kx), oxHigh = min(wo, w + p - kx)
                    for oy in 0..<ho {
                        let dst = row + oy * wo
                        let iy = oy + ky - p
                        if iy < 0 || iy >= h || oxLow >= oxHigh {
                            for ox in 0..<wo { dst[ox] = 0 }
                            continue
                        }
                        let src = image + iy * w + kx - p
                        for ox in 0..<oxLow { dst[ox] = 0 }
                        for ox in oxLow..<oxHigh { dst[ox] = src[ox] }
                        for ox in oxHigh..<wo { dst[ox] = 0 }
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: accumulates one image's columns back into `dx`. Overwrites `cols` (the padding band).
    @inline(__always)
    private func col2im(_ cols: UnsafeMutablePointer<Float>, shape: [Int], image index: Int, into dx: UnsafeMutablePointer<Float>) {
        let (cin, h, w, k, p) = (shape[1], shape[2], shape[3], kernelSize, padding)
        let (ho, wo) = (h + 2 * p - k + 1, w + 2 * p - k + 1)
        let plane = ho * wo
        if sameSize(h: h, w: w) {
            for ci in 0..<cin {
                let image = dx + (index * cin + ci) * h * w
                for ky in 0..<k {
                    for kx in 0..<k {
                        let row = cols + ((ci * k + ky) * k + kx) * plane
                        let (span, shift) = shiftedSpan(h: h, w: w, dy: ky - p, dx: kx - p)
                        zeroBand(row, h: h, w: w, dy: ky - p, dx: kx - p)  // padding positions carry no gradient
                        let target = image + shift
                        for d in span { target[d] += row[d] }
                    }
                }
            }
            return
        }
        for ci in 0..<cin {
            let image = dx + (index * cin + ci) * h * w
            for ky in 0..<k {
                for kx in 0..<k {
                    let row = cols + ((ci * k + ky) * k + kx) * plane
                    let oxLow = max(0, p - kx), oxHigh = min(wo, w + p - kx)
                    guard oxLow < oxHigh else { continue }
                    for oy in 0..<ho {
                        let iy = oy + ky - p
                        if iy < 0 || iy >= h { continue }
                        let src = row + oy * wo
                        let dst = image + iy * w + kx - p
                        for ox in oxLow..<oxHigh { dst[ox] += src[ox] }
                    }
                }
            }
        }
    }
}
