/// The cleartext, authenticated header of a sealed envelope: who sent it, for which federation and round.
///
/// Encoded big-endian (offsets relative to the start of the header):
/// ```
/// ┌──────────────────┬───────────┬────────────┬───────────────┬────────────┬───────────┐
/// │ protocol version │ round id  │ fed id len │ federation id │ node id len│ node id   │
/// │ u32 BE           │ u64 BE    │ u16 BE = F │ F bytes UTF-8 │ u16 BE = N │ N B UTF-8 │
/// └──────────────────┴───────────┴────────────┴───────────────┴────────────┴───────────┘
///   0                  4           12           14              14+F         16+F
/// ```
public struct EnvelopeHeader: Sendable, Hashable {
    /// The wire protocol version of the sender (`ProtocolVersion.current`).
    public var protocolVersion: UInt32
    /// The federation the envelope belongs to.
    public var federationID: String
    /// The round the envelope was produced for.
    public var roundID: UInt64
    /// The node that produced and signed the envelope.
    public var nodeID: String

    /// Creates a header.
    /// - Parameters:
    ///   - protocolVersion: The sender's protocol version; defaults to `ProtocolVersion.current`.
    ///   - federationID: The federation identifier (1…`maxIdentifierBytes` UTF-8 bytes).
    ///   - roundID: The round identifier.
    ///   - nodeID: The node identifier (1…`maxIdentifierBytes` UTF-8 bytes).
    public init(
        protocolVersion: UInt32 = ProtocolVersion.current, federationID: String, roundID: UInt64, nodeID: String
    ) {
        self.protocolVersion = protocolVersion
        self.federationID = federationID
        self.roundID = roundID
        self.nodeID = nodeID
    }

    /// The encoded form, after checking identifier lengths against `limits`.
    func encoded(limits: EnvelopeLimits) throws(EnvelopeError) -> [UInt8] {
        var out: [UInt8] = []
        out.appendBigEndian(protocolVersion)
        out.appendBigEndian(roundID)
        for (field, value) in [("federation id", federationID), ("node id", nodeID)] {
            let utf8 = Array(value.utf8)
            guard !utf8.isEmpty else { throw .invalidField(field: field, offset: out.count, reason: "empty") }
            guard utf8.count <= min(limits.maxIdentifierBytes, Int(UInt16.max)) else {
                throw .tooLarge(field: field, offset: out.count, length: utf8.count, limit: limits.maxIdentifierBytes)
            }
            out.appendBigEndian(UInt16(utf8.count))
            out.append(contentsOf: utf8)
        }
        guard out.count <= limits.maxHeaderBytes else {
            throw .tooLarge(field: "header", offset: 0, length: out.count, limit: limits.maxHeaderBytes)
        }
        return out
    }

    /// Decodes a header that occupies exactly `range` of `bytes`; `range.lowerBound` is its absolute offset.
    static func decode(_ bytes: [UInt8], range: Range<Int>, limits: EnvelopeLimits) throws(EnvelopeError) -> Self {
        var reader = ByteReader(bytes, range: range, base: range.lowerBound)
        let version = try reader.readUInt32(field: "header.protocolVersion")
        let round = try reader.readUInt64(field: "header.roundID")
        let federation = try readIdentifier(&reader, field: "header.federationID", limits: limits)
        let node = try readIdentifier(&reader, field: "header.nodeID", limits: limits)
        guard reader.remaining == 0 else { throw .trailingBytes(offset: reader.position, count: reader.remaining) }
        return EnvelopeHeader(protocolVersion: version, federationID: federation, roundID: round, nodeID: node)
    }

    private static func readIdentifier(
        _ reader: inout ByteReader, field: String, limits: EnvelopeLimits
    ) throws(EnvelopeError) -> String {
        let lengthOffset = reader.position
        let length = Int(try reader.readUInt16(field: field + ".length"))
        guard length > 0 else { throw .invalidField(field: field, offset: lengthOffset, reason: "empty") }
        guard length <= limits.maxIdentifierBytes else {
            throw .tooLarge(field: field, offset: lengthOffset, length: length, limit: limits.maxIdentifierBytes)
        }
        let start = reader.position
        let utf8 = try reader.readBytes(length, field: field)
        guard let text = String(validating: utf8, as: UTF8.self) else {
            throw .invalidField(field: field, offset: start, reason: "not valid UTF-8")
        }
        return text
    }
}
