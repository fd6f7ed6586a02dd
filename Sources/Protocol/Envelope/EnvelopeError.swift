/// Why an envelope was refused. Every parse error names the field and the byte offset at which it starts, so
/// a user can tell a truncated file from a wrong key or a tampered body.
public enum EnvelopeError: Error, Sendable, Hashable {
    /// The input ended inside `field`, which starts at `offset` and needs `needed` bytes; `available` remain.
    case truncated(field: String, offset: Int, needed: Int, available: Int)
    /// A length or size is above the configured limit (checked before anything is allocated or sliced).
    case tooLarge(field: String, offset: Int, length: Int, limit: Int)
    /// The first four bytes are not `"FDSE"`.
    case badMagic(offset: Int)
    /// The envelope format version is not one this build reads.
    case unsupportedFormatVersion(UInt8, offset: Int)
    /// A field has a value that is never valid (empty identifier, invalid UTF-8, bad key length, …).
    case invalidField(field: String, offset: Int, reason: String)
    /// Bytes follow the end of the ciphertext.
    case trailingBytes(offset: Int, count: Int)
    /// The Ed25519 signature does not verify with the expected signer's key.
    case badSignature
    /// The symmetric key could not be unsealed: the envelope was sealed to another recipient.
    case wrongRecipient
    /// The ciphertext or its associated header failed XChaCha20-Poly1305 authentication.
    case decryptionFailed
    /// A libsodium primitive reported an error while sealing.
    case cryptoFailure(operation: String)
    /// The envelope speaks another protocol version.
    case protocolVersionMismatch(received: UInt32, supported: UInt32)
    /// The envelope belongs to another federation.
    case federationMismatch(received: String, expected: String)
    /// The node named in the envelope is not the node that sent it.
    case senderMismatch(envelopeNode: String, sender: String)
    /// No signing key is registered for the node.
    case unknownNode(String)
    /// The envelope is for a round that has already passed.
    case staleRound(received: UInt64, current: UInt64)
    /// The envelope is for a round that has not started.
    case futureRound(received: UInt64, current: UInt64)
    /// The same (round, node, nonce) was accepted before.
    case replay(roundID: UInt64, nodeID: String)
    /// The replay store could not record the envelope.
    case replayStoreFailed(reason: String)
}

extension EnvelopeError: CustomStringConvertible {
    /// A one-line explanation naming the field and offset where there is one.
    public var description: String {
        switch self {
        case .truncated(let field, let offset, let needed, let available):
            return "envelope truncated in \(field) at offset \(offset): needs \(needed) bytes, \(available) left"
        case .tooLarge(let field, let offset, let length, let limit):
            return "envelope \(field) at offset \(offset) is \(length) bytes, above the limit of \(limit)"
        case .badMagic(let offset):
            return "not a sealed envelope: bad magic at offset \(offset) (expected \"FDSE\")"
        case .unsupportedFormatVersion(let version, let offset):
            return "unsupported envelope format version \(version) at offset \(offset)"
        case .invalidField(let field, let offset, let reason):
            return "invalid envelope \(field) at offset \(offset): \(reason)"
        case .trailingBytes(let offset, let count):
            return "\(count) unexpected bytes after the envelope at offset \(offset)"
        case .badSignature:
            return "envelope signature does not verify with the node's signing key"
        case .wrongRecipient:
            return "envelope key cannot be unsealed: it was sealed to another recipient"
        case .decryptionFailed:
            return "envelope body failed authentication (tampered or corrupted)"
        case .cryptoFailure(let operation):
            return "libsodium failed in \(operation)"
        case .protocolVersionMismatch(let received, let supported):
            return "envelope protocol version \(received) is not supported (this build speaks \(supported))"
        case .federationMismatch(let received, let expected):
            return "envelope is for federation \(PeerString.quoted(received)), expected \(PeerString.quoted(expected))"
        case .senderMismatch(let envelopeNode, let sender):
            return "envelope names node \(PeerString.quoted(envelopeNode)) but was sent by \(PeerString.quoted(sender))"
        case .unknownNode(let node):
            return "no signing key is registered for node \(PeerString.quoted(node))"
        case .staleRound(let received, let current):
            return "envelope is for round \(received), which has passed (current round \(current))"
        case .futureRound(let received, let current):
            return "envelope is for round \(received), which has not started (current round \(current))"
        case .replay(let roundID, let nodeID):
            return "envelope from node \(PeerString.quoted(nodeID)) for round \(roundID) was already accepted (replay)"
        case .replayStoreFailed(let reason):
            return "replay store failed: \(reason)"
        }
    }
}

/// Strings a peer chose (identifiers, names), made safe for error messages and log lines.
public enum PeerString {
    /// `text` in double quotes with every control or non-ASCII scalar escaped (`\u{…}`), cut after `maxScalars`
    /// scalars, so a peer can neither forge log lines nor flood them.
    public static func quoted(_ text: some StringProtocol, maxScalars: Int = 128) -> String {
        let scalars = text.unicodeScalars
        let body = scalars.prefix(maxScalars).map { $0.escaped(asASCII: true) }.joined()
        return "\"" + body + (scalars.count > maxScalars ? "…" : "") + "\""
    }
}
