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

    /// Bounds on what ``decode(_:path:limits:)`` accepts from untrusted bytes.
    public struct Limits: Sendable, Equatable {
        /// Largest JSON header, in bytes.
        public var maxHeaderBytes: Int
        /// Most tensors in one file.
        public var maxTensors: Int
        /// Most metadata entries.
        public var maxMetadataEntries: Int
        /// Largest single metadata value, in bytes.
        public var maxMetadataValueBytes: Int
        /// Highest tensor rank.
        public var maxRank: Int

        public init(maxHeaderBytes: Int, maxTensors: Int, maxMetadataEntries: Int, maxMetadataValueBytes: Int, maxRank: Int) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxTensors = maxTensors
            self.maxMetadataEntries = maxMetadataEntries
            self.maxMetadataValueBytes = maxMetadataValueBytes
            self.maxRank = maxRank
        }

        /// Files written by this project and by common tools: 1 MiB of header, 4,096 tensors of rank ≤ 8,
        /// 256 metadata entries of at most 64 KiB each.
        public static let `default` = Limits(maxHeaderBytes: 1 << 20, maxTensors: 4096, maxMetadataEntries: 256,
                                             maxMetadataValueBytes: 64 << 10, maxRank: 8)
    }

    /// Largest header accepted by default (kept for readers of the old constant).
    public static var maximumHeaderBytes: Int { Limits.default.maxHeaderBytes }

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
    ///
    /// Everything is checked before anything is copied: the header is strict JSON (no duplicate keys, integers
    /// only where integers belong), shapes and offsets use checked arithmetic, and the tensors' byte ranges must
    /// tile the data section exactly (sorted, no overlap, no gap, nothing after the last one), so the entries never
    /// hold more bytes than the file.
    public static func decode(_ bytes: [UInt8], path: String,
                              limits: Limits = .default) throws(DatasetError) -> (entries: [String: Entry], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw .truncated(path: path, expectedBytes: 8, actualBytes: bytes.count) }
        let length = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(limits.maxHeaderBytes) else {
            throw .malformed(path: path, reason: "header length \(length) exceeds the limit of \(limits.maxHeaderBytes) bytes")
        }
        let dataStart = 8 + Int(length)
        guard dataStart <= bytes.count else { throw .truncated(path: path, expectedBytes: dataStart, actualBytes: bytes.count) }
        let dataBytes = bytes.count - dataStart
        let header: StrictJSON.Value
        do {
            // Trailing spaces pad the header to 8 bytes; the JSON reader skips them.
            header = try StrictJSON.parse(bytes[8..<dataStart],
                                          limits: .init(maxBytes: limits.maxHeaderBytes, maxDepth: 4,
                                                        maxValues: 16 * (limits.maxTensors + limits.maxMetadataEntries) + 16))
        } catch {
            throw .malformed(path: path, reason: "header is not valid JSON: \(error)")
        }
        guard let members = header.objectMembers else { throw .malformed(path: path, reason: "header is not a JSON object") }
        var metadata: [String: String] = [:]
        struct Pending { var name: String; var dtype: String; var shape: [Int]; var begin: Int; var end: Int }
        var pending: [Pending] = []
        for (name, value) in members {
            if name == "__metadata__" {
                guard let dictionary = value.objectMembers else { throw .malformed(path: path, reason: "__metadata__ is not an object") }
                guard dictionary.count <= limits.maxMetadataEntries else {
                    throw .malformed(path: path, reason: "\(dictionary.count) metadata entries, above the limit of \(limits.maxMetadataEntries)")
                }
                for (key, item) in dictionary {
                    guard let text = item.stringValue else {
                        throw .malformed(path: path, reason: "metadata \(PeerText.quoted(key)) is not a string")
                    }
                    guard text.utf8.count <= limits.maxMetadataValueBytes else {
                        throw .malformed(path: path, reason: "metadata \(PeerText.quoted(key)) is above the limit of \(limits.maxMetadataValueBytes) bytes")
                    }
                    metadata[key] = text
                }
                continue
            }
            let quotedName = PeerText.quoted(name)
            guard pending.count < limits.maxTensors else {
                throw .malformed(path: path, reason: "more than \(limits.maxTensors) tensors")
            }
            guard let info = value.objectMembers, info.count == 3, let dtype = value["dtype"]?.stringValue,
                  let rawShape = value["shape"]?.integerArray, let offsets = value["data_offsets"]?.integerArray,
                  offsets.count == 2 else {
                throw .malformed(path: path, reason: "tensor \(quotedName) needs exactly dtype, shape (integers) and data_offsets (two integers)")
            }
            let width: Int
            switch dtype {
            case "F32": width = 4
            case "I64": width = 8
            case "U8": width = 1
            default: throw .malformed(path: path, reason: "tensor \(quotedName) has unsupported dtype \(PeerText.quoted(dtype))")
            }
            guard rawShape.count <= limits.maxRank else {
                throw .malformed(path: path, reason: "tensor \(quotedName) has rank \(rawShape.count), above \(limits.maxRank)")
            }
            guard rawShape.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else {
                throw .malformed(path: path, reason: "tensor \(quotedName) has a bad shape \(rawShape)")
            }
            let shape = rawShape.map { Int($0) }
            var byteCount = width
            for dimension in shape {
                let (product, overflow) = byteCount.multipliedReportingOverflow(by: dimension)
                guard !overflow, product <= dataBytes else {
                    throw .malformed(path: path, reason: "tensor \(quotedName) of shape \(shape) needs more bytes than the file has")
                }
                byteCount = product
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] <= Int64(dataBytes) else {
                throw .malformed(path: path, reason: "tensor \(quotedName): data_offsets \(offsets) lie outside the \(dataBytes) data bytes")
            }
            let (begin, end) = (Int(offsets[0]), Int(offsets[1]))
            guard end - begin == byteCount else {
                throw .malformed(path: path, reason: "tensor \(quotedName): data_offsets \(offsets) do not fit shape \(shape) of \(dtype)")
            }
            pending.append(Pending(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        // The ranges must tile [0, dataBytes): checked before a single tensor byte is copied.
        pending.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for tensor in pending {
            guard tensor.begin == cursor else {
                throw .malformed(path: path, reason: tensor.begin < cursor ? "tensor data ranges overlap"
                                                                            : "tensor data ranges leave a gap at byte \(cursor)")
            }
            cursor = tensor.end
        }
        guard cursor == dataBytes else {
            throw .malformed(path: path, reason: "\(dataBytes - cursor) bytes after the last tensor belong to none")
        }
        var entries: [String: Entry] = [:]
        for tensor in pending {
            entries[tensor.name] = Entry(dtype: tensor.dtype, shape: tensor.shape,
                                         bytes: Array(bytes[(dataStart + tensor.begin)..<(dataStart + tensor.end)]))
        }
        return (entries, metadata)
    }
}
