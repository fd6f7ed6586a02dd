/// Upper bounds the envelope parser enforces before it allocates or slices anything.
public struct EnvelopeLimits: Sendable, Hashable {
    /// Largest whole envelope accepted, in bytes.
    public var maxEnvelopeBytes: Int
    /// Largest encoded header accepted, in bytes.
    public var maxHeaderBytes: Int
    /// Largest federation or node identifier accepted, in UTF-8 bytes.
    public var maxIdentifierBytes: Int
    /// Largest ciphertext (payload plus 16-byte tag) accepted, in bytes.
    public var maxCiphertextBytes: Int

    /// Creates limits.
    /// - Parameters:
    ///   - maxEnvelopeBytes: Largest whole envelope, in bytes.
    ///   - maxHeaderBytes: Largest encoded header, in bytes.
    ///   - maxIdentifierBytes: Largest identifier, in UTF-8 bytes.
    ///   - maxCiphertextBytes: Largest ciphertext, in bytes.
    public init(maxEnvelopeBytes: Int, maxHeaderBytes: Int, maxIdentifierBytes: Int, maxCiphertextBytes: Int) {
        self.maxEnvelopeBytes = maxEnvelopeBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxIdentifierBytes = maxIdentifierBytes
        self.maxCiphertextBytes = maxCiphertextBytes
    }

    /// 256 MiB envelopes, 1 KiB headers, 128-byte identifiers.
    public static let `default` = EnvelopeLimits(
        maxEnvelopeBytes: 256 << 20, maxHeaderBytes: 1024, maxIdentifierBytes: 128, maxCiphertextBytes: 256 << 20)
}
