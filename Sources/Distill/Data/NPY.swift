import Foundation

/// NumPy `.npy` arrays (format version 1.0–3.0, C order, dtype `|u1` or `<f4`): read and write.
///
/// ```
/// ┌──────────┬───────┬───────┬────────────────┬──────────────────────────────┬───────┐
/// │ \x93NUMPY│ major │ minor │ header length  │ header: Python dict literal  │ data  │
/// │ 6 B      │ 1 B   │ 1 B   │ u16 LE (v1) /  │ {'descr': '<f4',             │       │
/// │          │       │       │ u32 LE (v2, 3) │  'fortran_order': False,     │       │
/// │          │       │       │                │  'shape': (N, C, H, W), }    │       │
/// └──────────┴───────┴───────┴────────────────┴──────────────────────────────┴───────┘
/// ```
public enum NPY {
    /// An array read from a `.npy` file: its shape and its values as floats (uint8 arrays are converted as is).
    public struct Array: Sendable {
        public var shape: [Int]
        public var values: [Float]
        public var isUInt8: Bool
    }

    /// Reads a `.npy` file.
    public static func read(_ path: String) throws(DatasetError) -> NPY.Array {
        let bytes = try FileBytes.read(path)
        return try parse(bytes, path: path)
    }

    /// Parses `.npy` bytes.
    public static func parse(_ bytes: [UInt8], path: String) throws(DatasetError) -> NPY.Array {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Swift.Array(bytes[0..<6]) == magic else {
            throw .malformed(path: path, reason: "not a .npy file (missing \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw .truncated(path: path, expectedBytes: 12, actualBytes: bytes.count) }
            headerLength = (8..<12).reduce(0) { $0 | Int(bytes[$1]) << (8 * ($1 - 8)) }
            headerStart = 12
        default:
            throw .malformed(path: path, reason: "unsupported .npy format version \(major)")
        }
        guard headerLength <= 1 << 20, headerStart + headerLength <= bytes.count else {
            throw .truncated(path: path, expectedBytes: headerStart + headerLength, actualBytes: bytes.count)
        }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard let descr = value(of: "descr", in: header), let shapeText = value(of: "shape", in: header) else {
            throw .malformed(path: path, reason: "header lacks 'descr' or 'shape'")
        }
        if let order = value(of: "fortran_order", in: header), order.hasPrefix("True") {
            throw .malformed(path: path, reason: "Fortran-order arrays are not supported")
        }
        let dims = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var shape: [Int] = []
        for dim in dims {
            guard let d = Int(dim), d >= 0 else { throw .malformed(path: path, reason: "bad shape \(shapeText)") }
            shape.append(d)
        }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let r = acc.0.multipliedReportingOverflow(by: d); return (r.partialValue, acc.1 || r.overflow)
        }
        guard !overflow else { throw .malformed(path: path, reason: "shape \(shapeText) overflows") }
        let dataStart = headerStart + headerLength
        let quoted = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        switch quoted {
        case "|u1", "<u1", "u1":
            guard bytes.count - dataStart == count else {
                let expected = count.addingReportingOverflow(dataStart)
                throw .truncated(path: path, expectedBytes: expected.overflow ? Int.max : expected.partialValue, actualBytes: bytes.count)
            }
            return NPY.Array(shape: shape, values: bytes[dataStart...].map(Float.init), isUInt8: true)
        case "<f4":
            guard count <= (bytes.count - dataStart) / 4, bytes.count - dataStart == count * 4 else {
                // Checked: a hostile shape must not overflow the message either.
                let data = count.multipliedReportingOverflow(by: 4)
                let total = data.partialValue.addingReportingOverflow(dataStart)
                throw .truncated(path: path, expectedBytes: data.overflow || total.overflow ? Int.max : total.partialValue,
                                 actualBytes: bytes.count)
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[dataStart...])) }
            }
            return NPY.Array(shape: shape, values: values, isUInt8: false)
        default:
            throw .malformed(path: path, reason: "unsupported dtype \(quoted) (use uint8 or little-endian float32)")
        }
    }

    /// Serialises a float32 array as `.npy` version 1.0.
    public static func encode(shape: [Int], values: [Float]) -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        out += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        out += Swift.Array(header.utf8)
        values.withUnsafeBytes { out += $0 }
        return out
    }

    /// Serialises an integer array as `.npy` (`<i8`).
    public static func encode(shape: [Int], values: [Int64]) -> [UInt8] {
        var out = encode(shape: shape, values: [Float]())
        // Patch dtype and append data: header text is fixed length apart from the dtype spelling.
        if let range = out.firstRange(of: Swift.Array("'<f4'".utf8)) { out.replaceSubrange(range, with: Swift.Array("'<i8'".utf8)) }
        values.withUnsafeBytes { out += $0 }
        return out
    }

    private static func value(of key: String, in header: String) -> String? {
        guard let keyRange = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
        var rest = header[keyRange.upperBound...].drop { $0 == " " || $0 == ":" }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        if let comma = rest.firstIndex(where: { $0 == "," || $0 == "}" }) { rest = rest[..<comma] }
        return rest.trimmingCharacters(in: .whitespaces)
    }
}
