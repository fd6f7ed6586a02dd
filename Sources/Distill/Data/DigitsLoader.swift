/// Reader for scikit-learn's 8×8 digits CSV (`digits.csv.gz`): 64 pixel values 0–16 then the label, per line.
public enum DigitsLoader {
    /// Parses the (decompressed) CSV text into a labelled set, normalised with `normalization`.
    public static func parse(_ bytes: [UInt8], path: String, normalization: Normalization) throws(DatasetError) -> LabeledImages {
        var pixels: [UInt8] = []
        var labels: [Int] = []
        var fields: [Int] = []
        var current = -1
        var line = 1
        func endField() throws(DatasetError) {
            guard current >= 0 else { throw .malformed(path: path, reason: "line \(line): empty field") }
            fields.append(current)
            current = -1
        }
        func endLine() throws(DatasetError) {
            try endField()
            guard fields.count == 65 else {
                throw .malformed(path: path, reason: "line \(line): \(fields.count) fields, expected 65")
            }
            for (i, v) in fields.prefix(64).enumerated() where v > 16 {
                throw .malformed(path: path, reason: "line \(line): pixel \(i) is \(v), outside 0–16")
            }
            guard fields[64] < 10 else {
                throw .labelOutOfRange(path: path, index: line - 1, label: fields[64], classCount: 10)
            }
            pixels += fields.prefix(64).map { UInt8($0) }
            labels.append(fields[64])
            fields.removeAll(keepingCapacity: true)
            line += 1
        }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                current = max(current, 0) * 10 + Int(byte - UInt8(ascii: "0"))
                guard current < 1_000_000 else { throw .malformed(path: path, reason: "line \(line): number too large") }
            case UInt8(ascii: ","): try endField()
            case UInt8(ascii: "\n"): try endLine()
            case UInt8(ascii: "\r"), UInt8(ascii: " "): continue
            default: throw .malformed(path: path, reason: "line \(line): unexpected character \(Character(UnicodeScalar(byte)))")
            }
        }
        if current >= 0 || !fields.isEmpty { try endLine() }
        guard !labels.isEmpty else { throw .malformed(path: path, reason: "no records") }
        let images = normalization.normalize(pixels, shape: [labels.count, 1, 8, 8], maxValue: 16)
        return LabeledImages(images: images, labels: labels, classCount: 10)
    }
}
