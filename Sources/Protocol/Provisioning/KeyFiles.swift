import SwiftASN1

/// Reading and writing the libsodium key files of a coordinator (sealing) and a node (signing).
///
/// Each file holds 32 raw bytes, either PEM-armoured (what `write` produces) or as a bare 32-byte file:
/// ```
/// NAME.sealing.key  -----BEGIN FEDDISTILL X25519 SECRET KEY-----   X25519 secret key   mode 0600
/// NAME.sealing.pub  -----BEGIN FEDDISTILL X25519 PUBLIC KEY-----   X25519 public key   mode 0644
/// NAME.signing.key  -----BEGIN FEDDISTILL ED25519 SEED-----        Ed25519 seed        mode 0600
/// NAME.signing.pub  -----BEGIN FEDDISTILL ED25519 PUBLIC KEY-----  Ed25519 public key  mode 0644
/// ```
/// Secret files are created with mode 0600 from the start and never replaced unless `overwrite` is set.
public enum KeyFiles {
    static let sealingSecretLabel = "FEDDISTILL X25519 SECRET KEY"
    static let sealingPublicLabel = "FEDDISTILL X25519 PUBLIC KEY"
    static let signingSeedLabel = "FEDDISTILL ED25519 SEED"
    static let signingPublicLabel = "FEDDISTILL ED25519 PUBLIC KEY"

    /// The four paths for `name` in `directory`.
    /// - Parameters:
    ///   - directory: The key directory.
    ///   - name: The node or coordinator name.
    /// - Returns: Sealing secret/public and signing seed/public key paths.
    public static func paths(
        in directory: String, name: String
    ) -> (sealingKey: String, sealingPublic: String, signingKey: String, signingPublic: String) {
        let base = directory + "/" + name
        return (base + ".sealing.key", base + ".sealing.pub", base + ".signing.key", base + ".signing.pub")
    }

    /// Generates a sealing (X25519) and a signing (Ed25519) key pair and writes the four files.
    /// - Parameters:
    ///   - directory: The key directory (created with mode 0700 if missing).
    ///   - name: The node or coordinator name (see `NodeName.validate`).
    ///   - overwrite: Replace existing files; otherwise any existing file is an error and nothing is written.
    /// - Returns: The generated key pairs.
    /// - Throws: `ProvisioningError`.
    @discardableResult
    public static func generate(
        in directory: String, name: String, overwrite: Bool = false
    ) throws(ProvisioningError) -> (sealing: SealingKeys, signing: SigningKeys) {
        try NodeName.validate(name)
        try SecureFile.makeDirectory(directory)
        let p = paths(in: directory, name: name)
        if !overwrite {
            for path in [p.sealingKey, p.sealingPublic, p.signingKey, p.signingPublic] where SecureFile.exists(path) {
                throw .fileExists(path: path)
            }
        }
        let sealing: SealingKeys
        let signing: SigningKeys
        do {
            sealing = try SealingKeys.generate()
            signing = try SigningKeys.generate()
        } catch { throw .certificateFailed(reason: error.description) }
        try write(sealing.secretKey, label: sealingSecretLabel, to: p.sealingKey, secret: true, overwrite: overwrite)
        try write(sealing.publicKey.rawRepresentation, label: sealingPublicLabel, to: p.sealingPublic, secret: false,
                  overwrite: overwrite)
        try write(signing.seed, label: signingSeedLabel, to: p.signingKey, secret: true, overwrite: overwrite)
        try write(signing.publicKey.rawRepresentation, label: signingPublicLabel, to: p.signingPublic, secret: false,
                  overwrite: overwrite)
        return (sealing, signing)
    }

    /// Reads an X25519 sealing key pair from its secret key file.
    /// - Parameter path: A `.sealing.key` file.
    /// - Returns: The key pair.
    /// - Throws: `ProvisioningError.readFailed`.
    public static func readSealingKeys(_ path: String) throws(ProvisioningError) -> SealingKeys {
        let raw = try read(path, label: sealingSecretLabel)
        do { return try SealingKeys(secretKey: raw) } catch { throw .readFailed(path: path, reason: error.description) }
    }

    /// Reads an X25519 public key file.
    /// - Parameter path: A `.sealing.pub` file.
    /// - Returns: The public key.
    /// - Throws: `ProvisioningError.readFailed`.
    public static func readSealingPublicKey(_ path: String) throws(ProvisioningError) -> SealingPublicKey {
        let raw = try read(path, label: sealingPublicLabel)
        do { return try SealingPublicKey(rawRepresentation: raw) } catch {
            throw .readFailed(path: path, reason: error.description)
        }
    }

    /// Reads an Ed25519 signing key pair from its seed file.
    /// - Parameter path: A `.signing.key` file.
    /// - Returns: The key pair.
    /// - Throws: `ProvisioningError.readFailed`.
    public static func readSigningKeys(_ path: String) throws(ProvisioningError) -> SigningKeys {
        let raw = try read(path, label: signingSeedLabel)
        do { return try SigningKeys(seed: raw) } catch { throw .readFailed(path: path, reason: error.description) }
    }

    /// Reads an Ed25519 public key file (what a node registers with the coordinator).
    /// - Parameter path: A `.signing.pub` file.
    /// - Returns: The public key.
    /// - Throws: `ProvisioningError.readFailed`.
    public static func readSigningPublicKey(_ path: String) throws(ProvisioningError) -> SigningPublicKey {
        let raw = try read(path, label: signingPublicLabel)
        do { return try SigningPublicKey(rawRepresentation: raw) } catch {
            throw .readFailed(path: path, reason: error.description)
        }
    }

    private static func write(
        _ raw: [UInt8], label: String, to path: String, secret: Bool, overwrite: Bool
    ) throws(ProvisioningError) {
        let text = PEMDocument(type: label, derBytes: raw).pemString + "\n"
        try SecureFile.write(text, to: path, mode: secret ? SecureFile.privateMode : SecureFile.publicMode,
                             overwrite: overwrite)
    }

    private static func read(_ path: String, label: String) throws(ProvisioningError) -> [UInt8] {
        let bytes = try SecureFile.read(path, maxBytes: 4096)
        if bytes.count == 32 { return bytes }
        let document: PEMDocument
        do { document = try PEMDocument(pemString: String(decoding: bytes, as: UTF8.self)) } catch {
            throw .readFailed(path: path, reason: "neither 32 raw bytes nor a PEM document")
        }
        guard document.discriminator == label else {
            throw .readFailed(path: path, reason: "expected a \(label) PEM block, found \(document.discriminator)")
        }
        guard document.derBytes.count == 32 else { throw .readFailed(path: path, reason: "key is not 32 bytes") }
        return document.derBytes
    }
}
