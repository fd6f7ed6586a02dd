import Foundation

/// A distilled set: a few labelled synthetic images per class and how they were made. Stored as safetensors with
/// `images` (F32, `[N, C, H, W]`, normalised like the dataset), `labels` (I64, `[N]`) and string metadata.
public struct SyntheticSet: Sendable {
    /// Images and labels.
    public var data: LabeledImages
    /// Provenance (see ``SyntheticSet/Metadata``).
    public var metadata: Metadata

    public init(data: LabeledImages, metadata: Metadata) {
        self.data = data
        self.metadata = metadata
    }

    /// What produced a set. Every field travels as a string in the safetensors `__metadata__`.
    public struct Metadata: Sendable, Codable, Equatable {
        public var dataset: String
        public var imageShape: [Int]
        public var classCount: Int
        public var normalization: Normalization
        public var method: String
        public var imagesPerClass: Int
        public var iterations: Int
        public var initialization: String
        public var seed: UInt64
        public var softwareVersion: String
        /// Real images per class the set was distilled from (used as merge weights; empty when unknown).
        public var sourceClassCounts: [Int]
        /// The differential-privacy guarantee of a DP-DM set (nil: none).
        public var privacy: PrivacyCalibration?
        /// The whole recipe the set was made with (nil: written before recipes were recorded, or not made by ``Distiller``).
        public var recipe: DistillationRecipe?

        public init(dataset: String, imageShape: [Int], classCount: Int, normalization: Normalization, method: String,
                    imagesPerClass: Int, iterations: Int, initialization: String, seed: UInt64,
                    softwareVersion: String = FedDistillInfo.version, sourceClassCounts: [Int] = [],
                    privacy: PrivacyCalibration? = nil) {
            self.dataset = dataset
            self.imageShape = imageShape
            self.classCount = classCount
            self.normalization = normalization
            self.method = method
            self.imagesPerClass = imagesPerClass
            self.iterations = iterations
            self.initialization = initialization
            self.seed = seed
            self.softwareVersion = softwareVersion
            self.sourceClassCounts = sourceClassCounts
            self.privacy = privacy
        }

        var strings: [String: String] {
            func json<T: Encodable>(_ value: T) -> String {
                String(decoding: (try? JSONEncoder().encode(value)) ?? Data(), as: UTF8.self)
            }
            var strings = ["dataset": dataset, "image_shape": json(imageShape), "class_count": String(classCount),
                    "normalization_mean": json(normalization.mean), "normalization_std": json(normalization.std),
                    "method": method, "ipc": String(imagesPerClass), "iterations": String(iterations),
                    "init": initialization, "seed": String(seed), "software_version": softwareVersion,
                    "source_class_counts": json(sourceClassCounts), "format": "feddistill.synthetic-set.v1"]
            if let privacy { strings["differential_privacy"] = json(privacy) }
            if let recipe { strings["recipe"] = recipe.json() }
            return strings
        }

        init(strings: [String: String], path: String) throws(DatasetError) {
            func field(_ key: String) throws(DatasetError) -> String {
                guard let value = strings[key] else { throw .malformed(path: path, reason: "metadata lacks '\(key)'") }
                return value
            }
            func decode<T: Decodable>(_ key: String, as type: T.Type) throws(DatasetError) -> T {
                let text = try field(key)
                guard let value = try? JSONDecoder().decode(T.self, from: Data(text.utf8)) else {
                    throw .malformed(path: path, reason: "metadata '\(key)' is not valid: \(text.prefix(40))")
                }
                return value
            }
            func integer(_ key: String) throws(DatasetError) -> Int {
                let text = try field(key)
                guard let value = Int(text) else { throw .malformed(path: path, reason: "metadata '\(key)' is not an integer") }
                return value
            }
            let mean = try decode("normalization_mean", as: [Float].self), std = try decode("normalization_std", as: [Float].self)
            guard mean.count == std.count, std.allSatisfy({ $0 > 0 }) else { throw .malformed(path: path, reason: "invalid normalisation") }
            guard let seed = UInt64(try field("seed")) else { throw .malformed(path: path, reason: "metadata 'seed' is not an integer") }
            self.init(dataset: try field("dataset"), imageShape: try decode("image_shape", as: [Int].self),
                      classCount: try integer("class_count"), normalization: Normalization(mean: mean, std: std),
                      method: try field("method"), imagesPerClass: try integer("ipc"), iterations: try integer("iterations"),
                      initialization: try field("init"), seed: seed, softwareVersion: try field("software_version"),
                      sourceClassCounts: (try? decode("source_class_counts", as: [Int].self)) ?? [],
                      privacy: strings["differential_privacy"] == nil ? nil : try decode("differential_privacy", as: PrivacyCalibration.self))
            if let text = strings["recipe"] {
                do { recipe = try DistillationRecipe.decode(json: text) } catch {
                    throw .malformed(path: path, reason: "metadata 'recipe' is not valid: \(error)")
                }
            }
        }
    }

