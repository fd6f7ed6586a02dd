/// Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip).
///
/// ```
/// ┌────────┬────────┬────────┬──────┬──────────────┬───────────┐
/// │ 0x0000 │ 0x08   │ ndims  │ dims │ u32 BE each  │ u8 data…  │
/// │ 2 B    │ (u8)   │ 1 B    │      │              │           │
/// └────────┴────────┴────────┴──────┴──────────────┴───────────┘
/// images: magic 0x00000803, dims (N, rows, cols); labels: magic 0x00000801, dims (N)
/// ```
public enum IDXLoader {
    /// Reads an image file: returns the raw bytes and `(N, rows, cols)`.
    public static func readImages(_ path: String) throws(DatasetError) -> (pixels: [UInt8], count: Int, rows: Int, cols: Int) {
        try parseImages(try FileBytes.read(path), path: path)
    }

    /// Parses an image file's (decompressed) bytes; `path` names it in errors.
    public static func parseImages(_ bytes: [UInt8], path: String) throws(DatasetError) -> (pixels: [UInt8], count: Int, rows: Int, cols: Int) {
        let reader = ByteReader(bytes: bytes, path: path)
        let magic = try reader.uint32BE(at: 0)
        guard magic == 0x0000_0803 else { throw .badMagic(path: path, found: magic, expected: 0x0000_0803) }
        let n = Int(try reader.uint32BE(at: 4)), rows = Int(try reader.uint32BE(at: 8)), cols = Int(try reader.uint32BE(at: 12))
        guard rows > 0, cols > 0, rows <= 4096, cols <= 4096 else {
            throw .malformed(path: path, reason: "implausible image size \(rows)×\(cols)")
        }
        let (expected, overflow) = n.multipliedReportingOverflow(by: rows * cols)
        guard !overflow, bytes.count == 16 + expected else {
            throw .truncated(path: path, expectedBytes: overflow ? Int.max : 16 + expected, actualBytes: bytes.count)
        }
        return (Array(bytes[16...]), n, rows, cols)
    }

    /// Reads a label file.
    public static func readLabels(_ path: String) throws(DatasetError) -> [UInt8] {
        try parseLabels(try FileBytes.read(path), path: path)
    }

    /// Parses a label file's (decompressed) bytes.
    public static func parseLabels(_ bytes: [UInt8], path: String) throws(DatasetError) -> [UInt8] {
        let reader = ByteReader(bytes: bytes, path: path)
        let magic = try reader.uint32BE(at: 0)
        guard magic == 0x0000_0801 else { throw .badMagic(path: path, found: magic, expected: 0x0000_0801) }
        let n = Int(try reader.uint32BE(at: 4))
        guard bytes.count == 8 + n else { throw .truncated(path: path, expectedBytes: 8 + n, actualBytes: bytes.count) }
        return Array(bytes[8...])
    }

    /// Loads an image file and its label file as a normalised labelled set.
    public static func load(images: String, labels: String, classCount: Int,
                            normalization: Normalization) throws(DatasetError) -> LabeledImages {
        let (pixels, n, rows, cols) = try readImages(images)
        let rawLabels = try readLabels(labels)
        guard rawLabels.count == n else {
            throw .countMismatch(images: images, imageCount: n, labels: labels, labelCount: rawLabels.count)
        }
        var labelInts = [Int](repeating: 0, count: n)
        for (i, label) in rawLabels.enumerated() {
            guard Int(label) < classCount else {
                throw .labelOutOfRange(path: labels, index: i, label: Int(label), classCount: classCount)
            }
            labelInts[i] = Int(label)
        }
        let tensor = normalization.normalize(pixels, shape: [n, 1, rows, cols])
        return LabeledImages(images: tensor, labels: labelInts, classCount: classCount)
    }
}
