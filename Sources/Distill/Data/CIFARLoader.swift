/// Reader for the binary version of CIFAR-10 and CIFAR-100.
///
/// ```
/// CIFAR-10 record:  ┌───────┬──────────────────────────────┐     CIFAR-100 record: ┌────────┬──────┬──────────┐
///                   │ label │ 3072 B: 1024 R, 1024 G, 1024 B│                       │ coarse │ fine │ 3072 B   │
///                   │ 1 B   │ (32×32 row-major per plane)  │                       │ 1 B    │ 1 B  │          │
///                   └───────┴──────────────────────────────┘                       └────────┴──────┴──────────┘
/// ```
/// CIFAR-100 records use the fine label (100 classes).
public enum CIFARLoader {
    /// Which CIFAR variant a file holds.
    public enum Variant: Sendable {
        case cifar10, cifar100
        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        var classCount: Int { self == .cifar10 ? 10 : 100 }
    }

    /// Loads and concatenates batch files of one variant.
    public static func load(_ paths: [String], variant: Variant, normalization: Normalization) throws(DatasetError) -> LabeledImages {
        let recordSize = variant.labelBytes + 3072
        var pixels: [UInt8] = []
        var labels: [Int] = []
        for path in paths {
            let bytes = try FileBytes.read(path)
            guard !bytes.isEmpty, bytes.count % recordSize == 0 else {
                throw .malformed(path: path, reason: "size \(bytes.count) is not a whole number of \(recordSize)-byte records (truncated?)")
            }
            pixels.reserveCapacity(pixels.count + bytes.count)
            for record in 0..<(bytes.count / recordSize) {
                let start = record * recordSize
                let label = Int(bytes[start + variant.labelBytes - 1])
                guard label < variant.classCount else {
                    throw .labelOutOfRange(path: path, index: record, label: label, classCount: variant.classCount)
                }
                labels.append(label)
                pixels.append(contentsOf: bytes[(start + variant.labelBytes)..<(start + recordSize)])
            }
        }
        let images = normalization.normalize(pixels, shape: [labels.count, 3, 32, 32])
        return LabeledImages(images: images, labels: labels, classCount: variant.classCount)
    }
}
