/// Why a dataset file could not be read or fetched. Every case names the file and the problem.
public enum DatasetError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    case badMagic(path: String, found: UInt32, expected: UInt32)
    case malformed(path: String, reason: String)
    case countMismatch(images: String, imageCount: Int, labels: String, labelCount: Int)
    case labelOutOfRange(path: String, index: Int, label: Int, classCount: Int)
    case checksumMismatch(path: String, expected: String, actual: String)
    case unknownDataset(name: String, known: [String])
    case fetchFailed(dataset: String, reason: String)
    case notFetched(dataset: String, directory: String)

    public var description: String {
        switch self {
        case let .fileNotFound(path): "\(path): no such file"
        case let .truncated(path, expected, actual):
            "\(path): truncated: expected \(expected) bytes, found \(actual)"
        case let .badMagic(path, found, expected):
            "\(path): wrong magic number 0x\(String(found, radix: 16)) (expected 0x\(String(expected, radix: 16)))"
        case let .malformed(path, reason): "\(path): \(reason)"
        case let .countMismatch(images, imageCount, labels, labelCount):
            "\(images) has \(imageCount) images but \(labels) has \(labelCount) labels"
        case let .labelOutOfRange(path, index, label, classCount):
            "\(path): label \(label) of record \(index) is outside 0..<\(classCount)"
        case let .checksumMismatch(path, expected, actual):
            "\(path): md5 \(actual) does not match the expected \(expected)"
        case let .unknownDataset(name, known): "unknown dataset '\(name)' (known: \(known.joined(separator: ", ")))"
        case let .fetchFailed(dataset, reason): "fetching \(dataset) failed: \(reason)"
        case let .notFetched(dataset, directory):
            "dataset \(dataset) is not in \(directory); run `feddistill datasets fetch \(dataset)` first"
        }
    }
}