    /// The safetensors bytes.
    public func encoded() -> [UInt8] {
        SafeTensors.encode(["images": .float32(data.images.storage, shape: data.images.shape),
                            "labels": .int64(data.labels.map(Int64.init), shape: [data.count])],
                           metadata: metadata.strings)
    }

    /// Parses and validates a set: dtypes, shapes against the metadata, finite values, labels in range.
    public static func decode(_ bytes: [UInt8], path: String) throws(DatasetError) -> SyntheticSet {
        let (entries, strings) = try SafeTensors.decode(bytes, path: path)
        let metadata = try Metadata(strings: strings, path: path)
        guard let images = entries["images"], images.dtype == "F32" else {
            throw .malformed(path: path, reason: "missing F32 tensor 'images'")
        }
        guard let labels = entries["labels"], labels.dtype == "I64", labels.shape.count == 1 else {
            throw .malformed(path: path, reason: "missing I64 tensor 'labels' of rank 1")
        }
        guard images.shape.count == 4, Array(images.shape.dropFirst()) == metadata.imageShape else {
            throw .malformed(path: path, reason: "images have shape \(images.shape), expected [N] + \(metadata.imageShape)")
        }
        guard images.shape[0] == labels.shape[0], images.shape[0] > 0 else {
            throw .malformed(path: path, reason: "\(images.shape[0]) images but \(labels.shape[0]) labels")
        }
        guard metadata.classCount > 0, metadata.classCount <= 100_000 else { throw .malformed(path: path, reason: "bad class count") }
        let values = images.floats
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw .malformed(path: path, reason: "image value \(bad) is not finite (NaN or infinity)")
        }
        var labelInts: [Int] = []
        for (i, label) in labels.int64s.enumerated() {
            guard label >= 0, label < metadata.classCount else {
                throw .labelOutOfRange(path: path, index: i, label: Int(clamping: label), classCount: metadata.classCount)
            }
            labelInts.append(Int(label))
        }
        return SyntheticSet(data: LabeledImages(images: Tensor(shape: images.shape, storage: values), labels: labelInts,
                                                classCount: metadata.classCount), metadata: metadata)
    }

    /// Writes the set atomically (temporary file, then rename).
    public func write(to path: String) throws {
        try Data(encoded()).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Reads and validates a set file.
    public static func read(_ path: String) throws(DatasetError) -> SyntheticSet {
        guard let data = FileManager.default.contents(atPath: path) else { throw .fileNotFound(path: path) }
        return try decode([UInt8](data), path: path)
    }

    /// Checks that the set fits a dataset (image shape and class count).
    public func check(fits descriptor: DatasetDescriptor) throws(DatasetError) {
        guard metadata.imageShape == descriptor.imageShape, metadata.classCount == descriptor.classCount else {
            throw .malformed(path: metadata.dataset, reason: "set has images \(metadata.imageShape) and \(metadata.classCount) classes, "
                             + "but \(descriptor.name) has \(descriptor.imageShape) and \(descriptor.classCount)")
        }
    }
}

/// Build information.
public enum FedDistillInfo {
    /// The software version written into every set and report.
    public static let version = "0.1.0"
}
