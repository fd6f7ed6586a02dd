import Foundation

/// The safetensors container (Hugging Face): read and write, with every length and offset checked.
///
/// ```
/// ┌──────────────────┬──────────────────────────────────────────────┬─────────────────────────┐
/// │ header length N  │ header: JSON, N bytes (UTF-8, space-padded)  │ data: tensors, packed   │
/// │ u64 little-endian│ {"name": {"dtype": "F32", "shape": [..],     │ at data_offsets [b, e)  │
/// │ 8 B              │  "data_offsets": [b, e]}, "__metadata__":    │ relative to data start  │
/// │                  │  {"key": "string value", ...}}               │                         │
/// └──────────────────┴──────────────────────────────────────────────┴─────────────────────────┘
/// ```
/// Supported dtypes: F32, I64, U8. Tensors are little-endian and row-major.
public enum SafeTensors {
    /// One named tensor: dtype, shape and its raw little-endian bytes.
    public struct Entry: Sendable, Equatable {
        public var dtype: String
        public var shape: [Int]
        public var bytes: [UInt8]

        public init(dtype: String, shape: [Int], bytes: [UInt8]) {
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }

        /// An F32 entry.
        public static func float32(_ values: [Float], shape: [Int]) -> Entry {
            Entry(dtype: "F32", shape: shape, bytes: values.withUnsafeBytes { Array($0) })
        }

        /// An I64 entry.
        public static func int64(_ values: [Int64], shape: [Int]) -> Entry {
            Entry(dtype: "I64", shape: shape, bytes: values.withUnsafeBytes { Array($0) })
        }

        /// The values of an F32 entry.
        public var floats: [Float] {
            [Float](unsafeUninitializedCapacity: bytes.count / 4) { buffer, count in
                bytes.withUnsafeBytes { raw in
                    for i in 0..<(bytes.count / 4) { buffer[i] = Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian) }
                }
                count = bytes.count / 4
            }
        }

        /// The values of an I64 entry.
        public var int64s: [Int64] {
            bytes.withUnsafeBytes { raw in (0..<(bytes.count / 8)).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) } }
        }
    }

    /// Limits for parsing untrusted files.
    public static let maximumHeaderBytes = 100 << 20

    /// Serialises entries (sorted by name) and string metadata.
    public static func encode(_ entries: [String: Entry], metadata: [String: String]) -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = entries.keys.sorted()
        for name in names {
            let entry = entries[name]!
            header[name] = ["dtype": entry.dtype, "shape": entry.shape, "data_offsets": [offset, offset + entry.bytes.count]] as [String: Any]
            offset += entry.bytes.count
        }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])).map { [UInt8]($0) } ?? []
        while json.count % 8 != 0 { json.append(0x20) }
        var out = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
        for name in names { out += entries[name]!.bytes }
        return out
    }

    /// Parses a safetensors file's bytes; `path` names it in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws(DatasetError) -> (entries: [String: Entry], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw .truncated(path: path, expectedBytes: 8, actualBytes: bytes.count) }
        let length = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(maximumHeaderBytes) else {
            throw .malformed(path: path, reason: "header length \(length) exceeds the limit of \(maximumHeaderBytes) bytes")
        }
        let dataStart = 8 + Int(length)
        guard dataStart <= bytes.count else { throw .truncated(path: path, expectedBytes: dataStart, actualBytes: bytes.count) }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart])), let header = object as? [String: Any] else {
            throw .malformed(path: path, reason: "header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        var ranges: [(Int, Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let dictionary = value as? [String: Any] else { throw .malformed(path: path, reason: "__metadata__ is not an object") }
                for (key, item) in dictionary {
                    guard let text = item as? String else { throw .malformed(path: path, reason: "metadata '\(key)' is not a string") }
                    metadata[key] = text
                }
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = (info["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offsets = (info["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  offsets.count == 2, shape.count == (info["shape"] as? [Any])?.count else {
                throw .malformed(path: path, reason: "tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            let width: Int
            switch dtype {
            case "F32": width = 4
            case "I64": width = 8
            case "U8": width = 1
            default: throw .malformed(path: path, reason: "tensor '\(name)' has unsupported dtype \(dtype)")
            }
            guard shape.allSatisfy({ $0 >= 0 && $0 < 1 << 32 }) else { throw .malformed(path: path, reason: "tensor '\(name)' has a bad shape \(shape)") }
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let r = acc.0.multipliedReportingOverflow(by: d); return (r.partialValue, acc.1 || r.overflow)
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard !overflow, begin >= 0, end >= begin, end - begin == elements * width else {
                throw .malformed(path: path, reason: "tensor '\(name)': offsets \(offsets) do not fit shape \(shape) of \(dtype)")
            }
            guard dataStart + end <= bytes.count else {
                throw .truncated(path: path, expectedBytes: dataStart + end, actualBytes: bytes.count)
            }
            ranges.append((begin, end))
            entries[name] = Entry(dtype: dtype, shape: shape, bytes: Array(bytes[(dataStart + begin)..<(dataStart + end)]))
        }
        ranges.sort { $0.0 < $1.0 }
        for (a, b) in zip(ranges, ranges.dropFirst()) where b.0 < a.1 {
            throw .malformed(path: path, reason: "tensor data ranges overlap")
        }
        return (entries, metadata)
    }
}
