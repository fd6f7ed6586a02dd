import Foundation
import Testing
@testable import Distill

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory() -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-test-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func write(_ bytes: [UInt8], to path: String) {
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

func bigEndian(_ values: [UInt32]) -> [UInt8] { values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } } }

/// IDX bytes for `n` images of `rows×cols` with pixel value `(i + p) % 256` and labels `i % 10`.
func idxFiles(n: Int, rows: Int = 4, cols: Int = 3) -> (images: [UInt8], labels: [UInt8]) {
    let images = bigEndian([0x803, UInt32(n), UInt32(rows), UInt32(cols)]) + (0..<(n * rows * cols)).map { UInt8($0 % 256) }
    let labels = bigEndian([0x801, UInt32(n)]) + (0..<n).map { UInt8($0 % 10) }
    return (images, labels)
}

@Suite("Dataset loaders")
struct DatasetTests {
    let normalization = Normalization(mean: [0.5], std: [0.25])

    @Test(arguments: [false, true])
    func idxRoundTrip(gzipped: Bool) throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (images, labels) = idxFiles(n: 7)
        write(gzipped ? FileBytes.gzip(images) : images, to: dir + "/img")
        write(gzipped ? FileBytes.gzip(labels) : labels, to: dir + "/lbl")
        let set = try IDXLoader.load(images: dir + "/img", labels: dir + "/lbl", classCount: 10, normalization: normalization)
        #expect(set.images.shape == [7, 1, 4, 3])
        #expect(set.labels == [0, 1, 2, 3, 4, 5, 6])
        #expect(abs(set.images.storage[5] - (5.0 / 255 - 0.5) / 0.25) < 1e-6)
    }

    @Test func idxBadInputNamesFileAndProblem() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (images, labels) = idxFiles(n: 5)
        write(Array(images.dropLast(3)), to: dir + "/short")
        write(labels, to: dir + "/lbl")
        #expect(throws: DatasetError.truncated(path: dir + "/short", expectedBytes: 76, actualBytes: 73)) {
            try IDXLoader.load(images: dir + "/short", labels: dir + "/lbl", classCount: 10, normalization: normalization)
        }
        write(labels, to: dir + "/swapped")
        #expect(throws: DatasetError.badMagic(path: dir + "/swapped", found: 0x801, expected: 0x803)) {
            try IDXLoader.load(images: dir + "/swapped", labels: dir + "/lbl", classCount: 10, normalization: normalization)
        }
        write(images, to: dir + "/img")
        write(idxFiles(n: 4).labels, to: dir + "/four")
        #expect(throws: DatasetError.countMismatch(images: dir + "/img", imageCount: 5, labels: dir + "/four", labelCount: 4)) {
            try IDXLoader.load(images: dir + "/img", labels: dir + "/four", classCount: 10, normalization: normalization)
        }
        #expect(throws: DatasetError.labelOutOfRange(path: dir + "/lbl", index: 3, label: 3, classCount: 3)) {
            try IDXLoader.load(images: dir + "/img", labels: dir + "/lbl", classCount: 3, normalization: normalization)
        }
        var corrupt = FileBytes.gzip(images)
        corrupt = Array(corrupt.prefix(corrupt.count / 2))
        write(corrupt, to: dir + "/cut.gz")
        #expect(throws: DatasetError.self) {
            try IDXLoader.readImages(dir + "/cut.gz")
        }
        #expect(throws: DatasetError.fileNotFound(path: dir + "/missing")) { try IDXLoader.readLabels(dir + "/missing") }
    }

    @Test(arguments: [CIFARLoader.Variant.cifar10, .cifar100])
    func cifarBinaryFormat(variant: CIFARLoader.Variant) throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let labelBytes = variant == .cifar10 ? 1 : 2
        var bytes: [UInt8] = []
        for record in 0..<6 {
            if variant == .cifar100 { bytes.append(UInt8(record % 20)) }  // coarse label, ignored
            bytes.append(UInt8(record * 7 % (variant == .cifar10 ? 10 : 100)))
            bytes += (0..<3072).map { UInt8(($0 + record) % 256) }
        }
        write(bytes, to: dir + "/batch.bin")
        let normalization = Normalization(mean: [0, 0, 0], std: [1, 1, 1])
        let set = try CIFARLoader.load([dir + "/batch.bin", dir + "/batch.bin"], variant: variant, normalization: normalization)
        #expect(set.count == 12)
        #expect(set.images.shape == [12, 3, 32, 32])
        #expect(set.labels[3] == 21 % (variant == .cifar10 ? 10 : 100))
        // Record 1, green plane (offset 1024), pixel 0 → byte (1024 + 1) % 256.
        #expect(set.images.storage[3072 + 1024] == Float((1024 + 1) % 256) / 255)
        write(Array(bytes.dropLast(10)), to: dir + "/short.bin")
        #expect(throws: DatasetError.self) { try CIFARLoader.load([dir + "/short.bin"], variant: variant, normalization: normalization) }
        var bad = bytes
        bad[labelBytes - 1] = variant == .cifar10 ? 10 : 100
        write(bad, to: dir + "/bad.bin")
        #expect(throws: DatasetError.labelOutOfRange(path: dir + "/bad.bin", index: 0, label: variant == .cifar10 ? 10 : 100,
                                                    classCount: variant == .cifar10 ? 10 : 100)) {
            try CIFARLoader.load([dir + "/bad.bin"], variant: variant, normalization: normalization)
        }
    }

    @Test func embeddedDigitsMatchShippedFileAndSplit() throws {
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/Distill/Resources/digits.csv.gz")
        let embedded = Data(base64Encoded: EmbeddedDigits.base64GzipCSV, options: .ignoreUnknownCharacters)
        #expect(embedded == (try Data(contentsOf: shipped)))
        let splits = try DatasetStore.loadDigits()
        #expect(splits.train.count + splits.test.count == 1797)
        #expect(splits.train.count == 1433)
        #expect(splits.train.classCounts().allSatisfy { $0 >= 139 })
    }

    @Test func digitsCSVRejectsMalformedLines() {
        let good = Array((Array(repeating: "0", count: 64) + ["3"]).joined(separator: ",").utf8) + [10]
        #expect(throws: Never.self) { try DigitsLoader.parse(good, path: "d", normalization: normalization) }
        let short = Array((Array(repeating: "0", count: 63) + ["3"]).joined(separator: ",").utf8)
        #expect(throws: DatasetError.malformed(path: "d", reason: "line 1: 64 fields, expected 65")) {
            try DigitsLoader.parse(short, path: "d", normalization: normalization)
        }
        let hot = Array((["17"] + Array(repeating: "0", count: 63) + ["3"]).joined(separator: ",").utf8)
        #expect(throws: DatasetError.self) { try DigitsLoader.parse(hot, path: "d", normalization: normalization) }
        let label = Array((Array(repeating: "0", count: 64) + ["12"]).joined(separator: ",").utf8)
        #expect(throws: DatasetError.labelOutOfRange(path: "d", index: 0, label: 12, classCount: 10)) {
            try DigitsLoader.parse(label, path: "d", normalization: normalization)
        }
    }

    @Test func npyRoundTripAndErrors() throws {
        let values: [Float] = [1.5, -2, 0.25, 3, 4, 5]
        let bytes = NPY.encode(shape: [2, 3], values: values)
        let array = try NPY.parse(bytes, path: "a.npy")
        #expect(array.shape == [2, 3] && array.values == values && !array.isUInt8)
        #expect(throws: DatasetError.self) { try NPY.parse(Array(bytes.dropLast(2)), path: "a.npy") }
        #expect(throws: DatasetError.self) { try NPY.parse(Array("not numpy".utf8), path: "a.npy") }
        let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }"
        let u8 = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8) + [7, 8, 255]
        let parsed = try NPY.parse(u8, path: "u.npy")
        #expect(parsed.isUInt8 && parsed.values == [7, 8, 255] && parsed.shape == [3])
        let f8 = Array(String(decoding: u8, as: UTF8.self).replacingOccurrences(of: "|u1", with: "<f8").utf8)
        #expect(throws: DatasetError.self) { try NPY.parse(f8, path: "f.npy") }
    }

    @Test func loadingWhatIsNotOnDiskNamesTheDatasetAndDirectory() {
        let store = DatasetStore(directory: temporaryDirectory())
        defer { try? FileManager.default.removeItem(atPath: store.directory) }
        #expect(!store.isAvailable("mnist"))
        #expect(throws: DatasetError.notFetched(dataset: "mnist", directory: store.directory)) { try store.load("mnist") }
        #expect(throws: DatasetError.unknownDataset(name: "imagenet", known: DatasetCatalog.all.map(\.name))) {
            try store.load("imagenet")
        }
    }

    @Test func storeResolutionOrder() {
        #expect(DatasetStore.resolve(explicit: "/a", environment: ["FEDDISTILL_DATA": "/b"]).directory == "/a")
        #expect(DatasetStore.resolve(explicit: nil, environment: ["FEDDISTILL_DATA": "/b", "HOME": "/h"]).directory == "/b")
        #expect(DatasetStore.resolve(explicit: nil, environment: ["HOME": "/h"]).directory == "/h/.local/share/feddistill")
    }
}

