/// Images with integer class labels: the unit every loader, partitioner, trainer and distiller works on.
public struct LabeledImages: Sendable {
    /// Images, `(N, C, H, W)`, already normalised.
    public var images: Tensor
    /// One label in `0..<classCount` per image.
    public var labels: [Int]
    /// The number of classes of the dataset (some may be absent from this subset).
    public var classCount: Int

    /// Creates a labelled set, checking that shapes and labels agree.
    public init(images: Tensor, labels: [Int], classCount: Int) {
        precondition(images.shape.count == 4, "images must be NCHW, got \(images.shape)")
        precondition(images.shape[0] == labels.count, "\(images.shape[0]) images but \(labels.count) labels")
        precondition(labels.allSatisfy { $0 >= 0 && $0 < classCount }, "label outside 0..<\(classCount)")
        self.images = images
        self.labels = labels
        self.classCount = classCount
    }

    /// The number of images.
    public var count: Int { labels.count }
    /// `[C, H, W]`.
    public var imageShape: [Int] { Array(images.shape.dropFirst()) }

    /// The images at `indices`, in that order.
    public func subset(_ indices: [Int]) -> LabeledImages {
        LabeledImages(images: images.gather(indices), labels: indices.map { labels[$0] }, classCount: classCount)
    }

    /// Indices of the images of each class: `result[c]` lists class `c`'s images in order.
    public func indicesByClass() -> [[Int]] {
        var result = [[Int]](repeating: [], count: classCount)
        for (i, label) in labels.enumerated() { result[label].append(i) }
        return result
    }

    /// How many images each class has.
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: classCount)
        for label in labels { counts[label] += 1 }
        return counts
    }

    /// `k` images per class drawn at random (fewer for a class that has fewer), grouped by class.
    public func randomSubset(imagesPerClass k: Int, using rng: inout RandomSource) -> LabeledImages {
        var chosen: [Int] = []
        for members in indicesByClass() { chosen += rng.choose(min(k, members.count), from: members) }
        return subset(chosen)
    }

    /// Joins sets of the same image shape and class count.
    public static func concatenate(_ parts: [LabeledImages]) -> LabeledImages {
        precondition(!parts.isEmpty, "nothing to concatenate")
        return LabeledImages(images: Tensor.concatenate(parts.map(\.images)),
                             labels: parts.flatMap(\.labels), classCount: parts[0].classCount)
    }
}

/// Per-channel normalisation `x ↦ (x − mean) / std` applied to pixel values scaled to `[0, 1]`.
public struct Normalization: Sendable, Codable, Equatable {
    /// Per-channel mean of the `[0, 1]`-scaled pixels.
    public var mean: [Float]
    /// Per-channel standard deviation of the `[0, 1]`-scaled pixels.
    public var std: [Float]

    /// Creates a normalisation; `mean` and `std` have one entry per channel.
    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count && std.allSatisfy { $0 > 0 }, "invalid normalisation")
        self.mean = mean
        self.std = std
    }

    /// Converts raw bytes (`(N, C, H, W)` order, values in `0...maxValue`) to normalised floats.
    public func normalize(_ raw: [UInt8], shape: [Int], maxValue: Float = 255) -> Tensor {
        let plane = shape[2] * shape[3]
        var out = [Float](repeating: 0, count: raw.count)
        for i in 0..<raw.count {
            let c = (i / plane) % shape[1]
            out[i] = (Float(raw[i]) / maxValue - mean[c]) / std[c]
        }
        return Tensor(shape: shape, storage: out)
    }

    /// Maps normalised images back to `[0, 1]` pixels (clamped), for pictures.
    public func denormalize(_ images: Tensor) -> Tensor {
        let plane = images.shape[2] * images.shape[3]
        var out = images
        for i in 0..<out.count {
            let c = (i / plane) % images.shape[1]
            out.storage[i] = min(1, max(0, images.storage[i] * std[c] + mean[c]))
        }
        return out
    }
}

/// A dataset's train and test splits with its description.
public struct DatasetSplits: Sendable {
    /// What the dataset is.
    public var descriptor: DatasetDescriptor
    /// Training images.
    public var train: LabeledImages
    /// Held-out test images.
    public var test: LabeledImages

    /// Creates the splits of a dataset.
    public init(descriptor: DatasetDescriptor, train: LabeledImages, test: LabeledImages) {
        self.descriptor = descriptor
        self.train = train
        self.test = test
    }
}
