import Foundation
import Logging
import Testing
@testable import DatasetFetch
@testable import Distill

/// A fresh temporary directory, removed by the caller.
private func temporaryDirectory() -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-test-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func write(_ bytes: [UInt8], to path: String) {
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

private func bigEndian(_ values: [UInt32]) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
}

/// IDX bytes for `n` images of 4×3 with pixel value `p % 256` and labels `i % 10`.
private func idxFiles(n: Int) -> (images: [UInt8], labels: [UInt8]) {
    let images = bigEndian([0x803, UInt32(n), 4, 3]) + (0..<(n * 12)).map { UInt8($0 % 256) }
    let labels = bigEndian([0x801, UInt32(n)]) + (0..<n).map { UInt8($0 % 10) }
    return (images, labels)
}

@Suite("Dataset fetching")
struct DatasetFetchTests {
    @Test func importRejectsChecksumMismatchAndLeavesNothing() throws {
        let source = temporaryDirectory(), store = DatasetStore(directory: temporaryDirectory())
        defer {
            try? FileManager.default.removeItem(atPath: source)
            try? FileManager.default.removeItem(atPath: store.directory)
        }
        let (images, labels) = idxFiles(n: 3)
        for name in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] { write(images, to: source + "/" + name) }
        for name in ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"] { write(FileBytes.gzip(labels), to: source + "/" + name + ".gz") }
        let error = #expect(throws: DatasetError.self) { try store.fetch("mnist", from: source, logger: Logger(label: "test")) }
        guard case .checksumMismatch(let path, let expected, _)? = error else {
            Issue.record("expected a checksum mismatch, got \(String(describing: error))")
            return
        }
        #expect(path == source + "/train-images-idx3-ubyte" && expected == "6bbc9ace898e44ae57da46a324031adb")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: store.path(of: "mnist"))) ?? []
        #expect(left.isEmpty, "files left behind: \(left)")
        #expect(!store.isAvailable("mnist"))
        #expect(throws: DatasetError.notFetched(dataset: "mnist", directory: store.directory)) { try store.load("mnist") }
        #expect(throws: DatasetError.unknownDataset(name: "imagenet", known: DatasetCatalog.all.map(\.name))) {
            try store.load("imagenet")
        }
    }

    @Test func importAcceptsCIFARBinaryDirectory() throws {
        let source = temporaryDirectory(), store = DatasetStore(directory: temporaryDirectory())
        defer {
            try? FileManager.default.removeItem(atPath: source)
            try? FileManager.default.removeItem(atPath: store.directory)
        }
        try FileManager.default.createDirectory(atPath: source + "/cifar-10-batches-bin", withIntermediateDirectories: true)
        let record: [UInt8] = [3] + [UInt8](repeating: 128, count: 3072)
        for name in (1...5).map({ "data_batch_\($0).bin" }) + ["test_batch.bin"] {
            write(record + record, to: source + "/cifar-10-batches-bin/" + name)
        }
        try store.fetch("cifar10", from: source, logger: Logger(label: "test"))
        let splits = try store.load("cifar10")
        #expect(splits.train.count == 10 && splits.test.count == 2)
        #expect(splits.train.classCounts()[3] == 10)
    }

    @Test func md5IsTheCatalogsHexForm() throws {
        #expect(md5Hex([]) == "d41d8cd98f00b204e9800998ecf8427e")
        // The embedded digits CSV is the scikit-learn file with this published md5.
        let gzip = Data(base64Encoded: EmbeddedDigits.base64GzipCSV, options: .ignoreUnknownCharacters)
        let csv = try FileBytes.gunzip([UInt8](try #require(gzip)), path: "digits")
        #expect(md5Hex(csv) == "a0339c30a8a5312a1b6f9e5c719dcce5")
    }

    @Test func fetchingDigitsIsANoOpAndUnknownNamesAreRefused() throws {
        let store = DatasetStore(directory: temporaryDirectory())
        defer { try? FileManager.default.removeItem(atPath: store.directory) }
        try store.fetch("digits", logger: Logger(label: "test"))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: store.directory)) ?? []).isEmpty)
        #expect(throws: DatasetError.unknownDataset(name: "imagenet", known: DatasetCatalog.all.map(\.name))) {
            try store.fetch("imagenet", logger: Logger(label: "test"))
        }
    }
}
