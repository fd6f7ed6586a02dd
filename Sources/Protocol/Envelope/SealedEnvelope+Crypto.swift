import CSodium

extension SealedEnvelope {
    /// Seals a payload for the coordinator and signs it as `signer`.
    ///
    /// - Parameters:
    ///   - payload: Opaque bytes (a safetensors file); never inspected.
    ///   - recipient: The coordinator's X25519 public key from `JoinResponse.sealingPublicKey`.
    ///   - signer: The node's Ed25519 key pair.
    ///   - header: Protocol version, federation, round and node, authenticated but not encrypted.
    ///   - limits: Limits the result must satisfy, so that the coordinator can parse it.
    /// - Returns: The envelope; send `serialized()`.
    /// - Throws: `EnvelopeError.tooLarge` / `.invalidField` for a header or payload outside `limits`,
    ///   `.cryptoFailure` if libsodium fails.
    public static func seal(
        payload: [UInt8], recipient: SealingPublicKey, signer: SigningKeys, header: EnvelopeHeader,
        limits: EnvelopeLimits = .default
    ) throws(EnvelopeError) -> SealedEnvelope {
        try requireSodium()
        let headerBytes = try header.encoded(limits: limits)
        let ciphertextLength = payload.count + tagBytes
        guard ciphertextLength <= limits.maxCiphertextBytes,
            ciphertextLength + headerBytes.count + fixedOverheadBytes <= limits.maxEnvelopeBytes
        else {
            throw .tooLarge(field: "payload", offset: 0, length: payload.count, limit: limits.maxCiphertextBytes)
        }
        var key = [UInt8](repeating: 0, count: Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES))
        defer { sodium_memzero(&key, key.count) }
        crypto_aead_xchacha20poly1305_ietf_keygen(&key)
        var nonce = [UInt8](repeating: 0, count: nonceBytes)
        randombytes_buf(&nonce, nonce.count)

        var unsigned = SealedEnvelope(header: header, headerBytes: headerBytes, sealedKey: [], nonce: nonce,
                                      signature: [], ciphertext: [])
        let associatedData = unsigned.prefix()
        var ciphertext = [UInt8](repeating: 0, count: ciphertextLength)
        var written: UInt64 = 0
        guard crypto_aead_xchacha20poly1305_ietf_encrypt(
            &ciphertext, &written, payload, UInt64(payload.count), associatedData, UInt64(associatedData.count),
            nil, nonce, key) == 0, written == UInt64(ciphertextLength)
        else { throw .cryptoFailure(operation: "crypto_aead_xchacha20poly1305_ietf_encrypt") }

        var sealedKey = [UInt8](repeating: 0, count: sealedKeyBytes)
        guard crypto_box_seal(&sealedKey, key, UInt64(key.count), recipient.rawRepresentation) == 0 else {
            throw .cryptoFailure(operation: "crypto_box_seal")
        }
        unsigned = SealedEnvelope(header: header, headerBytes: headerBytes, sealedKey: sealedKey, nonce: nonce,
                                  signature: [], ciphertext: ciphertext)
        let signature = try signer.sign(try unsigned.signedMessage())
        return SealedEnvelope(header: header, headerBytes: headerBytes, sealedKey: sealedKey, nonce: nonce,
                              signature: signature, ciphertext: ciphertext)
    }

    /// Verifies the signature, unseals the key and decrypts the payload.
    ///
    /// - Parameters:
    ///   - recipientKeys: The coordinator's X25519 key pair.
    ///   - expectedSigner: The Ed25519 key registered for `header.nodeID`.
    /// - Returns: The payload bytes.
    /// - Throws: `EnvelopeError.badSignature`, `.wrongRecipient` or `.decryptionFailed`.
    public func open(recipientKeys: SealingKeys, expectedSigner: SigningPublicKey) throws(EnvelopeError) -> [UInt8] {
        try requireSodium()
        guard expectedSigner.isValidSignature(signature, for: try signedMessage()) else { throw .badSignature }
        guard sealedKey.count == Self.sealedKeyBytes, nonce.count == Self.nonceBytes,
            ciphertext.count >= Self.tagBytes
        else { throw .decryptionFailed }
        var key = [UInt8](repeating: 0, count: Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES))
        defer { sodium_memzero(&key, key.count) }
        guard crypto_box_seal_open(&key, sealedKey, UInt64(sealedKey.count),
                                   recipientKeys.publicKey.rawRepresentation, recipientKeys.secretKey) == 0
        else { throw .wrongRecipient }
        let associatedData = prefix()
        var payload = [UInt8](repeating: 0, count: ciphertext.count - Self.tagBytes)
        var written: UInt64 = 0
        guard crypto_aead_xchacha20poly1305_ietf_decrypt(
            &payload, &written, nil, ciphertext, UInt64(ciphertext.count), associatedData,
            UInt64(associatedData.count), nonce, key) == 0, written == UInt64(payload.count)
        else { throw .decryptionFailed }
        return payload
    }

    /// Prefix ‖ sealed key ‖ nonce ‖ BLAKE2b-256(ciphertext).
    func signedMessage() throws(EnvelopeError) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        guard crypto_generichash(&digest, digest.count, ciphertext, UInt64(ciphertext.count), nil, 0) == 0 else {
            throw .cryptoFailure(operation: "crypto_generichash")
        }
        var message = prefix()
        message.append(contentsOf: sealedKey)
        message.append(contentsOf: nonce)
        message.append(contentsOf: digest)
        return message
    }
}
