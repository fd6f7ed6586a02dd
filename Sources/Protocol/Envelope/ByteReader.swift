/// A bounds-checked big-endian reader over untrusted bytes. Every read checks the remaining length first and
/// throws `EnvelopeError.truncated` naming the field and its absolute offset; nothing here can trap.
struct ByteReader {
    private let bytes: [UInt8]
    private let end: Int
    private(set) var offset: Int
    /// Added to `offset` in error messages (used when reading a sub-range such as the header).
    private let base: Int

    init(_ bytes: [UInt8], range: Range<Int>? = nil, base: Int = 0) {
        self.bytes = bytes
        let r = range ?? bytes.indices
        self.offset = r.lowerBound
        self.end = r.upperBound
        self.base = base - r.lowerBound
    }

    /// Bytes not read yet.
    var remaining: Int { end - offset }
    /// Absolute offset of the next byte, for error messages.
    var position: Int { base + offset }

    mutating func require(_ count: Int, field: String) throws(EnvelopeError) {
        guard count >= 0, count <= remaining else {
            throw .truncated(field: field, offset: position, needed: count, available: remaining)
        }
    }

    mutating func readBytes(_ count: Int, field: String) throws(EnvelopeError) -> [UInt8] {
        try require(count, field: field)
        let slice = bytes[offset..<(offset + count)]
        offset += count
        return Array(slice)
    }

    mutating func readUInt8(field: String) throws(EnvelopeError) -> UInt8 {
        try require(1, field: field)
        let value = bytes[offset]
        offset += 1
        return value
    }

    mutating func readUInt16(field: String) throws(EnvelopeError) -> UInt16 {
        UInt16(truncatingIfNeeded: try readBigEndian(2, field: field))
    }

    mutating func readUInt32(field: String) throws(EnvelopeError) -> UInt32 {
        UInt32(truncatingIfNeeded: try readBigEndian(4, field: field))
    }

    mutating func readUInt64(field: String) throws(EnvelopeError) -> UInt64 {
        try readBigEndian(8, field: field)
    }

    private mutating func readBigEndian(_ width: Int, field: String) throws(EnvelopeError) -> UInt64 {
        try require(width, field: field)
        var value: UInt64 = 0
        for i in offset..<(offset + width) { value = (value << 8) | UInt64(bytes[i]) }
        offset += width
        return value
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        let bigEndian = value.bigEndian
        Swift.withUnsafeBytes(of: bigEndian) { append(contentsOf: $0) }
    }
}
