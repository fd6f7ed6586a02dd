import Foundation

/// Multi-formation (Kim et al., "Dataset Condensation via Efficient Synthetic-Data Parameterization", ICML 2022): a
/// stored image is cut into `factor × factor` tiles and each tile is resized to the full image size, so one stored
/// image yields `factor²` training images of lower resolution. At the same bytes a set then holds `factor²` times as
/// many training images.
///
/// The resize is bilinear with half-pixel centres (PyTorch's `interpolate(mode: "bilinear", align_corners: false)`,
/// the reference's decoder): output pixel `o` of a size-`n` tile resized to `N` reads source coordinate
/// `max(0, (o + ½)·n/N − ½)` between its two nearest tile pixels. Decoding is linear; ``adjoint(_:factor:)`` is its
/// transpose, which carries a gradient on the decoded images back to the stored ones.
///
/// Decoded image `i·factor² + t` is tile `t` (row-major) of stored image `i`.
public enum MultiFormation {
    /// Factors a recipe or a set may declare.
    public static let factors = 1...4

    /// Why `factor` cannot decode images of `imageShape` (`[C, H, W]`), or nil when it can.
    public static func problem(factor: Int, imageShape: [Int]) -> String? {
        guard factors.contains(factor) else { return "must lie in \(factors.lowerBound)...\(factors.upperBound), got \(factor)" }
        guard imageShape.count == 3, imageShape[1] % factor == 0, imageShape[2] % factor == 0 else {
            return "\(factor) does not divide the image size \(imageShape.dropFirst().map(String.init).joined(separator: "×"))"
        }
        return nil
    }

    /// One axis of the resize: for every output position, the two tile positions it reads and their weights.
    struct Axis {
        var low: [Int], high: [Int], lowWeight: [Float], highWeight: [Float]

        init(tile: Int, output: Int) {
            low = []; high = []; lowWeight = []; highWeight = []
            let scale = Double(tile) / Double(output)
            for o in 0..<output {
                let source = max(0, (Double(o) + 0.5) * scale - 0.5)
                let i0 = min(Int(source.rounded(.down)), tile - 1)
                let fraction = Float(source - Double(i0))
                low.append(i0)
                high.append(min(i0 + 1, tile - 1))
                lowWeight.append(1 - fraction)
                highWeight.append(fraction)
            }
        }
    }

    /// The training images of `images` (`[N, C, H, W]`): `[N·factor², C, H, W]`. Factor 1 returns the input.
    public static func decode(_ images: Tensor, factor: Int) -> Tensor {
        guard factor > 1 else { return images }
        precondition(problem(factor: factor, imageShape: Array(images.shape.dropFirst())) == nil, "factor \(factor) cannot decode \(images.shape)")
        let (n, channels, height, width) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let (tileHeight, tileWidth) = (height / factor, width / factor)
        let rows = Axis(tile: tileHeight, output: height), columns = Axis(tile: tileWidth, output: width)
        var out = Tensor(shape: [n * factor * factor, channels, height, width])
        let plane = height * width
        images.storage.withUnsafeBufferPointer { source in
            out.storage.withUnsafeMutableBufferPointer { target in
                for i in 0..<n {
                    for t in 0..<(factor * factor) {
                        let (top, left) = ((t / factor) * tileHeight, (t % factor) * tileWidth)
                        for c in 0..<channels {
                            let from = (i * channels + c) * plane
                            let to = ((i * factor * factor + t) * channels + c) * plane
                            for y in 0..<height {
                                let r0 = from + (top + rows.low[y]) * width + left, r1 = from + (top + rows.high[y]) * width + left
                                let (wy0, wy1) = (rows.lowWeight[y], rows.highWeight[y])
                                for x in 0..<width {
                                    let (x0, x1) = (columns.low[x], columns.high[x])
                                    let (wx0, wx1) = (columns.lowWeight[x], columns.highWeight[x])
                                    target[to + y * width + x] = wy0 * (wx0 * source[r0 + x0] + wx1 * source[r0 + x1])
                                        + wy1 * (wx0 * source[r1 + x0] + wx1 * source[r1 + x1])
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The transpose of ``decode(_:factor:)``: a gradient on the decoded images (`[N·factor², C, H, W]`) as a gradient on
    /// the stored ones (`[N, C, H, W]`).
    public static func adjoint(_ gradient: Tensor, factor: Int) -> Tensor {
        guard factor > 1 else { return gradient }
        let tiles = factor * factor
        precondition(gradient.shape[0] % tiles == 0, "a decoded batch holds factor² images per stored image")
        precondition(problem(factor: factor, imageShape: Array(gradient.shape.dropFirst())) == nil, "factor \(factor) cannot encode \(gradient.shape)")
        let (channels, height, width) = (gradient.shape[1], gradient.shape[2], gradient.shape[3])
        let n = gradient.shape[0] / tiles
        let (tileHeight, tileWidth) = (height / factor, width / factor)
        let rows = Axis(tile: tileHeight, output: height), columns = Axis(tile: tileWidth, output: width)
        var out = Tensor(shape: [n, channels, height, width])
        let plane = height * width
        gradient.storage.withUnsafeBufferPointer { source in
            out.storage.withUnsafeMutableBufferPointer { target in
                for i in 0..<n {
                    for t in 0..<tiles {
                        let (top, left) = ((t / factor) * tileHeight, (t % factor) * tileWidth)
                        for c in 0..<channels {
                            let to = (i * channels + c) * plane
                            let from = ((i * tiles + t) * channels + c) * plane
                            for y in 0..<height {
                                let r0 = to + (top + rows.low[y]) * width + left, r1 = to + (top + rows.high[y]) * width + left
                                let (wy0, wy1) = (rows.lowWeight[y], rows.highWeight[y])
                                for x in 0..<width {
                                    let g = source[from + y * width + x]
                                    let (x0, x1) = (columns.low[x], columns.high[x])
                                    let (wx0, wx1) = (columns.lowWeight[x], columns.highWeight[x])
                                    target[r0 + x0] += wy0 * wx0 * g
                                    target[r0 + x1] += wy0 * wx1 * g
                                    target[r1 + x0] += wy1 * wx0 * g
                                    target[r1 + x1] += wy1 * wx1 * g
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The training set of stored images: each image decoded, each label repeated `factor²` times.
    public static func decode(_ set: LabeledImages, factor: Int) -> LabeledImages {
        guard factor > 1 else { return set }
        let tiles = factor * factor
        return LabeledImages(images: decode(set.images, factor: factor), labels: set.labels.flatMap { [Int](repeating: $0, count: tiles) },
                             classCount: set.classCount)
    }

    /// The rows of the decoded batch that come from stored rows `rows`, in order.
    public static func decodedRows(_ rows: [Int], factor: Int) -> [Int] {
        let tiles = factor * factor
        return rows.flatMap { row in (row * tiles)..<((row + 1) * tiles) }
    }

    /// A loss on the decoded images as a loss on the stored ones: decodes `images`, lets `body` compute the loss and
    /// its gradient on the decoded batch (with each class's decoded rows), and carries the gradient back.
    public static func lossAndGradient(factor: Int, images: Tensor, rowsByClass: [[Int]],
                                       body: (_ decoded: Tensor, _ decodedRowsByClass: [[Int]]) -> (loss: Double, gradient: Tensor))
        -> (loss: Double, gradient: Tensor) {
        guard factor > 1 else { return body(images, rowsByClass) }
        let (loss, gradient) = body(decode(images, factor: factor), rowsByClass.map { decodedRows($0, factor: factor) })
        return (loss, adjoint(gradient, factor: factor))
    }
}