@Suite("Partitions")
struct PartitionTests {
    let labels: [Int] = {
        var rng = RandomSource(seed: 1)
        return (0..<2000).map { _ in rng.integer(below: 10) }
    }()

    @Test(arguments: [PartitionScheme.iid, .dirichlet(alpha: 0.1), .dirichlet(alpha: 1), .shards(perNode: 2)])
    func everySampleExactlyOnce(scheme: PartitionScheme) {
        let parts = Partitioner.partition(labels: labels, classCount: 10, nodes: 7, scheme: scheme, seed: 3)
        #expect(parts.count == 7)
        #expect(parts.flatMap { $0 }.sorted() == Array(0..<labels.count))
        #expect(parts == Partitioner.partition(labels: labels, classCount: 10, nodes: 7, scheme: scheme, seed: 3))
    }

    /// Mean total-variation distance between each node's label distribution and the global one.
    func skew(_ parts: [[Int]]) -> Double {
        var global = [Double](repeating: 0, count: 10)
        for label in labels { global[label] += 1 / Double(labels.count) }
        return parts.map { part in
            var local = [Double](repeating: 0, count: 10)
            for index in part { local[labels[index]] += 1 / Double(max(part.count, 1)) }
            return zip(local, global).reduce(0) { $0 + abs($1.0 - $1.1) } / 2
        }.reduce(0, +) / Double(parts.count)
    }

    @Test func dirichletSkewShrinksWithAlpha() {
        let small = skew(Partitioner.partition(labels: labels, classCount: 10, nodes: 5, scheme: .dirichlet(alpha: 0.1), seed: 4))
        let large = skew(Partitioner.partition(labels: labels, classCount: 10, nodes: 5, scheme: .dirichlet(alpha: 1000), seed: 4))
        let iid = skew(Partitioner.partition(labels: labels, classCount: 10, nodes: 5, scheme: .iid, seed: 4))
        #expect(small > 0.4, "α = 0.1 should give strong label skew, got \(small)")
        #expect(large < 0.06, "α = 1000 should be close to IID, got \(large)")
        #expect(large <= iid + 0.01, "α = 1000 should be at least as balanced as IID (\(large) vs \(iid))")
    }

    @Test func schemeParsing() {
        #expect(PartitionScheme("iid") == .iid)
        #expect(PartitionScheme("dirichlet:0.5") == .dirichlet(alpha: 0.5))
        #expect(PartitionScheme("shards:2") == .shards(perNode: 2))
        for bad in ["dirichlet", "dirichlet:-1", "shards:0", "random", "iid:3", "dirichlet:nan"] { #expect(PartitionScheme(bad) == nil) }
    }
}
