/// A sealed synthetic set: the only thing that leaves a node.
///
/// The payload (a safetensors file, opaque here) is encrypted with a fresh random 32-byte key under
/// XChaCha20-Poly1305 (`crypto_aead_xchacha20poly1305_ietf_encrypt`), with the envelope prefix (magic, version,
/// header length and header) as associated data. The key is sealed to the coordinator's X25519 public key with
/// `crypto_box_seal`. The node signs the prefix, the sealed key, the nonce and the BLAKE2b-256 hash of the
/// ciphertext with Ed25519 (`crypto_sign_detached`). The header carries protocol version, federation id, round
/// id and node id, so the signature binds all of them and the nonce.
///
/// Byte layout, format version 1 (all integers big-endian; H = header length, C = ciphertext length):
/// ```
///  offset    size  field
/// ┌────────┬──────┬────────────────────────────────────────────────────────────────┐
/// │ 0      │ 4    │ magic "FDSE" (46 44 53 45)                                     │
/// │ 4      │ 1    │ format version u8 = 1                                          │
/// │ 5      │ 4    │ header length H, u32 BE, 1 ≤ H ≤ maxHeaderBytes                │
/// │ 9      │ H    │ header (see EnvelopeHeader)                                    │
/// │ 9+H    │ 80   │ sealed key: crypto_box_seal(32-byte key) = 32 ephemeral pk+48  │
/// │ 89+H   │ 24   │ nonce (XChaCha20-Poly1305)                                     │
/// │ 113+H  │ 64   │ Ed25519 signature                                              │
/// │ 177+H  │ 8    │ ciphertext length C, u64 BE, 16 ≤ C ≤ maxCiphertextBytes       │
/// │ 185+H  │ C    │ ciphertext: payload ‖ 16-byte Poly1305 tag                     │
/// └────────┴──────┴────────────────────────────────────────────────────────────────┘
///  associated data = bytes[0 ..< 9+H]
///  signed message  = bytes[0 ..< 9+H] ‖ sealed key ‖ nonce ‖ BLAKE2b-256(ciphertext)
/// ```
/// Nothing may follow the ciphertext.
public struct SealedEnvelope: Sendable, Hashable {
    /// The authenticated cleartext header.
    public let header: EnvelopeHeader
    /// The encoded header exactly as it appears on the wire.
    let headerBytes: [UInt8]
    /// The symmetric key sealed to the recipient (80 bytes).
    let sealedKey: [UInt8]
    /// The XChaCha20-Poly1305 nonce (24 bytes); also the replay identifier.
    public let nonce: [UInt8]
    /// The Ed25519 signature (64 bytes).
    let signature: [UInt8]
    /// The encrypted payload with its tag.
    let ciphertext: [UInt8]

    /// `"FDSE"`.
    public static let magic: [UInt8] = [0x46, 0x44, 0x53, 0x45]
    /// The envelope format version written by this build.
    public static let formatVersion: UInt8 = 1
    static let sealedKeyBytes = 80
    static let nonceBytes = 24
    static let signatureBytes = 64
    static let tagBytes = 16
    /// Size of everything except header and ciphertext.
    public static let fixedOverheadBytes = 4 + 1 + 4 + 80 + 24 + 64 + 8

    init(
        header: EnvelopeHeader, headerBytes: [UInt8], sealedKey: [UInt8], nonce: [UInt8], signature: [UInt8],
        ciphertext: [UInt8]
    ) {
        self.header = header
        self.headerBytes = headerBytes
        self.sealedKey = sealedKey
        self.nonce = nonce
        self.signature = signature
        self.ciphertext = ciphertext
    }

    /// Size of the payload the envelope carries, in bytes.
    public var payloadByteCount: Int { ciphertext.count - Self.tagBytes }

    /// The serialized envelope, in the layout above.
    public func serialized() -> [UInt8] {
        var out = prefix()
        out.reserveCapacity(Self.fixedOverheadBytes + headerBytes.count + ciphertext.count)
        out.append(contentsOf: sealedKey)
        out.append(contentsOf: nonce)
        out.append(contentsOf: signature)
        out.appendBigEndian(UInt64(ciphertext.count))
        out.append(contentsOf: ciphertext)
        return out
    }

    /// Magic, version, header length and header: the AEAD associated data and the start of the signed message.
    func prefix() -> [UInt8] {
        var out = Self.magic
        out.append(Self.formatVersion)
        out.appendBigEndian(UInt32(headerBytes.count))
        out.append(contentsOf: headerBytes)
        return out
    }

    /// Parses untrusted bytes. Pure: it checks structure and limits only; `open` checks signature and body.
    ///
    /// Every length is checked against `limits` before anything is allocated or sliced, and the parser never
    /// traps on any input.
    /// - Parameters:
    ///   - bytes: The whole envelope.
    ///   - limits: Upper bounds for the envelope, header, identifiers and ciphertext.
    /// - Returns: The parsed envelope.
    /// - Throws: `EnvelopeError` naming the field and offset that is wrong.
    public static func parse(_ bytes: [UInt8], limits: EnvelopeLimits) throws(EnvelopeError) -> SealedEnvelope {
        guard bytes.count <= limits.maxEnvelopeBytes else {
            throw .tooLarge(field: "envelope", offset: 0, length: bytes.count, limit: limits.maxEnvelopeBytes)
        }
        var reader = ByteReader(bytes)
        let magic = try reader.readBytes(4, field: "magic")
        guard magic == Self.magic else { throw .badMagic(offset: 0) }
        let version = try reader.readUInt8(field: "format version")
        guard version == Self.formatVersion else { throw .unsupportedFormatVersion(version, offset: 4) }
        let headerLengthOffset = reader.position
        let headerLength = try reader.readUInt32(field: "header length")
        guard headerLength > 0 else {
            throw .invalidField(field: "header length", offset: headerLengthOffset, reason: "zero")
        }
        guard headerLength <= UInt32(clamping: limits.maxHeaderBytes) else {
            throw .tooLarge(field: "header", offset: headerLengthOffset, length: Int(headerLength),
                            limit: limits.maxHeaderBytes)
        }
        let headerStart = reader.position
        try reader.require(Int(headerLength), field: "header")
        let header = try EnvelopeHeader.decode(bytes, range: headerStart..<(headerStart + Int(headerLength)),
                                               limits: limits)
        let headerBytes = try reader.readBytes(Int(headerLength), field: "header")
        let sealedKey = try reader.readBytes(sealedKeyBytes, field: "sealed key")
        let nonce = try reader.readBytes(nonceBytes, field: "nonce")
        let signature = try reader.readBytes(signatureBytes, field: "signature")
        let lengthOffset = reader.position
        let ciphertextLength = try reader.readUInt64(field: "ciphertext length")
        guard ciphertextLength <= UInt64(clamping: limits.maxCiphertextBytes) else {
            throw .tooLarge(field: "ciphertext", offset: lengthOffset, length: Int(clamping: ciphertextLength),
                            limit: limits.maxCiphertextBytes)
        }
        guard ciphertextLength >= UInt64(tagBytes) else {
            throw .invalidField(field: "ciphertext length", offset: lengthOffset, reason: "shorter than the tag")
        }
        let ciphertext = try reader.readBytes(Int(ciphertextLength), field: "ciphertext")
        guard reader.remaining == 0 else { throw .trailingBytes(offset: reader.position, count: reader.remaining) }
        return SealedEnvelope(header: header, headerBytes: headerBytes, sealedKey: sealedKey, nonce: nonce,
                              signature: signature, ciphertext: ciphertext)
    }
}
