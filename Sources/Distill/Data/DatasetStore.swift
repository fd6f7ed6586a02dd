import Foundation

/// The directory where fetched datasets live, and loading from it.
///
/// Resolution order: an explicit `--data-dir`, then the `FEDDISTILL_DATA` environment variable, then
/// `$XDG_DATA_HOME/feddistill`, then `~/.local/share/feddistill`. Each dataset has a sub-directory of that name.
/// `digits` is compiled into the binary and needs no directory. Putting files here (download, import, checksums)
/// is the DatasetFetch module's job: this type only reads what is already on disk.
public struct DatasetStore: Sendable {
    /// The root directory.
    public let directory: String

    /// Creates a store rooted at `directory`.
    public init(directory: String) { self.directory = directory }

    /// The store named by `--data-dir`, else by the environment, else the default directory.
    public static func resolve(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> DatasetStore {
        if let explicit, !explicit.isEmpty { return DatasetStore(directory: explicit) }
        if let fromEnvironment = environment["FEDDISTILL_DATA"], !fromEnvironment.isEmpty {
            return DatasetStore(directory: fromEnvironment)
        }
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty { return DatasetStore(directory: xdg + "/feddistill") }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return DatasetStore(directory: home + "/.local/share/feddistill")
    }

    /// Where dataset `name`'s files are kept.
    public func path(of name: String) -> String { directory + "/" + name }

    /// True when `name` can be loaded without fetching.
    public func isAvailable(_ name: String) -> Bool {
        name == "digits" || DatasetCatalog.requiredFiles(name).allSatisfy {
            FileManager.default.fileExists(atPath: path(of: name) + "/" + $0.name)
        }
    }

    /// Loads the train and test splits of dataset `name`.
    public func load(_ name: String) throws(DatasetError) -> DatasetSplits {
        let descriptor = try DatasetCatalog.descriptor(named: name)
        if name == "digits" { return try Self.loadDigits() }
        guard isAvailable(name) else { throw .notFetched(dataset: name, directory: directory) }
        let dir = path(of: name)
        switch name {
        case "mnist", "fashion-mnist":
            let train = try IDXLoader.load(images: dir + "/train-images-idx3-ubyte", labels: dir + "/train-labels-idx1-ubyte",
                                           classCount: 10, normalization: descriptor.normalization)
            let test = try IDXLoader.load(images: dir + "/t10k-images-idx3-ubyte", labels: dir + "/t10k-labels-idx1-ubyte",
                                          classCount: 10, normalization: descriptor.normalization)
            return DatasetSplits(descriptor: descriptor, train: train, test: test)
        case "cifar10":
            let train = try CIFARLoader.load((1...5).map { dir + "/data_batch_\($0).bin" }, variant: .cifar10,
                                             normalization: descriptor.normalization)
            let test = try CIFARLoader.load([dir + "/test_batch.bin"], variant: .cifar10, normalization: descriptor.normalization)
            return DatasetSplits(descriptor: descriptor, train: train, test: test)
        default:
            let train = try CIFARLoader.load([dir + "/train.bin"], variant: .cifar100, normalization: descriptor.normalization)
            let test = try CIFARLoader.load([dir + "/test.bin"], variant: .cifar100, normalization: descriptor.normalization)
            return DatasetSplits(descriptor: descriptor, train: train, test: test)
        }
    }

    /// The embedded digits with the fixed split: per class, a permutation seeded with 0 puts the first 80%
    /// (rounded down) in train and the rest in test (1,433 train / 364 test).
    public static func loadDigits() throws(DatasetError) -> DatasetSplits {
        guard let gzip = Data(base64Encoded: EmbeddedDigits.base64GzipCSV, options: .ignoreUnknownCharacters) else {
            throw .malformed(path: "<embedded digits>", reason: "base64 does not decode")
        }
        let csv = try FileBytes.gunzip([UInt8](gzip), path: "<embedded digits.csv.gz>")
        let all = try DigitsLoader.parse(csv, path: "<embedded digits.csv>", normalization: DatasetCatalog.digits.normalization)
        var rng = RandomSource(seed: 0)
        var train: [Int] = [], test: [Int] = []
        for members in all.indicesByClass() {
            let order = rng.permutation(members.count).map { members[$0] }
            let cut = members.count * 8 / 10
            train += order[..<cut]
            test += order[cut...]
        }
        return DatasetSplits(descriptor: DatasetCatalog.digits, train: all.subset(train.sorted()), test: all.subset(test.sorted()))
    }
}
