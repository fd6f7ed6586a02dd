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

    /// What a model trains on: the stored images, or with multi-formation (``Metadata/formationFactor`` > 1) their
    /// decoded images, `formationFactor²` per stored image (``MultiFormation``).
    public var trainingData: LabeledImages { MultiFormation.decode(data, factor: metadata.formationFactor) }

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
        /// The node's privacy-gate audit of this set (a JSON object of metrics, no data), when it ran one. It travels
        /// inside the set, so the node's signature covers it.
        public var privacyAudit: String?
        /// The whole recipe the set was made with (nil: written before recipes were recorded, or not made by ``Distiller``).
        public var recipe: DistillationRecipe?
        /// Multi-formation: each stored image decodes to `formationFactor²` training images (``SyntheticSet/trainingData``);
        /// 1 (the default, and what a file without the field means): the images are the training images.
        public var formationFactor = 1

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
            if let privacyAudit { strings["privacy_audit"] = privacyAudit }
            if let recipe { strings["recipe"] = recipe.json() }
            if formationFactor != 1 { strings["formation_factor"] = String(formationFactor) }
            return strings
        }

        init(strings: [String: String], path: String) throws(DatasetError) {
            func field(_ key: String) throws(DatasetError) -> String {
                guard let value = strings[key] else { throw .malformed(path: path, reason: "metadata lacks '\(key)'") }
                return value
            }
            func json(_ key: String) throws(DatasetError) -> StrictJSON.Value {
                do { return try StrictJSON.parse(try field(key)) } catch let error as StrictJSON.ParseError {
                    throw .malformed(path: path, reason: "metadata '\(key)' is not valid JSON: \(error)")
                } catch let error as DatasetError { throw error } catch { throw .malformed(path: path, reason: "metadata '\(key)': \(error)") }
            }
            func integers(_ key: String, count: ClosedRange<Int>, each range: ClosedRange<Int64>) throws(DatasetError) -> [Int] {
                guard let values = try json(key).integerArray else {
                    throw .malformed(path: path, reason: "metadata '\(key)' must be an array of integers")
                }
                guard count.contains(values.count), values.allSatisfy({ range.contains($0) }) else {
                    throw .malformed(path: path, reason: "metadata '\(key)' must hold \(count) integers in \(range)")
                }
                return values.map { Int($0) }
            }
            func floats(_ key: String, count: Int) throws(DatasetError) -> [Float] {
                guard case let .array(items) = try json(key), items.count == count else {
                    throw .malformed(path: path, reason: "metadata '\(key)' must be an array of \(count) numbers")
                }
                var values: [Float] = []
                for item in items {
                    switch item {
                    case let .integer(value): values.append(Float(value))
                    case let .number(value) where Float(value).isFinite: values.append(Float(value))
                    default: throw .malformed(path: path, reason: "metadata '\(key)' must hold finite numbers")
                    }
                }
                return values
            }
            func integer(_ key: String, in range: ClosedRange<Int>) throws(DatasetError) -> Int {
                let text = try field(key)
                guard text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = Int(text), range.contains(value) else {
                    throw .malformed(path: path, reason: "metadata '\(key)' must be an integer in \(range)")
                }
                return value
            }
            func name(_ key: String) throws(DatasetError) -> String {
                let text = try field(key)
                guard (1...128).contains(text.utf8.count), PeerText.isPrintable(text) else {
                    throw .malformed(path: path, reason: "metadata '\(key)' must be 1 to 128 printable bytes")
                }
                return text
            }
            let imageShape = try integers("image_shape", count: 3...3, each: 1...4096)
            guard imageShape[0] <= 16, imageShape[1] * imageShape[2] <= 1 << 22 else {
                throw .malformed(path: path, reason: "metadata 'image_shape' \(imageShape) is implausibly large")
            }
            let classCount = try integer("class_count", in: Self.classCountRange)
            let mean = try floats("normalization_mean", count: imageShape[0])
            let std = try floats("normalization_std", count: imageShape[0])
            guard std.allSatisfy({ $0 > 0 }) else { throw .malformed(path: path, reason: "invalid normalisation: std must be positive") }
            let seedText = try field("seed")
            guard seedText.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let seed = UInt64(seedText) else {
                throw .malformed(path: path, reason: "metadata 'seed' is not an unsigned integer")
            }
            // Old files may lack the counts; present ones must give one count per class.
            let counts = strings["source_class_counts"] == nil ? []
                : try integers("source_class_counts", count: 0...classCount, each: 0...Self.maximumSourceCount)
            guard counts.isEmpty || counts.count == classCount else {
                throw .malformed(path: path, reason: "metadata 'source_class_counts' has \(counts.count) entries for \(classCount) classes")
            }
            var privacy: PrivacyCalibration?
            if let text = strings["differential_privacy"] {
                guard let decoded = try? JSONDecoder().decode(PrivacyCalibration.self, from: Data(text.utf8)), decoded.isPlausible else {
                    throw .malformed(path: path, reason: "metadata 'differential_privacy' is not a valid guarantee")
                }
                privacy = decoded
            }
            var audit: String?
            if let text = strings["privacy_audit"] {
                audit = try Self.validatedAuditSummary(text, path: path)
            }
            self.init(dataset: try name("dataset"), imageShape: imageShape, classCount: classCount,
                      normalization: Normalization(mean: mean, std: std), method: try name("method"),
                      imagesPerClass: try integer("ipc", in: 1...Self.maximumImagesPerClass),
                      iterations: try integer("iterations", in: 0...Int(Int32.max)),
                      initialization: try name("init"), seed: seed, softwareVersion: try name("software_version"),
                      sourceClassCounts: counts, privacy: privacy)
            self.privacyAudit = audit
            if strings["formation_factor"] != nil {
                formationFactor = try integer("formation_factor", in: MultiFormation.factors)
                if let problem = MultiFormation.problem(factor: formationFactor, imageShape: imageShape) {
                    throw .malformed(path: path, reason: "metadata 'formation_factor': \(problem)")
                }
            }
            if let text = strings["recipe"] {
                do { recipe = try DistillationRecipe.decode(json: text) } catch {
                    throw .malformed(path: path, reason: "metadata 'recipe' is not valid: \(error)")
                }
                if let recipe, recipe.formationFactor != formationFactor {
                    throw .malformed(path: path, reason: "metadata 'formation_factor' (\(formationFactor)) differs from the recipe's (\(recipe.formationFactor))")
                }
            }
        }

        /// Class counts a set may declare.
        public static let classCountRange = 1...100_000
        /// Images per class a set may declare.
        public static let maximumImagesPerClass = 100_000
        /// Largest real-record count per class a set may report (2^31 − 1): sums over 100,000 classes and any
        /// number of nodes stay far inside `Int`.
        public static let maximumSourceCount = Int64(Int32.max)
        /// Largest privacy-audit summary a set may carry, in bytes.
        public static let maximumAuditSummaryBytes = 16 << 10

        /// Checks a privacy-audit summary: a JSON object of at most ``maximumAuditSummaryBytes`` bytes, at most 6
        /// levels deep, with no control or format characters anywhere in its text.
        public static func validatedAuditSummary(_ text: String, path: String) throws(DatasetError) -> String {
            guard text.utf8.count <= maximumAuditSummaryBytes else {
                throw .malformed(path: path, reason: "privacy audit summary of \(text.utf8.count) bytes is above the limit of \(maximumAuditSummaryBytes)")
            }
            guard PeerText.isPrintable(text) else {
                throw .malformed(path: path, reason: "privacy audit summary holds control characters")
            }
            let value: StrictJSON.Value
            do {
                value = try StrictJSON.parse(text, limits: .init(maxBytes: maximumAuditSummaryBytes, maxDepth: 6, maxValues: 4096))
            } catch {
                throw .malformed(path: path, reason: "privacy audit summary is not valid JSON: \(error)")
            }
            guard value.objectMembers != nil else { throw .malformed(path: path, reason: "privacy audit summary is not a JSON object") }
            func printable(_ value: StrictJSON.Value) -> Bool {
                switch value {
                case let .object(members): members.allSatisfy { PeerText.isPrintable($0.key) && printable($0.value) }
                case let .array(items): items.allSatisfy(printable)
                case let .string(text): PeerText.isPrintable(text)
                default: true
                }
            }
            guard printable(value) else { throw .malformed(path: path, reason: "privacy audit summary holds control characters") }
            return text
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
        let values = images.floats
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw .malformed(path: path, reason: "image value \(bad) is not finite (NaN or infinity)")
        }
        var labelInts: [Int] = []
        labelInts.reserveCapacity(labels.shape[0])
        var perClass = [Int](repeating: 0, count: metadata.classCount)
        for (i, label) in labels.int64s.enumerated() {
            guard label >= 0, label < metadata.classCount else {
                throw .labelOutOfRange(path: path, index: i, label: Int(clamping: label), classCount: metadata.classCount)
            }
            labelInts.append(Int(label))
            perClass[Int(label)] += 1
            guard perClass[Int(label)] <= metadata.imagesPerClass else {
                throw .malformed(path: path, reason: "class \(label) has more images than the declared \(metadata.imagesPerClass) per class")
            }
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

    /// Checks that a set received from a peer belongs to a round on `descriptor`: the same dataset name, image
    /// shape, class count and normalisation, at most `maxImagesPerClass` images per class, and the round's
    /// multi-formation factor (a set may not multiply its training images beyond what the round asked).
    public func check(belongsTo descriptor: DatasetDescriptor, maxImagesPerClass: Int, formationFactor: Int = 1) throws(DatasetError) {
        try check(fits: descriptor)
        let path = "set for \(descriptor.name)"
        guard metadata.dataset == descriptor.name else {
            throw .malformed(path: path, reason: "set names dataset \(PeerText.quoted(metadata.dataset)), the round is on \(descriptor.name)")
        }
        func close(_ a: [Float], _ b: [Float]) -> Bool {
            a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }
        }
        guard close(metadata.normalization.mean, descriptor.normalization.mean),
              close(metadata.normalization.std, descriptor.normalization.std) else {
            throw .malformed(path: path, reason: "set's normalisation differs from \(descriptor.name)'s")
        }
        guard metadata.imagesPerClass <= maxImagesPerClass else {
            throw .malformed(path: path, reason: "set declares \(metadata.imagesPerClass) images per class, the round allows at most \(maxImagesPerClass)")
        }
        guard metadata.formationFactor == formationFactor else {
            throw .malformed(path: path, reason: "set declares formation factor \(metadata.formationFactor), the round's is \(formationFactor)")
        }
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
